package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/bulkhead-sec/bulkhead/internal/bench"
)

// Text writes the run's figures as tables for a terminal.
func Text(w io.Writer, r *bench.Report) {
	m := r.Machine
	fmt.Fprintf(w, "\nbulkhead bench: %s, %d cores (%s), kernel %s, %s, bulkhead %s; %.0fs\n",
		m.CPUModel, m.Cores, mib(m.MemoryMiB<<20)+" RAM", m.Kernel, m.GoVersion, m.Bulkhead, r.Seconds)
	for section, why := range r.Skipped {
		fmt.Fprintf(w, "skipped %s: %s\n", section, why)
	}
	if c := r.Capture; c != nil {
		fmt.Fprintf(w, "\ncapture overhead (%s): unmonitored %s/s, monitored %s/s, ratio %.3f; %d generated, %d delivered, %d lost; monitor %.0f ns CPU/event, peak RSS %s\n",
			c.Workload, bench.Rate(c.UnmonitoredPerSec), bench.Rate(c.MonitoredPerSec), c.Ratio, c.Generated, c.Delivered, c.Lost, c.MonitorCPUNsPerEvent, mib(c.PeakRSSBytes))
	}
	if len(r.Throughput) > 0 {
		fmt.Fprintf(w, "\nthroughput\n%-7s %-15s %9s %6s %10s %8s %13s %13s %11s %12s\n", "source", "backend", "detectors", "batch", "events/s", "lost", "monitor ns/ev", "plugins ns/ev", "monitor RSS", "plugins RSS")
		for _, c := range r.Throughput {
			fmt.Fprintf(w, "%-7s %-15s %9d %6d %10s %8d %13.0f %13.0f %11s %12s\n", c.Source, c.Backend, c.Detectors, c.Batch,
				bench.Rate(c.EventsPerSec), c.Lost, c.MonitorCPUNsPerEvent, c.PluginCPUNsPerEvent, mib(c.MonitorPeakRSSBytes), mib(c.PluginsPeakRSSBytes))
		}
	}
	if len(r.Latency) > 0 {
		fmt.Fprintf(w, "\nlatency, µs (kernel timestamp → detector had it | → finding out)\n%-7s %-15s %9s %7s %7s | %8s %8s %8s | %8s %8s %8s\n",
			"source", "backend", "events/s", "samples", "dropped", "p50", "p99", "p99.9", "p50", "p99", "p99.9")
		for _, c := range r.Latency {
			d, f := c.KernelToDetector, c.KernelToFinding
			fmt.Fprintf(w, "%-7s %-15s %9s %7d %7d | %8.0f %8.0f %8.0f | %8.0f %8.0f %8.0f\n", c.Source, c.Backend, bench.Rate(c.RatePerSec), c.Samples, c.Dropped,
				d.P50, d.P99, d.P999, f.P50, f.P99, f.P999)
		}
		if h := r.HostRoundTrip; h != nil {
			fmt.Fprintf(w, "host: pipe round trip between two idle processes, µs: p50 %.0f, p99 %.0f, p99.9 %.0f, max %.0f\n", h.P50, h.P99, h.P999, h.Max)
		}
	}
	if len(r.Resilience) > 0 {
		fmt.Fprintf(w, "\nresilience (faulty detector next to a healthy one, steady load)\n%-14s %-15s %-17s %6s %15s %8s %11s %15s %15s %10s %s\n",
			"fault", "backend", "monitor", "faults", "lost", "redeliv", "quarantined", "detect ms", "recover ms", "missed", "others")
		for _, c := range r.Resilience {
			fmt.Fprintf(w, "%-14s %-15s %-17s %6d %15s %8d %11d %15s %15s %10s %s\n", c.Fault, c.Backend, c.Verdict, c.Faults, lost(c, false), c.Redelivered, c.Quarantined,
				spread(c.DetectMs), spread(c.RecoverMs), missed(c), affected(c))
			if c.Verdict == bench.Died {
				fmt.Fprintf(w, "%32s %s\n", "", c.Exit)
			}
		}
	}
	if len(r.Floors) > 0 {
		fmt.Fprintf(w, "\nfloors\n")
		for _, f := range r.Floors {
			fmt.Fprintf(w, "%s  %s: want %s, got %s\n", passFail(f.Pass), f.Name, f.Want, f.Got)
		}
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "FAILED: %s\n", e)
	}
}

func passFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func affected(c bench.FaultCell) string {
	switch {
	case c.Verdict == bench.Refused:
		return "monitor did not start"
	case c.Verdict == bench.Died:
		return "died with it"
	case c.OthersAffected:
		return fmt.Sprintf("affected: %d lost, %d findings missed", c.OtherLost, c.OtherFindingsMissed)
	}
	return "unaffected"
}

// lost is the faulty detector's lost events; after the monitor's death,
// everything is.
func lost(c bench.FaultCell, ofSent bool) string {
	switch {
	case c.Verdict == bench.Died:
		return "all after death"
	case ofSent:
		return fmt.Sprintf("%d of %d", c.Lost, c.Sent)
	}
	return fmt.Sprint(c.Lost)
}

func missed(c bench.FaultCell) string {
	if c.Verdict == bench.Died {
		return "all after"
	}
	return fmt.Sprintf("%d of %d", c.FindingsMissed, c.FindingsExpected)
}

// spread is "median / worst" of per-fault times, or "-".
func spread(ms []float64) string {
	if len(ms) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f / %.0f", bench.Median(ms), bench.Max(ms))
}

func mib(b uint64) string {
	if b == 0 {
		return "-"
	}
	if b >= 10<<30 {
		return fmt.Sprintf("%.0f GiB", float64(b)/(1<<30))
	}
	return strings.TrimSuffix(fmt.Sprintf("%.1f", float64(b)/(1<<20)), ".0") + " MiB"
}
