package test

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/test/testenv"
)

// protocolAttacks are the rogue plugin's attacks the monitor must survive
// with bounded memory, counting each as a protocol violation.
var protocolAttacks = []string{"flood-findings", "huge-summary", "huge-fields", "bad-severity", "fabricated-evidence",
	"bad-counters", "out-of-order", "garbage", "stderr-flood"}

// vmHWM is a process's peak resident set in MiB.
func vmHWM(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" {
			kb, _ := strconv.Atoi(f[1])
			return float64(kb) / 1024
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// Issue 14, class 7: nine rogue plugins attack the protocol at once, in
// their enclaves, next to a healthy plugin: a million findings for one
// event, a 50 MiB summary, 1 MiB of fields, a bad severity, fabricated
// evidence, impossible counters with a 1 MiB last error full of escapes,
// answers out of order and not protobuf, and 200,000 lines of stderr. The
// monitor stays up within bounded memory, counts a protocol violation for
// every rogue (metrics), logs it, never lets a raw escape into its log,
// and the healthy detector loses nothing.
func TestProtocolAttacksAreContained(t *testing.T) {
	testenv.RequireBPF(t)
	dir := t.TempDir()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "detectors:\n  - {name: healthy, backend: goplugin, plugin: %s, config: {report_on: %q}}\n", testenv.Plugin(t, "chaos"), dir+"/ok-")
	rogue := testenv.Plugin(t, "rogue")
	for _, a := range protocolAttacks {
		fmt.Fprintf(&cfg, "  - {name: %s, backend: goplugin, plugin: %s, config: {attack: %s, on: %q, report_on: %q}}\n", a, rogue, a, dir+"/attack", dir+"/ok-")
	}
	// Capture only the markers' opener: other tests on this host may be storming.
	m := startMonitor(t, "--config", writeConfig(t, cfg.String()), "--metrics-addr", "127.0.0.1:0", "--comm", "python3")
	pid := m.cmd.Process.Pid
	base := vmHWM(t, pid)
	url := regexp.MustCompile(`http://127\.0\.0\.1:\d+/metrics`).FindString(m.stderr.String())
	if url == "" {
		t.Fatalf("no metrics URL in the log:\n%s", m.stderr.String())
	}
	cpu0 := procCPU(t, pid)
	openMarkersFrom(t, dir, "ok", 0, 20, 300*time.Millisecond)
	openMarkersFrom(t, dir, "attack", 0, 1, 0)
	openMarkersFrom(t, dir, "ok", 20, 20, 3*time.Second) // kills, restarts and the flood play out
	time.Sleep(time.Second)
	peak, cpu := vmHWM(t, pid), procCPU(t, pid)-cpu0
	metrics := scrape(t, url)
	events := m.stop(t)
	stderr := m.stderr.String()

	t.Logf("monitor peak RSS %.0f MiB before the attacks, %.0f MiB after; CPU %s during them; log %d bytes", base, peak, cpu, len(stderr))
	if peak > base+100 {
		t.Errorf("the monitor's peak RSS grew from %.0f to %.0f MiB", base, peak)
	}
	if got := len(markersFound(events, "healthy", dir+"/ok-")); got != 40 {
		t.Errorf("the healthy detector got %d of 40 markers", got)
	}
	if row := summaryRow(t, stderr, "healthy"); row["crashes"] != "0" || row["shed"] != "0" || row["failed"] != "0" {
		t.Errorf("the healthy detector: %v", row)
	}
	metric := func(name, det string) float64 {
		for k, v := range metrics {
			if strings.HasPrefix(k, name+"{") && strings.Contains(k, `detector="`+det+`"`) {
				return v
			}
		}
		return -1
	}
	for _, a := range protocolAttacks {
		v, refused, dropped := metric("bulkhead_plugin_protocol_violations_total", a), metric("bulkhead_plugin_findings_refused_total", a), metric("bulkhead_plugin_log_lines_dropped_total", a)
		row := summaryRow(t, stderr, a)
		t.Logf("%-20s violations %3.0f, findings refused %7.0f, log lines dropped %6.0f; summary: crashes %s, restarts %s, quarantined %s",
			a, v, refused, dropped, row["crashes"], row["restarts"], row["quarantine"])
		if v < 1 {
			t.Errorf("%s: %v protocol violations counted", a, v)
		}
		if row["crashes"] != "0" {
			t.Errorf("%s: counted as %s crashes, want violations", a, row["crashes"])
		}
		if a != "stderr-flood" && !logged(stderr, a, "broke the protocol") {
			t.Errorf("%s: no log line reporting the violation", a)
		}
	}
	if !logged(stderr, "stderr-flood", "dropped over the rate limit") {
		t.Error("the flood's dropped lines were not reported")
	}
	if v := metric("bulkhead_plugin_findings_refused_total", "flood-findings"); v < 999_000 {
		t.Errorf("flood-findings: %v findings refused, want the million less the bound", v)
	}
	if strings.ContainsAny(stderr, "\x1b\x07\u009b") {
		t.Error("a raw terminal control reached the monitor's log")
	}
	if len(stderr) > 4<<20 {
		t.Errorf("the monitor's log is %d bytes", len(stderr))
	}
	for _, ev := range events {
		if ev["type"] == "finding" && (ev["rule"] == "fabricated" || ev["rule"] == "bad-severity" || ev["rule"] == "fabricated-index") {
			t.Errorf("a refused finding was written: %v", ev)
		}
	}
	if t.Failed() {
		t.Log(tail(stderr, 40))
	}
}

// procCPU is a process's user and system CPU time.
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return time.Duration(u+s) * 10 * time.Millisecond
}
