package monitor

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/pipeline/dispatch"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

func (s Summary) Print(w io.Writer) {
	fmt.Fprintf(w, "\nbulkhead summary (%s)\n", s.Duration.Round(time.Millisecond))
	fmt.Fprintf(w, "  %-10s %12s %12s %12s %12s\n", "kind", "kernel sent", "ring full", "decoded", "written")
	for _, k := range event.AllKinds() {
		fmt.Fprintf(w, "  %-10s %12d %12d %12d %12d\n", k, s.Kernel.Emitted[k], s.Kernel.Dropped[k], s.Decode.Decoded[k], s.Written[k])
	}
	fmt.Fprintf(w, "  dropped by layer:\n")
	fmt.Fprintf(w, "    kernel: ring buffer full       %d\n", s.Kernel.RingFull())
	fmt.Fprintf(w, "    kernel: enter/exit unpaired    %d (exit without enter %d, no task storage %d; stale enters replaced %d)\n",
		s.Kernel.PairMissing+s.Kernel.PairFull, s.Kernel.PairMissing, s.Kernel.PairFull, s.Kernel.PairOverwritten)
	fmt.Fprintf(w, "    kernel: program runs skipped   %d (recursion)\n", s.Kernel.RecursionMisses)
	fmt.Fprintf(w, "    decode: malformed records      %d (short %d, unknown kind %d, bad string %d)\n",
		s.Decode.Errors(), s.Decode.Short, s.Decode.UnknownKind, s.Decode.BadString)
	fmt.Fprintf(w, "    output: no queue (a slow sink backs up into the ring, counted above)\n")
	fmt.Fprintf(w, "    output: events not written     %d\n", s.SinkErrors)
	if s.Counted {
		fmt.Fprintf(w, "    output: findings not written   %d (%d written)\n", s.Output.FindingsLost, s.Output.Findings)
		fmt.Fprintf(w, "    output: failed writes          %d (writing worked again %d times)\n", s.Output.WriteErrors, s.Output.Recoveries)
	}
	fmt.Fprintf(w, "  reader: %d records, %d bytes, %d kernel wake-ups, %d deadline polls\n",
		s.Reader.Records, s.Reader.Bytes, s.Kernel.Wakeups, s.Reader.Polls)
	PrintDetectors(w, s.Detectors)
	fmt.Fprintf(w, "  processes: %d tracked, %d forks, %d execs, %d exits, %d read from /proc, %d evicted\n",
		s.Table.Processes, s.Table.Forks, s.Table.Execs, s.Table.Exits, s.Table.ProcLookups, s.Table.Evicted)
	if len(s.Skipped) > 0 {
		fmt.Fprintf(w, "  not available on this kernel: %s\n", strings.Join(s.Skipped, ", "))
	}
}

// PrintDetectors writes a row per detector: what it was given, found and
// lost, and how its backend fared.
func PrintDetectors(w io.Writer, lanes []dispatch.LaneStats) {
	if len(lanes) == 0 {
		return
	}
	fmt.Fprintf(w, "  detectors:\n    %-14s %-14s %10s %9s %10s %9s %7s %9s %8s %7s %9s %7s %6s %8s %10s %11s %7s\n", "name", "backend", "queued", "filtered", "delivered",
		"findings", "errors", "shed", "unavail", "failed", "abandoned", "crashes", "hangs", "restarts", "redeliver", "quarantine", "breaker")
	for _, d := range lanes {
		b := d.Backends
		breaker := "closed"
		if b.BreakerOpen {
			breaker = "OPEN"
		}
		fmt.Fprintf(w, "    %-14s %-14s %10d %9d %10d %9d %7d %9d %8d %7d %9d %7d %6d %8d %10d %11d %7s%s\n", d.Name, d.Backend, d.Queued, d.Filtered, d.Delivered,
			b.Findings, b.Errors, d.Shed, d.Unavailable, d.Failed, d.Abandoned, b.Crashes, b.Hangs, b.Restarts, b.Redelivered, b.Quarantined, breaker, enclaveKills(d.Backend, b))
	}
}

// enclaveKills notes the plugin processes the enclave killed, if any (a
// wasm module's instances ended at its memory limit).
func enclaveKills(backend string, b backends.Stats) string {
	s := ""
	if backend == "wasm" && b.LimitKills > 0 {
		s = fmt.Sprintf("  instances ended at the memory limit: %d", b.LimitKills)
	} else if b.Violations+b.LimitKills > 0 {
		s = fmt.Sprintf("  enclave killed: %d for forbidden system calls, %d at limits", b.Violations, b.LimitKills)
	}
	if b.ProtocolViolations > 0 {
		s += fmt.Sprintf("  protocol violations: %d (%d findings refused, %d log lines dropped)", b.ProtocolViolations, b.FindingsRefused, b.LogLinesDropped)
	}
	if b.RingFull > 0 {
		s += fmt.Sprintf("  ring full: %d batches", b.RingFull)
	}
	return s
}
