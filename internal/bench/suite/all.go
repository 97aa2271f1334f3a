package suite

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/bulkhead-sec/bulkhead/internal/bench"
	"github.com/bulkhead-sec/bulkhead/internal/bench/report"
	"github.com/bulkhead-sec/bulkhead/internal/config"
	"github.com/bulkhead-sec/bulkhead/internal/monitor"
	"github.com/bulkhead-sec/bulkhead/internal/progress"
	"github.com/bulkhead-sec/bulkhead/plugins/chaos"
	"go.uber.org/zap"
)

// plan is how much of everything a bench run does.
type plan struct {
	cell, latency   time.Duration // each throughput cell; each latency cell
	detectors       []int         // detector counts, replay
	kernelDetectors []int         // detector counts, kernel
	batches         []int         // batch sizes swept (1 detector)
	latencyRate     float64
	captureRounds   int
	captureDur      time.Duration
	fault           FaultPlan // Seconds, Every, Rate, Enclave, MTLS; Fault and Backend per cell
}

func newPlan(quick bool) plan {
	if quick {
		return plan{cell: 600 * time.Millisecond, latency: time.Second, detectors: []int{1, 4, 16}, kernelDetectors: []int{1},
			batches: []int{1, 16, 64, 256, 1024, 4096}, latencyRate: 100e3, captureRounds: 1, captureDur: time.Second,
			fault: FaultPlan{Seconds: 2.5, Every: 1, Rate: 20e3}}
	}
	return plan{cell: 3 * time.Second, latency: 3 * time.Second, detectors: []int{1, 4, 16}, kernelDetectors: []int{1, 4, 16},
		batches: []int{1, 16, 64, 256, 1024, 4096}, latencyRate: 100e3, captureRounds: 3, captureDur: 3 * time.Second,
		fault: FaultPlan{Seconds: 10, Every: 2.5, Rate: 20e3}}
}

// step is one measurement of a run.
type step struct {
	label  string
	expect time.Duration
	run    func() error
}

