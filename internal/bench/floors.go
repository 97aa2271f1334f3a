package bench

import (
	"fmt"
	"slices"
	"strings"
)

// The floors' thresholds.
const (
	FloorGopluginShare  = 0.80 // goplugin events/s as a share of inproc's
	FloorGopluginShare4 = 0.50 // the same, with 4 detectors
	FloorNaiveFactor    = 20   // goplugin events/s over the naive mode's
	FloorRecoverMs      = 1000 // a crashed plugin takes events again within
	FloorBatch          = 256  // the batch size the throughput floors are read at (the default)
	// Replayed events offered at FloorLatencyRate a second: event → finding
	// on goplugin within these, in µs.
	FloorLatencyRate  = 100e3
	FloorLatencyP99   = 1000
	FloorLatencyP99_9 = 2000
)

// CrashFaults are the fault modes whose effect is the death of the
// detector's process.
var CrashFaults = []string{"panic", "exit", "fatal", "goroutine-nil", "memory"}

// IsCrash reports whether fault is a crash-type fault.
func IsCrash(fault string) bool { return slices.Contains(CrashFaults, fault) }

// EvaluateFloors fills r.Floors from what the run measured; a floor whose
// section did not run is left out.
func (r *Report) EvaluateFloors() {
	r.Floors = nil
	for _, src := range []string{Replay, Kernel} {
		in, ok1 := r.Find(src, InProc, 1, FloorBatch)
		gp, ok2 := r.Find(src, GoPlugin, 1, FloorBatch)
		if ok1 && ok2 && in.EventsPerSec > 0 {
			share := gp.EventsPerSec / in.EventsPerSec
			r.Floors = append(r.Floors, Floor{
				Name: fmt.Sprintf("goplugin vs inproc, %s events, 1 trivial detector, batch %d", src, FloorBatch),
				Want: fmt.Sprintf("≥ %.0f%% of inproc events/s", FloorGopluginShare*100),
				Got:  fmt.Sprintf("%.0f%% (%s vs %s events/s)", share*100, Rate(gp.EventsPerSec), Rate(in.EventsPerSec)),
				Pass: share >= FloorGopluginShare,
			})
		}
	}
	in4, ok1 := r.Find(Replay, InProc, 4, FloorBatch)
	gp4, ok2 := r.Find(Replay, GoPlugin, 4, FloorBatch)
	if ok1 && ok2 && in4.EventsPerSec > 0 {
		share := gp4.EventsPerSec / in4.EventsPerSec
		r.Floors = append(r.Floors, Floor{
			Name: fmt.Sprintf("goplugin vs inproc, replay, 4 trivial detectors, batch %d", FloorBatch),
			Want: fmt.Sprintf("≥ %.0f%% of inproc events/s", FloorGopluginShare4*100),
			Got:  fmt.Sprintf("%.0f%% (%s vs %s events/s)", share*100, Rate(gp4.EventsPerSec), Rate(in4.EventsPerSec)),
			Pass: share >= FloorGopluginShare4,
		})
	}
	gp, ok1 := r.Find(Replay, GoPlugin, 1, FloorBatch)
	nv, ok2 := r.Find(Replay, GoPluginNaive, 1, 0)
	if ok1 && ok2 && nv.EventsPerSec > 0 {
		f := gp.EventsPerSec / nv.EventsPerSec
		r.Floors = append(r.Floors, Floor{
			Name: "goplugin batched vs one RPC per event, replay, 1 detector",
			Want: fmt.Sprintf("≥ %d×", FloorNaiveFactor),
			Got:  fmt.Sprintf("%.0f× (%s vs %s events/s)", f, Rate(gp.EventsPerSec), Rate(nv.EventsPerSec)),
			Pass: f >= FloorNaiveFactor,
		})
	}
	for _, c := range r.Latency {
		if c.Source != Replay || c.Backend != GoPlugin || c.RatePerSec < FloorLatencyRate || c.Samples == 0 {
			continue
		}
		f := c.KernelToFinding
		got := fmt.Sprintf("p99 %.0f µs, p99.9 %.0f µs (%d samples)", f.P99, f.P999, c.Samples)
		if h := r.HostRoundTrip; h != nil {
			got += fmt.Sprintf("; this host's bare pipe round trip between two processes: p99 %.0f µs, p99.9 %.0f µs", h.P99, h.P999)
		}
		r.Floors = append(r.Floors, Floor{
			Name: fmt.Sprintf("goplugin latency, event → finding, replay at %s events/s", Rate(c.RatePerSec)),
			Want: fmt.Sprintf("p99 ≤ %d µs, p99.9 ≤ %d µs", FloorLatencyP99, FloorLatencyP99_9),
			Got:  got,
			Pass: f.P99 <= FloorLatencyP99 && f.P999 <= FloorLatencyP99_9,
		})
	}
	inproc := map[string][]FaultCell{}
	for _, c := range r.Resilience {
		if !c.Crash {
			continue
		}
		switch c.Backend {
		case GoPlugin:
			worst := Max(c.RecoverMs)
			pass := c.Verdict == Survived && c.Lost == 0 && c.Faults > 0 && len(c.RecoverMs) == c.Faults && worst < FloorRecoverMs
			r.Floors = append(r.Floors, Floor{
				Name: fmt.Sprintf("goplugin, %s ×%d under load", c.Fault, c.Faults),
				Want: fmt.Sprintf("monitor survives, 0 events lost, each recovery < %d ms", FloorRecoverMs),
				Got:  fmt.Sprintf("%s, %d lost, recovered %d of %d, worst %.0f ms", c.Verdict, c.Lost, len(c.RecoverMs), c.Faults, worst),
				Pass: pass,
			})
		case InProc, InProcRecover:
			inproc[c.Backend] = append(inproc[c.Backend], c)
		}
	}
	for _, b := range []string{InProc, InProcRecover} {
		cells := inproc[b]
		if len(cells) == 0 {
			continue
		}
		var died, survived []string
		shown := true
		for _, c := range cells {
			switch c.Verdict {
			case Died:
				died = append(died, c.Fault)
			case Survived:
				survived = append(survived, c.Fault)
			default:
				shown = false
			}
		}
		got := fmt.Sprintf("the monitor died of %d of %d (%s)", len(died), len(cells), strings.Join(died, ", "))
		if len(survived) > 0 {
			got += "; survived " + strings.Join(survived, ", ")
		}
		r.Floors = append(r.Floors, Floor{Name: b + ", crash-type faults", Want: "shown as what they are (the monitor dies, or what survives)", Got: got, Pass: shown})
	}
}

// FailedFloors names the floors this run missed.
func (r *Report) FailedFloors() []string {
	var out []string
	for _, f := range r.Floors {
		if !f.Pass {
			out = append(out, f.Name)
		}
	}
	return out
}

// Rate formats an events/s figure: 1.23M, 45.6k, 789.
func Rate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}
