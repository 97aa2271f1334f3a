package bench

import (
	"fmt"
	"io"
	"sort"
)

// Metric is one comparable figure of a report.
type Metric struct {
	Key    string
	Unit   string
	Value  float64
	Higher bool // higher is better
}

// Metrics flattens a report into comparable figures, keyed by what they
// measure.
func (r *Report) Metrics() []Metric {
	var out []Metric
	add := func(key, unit string, v float64, higher bool) { out = append(out, Metric{key, unit, v, higher}) }
	if c := r.Capture; c != nil {
		add("capture ratio (monitored/unmonitored)", "", c.Ratio, true)
		add("capture monitor CPU per event", "ns", c.MonitorCPUNsPerEvent, false)
		add("capture lost", "events", float64(c.Lost), false)
	}
	for _, c := range r.Throughput {
		k := fmt.Sprintf("throughput %s %s detectors=%d batch=%d", c.Source, c.Backend, c.Detectors, c.Batch)
		add(k+" events/s", "ev/s", c.EventsPerSec, true)
		add(k+" CPU per event", "ns", c.CPUNsPerEvent(), false)
		add(k+" lost", "events", float64(c.Lost), false)
	}
	for _, c := range r.Latency {
		k := fmt.Sprintf("latency %s %s kernel→finding", c.Source, c.Backend)
		add(k+" p50", "µs", c.KernelToFinding.P50, false)
		add(k+" p99", "µs", c.KernelToFinding.P99, false)
		add(k+" p99.9", "µs", c.KernelToFinding.P999, false)
	}
	for _, c := range r.Resilience {
		k := fmt.Sprintf("fault %s on %s", c.Fault, c.Backend)
		survived := 0.0
		if c.Verdict == Survived {
			survived = 1
		}
		add(k+" survived", "", survived, true)
		add(k+" lost", "events", float64(c.Lost), false)
		if len(c.RecoverMs) > 0 {
			add(k+" worst recovery", "ms", Max(c.RecoverMs), false)
		}
	}
	return out
}

// Compare writes a table of every figure in both runs: a's value, b's, and
// b's change, marked "worse" past 5% (10% for the noisy latency tails).
func Compare(w io.Writer, a, b *Report, aName, bName string) {
	bm := map[string]Metric{}
	for _, m := range b.Metrics() {
		bm[m.Key] = m
	}
	fmt.Fprintf(w, "A: %s (%s, %s, %d cores, %s)\nB: %s (%s, %s, %d cores, %s)\n\n",
		aName, a.Started.Format("2006-01-02 15:04"), a.Machine.Bulkhead, a.Machine.Cores, a.Machine.Kernel,
		bName, b.Started.Format("2006-01-02 15:04"), b.Machine.Bulkhead, b.Machine.Cores, b.Machine.Kernel)
	fmt.Fprintf(w, "%-70s %14s %14s %9s\n", "figure", "A", "B", "change")
	var onlyA []string
	worse := 0
	for _, ma := range a.Metrics() {
		mb, ok := bm[ma.Key]
		if !ok {
			onlyA = append(onlyA, ma.Key)
			continue
		}
		delete(bm, ma.Key)
		change, verdict := "", ""
		if ma.Value != 0 {
			pct := (mb.Value - ma.Value) / ma.Value * 100
			change = fmt.Sprintf("%+.1f%%", pct)
			limit := 5.0
			if ma.Unit == "µs" {
				limit = 10
			}
			if (ma.Higher && pct < -limit) || (!ma.Higher && pct > limit) {
				verdict = "  worse"
				worse++
			}
		} else if mb.Value != 0 {
			change = "new"
			if !ma.Higher {
				verdict = "  worse"
				worse++
			}
		}
		fmt.Fprintf(w, "%-70s %14s %14s %9s%s\n", ma.Key, format(ma), format(mb), change, verdict)
	}
	var onlyB []string
	for k := range bm {
		onlyB = append(onlyB, k)
	}
	sort.Strings(onlyB)
	for _, k := range onlyA {
		fmt.Fprintf(w, "only in A: %s\n", k)
	}
	for _, k := range onlyB {
		fmt.Fprintf(w, "only in B: %s\n", k)
	}
	fmt.Fprintf(w, "\n%d figure(s) worse in B beyond the noise margin (5%%, latency 10%%)\n", worse)
}

func format(m Metric) string {
	switch m.Unit {
	case "ev/s":
		return Rate(m.Value)
	case "":
		return fmt.Sprintf("%.3g", m.Value)
	}
	return fmt.Sprintf("%.4g %s", m.Value, m.Unit)
}