// steps lays out the run: every cell, in order, with what it expects
// to take, each appending its result to rep.
func steps(e env, p plan, sections []string, root bool, rep *bench.Report, logFile io.Writer) []step {
	var steps []step
	has := func(s string) bool { return slices.Contains(sections, s) }
	const noRoot = "needs root (BPF): run it as root to measure real kernel events"
	startup := func(backend string, n int) time.Duration {
		if backend == bench.InProc {
			return 50 * time.Millisecond
		}
		if backend == bench.Wasm { // instantiated from the compilation cache
			return time.Duration(n) * 300 * time.Millisecond
		}
		return time.Duration(n) * 80 * time.Millisecond
	}
	if has("capture") {
		if !root {
			rep.Skipped["capture"] = noRoot
		} else {
			steps = append(steps, step{"capture overhead", time.Duration(p.captureRounds) * (2*p.captureDur + 300*time.Millisecond), func() error {
				c, err := captureSection(e, p)
				rep.Capture = c
				return err
			}})
		}
	}
	backends := []string{bench.InProc, bench.GoPlugin, bench.GoPluginGRPC, bench.GoPluginNaive, bench.Wasm}
	if has("throughput") {
		add := func(label string, expect time.Duration, f func() (bench.ThroughputCell, error)) {
			steps = append(steps, step{label, expect, func() error {
				c, err := f()
				if err == nil {
					rep.Throughput = append(rep.Throughput, c)
				}
				return err
			}})
		}
		for _, n := range p.detectors {
			for _, b := range backends {
				add(fmt.Sprintf("throughput replay %s, %d detector(s)", b, n), p.cell+startup(b, n)+100*time.Millisecond,
					func() (bench.ThroughputCell, error) { return replayThroughput(e, b, n, bench.FloorBatch, p.cell) })
			}
		}
		for _, batch := range p.batches {
			for _, b := range []string{bench.InProc, bench.GoPlugin, bench.GoPluginGRPC, bench.Wasm} {
				if batch == bench.FloorBatch {
					continue // measured above
				}
				add(fmt.Sprintf("throughput replay %s, batch %d", b, batch), p.cell+startup(b, 1)+100*time.Millisecond,
					func() (bench.ThroughputCell, error) { return replayThroughput(e, b, 1, batch, p.cell) })
			}
		}
		if !root {
			rep.Skipped["throughput (kernel events)"] = noRoot
		}
		for _, n := range p.kernelDetectors {
			for _, b := range backends {
				if !root {
					break
				}
				add(fmt.Sprintf("throughput kernel %s, %d detector(s)", b, n), p.cell+startup(b, n)+300*time.Millisecond,
					func() (bench.ThroughputCell, error) { return kernelThroughput(e, b, n, p.cell) })
			}
		}
	}
	if has("latency") {
		steps = append(steps, step{"latency host round trip", p.latency, func() error {
			h, err := hostRoundTrip(p.latency)
			if err == nil {
				rep.HostRoundTrip = &h
			}
			return err
		}})
		for _, b := range backends {
			steps = append(steps, step{"latency replay " + b, p.latency + startup(b, 1) + 100*time.Millisecond, func() error {
				rate := p.latencyRate
				// Offer at most half what the backend sustains, so the
				// figure is latency, not queueing at saturation.
				if c, ok := rep.Find(bench.Replay, b, 1, 0); ok {
					rate = min(rate, c.EventsPerSec/2)
				}
				c, err := replayLatency(e, b, rate, p.latency)
				if err == nil {
					rep.Latency = append(rep.Latency, c)
				}
				return err
			}})
		}
		if !root {
			rep.Skipped["latency (kernel events)"] = noRoot
		}
		for _, b := range backends[:2] {
			if !root {
				break
			}
			steps = append(steps, step{"latency kernel " + b, p.latency + startup(b, 1) + 300*time.Millisecond, func() error {
				c, err := kernelLatency(e, b, p.latency)
				if err == nil {
					rep.Latency = append(rep.Latency, c)
				}
				return err
			}})
		}
	}
	if has("resilience") {
		for _, fault := range chaos.Faults {
			for _, b := range []string{bench.InProc, bench.InProcRecover, bench.GoPlugin, bench.Wasm} {
				if b == bench.InProcRecover && !bench.IsCrash(fault) {
					continue // recovering panics changes nothing for these
				}
				fp := p.fault
				fp.Fault, fp.Backend = fault, b
				_, length := fp.faultTimes()
				expect := time.Duration(length*float64(time.Second)) + 500*time.Millisecond
				if (b == bench.InProc || b == bench.InProcRecover) && bench.IsCrash(fault) {
					expect = time.Duration(fp.Every/2*float64(time.Second)) + 400*time.Millisecond
				}
				if fault == "fail-init" {
					expect = 200 * time.Millisecond
				}
				steps = append(steps, step{fmt.Sprintf("fault %s on %s", fault, b), expect, func() error {
					c, err := runFaultCell(fp, logFile)
					if err == nil {
						rep.Resilience = append(rep.Resilience, c)
					}
					return err
				}})
			}
		}
	}
	return steps
}

// benchCapture is the capture section: bench capture's rounds, summarised.
func captureSection(e env, p plan) (*bench.Capture, error) {
	var rounds []captureRound
	for i := 0; i < p.captureRounds; i++ {
		r, err := captureRoundRun(e.log, e.capture, config.File{}, "open", p.captureDur)
		if err != nil {
			return nil, err
		}
		rounds = append(rounds, r)
	}
	c := summariseRounds("open", rounds)
	return &c, nil
}

// machineFacts describe the host the figures come from.
func machineFacts(kernel, version string) bench.Machine {
	m := bench.Machine{Kernel: kernel, Cores: runtime.NumCPU(), GoVersion: runtime.Version(), Bulkhead: version, Root: os.Geteuid() == 0}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb uint64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.MemoryMiB = kb >> 10
		}
	}
	return m
}

// allSections are the sections of `bench all`, in order.
var allSections = []string{"capture", "throughput", "latency", "resilience"}

