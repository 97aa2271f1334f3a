package main

import (
	"flag"
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
	"github.com/bulkhead-sec/bulkhead/internal/progress"
	"github.com/bulkhead-sec/bulkhead/plugins/chaos"
	"go.uber.org/zap"
)

// benchPlan is how much of everything a bench run does.
type benchPlan struct {
	cell, latency   time.Duration // each throughput cell; each latency cell
	detectors       []int         // detector counts, replay
	kernelDetectors []int         // detector counts, kernel
	batches         []int         // batch sizes swept (1 detector)
	latencyRate     float64
	captureRounds   int
	captureDur      time.Duration
	fault           faultPlan // Seconds, Every, Rate, Enclave, MTLS; Fault and Backend per cell
}

func newBenchPlan(quick bool) benchPlan {
	if quick {
		return benchPlan{cell: 600 * time.Millisecond, latency: time.Second, detectors: []int{1, 4, 16}, kernelDetectors: []int{1},
			batches: []int{1, 16, 64, 256, 1024, 4096}, latencyRate: 100e3, captureRounds: 1, captureDur: time.Second,
			fault: faultPlan{Seconds: 2.5, Every: 1, Rate: 20e3}}
	}
	return benchPlan{cell: 3 * time.Second, latency: 3 * time.Second, detectors: []int{1, 4, 16}, kernelDetectors: []int{1, 4, 16},
		batches: []int{1, 16, 64, 256, 1024, 4096}, latencyRate: 100e3, captureRounds: 3, captureDur: 3 * time.Second,
		fault: faultPlan{Seconds: 10, Every: 2.5, Rate: 20e3}}
}

// benchStep is one measurement of a run.
type benchStep struct {
	label  string
	expect time.Duration
	run    func() error
}

var benchSections = []string{"capture", "throughput", "latency", "resilience"}

