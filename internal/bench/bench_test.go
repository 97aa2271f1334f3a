package bench

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPercentilesOf(t *testing.T) {
	var s []float64
	for i := 1000; i >= 1; i-- {
		s = append(s, float64(i))
	}
	p := PercentilesOf(s)
	want := Percentiles{P50: 500, P90: 900, P99: 990, P999: 999, Max: 1000}
	if p != want {
		t.Errorf("got %+v, want %+v", p, want)
	}
	if got := PercentilesOf([]float64{7}); got.P50 != 7 || got.Max != 7 {
		t.Errorf("one sample: %+v", got)
	}
	if got := PercentilesOf(nil); got != (Percentiles{}) {
		t.Errorf("no samples: %+v", got)
	}
	if Median([]float64{3, 1, 2, 10}) != 2.5 || Max([]float64{3, 9, 1}) != 9 {
		t.Error("median or max wrong")
	}
}

// sane is a small report that passes Check.
func sane() *Report {
	return &Report{
		Schema: Schema, Started: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC),
		Machine:  Machine{Kernel: "6.18", Cores: 2, GoVersion: "go1.26", CPUModel: "test CPU", Bulkhead: "dev"},
		Settings: Settings{Sections: []string{"capture", "throughput", "latency", "resilience"}},
		Capture:  &Capture{UnmonitoredPerSec: 1e6, MonitoredPerSec: 7e5, Ratio: 0.7, Generated: 700, Delivered: 700},
		Throughput: []ThroughputCell{
			{Source: Replay, Backend: InProc, Detectors: 1, Batch: 256, Seconds: 1, Events: 10e6, EventsPerSec: 10e6, Delivered: 10e6, MonitorCPUNsPerEvent: 90},
			{Source: Replay, Backend: GoPlugin, Detectors: 1, Batch: 256, Seconds: 1, Events: 9e6, EventsPerSec: 9e6, Delivered: 9e6, MonitorCPUNsPerEvent: 100},
			{Source: Replay, Backend: GoPluginNaive, Detectors: 1, Batch: 1, Seconds: 1, Events: 1e4, EventsPerSec: 1e4, Delivered: 1e4, MonitorCPUNsPerEvent: 9000},
		},
		Latency: []LatencyCell{{Source: Replay, Backend: GoPlugin, RatePerSec: 1e5, Samples: 100,
			KernelToDetector: Percentiles{10, 20, 30, 40, 50}, KernelToFinding: Percentiles{15, 25, 35, 45, 55}}},
		Resilience: []FaultCell{
			{Fault: "panic", Backend: GoPlugin, Crash: true, Verdict: Survived, Faults: 2, Sent: 100, Delivered: 100,
				DetectMs: []float64{5, 6}, RecoverMs: []float64{40, 50}, Timeline: []Sample{{T: 0.1, FaultyPerSec: 1000}}},
			{Fault: "panic", Backend: InProc, Crash: true, Verdict: Died, Exit: "exit 2: panic: boom", Faults: 1, Sent: 10, Delivered: 10},
			{Fault: "fail-init", Backend: GoPlugin, Verdict: Refused},
		},
	}
}

func TestCheckPassesASaneRun(t *testing.T) {
	if err := Check(sane()); err != nil {
		t.Fatal(err)
	}
}