// Options are a run's settings; the zero values of Cell and FaultSeconds
// keep the plan's.
type Options struct {
	// Name is the subcommand: all, throughput (with latency) or
	// resilience; Command is the command line, for the report.
	Name, Command string
	Quick         bool
	Out           string // report.json, report.md and the charts go here
	PluginDir     string // the bulkhead-plugin-* binaries and modules
	Enclave, MTLS bool   // goplugin detectors as bulkhead run starts them
	Cell          time.Duration
	FaultSeconds  float64
	ReportOnly    bool // a failed floor does not fail the run
	Capture       monitor.Capture
	// Log and LogFile are bench.log; the fault cells' stderr goes there.
	Log     *zap.Logger
	LogFile *os.File
	// Kernel and Version describe the machine and the binary measured;
	// Terminal draws the progress bar in place.
	Kernel, Version string
	Terminal        bool
}

// Run measures the sections of o.Name, cell by cell with a progress bar on
// stderr, prints the report to stdout and writes it (JSON, Markdown,
// charts) into o.Out. It fails if a measurement failed, or a floor did
// and not o.ReportOnly.
func Run(o Options, stdout, stderr io.Writer) error {
	p := newPlan(o.Quick)
	if o.Cell > 0 {
		p.cell, p.latency, p.captureDur = o.Cell, o.Cell, max(o.Cell, 100*time.Millisecond)
	}
	if o.FaultSeconds > 0 {
		p.fault.Seconds = o.FaultSeconds
	}
	p.fault.Enclave, p.fault.MTLS, p.fault.Flush = o.Enclave, o.MTLS, o.Capture.FlushInterval
	sections := allSections
	if o.Name != "all" {
		sections = []string{o.Name}
		if o.Name == "throughput" {
			sections = []string{"throughput", "latency"}
		}
	}
	log, logFile := o.Log, o.LogFile
	e := env{log: log, pluginDir: o.PluginDir, enclave: o.Enclave, mtls: o.MTLS, capture: o.Capture}
	if _, err := e.plugin("probe"); err != nil {
		return err
	}

	rep := &bench.Report{Schema: bench.Schema, Started: time.Now().UTC(), Command: o.Command,
		Machine: machineFacts(o.Kernel, o.Version), Skipped: map[string]string{}}
	rep.Command = strings.TrimSpace(rep.Command)
	rep.Settings = bench.Settings{Quick: o.Quick, Sections: sections, CellSeconds: p.cell.Seconds(), FaultSeconds: p.fault.Seconds,
		FaultEvery: p.fault.Every, FaultRate: p.fault.Rate, LatencyRate: p.latencyRate, Flush: o.Capture.FlushInterval.String(),
		Detectors: p.detectors, Batches: p.batches, Enclave: o.Enclave, MTLS: o.MTLS}
	root := os.Geteuid() == 0
	todo := steps(e, p, sections, root, rep, logFile)

	var total time.Duration
	for _, s := range todo {
		total += s.expect
	}
	fmt.Fprintf(stderr, "bench %s: %d measurements, about %s; logs in %s\n", o.Name, len(todo), total.Round(time.Second), logFile.Name())
	bar := progress.New(stderr, o.Terminal, total)
	var failures []string
	for _, s := range todo {
		bar.Step(s.label, s.expect)
		if err := s.run(); err != nil {
			failures = append(failures, s.label+": "+err.Error())
			bar.Printf("FAILED %s: %v\n", s.label, err)
			log.Error("bench step failed", zap.String("step", s.label), zap.Error(err))
		}
	}
	bar.Finish()
	rep.Seconds = time.Since(rep.Started).Seconds()
	rep.Errors = failures
	rep.EvaluateFloors()

	report.Text(stdout, rep)
	if err := rep.Write(filepath.Join(o.Out, "report.json")); err != nil {
		return err
	}
	if err := report.Markdown(rep, o.Out); err != nil {
		return fmt.Errorf("write the Markdown report: %w", err)
	}
	fmt.Fprintf(stdout, "\nreport: %s (charts beside it), data: %s\n", filepath.Join(o.Out, "report.md"), filepath.Join(o.Out, "report.json"))
	if len(failures) > 0 {
		return fmt.Errorf("%d measurement(s) failed (see above and %s)", len(failures), logFile.Name())
	}
	if failed := rep.FailedFloors(); len(failed) > 0 && !o.ReportOnly {
		return fmt.Errorf("%d floor(s) FAIL: %s. A FAIL is a figure this run measured below what the project holds itself to (see the report); --report-only exits 0 anyway",
			len(failed), strings.Join(failed, "; "))
	}
	return nil
}
