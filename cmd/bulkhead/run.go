package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/bulkhead-sec/bulkhead/bpf"
	"github.com/bulkhead-sec/bulkhead/internal/config"
	"github.com/bulkhead-sec/bulkhead/internal/monitor"
	"github.com/bulkhead-sec/bulkhead/internal/monitor/status"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/sinks"
	"go.uber.org/zap"
)

func runCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf captureFlags
	cf.register(fs)
	format := fs.String("format", "json", "output format: json (one object per line) or text")
	output := fs.String("output", "-", "write events to this file instead of stdout")
	backlogKiB := fs.Int("output-backlog-kib", sinks.DefaultBacklog>>10, "while the output cannot be written (a full disk), keep this many KiB of records and write them when it can; events beyond are dropped and counted, findings first take the room of waiting events")
	duration := fs.Duration("duration", 0, "stop after this long (0: run until SIGINT/SIGTERM)")
	configPath := fs.String("config", "", "configuration file (YAML): detectors, their backends and their config")
	events := fs.String("events", "auto", "write events out: on, off, or auto (on unless detectors are configured)")
	findingsFormat := fs.String("findings-format", "native", "findings as: native (the --format of events) or ocsf (OCSF 1.3 Detection Finding JSON, class 2004)")
	statusPath := fs.String("status", autoStatus, "keep the detectors' state in this `file` for `bulkhead plugins` (auto: "+status.Path(0)[:len(status.Path(0))-len("0.json")]+"PID.json; off when empty)")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9090 (off when empty)")
	exportURL := fs.String("export", "", exportFlagUsage)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: bulkhead run [flags]\n\nCaptures kernel events and writes them out; a summary of what was seen and dropped goes to stderr at the end.\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	cfg, err := cf.config()
	if err != nil {
		return err
	}
	if *duration < 0 {
		return usageErr("--duration %s: must not be negative", *duration)
	}
	if *backlogKiB < 1 || *backlogKiB > 1<<20 {
		return usageErr("--output-backlog-kib %d: use 1 to 1048576 (1 GiB)", *backlogKiB)
	}
	fc, writeEvents, err := detectorsAndEvents(*configPath, *events)
	if err != nil {
		return err
	}
	log, err := newLogger(cf.logLevel, stderr)
	if err != nil {
		return err
	}
	defer log.Sync()

	host, _ := os.Hostname()
	tb := event.NewTimebase()
	sink, closeOut, err := openSink(*output, stdout, *format, *findingsFormat, tb, host, *backlogKiB<<10)
	if err != nil {
		return err
	}
	defer closeOut()
	exp, err := monitor.StartExport(fc, *exportURL, tb, host, versionString(), log)
	if err != nil {
		return err
	}
	cfg.Output = sink
	stopWatch := monitor.WatchOutput(sink, log)
	defer stopWatch()

	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}

	findingOut := monitor.Findings(sink, exp, log)
	// Before any plugin starts (the flags and the configuration are
	// checked by now): without the privileges none of it would be of use.
	if err := bpf.CheckPrivileges(); err != nil {
		monitor.CloseExport(exp, stderr, log)
		return fmt.Errorf("%w (the configuration was read; no detector was started)", err)
	}
	d, err := monitor.StartDispatch(fc, false, findingOut, log)
	if err != nil {
		monitor.CloseExport(exp, stderr, log)
		return err
	}
	var eventSink sinks.Sink
	if writeEvents {
		eventSink = sink
	}
	if exp != nil {
		eventSink = exp.Tee(eventSink)
	}
	m, err := monitor.Start(log.Named("monitor"), cfg, eventSink, d)
	if err != nil {
		if d != nil {
			d.Close(context.Background())
		}
		monitor.CloseExport(exp, stderr, log)
		return err
	}
	if *metricsAddr != "" {
		srv, err := monitor.ServeMetrics(*metricsAddr, m, exp, log)
		if err != nil {
			m.Stop()
			return err
		}
		defer srv.Shutdown(context.Background())
	}
	if *statusPath == autoStatus {
		*statusPath = status.Path(os.Getpid())
	}
	if *statusPath != "" && d != nil {
		stopStatus := make(chan struct{})
		statusDone := make(chan struct{})
		go func() { status.Keep(*statusPath, m.DetectorStats, log, stopStatus); close(statusDone) }()
		defer func() { close(stopStatus); <-statusDone }()
	}
	log.Info("capturing", zap.String("kinds", cf.kinds), zap.String("format", *format), zap.String("output", *output))
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
wait:
	for {
		select {
		case <-ctx.Done():
			log.Info("stopping: detaching programs and draining the ring")
			break wait
		case <-m.Done():
			log.Error("the ring buffer reader stopped", zap.Error(m.Err()))
			break wait
		case <-hup:
			m.Reload(*configPath, findingOut, log)
		}
	}
	s, err := m.Stop()
	stopWatch()
	if cerr := sink.Close(); cerr != nil {
		log.Error("the output could not be written at exit", zap.Error(cerr))
	}
	s.WithOutput(sink)
	s.Print(stderr)
	monitor.CloseExport(exp, stderr, log)
	return outputLosses(err, s.Output, sink.LastError())
}

