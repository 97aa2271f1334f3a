package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bulkhead-sec/bulkhead/internal/bench/suite"
	"github.com/bulkhead-sec/bulkhead/internal/config"
)

func benchCommand(args []string, stdout, stderr io.Writer) error {
	const subcommands = "all, capture, throughput, resilience or compare"
	const benchUsage = "Usage:\n  bulkhead bench all [--quick]                          every section: JSON + Markdown report with charts\n  bulkhead bench capture|throughput|resilience [flags]  one section\n  bulkhead bench compare A.json B.json                  what changed between two runs\n\nRun 'bulkhead bench <subcommand> -h' for its flags.\n"
	if ok, err := subcommandHelp("bench", args, benchUsage, stderr); ok {
		return err
	}
	switch args[0] {
	case "all", "throughput", "resilience":
		return benchRunCommand(args[0], args[1:], stdout, stderr)
	case "capture":
		return benchCaptureCommand(args[1:], stdout, stderr)
	case "compare":
		return benchCompareCommand(args[1:], stdout, stderr)
	case "storm":
		// Internal: the load generator bench capture starts as a child.
		return stormCommand(args[1:], stdout)
	case "fault-cell":
		// Internal: one resilience cell, in its own process.
		return faultCellCommand(args[1:], stdout, stderr)
	}
	return usageErr("unknown bench subcommand %q: use %s", args[0], subcommands)
}

func benchCaptureCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench capture", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf captureFlags
	cf.register(fs)
	duration := fs.Duration("duration", 3*time.Second, "length of each storm phase")
	rounds := fs.Int("rounds", 3, "unmonitored/monitored pairs to run")
	jsonOut := fs.String("json", "", "also write the results as JSON to this file")
	configPath := fs.String("config", "", "run these detectors during the monitored phase (YAML, as for bulkhead run): what the detector library costs")
	workload := fs.String("workload", "open", "open: openat+close of /dev/null (captured events); getppid: a syscall the monitor does not trace (its cost on everything else)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: bulkhead bench capture [flags]\n\nRuns openat+close of /dev/null in a tight loop from one process, with the monitor off and on,\nand reports both rates, their ratio, events delivered and lost, the monitor's CPU per event and peak RSS.\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := cf.config()
	if err != nil {
		return err
	}
	if *workload != "open" && *workload != "getppid" {
		return usageErr("--workload %q: use open or getppid", *workload)
	}
	if *duration < 100*time.Millisecond || *rounds < 1 {
		return usageErr("--duration must be at least 100ms and --rounds at least 1")
	}
	var fc config.File
	if *configPath != "" {
		if fc, err = loadConfig(*configPath); err != nil {
			return err
		}
	}
	log, err := newLogger(cf.logLevel, stderr)
	if err != nil {
		return err
	}
	defer log.Sync()

	rep, err := suite.Capture(log, cfg, fc, *workload, *duration, *rounds, kernelRelease(), versionString(), stderr)
	if err != nil {
		return err
	}
	rep.Print(stdout)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write --json: %w", err)
		}
	}
	return nil
}

// stormCommand is the load generator `bench capture` starts as a child.
func stormCommand(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench storm", flag.ContinueOnError)
	d := fs.Duration("duration", 3*time.Second, "how long to storm")
	workload := fs.String("workload", "open", "open or getppid")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return suite.Storm(*workload, *d, os.Stdin, stdout)
}

// faultCellCommand is one resilience cell, the child a bench run starts.
func faultCellCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench fault-cell", flag.ContinueOnError)
	planJSON := fs.String("plan", "", "the cell, as JSON")
	logLevel := fs.String("log-level", "warn", "log level")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var p suite.FaultPlan
	if err := json.Unmarshal([]byte(*planJSON), &p); err != nil {
		return usageErr("--plan: %v", err)
	}
	log, err := newLogger(*logLevel, stderr)
	if err != nil {
		return err
	}
	defer log.Sync()
	return suite.FaultCell(p, log, stdout)
}

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
	if *plugins == "" {
		*plugins = filepath.Dir(self)
	}
	return suite.Run(suite.Options{Name: name, Command: "bulkhead bench " + name + " " + strings.Join(args, " "), Quick: *quick, Out: *out,
		PluginDir: *plugins, Enclave: *enclaveOn, MTLS: *mtls, Cell: *cell, FaultSeconds: *faultSeconds, ReportOnly: *reportOnly,
		Capture: capCfg, Log: log, LogFile: logFile, Kernel: kernelRelease(), Version: versionString(), Terminal: isTerminal(stderr)}, stdout, stderr)
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
