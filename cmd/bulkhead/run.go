package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bulkhead-sec/bulkhead/bpf"
	"github.com/bulkhead-sec/bulkhead/pipeline/dispatch"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/sinks"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
	"go.uber.org/zap"
)

// listFlag collects a repeatable or comma-separated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// captureFlags are the flags shared by every command that captures.
type captureFlags struct {
	ringMiB, wakeupKiB      int
	flush                   time.Duration
	kinds                   string
	pids, excludePids       listFlag
	comms, excludeComms     listFlag
	cgroups, excludeCgroups listFlag
	execEnv                 listFlag
	syscallTracepoints      bool
	logLevel                string
}

func (c *captureFlags) register(fs *flag.FlagSet) {
	def := defaultCaptureConfig()
	fs.IntVar(&c.ringMiB, "ring-mib", def.RingMiB, "ring buffer size in MiB (a power of two)")
	fs.IntVar(&c.wakeupKiB, "wakeup-kib", def.WakeupKiB, "wake the reader when this many KiB are queued")
	fs.DurationVar(&c.flush, "flush-interval", def.FlushInterval, "longest time an event waits in the ring on a quiet host")
	fs.StringVar(&c.kinds, "kinds", "all", "event kinds to capture, comma-separated: "+kindList())
	fs.Var(&c.pids, "pid", "only capture these process ids (repeatable, comma-separated)")
	fs.Var(&c.excludePids, "exclude-pid", "never capture these process ids")
	fs.Var(&c.comms, "comm", "only capture processes with these command names (as in /proc/PID/comm)")
	fs.Var(&c.excludeComms, "exclude-comm", "never capture processes with these command names")
	fs.Var(&c.cgroups, "cgroup", "only capture these cgroups (v2 id, or a cgroup directory path)")
	fs.Var(&c.excludeCgroups, "exclude-cgroup", "never capture these cgroups")
	fs.Var(&c.execEnv, "exec-env", "also capture these environment variables at exec, by exact name (repeatable, comma-separated), beside "+strings.Join(bpf.DefaultEnvNames, ","))
	fs.BoolVar(&c.syscallTracepoints, "syscall-tracepoints", false, "attach the syscall exit program to each syscalls/sys_exit_* tracepoint instead of the BTF tracepoint sys_exit (to compare their cost)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
}

func kindList() string {
	var names []string
	for _, k := range event.AllKinds() {
		names = append(names, k.String())
	}
	return strings.Join(names, ",")
}

func (c *captureFlags) config() (captureConfig, error) {
	cfg := defaultCaptureConfig()
	cfg.RingMiB, cfg.WakeupKiB, cfg.FlushInterval = c.ringMiB, c.wakeupKiB, c.flush
	cfg.SyscallTracepoints = c.syscallTracepoints
	if c.ringMiB <= 0 || c.ringMiB&(c.ringMiB-1) != 0 || c.ringMiB > 1024 {
		return cfg, usageErr("--ring-mib %d: use a power of two from 1 to 1024", c.ringMiB)
	}
	if c.wakeupKiB <= 0 || c.wakeupKiB > c.ringMiB<<10 {
		return cfg, usageErr("--wakeup-kib %d: use 1 up to the ring size (%d KiB)", c.wakeupKiB, c.ringMiB<<10)
	}
	if c.flush < time.Millisecond || c.flush > 10*time.Second {
		return cfg, usageErr("--flush-interval %s: use 1ms to 10s", c.flush)
	}
	kinds, err := event.ParseKindSet(c.kinds)
	if err != nil {
		return cfg, usageErr("--kinds: %v", err)
	}
	cfg.Kinds = kinds
	if cfg.PIDs, err = filter("pid", c.pids, c.excludePids, func(s string) (uint32, error) {
		n, err := strconv.ParseUint(s, 10, 32)
		return uint32(n), err
	}); err != nil {
		return cfg, err
	}
	if cfg.Comms, err = filter("comm", c.comms, c.excludeComms, func(s string) (string, error) {
		if len(s) > 15 {
			return "", fmt.Errorf("longer than 15 bytes; the kernel keeps only the first 15 (use %q)", s[:15])
		}
		return s, nil
	}); err != nil {
		return cfg, err
	}
	if cfg.Cgroups, err = filter("cgroup", c.cgroups, c.excludeCgroups, cgroupID); err != nil {
		return cfg, err
	}
	if len(c.execEnv) > 0 {
		cfg.EnvNames = append([]string(nil), bpf.DefaultEnvNames...)
		for _, n := range c.execEnv {
			if err := bpf.ValidateEnvName(n); err != nil {
				return cfg, usageErr("--exec-env: %v", err)
			}
			cfg.EnvNames = append(cfg.EnvNames, n)
		}
	}
	return cfg, nil
}

// filter builds one kernel filter from an include and an exclude flag.
func filter[T comparable](name string, include, exclude listFlag, parse func(string) (T, error)) (bpf.Filter[T], error) {
	var f bpf.Filter[T]
	list := include
	switch {
	case len(include) > 0 && len(exclude) > 0:
		return f, usageErr("--%s and --exclude-%s: use one or the other", name, name)
	case len(include) > 0:
		f.Mode = bpf.FilterInclude
	case len(exclude) > 0:
		f.Mode, list = bpf.FilterExclude, exclude
	}
	for _, s := range list {
		v, err := parse(s)
		if err != nil {
			return f, usageErr("--%s %q: %v", name, s, err)
		}
		f.Values = append(f.Values, v)
	}
	return f, nil
}

// cgroupID accepts a cgroup v2 id or the path of a cgroup directory.
func cgroupID(s string) (uint64, error) {
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		return n, nil
	}
	var st syscall.Stat_t
	if err := syscall.Stat(s, &st); err != nil {
		return 0, fmt.Errorf("not a cgroup id, and not a directory: %v", err)
	}
	return st.Ino, nil
}

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
	statusPath := fs.String("status", autoStatus, "keep the detectors' state in this `file` for `bulkhead plugins` (auto: "+statusPathFor(0)[:len(statusPathFor(0))-len("0.json")]+"PID.json; off when empty)")
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
	exp, err := startExport(fc, *exportURL, tb, host, log)
	if err != nil {
		return err
	}
	cfg.Output = sink
	stopWatch := watchOutput(sink, log)
	defer stopWatch()

	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}

	findingOut := func(f detect.Finding) {
		if err := sink.WriteFinding(&f); err != nil {
			log.Error("a finding could not be written: the output fails and its backlog is full; counted in the summary",
				zap.String("detector", sinks.TextEscape(f.Detector)), zap.String("rule", sinks.TextEscape(f.Rule)), zap.Error(err))
		}
		exportFinding(exp, &f, log)
	}
	// Before any plugin starts (the flags and the configuration are
	// checked by now): without the privileges none of it would be of use.
	if err := bpf.CheckPrivileges(); err != nil {
		closeExport(exp, stderr, log)
		return fmt.Errorf("%w (the configuration was read; no detector was started)", err)
	}
	d, err := startDispatch(fc, false, findingOut, log)
	if err != nil {
		closeExport(exp, stderr, log)
		return err
	}
	var eventSink sinks.Sink
	if writeEvents {
		eventSink = sink
	}
	if exp != nil {
		eventSink = exp.Tee(eventSink)
	}
	m, err := startMonitor(log.Named("monitor"), cfg, eventSink, d)
	if err != nil {
		if d != nil {
			d.Close(context.Background())
		}
		closeExport(exp, stderr, log)
		return err
	}
	if *metricsAddr != "" {
		srv, err := serveMetrics(*metricsAddr, m, exp, log)
		if err != nil {
			m.stop()
			return err
		}
		defer srv.Shutdown(context.Background())
	}
	if *statusPath == autoStatus {
		*statusPath = statusPathFor(os.Getpid())
	}
	if *statusPath != "" && d != nil {
		stopStatus := make(chan struct{})
		statusDone := make(chan struct{})
		go func() { keepStatus(*statusPath, m, log, stopStatus); close(statusDone) }()
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
		case <-m.done:
			log.Error("the ring buffer reader stopped", zap.Error(m.runErr))
			break wait
		case <-hup:
			reload(*configPath, m, findingOut, log)
		}
	}
	s, err := m.stop()
	stopWatch()
	if cerr := sink.Close(); cerr != nil {
		log.Error("the output could not be written at exit", zap.Error(cerr))
	}
	s.withOutput(sink)
	s.print(stderr)
	closeExport(exp, stderr, log)
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

