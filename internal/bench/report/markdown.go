package report

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bulkhead-sec/bulkhead/internal/bench"
)

// Markdown writes dir/report.md and its charts (PNG) into dir.
func Markdown(r *bench.Report, dir string) error {
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	var chartErr error // the first chart that could not be drawn; the rest are not tried
	chart := func(name, alt string, draw func(r *bench.Report, path string) (bool, error)) {
		if chartErr != nil {
			return
		}
		ok, err := draw(r, filepath.Join(dir, name))
		if ok {
			w("\n![%s](%s)\n", alt, name)
		}
		chartErr = err
	}
	m := r.Machine
	w("# bulkhead benchmark report\n\n")
	w("Made by `%s` on %s, in %.0f s.\n\n", r.Command, r.Started.Format("2006-01-02 15:04 MST"), r.Seconds)
	w("| machine | |\n|---|---|\n| CPU | %s, %d cores |\n| memory | %s |\n| kernel | %s |\n| Go | %s |\n| bulkhead | %s |\n| root | %v |\n\n",
		m.CPUModel, m.Cores, mib(m.MemoryMiB<<20), m.Kernel, m.GoVersion, m.Bulkhead, m.Root)
	s := r.Settings
	protections := "plain"
	switch {
	case s.Enclave && s.MTLS:
		protections = "in its enclave, with mutual TLS (what `bulkhead run` does by default)"
	case s.Enclave:
		protections = "in its enclave, without mutual TLS"
	case s.MTLS:
		protections = "with mutual TLS, no enclave"
	}
	w("Each goplugin detector ran %s. Throughput cells ran %.1f s each, resilience cells %.1f s with a fault every %.1f s under %s events/s.\n",
		protections, s.CellSeconds, s.FaultSeconds, s.FaultEvery, bench.Rate(s.FaultRate))
	for _, sec := range sortedKeys(r.Skipped) {
		w("\n**Skipped: %s** — %s.\n", sec, r.Skipped[sec])
	}
	for _, e := range r.Errors {
		w("\n**Failed:** %s\n", e)
	}

	if len(r.Floors) > 0 {
		w("\n## Floors\n\nThe project's stated floors, measured in this run. FAIL means this run measured a figure below the floor: `bulkhead bench` then exits 1 (unless `--report-only`). On a loaded or small host a throughput floor can fail for the host's sake: compare with a quiet run.\n\n| | floor | want | got |\n|---|---|---|---|\n")
		for _, f := range r.Floors {
			w("| %s | %s | %s | %s |\n", passFail(f.Pass), f.Name, f.Want, f.Got)
		}
	}

	if c := r.Capture; c != nil {
		w("\n## Capture overhead\n\n%s in a tight loop, with the monitor off and on (`bulkhead bench capture`).\n\n", c.Workload)
		w("| unmonitored/s | monitored/s | ratio | generated | delivered | lost | monitor CPU/event | peak RSS |\n|---|---|---|---|---|---|---|---|\n")
		w("| %s | %s | %.3f | %d | %d | %d | %.0f ns | %s |\n", bench.Rate(c.UnmonitoredPerSec), bench.Rate(c.MonitoredPerSec), c.Ratio, c.Generated, c.Delivered, c.Lost, c.MonitorCPUNsPerEvent, mib(c.PeakRSSBytes))
	}

	if len(r.Throughput) > 0 {
		w("\n## Throughput\n\n")
		w("**replay**: pre-decoded open events pushed into the dispatcher as fast as the detectors take them (it waits instead of shedding, so nothing may be lost); events/s counts until every detector has answered every event. ")
		w("**kernel**: the monitor captures a syscall storm (openat+close of /dev/null from one process) and hands every open to the detectors; live capture never waits, so what a detector cannot take is shed and counted as lost. ")
		w("The detector is `probe`, which does nothing with an event: what is measured is the pipeline and the backend. ")
		w("`goplugin-naive` sends one unary RPC per event, the baseline most go-plugin users would write. CPU is per event, the monitor's and the plugin processes' (summed); RSS is the peak.\n\n")
		w("| source | backend | detectors | batch | events/s | lost | monitor CPU/event | plugins CPU/event | monitor peak RSS | plugins peak RSS |\n|---|---|---|---|---|---|---|---|---|---|\n")
		for _, c := range r.Throughput {
			w("| %s | %s | %d | %d | %s | %d | %.0f ns | %.0f ns | %s | %s |\n", c.Source, c.Backend, c.Detectors, c.Batch, bench.Rate(c.EventsPerSec), c.Lost,
				c.MonitorCPUNsPerEvent, c.PluginCPUNsPerEvent, mib(c.MonitorPeakRSSBytes), mib(c.PluginsPeakRSSBytes))
		}
		chart("throughput-batch.png", "throughput by batch size", throughputByBatch)
		chart("throughput-detectors.png", "throughput by detector count", throughputByDetectors)
	}

	if len(r.Latency) > 0 {
		w("\n## Latency\n\n")
		w("The probe detector reports a sample of events with the CLOCK_BOOTTIME instant it received each; the monitor notes when the finding comes out. ")
		w("Both are measured from the event's timestamp: for kernel events the kernel's, for replayed ones the moment it entered the dispatcher. ")
		w("Replayed events are offered open-loop at a steady rate, at most half what the backend sustains, with partial batches flushed every flush interval (%s), as the capture reader does on a quiet host; kernel events come from the storm at full speed, so theirs is latency under saturation.\n\n", r.Settings.Flush)
		w("| source | backend | events/s | samples | dropped | → detector p50 | p99 | p99.9 | → finding p50 | p99 | p99.9 | max |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, c := range r.Latency {
			d, f := c.KernelToDetector, c.KernelToFinding
			w("| %s | %s | %s | %d | %d | %s | %s | %s | %s | %s | %s | %s |\n", c.Source, c.Backend, bench.Rate(c.RatePerSec), c.Samples, c.Dropped,
				us(d.P50), us(d.P99), us(d.P999), us(f.P50), us(f.P99), us(f.P999), us(f.Max))
		}
		if h := r.HostRoundTrip; h != nil {
			w("\nThe host's own floor, measured in the same run: a byte's round trip between two processes over pipes (to `cat` and back), one every 2 ms with both idle in between, as a monitor and a plugin are at this rate: p50 %s, p99 %s, p99.9 %s, max %s. ", us(h.P50), us(h.P99), us(h.P999), us(h.Max))
			w("A plugin's finding makes that trip once (the batch wakes the plugin, the answer wakes the monitor), so goplugin's event → finding cannot be faster than it.\n")
		}
		chart("latency.png", "latency percentiles", latencyChart)
	}

	if len(r.Resilience) > 0 {
		w("\n## Resilience\n\n")
		w("Each cell runs the chaos detector with one fault next to a healthy detector on the same backend, under steady load, in a process of its own (so a monitor that dies is observed, not fatal to the bench). ")
		w("A fault fires on a marker event, once per marker: the detector's next process handles that event normally when it is delivered again, so a transient fault can be recovered from without losing anything. ")
		w("*Detect* is from the fault to the monitor noticing it (a crash, a hang past the batch deadline, a recovered panic); *recover* is to the detector taking events again (median / worst, ms). ")
		w("*Missed* is findings the faulty detector should have reported and did not. `inproc-recover` is inproc with `recover_panics: true`.\n\n")
		w("| fault | backend | monitor | faults | lost | redelivered | quarantined | crashes | restarts | detect ms | recover ms | findings missed | other detector |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, c := range r.Resilience {
			verdict := c.Verdict
			if c.Exit != "" {
				verdict += ": " + strings.ReplaceAll(c.Exit, "|", "\\|")
			}
			w("| %s | %s | %s | %d | %s | %d | %d | %d | %d | %s | %s | %s | %s |\n", c.Fault, c.Backend, verdict, c.Faults, lost(c, true),
				c.Redelivered, c.Quarantined, c.Crashes, c.Restarts, spread(c.DetectMs), spread(c.RecoverMs), missed(c), affected(c))
		}
		var notes []string
		for _, c := range r.Resilience {
			if c.Note != "" {
				notes = append(notes, fmt.Sprintf("- %s on %s: %s", c.Fault, c.Backend, c.Note))
			}
		}
		if len(notes) > 0 {
			w("\n%s\n", strings.Join(notes, "\n"))
		}
		w("\nTimelines: events/s each detector took and findings/s (×50, to share the axis), sampled every 100 ms; dashed lines mark each fault (red), the monitor noticing it (orange), recovery (green) and the monitor's death (black).\n")
		var faults []string
		for _, c := range r.Resilience {
			if !slices.Contains(faults, c.Fault) {
				faults = append(faults, c.Fault)
			}
		}
		for _, f := range faults {
			chart("fault-"+f+".png", f+" timeline", func(r *bench.Report, p string) (bool, error) { return faultTimeline(r, f, p) })
		}
	}
	if chartErr != nil {
		return chartErr
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), b.Bytes(), 0o644)
}

func us(v float64) string {
	if v >= 10000 {
		return fmt.Sprintf("%.1f ms", v/1000)
	}
	return fmt.Sprintf("%.0f µs", v)
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
