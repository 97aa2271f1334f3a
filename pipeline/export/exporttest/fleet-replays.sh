#!/bin/bash
# 20 monitors (bulkhead replay of the library recording, each with its own
# host id, eight detectors in-process, events exported too) publish to one
# nats-server on 127.0.0.1; the server is SIGKILLed at t=15 s and started
# again at t=45 s. Checks that every replay's records were acknowledged
# and that the stream holds exactly what was exported.
#
#   make build && pipeline/export/exporttest/fleet-replays.sh [SPEED] [PORT]
#
# SPEED 0.006 stretches the 0.37 s recording to about 60 s; 0 replays at
# full speed (no outage then: the replays end first).
set -eu
speed=${1:-0.006}
port=${2:-14222}
repo=$(cd "$(dirname "$0")/../../.." && pwd)
bin=$repo/bin/bulkhead
rec=$repo/testdata/recordings/library.bhrec
work=$(mktemp -d)
url=nats://127.0.0.1:$port
server() {
	nats-server -js -a 127.0.0.1 -p "$port" -m $((port + 1)) -sd "$work/store" >>"$work/server.log" 2>&1 &
	spid=$!
	for _ in $(seq 50); do curl -sf "http://127.0.0.1:$((port + 1))/healthz?js-enabled-only=true" >/dev/null && return; sleep 0.1; done
	echo "nats-server did not start: $work/server.log"; exit 1
}
server
trap 'kill $spid 2>/dev/null || true' EXIT
for i in $(seq -w 1 20); do
	cat >"$work/c$i.yaml" <<EOC
detectors:
$(for d in webshell credaccess tmpexec privesc kernelload ptrace outbound persistence; do echo "  - {name: $d, backend: inproc, builtin: $d}"; done)
export: {host: replay-$i, events: true, spool: {dir: $work/spool-$i}}
EOC
done
uptime
start=$(date +%s)
pids=()
for i in $(seq -w 1 20); do
	"$bin" replay "$rec" --speed "$speed" --config "$work/c$i.yaml" --export "$url" --log-level warn >"$work/out$i" 2>"$work/err$i" &
	pids+=($!)
done
if [ "$speed" != 0 ]; then
	sleep 15
	kill -9 "$spid"; wait "$spid" 2>/dev/null || true
	echo "t=$(($(date +%s) - start))s nats-server SIGKILLed"
	for _ in 1 2 3; do
		sleep 10
		echo "t=$(($(date +%s) - start))s spools: $(du -cb "$work"/spool-*/seg-* 2>/dev/null | tail -1 | cut -f1) bytes on disk"
	done
	server
	echo "t=$(($(date +%s) - start))s nats-server started again"
fi
wait "${pids[@]}"
echo "t=$(($(date +%s) - start))s all 20 replays ended"
grep -h "export to" "$work"/err* | sed 's/replay-[0-9]*//' | sort | uniq -c
grep -h "export spool" "$work"/err* | sort | uniq -c
exported=$(grep -h "export to" "$work"/err* | sed -E 's/.*: ([0-9]+) findings and ([0-9]+) events exported.*/\1 \2/' | awk '{s += $1 + $2} END {print s}')
stored=$(curl -sf "http://127.0.0.1:$((port + 1))/jsz?streams=true" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(s["state"]["messages"] for a in d.get("account_details",[]) for s in a.get("stream_detail",[])))')
echo "exported $exported records; the stream holds $stored messages"
uptime
[ "$exported" = "$stored" ] && ! grep -q "[1-9][0-9]* records ([0-9]* bytes) wait" "$work"/err* && rm -rf "$work" && echo PASS || { echo "FAIL: see $work"; exit 1; }
