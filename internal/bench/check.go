package bench

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Check reports what is not sane in a run, whatever the machine: every
// section that ran has non-zero rates, replayed events are never lost,
// percentiles rise with the quantile, every fault cell has a verdict and a
// survived cell has a timeline. It says nothing about whether the numbers
// are good: that is what the floors are for.
func Check(r *Report) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	ran := func(section string) bool {
		return slices.Contains(r.Settings.Sections, section) && r.Skipped[section] == ""
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

	for _, e := range r.Errors {
		bad("a measurement failed: %s", e)
	}
	if r.Machine.Cores < 1 || r.Machine.Kernel == "" || r.Machine.GoVersion == "" {
		bad("machine facts missing: %+v", r.Machine)
	}
	if ran("capture") {
		switch c := r.Capture; {
		case c == nil:
			bad("capture: ran but has no result")
		case c.UnmonitoredPerSec <= 0 || c.MonitoredPerSec <= 0 || c.Delivered == 0:
			bad("capture: zero rate or nothing delivered: %+v", *c)
		case c.Ratio <= 0 || c.Ratio > 2 || !finite(c.Ratio):
			bad("capture: ratio %v is not a ratio of two storms", c.Ratio)
		}
	}
	if ran("throughput") {
		if len(r.Throughput) == 0 {
			bad("throughput: ran but has no cells")
		}
		for _, c := range r.Throughput {
			where := fmt.Sprintf("throughput %s/%s/detectors=%d/batch=%d", c.Source, c.Backend, c.Detectors, c.Batch)
			if c.Events == 0 || c.EventsPerSec <= 0 || c.Seconds <= 0 || !finite(c.EventsPerSec) {
				bad("%s: no events/s (%d events in %.3fs)", where, c.Events, c.Seconds)
			}
			if c.Source == Replay && (c.Lost != 0 || c.Delivered != c.Events*uint64(c.Detectors)) {
				bad("%s: replay must lose nothing: %d events × %d detectors, %d delivered, %d lost", where, c.Events, c.Detectors, c.Delivered, c.Lost)
			}
			if c.MonitorCPUNsPerEvent <= 0 {
				bad("%s: no monitor CPU measured", where)
			}
		}
	}
	if ran("latency") {
		if len(r.Latency) == 0 {
			bad("latency: ran but has no cells")
		}
		if h := r.HostRoundTrip; h != nil {
			if v := h.Values(); v[0] <= 0 || !slices.IsSorted(v) {
				bad("latency: host round-trip percentiles must be positive and rise: %v", v)
			}
		}
		for _, c := range r.Latency {
			where := fmt.Sprintf("latency %s/%s", c.Source, c.Backend)
			if c.Samples == 0 || c.RatePerSec <= 0 {
				bad("%s: %d samples at %.0f events/s", where, c.Samples, c.RatePerSec)
				continue
			}
			for name, p := range map[string]Percentiles{"kernel→detector": c.KernelToDetector, "kernel→finding": c.KernelToFinding} {
				v := p.Values()
				if v[0] <= 0 || !slices.IsSorted(v) {
					bad("%s: %s percentiles must be positive and rise: %v", where, name, v)
				}
			}
			if c.KernelToFinding.P50 < c.KernelToDetector.P50 {
				bad("%s: a finding cannot arrive before its event reached the detector (p50 %v < %v)", where, c.KernelToFinding.P50, c.KernelToDetector.P50)
			}
		}
	}
	if ran("resilience") {
		if len(r.Resilience) == 0 {
			bad("resilience: ran but has no cells")
		}
		for _, c := range r.Resilience {
			where := fmt.Sprintf("resilience %s/%s", c.Fault, c.Backend)
			switch c.Verdict {
			case Survived:
				if len(c.Timeline) == 0 {
					bad("%s: survived but has no timeline", where)
				}
			case Died:
				if c.Exit == "" {
					bad("%s: died without saying how", where)
				}
			case Refused:
			default:
				bad("%s: no verdict (%q)", where, c.Verdict)
			}
			if c.Verdict != Refused && (c.Sent == 0 || c.Faults == 0) {
				bad("%s: no load or no fault injected (sent %d, faults %d)", where, c.Sent, c.Faults)
			}
			if c.Delivered+c.Lost < c.Sent {
				bad("%s: events unaccounted for: sent %d, delivered %d, lost %d", where, c.Sent, c.Delivered, c.Lost)
			}
			for i := range c.RecoverMs {
				if i >= len(c.DetectMs) || c.RecoverMs[i] < c.DetectMs[i] || c.DetectMs[i] < 0 {
					bad("%s: recovery %d before its detection (%v, %v)", where, i, c.DetectMs, c.RecoverMs)
				}
			}
		}
	}
	return errors.Join(errs...)
}
