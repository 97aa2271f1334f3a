package test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bulkhead-sec/bulkhead/backends/wasm/wasmtest"
	"github.com/bulkhead-sec/bulkhead/internal/bench"
	"github.com/bulkhead-sec/bulkhead/plugins/chaos"
	"github.com/bulkhead-sec/bulkhead/test/testenv"
)

// TestBenchAllShortRun runs every section of `bulkhead bench all` with
// short cells and checks that each produces sane numbers (bench.Check:
// non-zero rates, nothing lost in replay, rising percentiles, a verdict per
// fault cell), that the report and its charts are written, and that
// compare reads the result. It does not judge the numbers themselves.
func TestBenchAllShortRun(t *testing.T) {
	testenv.RequireBPF(t)
	bin := testenv.Binary(t)
	for _, p := range []string{"probe", "chaos", "example"} {
		testenv.Plugin(t, p) // beside bin, where the bench looks
		// And its wasm module, for the wasm cells.
		mod, err := os.ReadFile(wasmtest.Build(t, p))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(filepath.Dir(bin), "bulkhead-plugin-"+p+".wasm"), mod, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := t.TempDir()
	// Cells this short on a shared host may miss floors: the exit status
	// must say so (1, naming them), and only then.
	cmd := exec.Command(bin, "bench", "all", "--quick", "--cell", "200ms", "--fault-seconds", "1.2", "--out", out, "--log-level", "info")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("stdout:\n%s", stdout.String())
	r, rerr := bench.Read(filepath.Join(out, "report.json"))
	if rerr != nil {
		t.Fatalf("bench all: %v, and no report: %v\nstderr:\n%s", err, rerr, stderr.String())
	}
	if failed := r.FailedFloors(); len(failed) > 0 {
		if err == nil || !strings.Contains(stderr.String(), fmt.Sprintf("%d floor(s) FAIL", len(failed))) {
			t.Errorf("%d floors failed, but the exit is %v and stderr says:\n%s", len(failed), err, lastBytes(stderr.String(), 2000))
		}
	} else if err != nil {
		log, _ := os.ReadFile(filepath.Join(out, "bench.log"))
		t.Fatalf("bench all: %v\nstderr:\n%s\nlog tail:\n%s", err, stderr.String(), lastBytes(string(log), 4000))
	}
	if len(r.Errors) > 0 {
		t.Fatalf("measurements failed: %v", r.Errors)
	}
	if err := bench.Check(r); err != nil {
		t.Errorf("the run is not sane:\n%v", err)
	}
	if len(r.Skipped) > 0 {
		t.Errorf("as root nothing should be skipped: %v", r.Skipped)
	}
	// Every fault on every backend has a cell, and the floors were judged.
	for _, f := range chaos.Faults {
		for _, b := range []string{bench.InProc, bench.GoPlugin, bench.Wasm} {
			if !slices.ContainsFunc(r.Resilience, func(c bench.FaultCell) bool { return c.Fault == f && c.Backend == b }) {
				t.Errorf("no resilience cell for %s on %s", f, b)
			}
		}
	}
	for _, c := range r.Resilience {
		if c.Backend == bench.InProc && c.Crash && c.Verdict != bench.Died {
			t.Errorf("%s in process: the monitor should die, got %s", c.Fault, c.Verdict)
		}
		if c.Fault == "fail-init" && c.Verdict != bench.Refused {
			t.Errorf("fail-init on %s: got %s", c.Backend, c.Verdict)
		}
	}
	if len(r.Floors) == 0 {
		t.Error("no floors evaluated")
	}
	md, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, chart := range []string{"throughput-batch.png", "throughput-detectors.png", "latency.png", "fault-panic.png"} {
		if !strings.Contains(string(md), "("+chart+")") {
			t.Errorf("report.md does not show %s", chart)
		}
		if _, err := os.Stat(filepath.Join(out, chart)); err != nil {
			t.Error(err)
		}
	}
	if !strings.Contains(stderr.String(), "] fault panic on goplugin") {
		t.Errorf("no progress lines on stderr:\n%s", stderr.String())
	}
	cmp, err := exec.Command(bin, "bench", "compare", filepath.Join(out, "report.json"), filepath.Join(out, "report.json")).CombinedOutput()
	if err != nil || !strings.Contains(string(cmp), "0 figure(s) worse") {
		t.Errorf("compare with itself: %v\n%s", err, cmp)
	}
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
