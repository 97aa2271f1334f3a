package report

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/internal/bench"
)

func fixture() *bench.Report {
	r := &bench.Report{Schema: bench.Schema, Started: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC), Command: "bulkhead bench all --quick",
		Machine:  bench.Machine{Kernel: "6.18", Cores: 2, GoVersion: "go1.26", CPUModel: "test CPU", Bulkhead: "dev", MemoryMiB: 4096},
		Settings: bench.Settings{Sections: []string{"throughput", "latency", "resilience"}, Enclave: true, MTLS: true},
		Skipped:  map[string]string{"capture": "needs root"}}
	for k, b := range []string{bench.InProc, bench.GoPlugin} {
		for i, batch := range []int{1, 16, 256, 1024} {
			r.Throughput = append(r.Throughput, bench.ThroughputCell{Source: bench.Replay, Backend: b, Detectors: 1, Batch: batch,
				Seconds: 1, Events: 1e6, EventsPerSec: float64(1e5*(i+1)) / float64(k+1), Delivered: 1e6, MonitorCPUNsPerEvent: 100})
		}
	}
	r.Throughput = append(r.Throughput, bench.ThroughputCell{Source: bench.Replay, Backend: bench.GoPluginNaive, Detectors: 1, Batch: 1,
		Seconds: 1, Events: 7000, EventsPerSec: 7000, Delivered: 7000, MonitorCPUNsPerEvent: 9000})
	r.Latency = []bench.LatencyCell{{Source: bench.Replay, Backend: bench.GoPlugin, RatePerSec: 1e5, Samples: 10,
		KernelToDetector: bench.Percentiles{P50: 10, P90: 20, P99: 30, P999: 40, Max: 50}, KernelToFinding: bench.Percentiles{P50: 15, P90: 25, P99: 35, P999: 45, Max: 20000}}}
	r.HostRoundTrip = &bench.Percentiles{P50: 80, P90: 200, P99: 1234, P999: 5678, Max: 9000}
	tl := []bench.Sample{{T: 0.1, FaultyPerSec: 100, OtherPerSec: 100}, {T: 0.2, FaultyPerSec: 0, OtherPerSec: 100}, {T: 0.3, FaultyPerSec: 200, OtherPerSec: 100}}
	r.Resilience = []bench.FaultCell{
		{Fault: "panic", Backend: bench.GoPlugin, Crash: true, Verdict: bench.Survived, Faults: 1, Sent: 30, Delivered: 30, DetectMs: []float64{5}, RecoverMs: []float64{40},
			Timeline: tl, Marks: []bench.Mark{{T: 0.15, Kind: "fault"}, {T: 0.16, Kind: "detected"}, {T: 0.2, Kind: "recovered"}}},
		{Fault: "panic", Backend: bench.InProc, Crash: true, Verdict: bench.Died, Exit: "exit 2: panic: a|b", Faults: 1, Sent: 10, Delivered: 10,
			Timeline: tl[:1], Marks: []bench.Mark{{T: 0.15, Kind: "fault"}, {T: 0.151, Kind: "died"}}, Note: "the monitor died"},
	}
	r.EvaluateFloors()
	return r
}

func TestMarkdownWritesReportAndCharts(t *testing.T) {
	dir := t.TempDir()
	r := fixture()
	if err := Markdown(r, dir); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(md)
	for _, want := range []string{"Made by `bulkhead bench all --quick`", "**Skipped: capture** — needs root", "## Floors", "| FAIL |",
		"| replay | goplugin-naive | 1 | 1 | 7.0k |", "20.0 ms", "exit 2: panic: a\\|b", "- panic on inproc: the monitor died",
		"![throughput by batch size](throughput-batch.png)", "![panic timeline](fault-panic.png)", "![latency percentiles](latency.png)",
		"two processes over pipes", "p99 1234 µs", "bare pipe round trip between two processes: p99 1234 µs, p99.9 5678 µs"} {
		if !strings.Contains(s, want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	for _, name := range []string{"throughput-batch.png", "throughput-detectors.png", "latency.png", "fault-panic.png"} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if b := img.Bounds(); b.Dx() < 300 || b.Dy() < 200 {
			t.Errorf("%s is %v", name, b)
		}
	}
}

func TestText(t *testing.T) {
	var out bytes.Buffer
	Text(&out, fixture())
	s := out.String()
	for _, want := range []string{"test CPU, 2 cores", "skipped capture: needs root", "replay  goplugin-naive", "died with it", "exit 2: panic: a|b", "40 / 40", "FAIL  goplugin vs inproc", "pipe round trip between two idle processes, µs: p50 80, p99 1234"} {
		if !strings.Contains(s, want) {
			t.Errorf("text lacks %q:\n%s", want, s)
		}
	}
}

func TestSILabels(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 1: "1", 250: "250", 1000: "1k", 250000: "250k", 1e7: "10M", 12345678: "12.3M", 0.5: "0.5", 2.5e9: "2.5G"} {
		if got := siLabel(v); got != want {
			t.Errorf("siLabel(%g) = %q, want %q", v, got, want)
		}
	}
}

// compare --chart draws the cells two runs share; none shared, nothing drawn.
func TestCompareChart(t *testing.T) {
	a := &bench.Report{Throughput: []bench.ThroughputCell{{Source: bench.Replay, Backend: bench.InProc, Detectors: 1, Batch: 256, EventsPerSec: 1e7},
		{Source: bench.Replay, Backend: bench.GoPlugin, Detectors: 1, Batch: 256, EventsPerSec: 5e6}}}
	b := &bench.Report{Throughput: []bench.ThroughputCell{{Source: bench.Replay, Backend: bench.GoPlugin, Detectors: 1, Batch: 256, EventsPerSec: 6e6}}}
	path := filepath.Join(t.TempDir(), "cmp.png")
	if drawn, err := CompareChart(a, b, "a.json", "b.json", path); err != nil || !drawn {
		t.Fatalf("CompareChart = %v, %v", drawn, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() < 1000 {
		t.Fatalf("no chart: %v", err)
	}
	if drawn, err := CompareChart(a, &bench.Report{}, "a.json", "b.json", path); err != nil || drawn {
		t.Fatalf("nothing shared: drawn %v, %v", drawn, err)
	}
}
