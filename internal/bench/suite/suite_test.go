package suite

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/internal/bench"
	"github.com/bulkhead-sec/bulkhead/plugins/chaos"
	"go.uber.org/zap"
)

// The plan of `bench all` lays out every cell; without root the kernel
// cells are left out and the report says why, with root they are in.
func TestStepsLayout(t *testing.T) {
	p := newPlan(true)
	labels := func(root bool) (map[string]bool, *bench.Report) {
		rep := &bench.Report{Skipped: map[string]string{}}
		got := map[string]bool{}
		for _, s := range steps(env{}, p, allSections, root, rep, nil) {
			if s.expect <= 0 || s.run == nil {
				t.Errorf("step %q: expect %s, run %v", s.label, s.expect, s.run != nil)
			}
			if got[s.label] {
				t.Errorf("step %q twice", s.label)
			}
			got[s.label] = true
		}
		return got, rep
	}
	user, rep := labels(false)
	for _, k := range []string{"capture", "throughput (kernel events)", "latency (kernel events)"} {
		if rep.Skipped[k] == "" {
			t.Errorf("without root, %q is not said to be skipped: %v", k, rep.Skipped)
		}
	}
	for l := range user {
		if strings.Contains(l, "kernel") || strings.HasPrefix(l, "capture") {
			t.Errorf("without root, step %q", l)
		}
	}
	for _, want := range []string{"throughput replay inproc, 1 detector(s)", "throughput replay wasm, 16 detector(s)",
		"throughput replay goplugin, batch 4096", "latency host round trip", "latency replay goplugin-naive", "fault panic on inproc-recover", "fault hang on wasm"} {
		if !user[want] {
			t.Errorf("no step %q", want)
		}
	}
	// 3 detector counts × 5 backends, 5 more batch sizes × 4 backends,
	// the host's round trip and 5 latency cells, and the fault matrix.
	faults := 0
	for _, f := range chaos.Faults {
		faults += 3
		if bench.IsCrash(f) {
			faults++
		}
	}
	if want := 15 + 20 + 1 + 5 + faults; len(user) != want {
		t.Errorf("%d steps without root, want %d", len(user), want)
	}
	root, rep := labels(true)
	if len(rep.Skipped) != 0 || !root["capture overhead"] || !root["throughput kernel goplugin, 1 detector(s)"] || !root["latency kernel goplugin"] {
		t.Errorf("as root: skipped %v, capture %v, kernel cells %v %v", rep.Skipped, root["capture overhead"],
			root["throughput kernel goplugin, 1 detector(s)"], root["latency kernel goplugin"])
	}
	if len(root) != len(user)+1+5+2 {
		t.Errorf("%d steps as root, want %d", len(root), len(user)+8)
	}
}

// Every fault is injected inside the load, with room to recover before
// it ends; hangs come further apart than the batch deadline.
func TestFaultTimesLeaveRoomToRecover(t *testing.T) {
	for _, f := range chaos.Faults {
		p := newPlan(true).fault
		p.Fault = f
		times, length := p.faultTimes()
		if len(times) == 0 || length < p.Seconds {
			t.Errorf("%s: times %v in %g s", f, times, length)
			continue
		}
		for i, at := range times {
			if at <= 0 || at+1 > length || (i > 0 && at-times[i-1] < p.Every) {
				t.Errorf("%s: fault %d at %g s of %g (times %v)", f, i, at, length, times)
			}
		}
	}
}

// A replay throughput cell on inproc: every event offered reaches every
// detector, nothing lost, rates and CPU filled in.
func TestReplayThroughputInproc(t *testing.T) {
	c, err := replayThroughput(env{log: zap.NewNop()}, bench.InProc, 2, 64, 150*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if c.Events == 0 || c.Delivered != 2*c.Events || c.Lost != 0 || c.Batch != 64 || c.EventsPerSec <= 0 || c.MonitorCPUNsPerEvent <= 0 {
		t.Errorf("cell %+v: want every event delivered to both detectors, none lost, batch 64", c)
	}
}

// The storm waits for its go, runs the workload and prints what it did.
// The host's round trip is measured for real: one sample every 2 ms,
// each a real trip through cat.
func TestHostRoundTrip(t *testing.T) {
	h, err := hostRoundTrip(200 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if v := h.Values(); v[0] <= 0 || !slices.IsSorted(v) {
		t.Errorf("round trip percentiles %v µs", v)
	}
}

func TestStormPrintsIterationsAndTime(t *testing.T) {
	var out bytes.Buffer
	if err := Storm("getppid", 30*time.Millisecond, strings.NewReader("\n"), &out); err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(out.String())
	if len(f) != 2 {
		t.Fatalf("printed %q", out.String())
	}
	n, err1 := strconv.ParseUint(f[0], 10, 64)
	ns, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || n == 0 || n%1024 != 0 || time.Duration(ns) < 30*time.Millisecond {
		t.Errorf("printed %q: want a multiple of 1024 iterations in at least 30ms", out.String())
	}
}