// Exit codes beyond 0 (success), 1 (an error) and 2 (a usage error): the
// output lost records. A lost finding wins over every other error.
const (
	exitEventsLost   = 4 // events could not be written to the output; every finding was
	exitFindingsLost = 5 // findings (and maybe events) could not be written to the output
)

// exitError is an error with its own exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// outputLosses is runErr, or with what the output lost and the exit code
// that says so.
func outputLosses(runErr error, st sinks.Stats, writeErr error) error {
	if st.EventsLost+st.FindingsLost == 0 {
		return runErr
	}
	lost := fmt.Errorf("the output lost %d findings and %d events (%d failed writes, last: %v)",
		st.FindingsLost, st.EventsLost, st.WriteErrors, writeErr)
	switch {
	case st.FindingsLost > 0:
		return &exitError{code: exitFindingsLost, err: errors.Join(runErr, lost)}
	case runErr != nil:
		return errors.Join(runErr, lost)
	}
	return &exitError{code: exitEventsLost, err: lost}
}

// detectorsAndEvents loads the --config file (if any) and decides from
// --events whether events are written out: "auto" writes them unless
// detectors are configured.
func detectorsAndEvents(configPath, events string) (config.File, bool, error) {
	var fc config.File
	if configPath != "" {
		var err error
		if fc, err = loadConfig(configPath); err != nil {
			return fc, false, err
		}
	}
	switch events {
	case "on":
		return fc, true, nil
	case "off":
		return fc, false, nil
	case "auto":
		return fc, len(fc.Detectors) == 0, nil
	}
	return fc, false, usageErr("--events %q: use on, off or auto", events)
}

// openSink opens --output (stdout for "-", else the file, appended to)
// and the sink for events and findings in their formats, safe for the
// reader and the detectors at once.
func openSink(output string, stdout io.Writer, format, findingsFormat string, tb event.Timebase, host string, backlog int) (*sinks.Locked, func() error, error) {
	out, closeOut := stdout, func() error { return nil }
	if output != "-" {
		f, err := os.OpenFile(output, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return nil, nil, fmt.Errorf("open --output: %w", err)
		}
		out, closeOut = f, f.Close
	}
	base, err := sinks.NewWithBacklog(format, out, tb, backlog)
	if err != nil {
		closeOut()
		return nil, nil, usageErr("--format: %v", err)
	}
	if base, err = sinks.WithFindings(base, findingsFormat, out, tb, versionString(), host); err != nil {
		closeOut()
		return nil, nil, usageErr("--findings-format: %v", err)
	}
	return sinks.NewLocked(base), closeOut, nil
}

// loadConfig reads and checks a configuration file, whose inproc
// detectors may be any of this binary's builtins.
func loadConfig(path string) (config.File, error) {
	return config.Load(path, monitor.BuiltinNames())
}