// watchOutput flushes the output every retry interval, so a failing
// output is tried again even when nothing new is written, and logs when it
// starts failing and when it works again. The returned func stops it; it
// may be called more than once.
func watchOutput(sink *sinks.Locked, log *zap.Logger) func() {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(sinks.DefaultRetry)
		defer t.Stop()
		var failing error
		var at sinks.Stats
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			sink.Flush()
			now := sink.Failing()
			st, _ := sink.Stats()
			switch {
			case failing == nil && now != nil:
				log.Error("the output cannot be written; records wait in its backlog and are written when it can, what does not fit is dropped and counted", zap.Error(now))
				at = st
			case failing != nil && now == nil:
				log.Warn("the output is written again", zap.Uint64("events_lost", st.EventsLost-at.EventsLost),
					zap.Uint64("findings_lost", st.FindingsLost-at.FindingsLost))
			}
			failing = now
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(stop); <-done }) }
}

// reload applies the configuration file again (SIGHUP): the new detectors
// are started first, and only if the file is valid and every detector
// starts do they replace the running ones, which then drain their queues.
// Otherwise the running detectors keep running and the log says why.
func reload(path string, m *monitor, out dispatch.FindingFunc, log *zap.Logger) {
	if path == "" {
		log.Warn("SIGHUP: nothing to reload: bulkhead run was started without --config")
		return
	}
	fc, err := loadConfig(path)
	if err != nil {
		log.Error("SIGHUP: the configuration was not reloaded; the running detectors keep running", zap.Error(err))
		return
	}
	next, err := startDispatch(fc, false, out, log)
	if err != nil {
		log.Error("SIGHUP: the new detectors did not start; the running detectors keep running", zap.Error(err))
		return
	}
	if err := m.replaceDetectors(context.Background(), next); err != nil {
		log.Warn("SIGHUP: the replaced detectors did not close cleanly", zap.Error(err))
	}
	names := make([]string, 0, len(fc.Detectors))
	for _, d := range fc.Detectors {
		names = append(names, d.Name)
	}
	log.Info("configuration reloaded", zap.String("config", path), zap.Strings("detectors", names))
}

// detectorsAndEvents loads the --config file (if any) and decides from
// --events whether events are written out: "auto" writes them unless
// detectors are configured.
func detectorsAndEvents(configPath, events string) (fileConfig, bool, error) {
	var fc fileConfig
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