func TestCheckFindsWhatIsNotSane(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(r *Report)
		want   string
	}{
		{"capture missing", func(r *Report) { r.Capture = nil }, "capture: ran but has no result"},
		{"zero rate", func(r *Report) { r.Throughput[0].EventsPerSec = 0 }, "no events/s"},
		{"replay lost", func(r *Report) { r.Throughput[1].Lost = 3 }, "replay must lose nothing"},
		{"percentiles fall", func(r *Report) { r.Latency[0].KernelToFinding.P99 = 1 }, "percentiles must be positive and rise"},
		{"finding before event", func(r *Report) { r.Latency[0].KernelToFinding = Percentiles{1, 2, 3, 4, 5} }, "cannot arrive before"},
		{"no verdict", func(r *Report) { r.Resilience[0].Verdict = "" }, "no verdict"},
		{"died silently", func(r *Report) { r.Resilience[1].Exit = "" }, "died without saying how"},
		{"no timeline", func(r *Report) { r.Resilience[0].Timeline = nil }, "survived but has no timeline"},
		{"unaccounted", func(r *Report) { r.Resilience[0].Delivered = 90 }, "unaccounted"},
		{"recovered before detected", func(r *Report) { r.Resilience[0].RecoverMs[1] = 1 }, "before its detection"},
		{"no fault", func(r *Report) { r.Resilience[0].Faults = 0 }, "no fault injected"},
		{"failed step", func(r *Report) { r.Errors = []string{"throughput x: boom"} }, "a measurement failed: throughput x: boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := sane()
			tc.break_(r)
			err := Check(r)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
	r := sane()
	r.Capture = nil
	r.Skipped = map[string]string{"capture": "needs root"}
	if err := Check(r); err != nil {
		t.Errorf("a skipped section is not required: %v", err)
	}
}

func TestFloors(t *testing.T) {
	r := sane()
	r.Resilience[0].RecoverMs[1] = 1500
	r.EvaluateFloors()
	got := map[string]bool{}
	for _, f := range r.Floors {
		got[f.Name] = f.Pass
	}
	want := map[string]bool{
		"goplugin vs inproc, replay events, 1 trivial detector, batch 256": true,  // 90%
		"goplugin batched vs one RPC per event, replay, 1 detector":        true,  // 900×
		"goplugin, panic ×2 under load":                                    false, // 1.5 s recovery
		"inproc, crash-type faults":                                        true,
		"goplugin latency, event → finding, replay at 100.0k events/s":     true, // p99 35 µs
	}
	for name, pass := range want {
		if p, ok := got[name]; !ok || p != pass {
			t.Errorf("floor %q: got pass=%v (present %v), want %v; all: %+v", name, p, ok, pass, r.Floors)
		}
	}
	r.Throughput[1].EventsPerSec = 7e6 // 70% of inproc
	r.Latency[0].KernelToFinding = Percentiles{300, 600, 900, 2500, 3000}
	r.EvaluateFloors()
	if r.Floors[0].Pass {
		t.Errorf("70%% passed the 80%% floor: %+v", r.Floors[0])
	}
	for _, f := range r.Floors {
		if strings.HasPrefix(f.Name, "goplugin latency") && f.Pass {
			t.Errorf("a p99.9 of 2.5 ms passed the 2 ms floor: %+v", f)
		}
	}
}

func TestCompare(t *testing.T) {
	dir := t.TempDir()
	a, b := sane(), sane()
	b.Throughput[1].EventsPerSec = 6e6 // goplugin a third slower
	b.Throughput = b.Throughput[:2]    // naive not run
	pa, pb := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	if err := a.Write(pa); err != nil {
		t.Fatal(err)
	}
	if err := b.Write(pb); err != nil {
		t.Fatal(err)
	}
	ra, err := Read(pa)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := Read(pb)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	Compare(&out, ra, rb, "a.json", "b.json")
	s := out.String()
	for _, want := range []string{
		"throughput replay goplugin detectors=1 batch=256 events/s", "9.00M", "6.00M", "-33.3%  worse",
		"only in A: throughput replay goplugin-naive detectors=1 batch=1 events/s",
		"1 figure(s) worse in B",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("compare output lacks %q:\n%s", want, s)
		}
	}
}

func TestReadRefusesOtherSchemas(t *testing.T) {
	r := sane()
	r.Schema = 99
	p := filepath.Join(t.TempDir(), "r.json")
	if err := r.Write(p); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(p); err == nil || !strings.Contains(err.Error(), "schema 99") {
		t.Errorf("got %v", err)
	}
}