// benchRunCommand is `bulkhead bench all|throughput|resilience`.
func benchRunCommand(name string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf captureFlags
	cf.register(fs)
	quick := fs.Bool("quick", false, "a short run: the whole suite in about 1.5 minutes on 2 cores (the default run takes about 5)")
	out := fs.String("out", "bench-results", "write report.json, report.md, the charts and bench.log into this directory")
	plugins := fs.String("plugins", "", "directory of the bulkhead-plugin-* binaries (default: beside bulkhead)")
	enclaveOn := fs.Bool("enclave", true, "run goplugin detectors in their enclave, as bulkhead run does")
	mtls := fs.Bool("mtls", true, "goplugin detectors use mutual TLS, as bulkhead run does")
	cell := fs.Duration("cell", 0, "override how long each throughput and latency cell runs (a smoke test: --cell 200ms)")
	faultSeconds := fs.Float64("fault-seconds", 0, "override how long each resilience cell runs, in seconds")
	reportOnly := fs.Bool("report-only", false, "exit 0 even when a floor fails (the report still says FAIL)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: bulkhead bench %s [flags]\n\n%s\n\n", name, benchHelp[name])
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	capCfg, err := cf.config()
	if err != nil {
		return err
	}
	plan := newBenchPlan(*quick)
	if *cell > 0 {
		plan.cell, plan.latency, plan.captureDur = *cell, *cell, max(*cell, 100*time.Millisecond)
	}
	if *faultSeconds > 0 {
		plan.fault.Seconds = *faultSeconds
	}
	plan.fault.Enclave, plan.fault.MTLS, plan.fault.Flush = *enclaveOn, *mtls, capCfg.FlushInterval
	sections := benchSections
	if name != "all" {
		sections = []string{name}
		if name == "throughput" {
			sections = []string{"throughput", "latency"}
		}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	logFile, err := os.Create(filepath.Join(*out, "bench.log"))
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	defer logFile.Close()
	log, err := newLogger(cf.logLevel, logFile)
	if err != nil {
		return err
	}
	defer log.Sync()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	env := benchEnv{log: log, pluginDir: *plugins, enclave: *enclaveOn, mtls: *mtls, capture: capCfg}
	if env.pluginDir == "" {
		env.pluginDir = filepath.Dir(self)
	}
	if _, err := env.plugin("probe"); err != nil {
		return err
	}

	rep := &bench.Report{Schema: bench.Schema, Started: time.Now().UTC(), Command: "bulkhead bench " + name + " " + strings.Join(args, " "),
		Machine: machineFacts(), Skipped: map[string]string{}}
	rep.Command = strings.TrimSpace(rep.Command)
	rep.Settings = bench.Settings{Quick: *quick, Sections: sections, CellSeconds: plan.cell.Seconds(), FaultSeconds: plan.fault.Seconds,
		FaultEvery: plan.fault.Every, FaultRate: plan.fault.Rate, LatencyRate: plan.latencyRate, Flush: capCfg.FlushInterval.String(),
		Detectors: plan.detectors, Batches: plan.batches, Enclave: *enclaveOn, MTLS: *mtls}
	root := os.Geteuid() == 0
	steps := benchSteps(env, plan, sections, root, rep, logFile)

	var total time.Duration
	for _, s := range steps {
		total += s.expect
	}
	terminal := isTerminal(stderr)
	fmt.Fprintf(stderr, "bench %s: %d measurements, about %s; logs in %s\n", name, len(steps), total.Round(time.Second), logFile.Name())
	bar := progress.New(stderr, terminal, total)
	var failures []string
	for _, s := range steps {
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
	if err := rep.Write(filepath.Join(*out, "report.json")); err != nil {
		return err
	}
	if err := report.Markdown(rep, *out); err != nil {
		return fmt.Errorf("write the Markdown report: %w", err)
	}
	fmt.Fprintf(stdout, "\nreport: %s (charts beside it), data: %s\n", filepath.Join(*out, "report.md"), filepath.Join(*out, "report.json"))
	if len(failures) > 0 {
		return fmt.Errorf("%d measurement(s) failed (see above and %s)", len(failures), logFile.Name())
	}
	if failed := rep.FailedFloors(); len(failed) > 0 && !*reportOnly {
		return fmt.Errorf("%d floor(s) FAIL: %s. A FAIL is a figure this run measured below what the project holds itself to (see the report); --report-only exits 0 anyway",
			len(failed), strings.Join(failed, "; "))
	}
	return nil
}

var benchHelp = map[string]string{
	"all": "Runs every section — capture overhead, throughput and latency per backend, and the\n" +
		"fault matrix — and writes a JSON file and a Markdown report with charts.",
	"throughput": "Events/s, CPU and memory through the pipeline into 1, 4 and 16 detectors on inproc,\n" +
		"goplugin (the shared-memory ring), goplugin-grpc (batches on the gRPC stream),\n" +
		"goplugin-naive (one RPC per event) and wasm (a module in the monitor, in wazero), a\n" +
		"batch-size sweep, and latency\n" +
		"kernel → detector → finding; replayed events and (as root) real kernel events.",
	"resilience": "Every fault of the chaos detector on inproc, inproc with panics recovered, goplugin and wasm,\n" +
		"under steady load with repeated faults: survival, loss, time to detect and recover.",
}

// benchSteps lays out the run: every cell, in order, with what it expects
// to take, each appending its result to rep.
func benchSteps(e benchEnv, p benchPlan, sections []string, root bool, rep *bench.Report, logFile io.Writer) []benchStep {
	var steps []benchStep
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
			steps = append(steps, benchStep{"capture overhead", time.Duration(p.captureRounds) * (2*p.captureDur + 300*time.Millisecond), func() error {
				c, err := benchCapture(e, p)
				rep.Capture = c
				return err
			}})
		}
	}
	backends := []string{bench.InProc, bench.GoPlugin, bench.GoPluginGRPC, bench.GoPluginNaive, bench.Wasm}
	if has("throughput") {
		add := func(label string, expect time.Duration, f func() (bench.ThroughputCell, error)) {
			steps = append(steps, benchStep{label, expect, func() error {
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
		for _, b := range backends {
			steps = append(steps, benchStep{"latency replay " + b, p.latency + startup(b, 1) + 100*time.Millisecond, func() error {
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
			steps = append(steps, benchStep{"latency kernel " + b, p.latency + startup(b, 1) + 300*time.Millisecond, func() error {
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
				steps = append(steps, benchStep{fmt.Sprintf("fault %s on %s", fault, b), expect, func() error {
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
func benchCapture(e benchEnv, p benchPlan) (*bench.Capture, error) {
	var rounds []captureRound
	for i := 0; i < p.captureRounds; i++ {
		r, err := captureRoundRun(e.log, e.capture, fileConfig{}, "open", p.captureDur)
		if err != nil {
			return nil, err
		}
		rounds = append(rounds, r)
	}
	c := summariseRounds("open", rounds)
	return &c, nil
}

// machineFacts describe the host the figures come from.
func machineFacts() bench.Machine {
	m := bench.Machine{Kernel: kernelRelease(), Cores: runtime.NumCPU(), GoVersion: runtime.Version(), Bulkhead: versionString(), Root: os.Geteuid() == 0}
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
