package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/bulkhead-sec/bulkhead/bpf"
	"github.com/bulkhead-sec/bulkhead/internal/progress"
	"io"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bulkhead-sec/bulkhead/pipeline/dispatch"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/recording"
	"github.com/bulkhead-sec/bulkhead/pipeline/sinks"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
	"go.uber.org/zap"
)

// recordCommand captures like run, into a recording file.
func recordCommand(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("record", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf captureFlags
	cf.register(fs)
	output := fs.String("output", "", "the recording file to write (required)")
	duration := fs.Duration("duration", 0, "stop after this long (0: run until SIGINT/SIGTERM)")
	force := fs.Bool("force", false, "overwrite --output if it exists")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: bulkhead record --output FILE [flags]\n\nCaptures kernel events, with their process context, into a recording that `bulkhead replay` feeds\nthrough the detectors again. A summary goes to stderr at the end.\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	if *output == "" {
		return usageErr("--output FILE is required")
	}
	if *duration < 0 {
		return usageErr("--duration %s: must not be negative", *duration)
	}
	cfg, err := cf.config()
	if err != nil {
		return err
	}
	// Before the output is created: a recording that cannot start must
	// not leave an empty file that refuses the retry.
	if err := bpf.CheckPrivileges(); err != nil {
		return err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if *force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(*output, flags, 0o640)
	if errors.Is(err, os.ErrExist) {
		return usageErr("--output %s exists: choose another name, or add --force to overwrite it", *output)
	}
	if err != nil {
		return fmt.Errorf("open --output: %w", err)
	}
	defer f.Close()
	log, err := newLogger(cf.logLevel, stderr)
	if err != nil {
		return err
	}
	defer log.Sync()

	host, _ := os.Hostname()
	w, err := recording.NewWriter(f, recording.Header{Created: time.Now().UTC(), Host: host, Kernel: kernelRelease(),
		Bulkhead: versionString(), BootEpochNs: event.NewTimebase().BootEpochNs()})
	if err != nil {
		return err
	}
	ctx, stop := runContext(*duration)
	defer stop()
	m, err := startMonitor(log.Named("monitor"), cfg, w, nil)
	if err != nil {
		return err
	}
	log.Info("recording", zap.String("kinds", cf.kinds), zap.String("output", *output))
	var bar *progress.Bar
	if *duration > 0 {
		began := time.Now()
		bar = progress.NewMeasured(stderr, isTerminal(stderr), fmt.Sprintf("recording for %s to %s", *duration, sinks.TextEscape(*output)), func() float64 {
			return float64(time.Since(began)) / float64(*duration)
		})
	}
	select {
	case <-ctx.Done():
	case <-m.done:
	}
	if bar != nil {
		bar.Finish()
	}
	if ctx.Err() != nil {
		log.Info("stopping: detaching programs and draining the ring")
	} else {
		log.Error("the ring buffer reader stopped", zap.Error(m.runErr))
	}
	s, err := m.stop()
	closeErr := errors.Join(w.Close(), f.Sync())
	s.print(stderr)
	st := w.Stats()
	fmt.Fprintf(stderr, "  recorded %d events in %d frames, %d bytes (%.0f bytes/event) to %s\n", st.Events, st.Frames, st.Bytes,
		float64(st.Bytes)/float64(max(st.Events, 1)), *output)
	if m.lastErr != nil {
		return fmt.Errorf("%d events could not be written: %w", m.sinkErrors, m.lastErr)
	}
	return errors.Join(err, closeErr)
}

// countingReader counts the bytes read through it (replay's progress).
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// runContext ends at SIGINT or SIGTERM, or after d when d > 0.
func runContext(d time.Duration) (context.Context, context.CancelFunc) {
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if d <= 0 {
		return ctx, stopSignals
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	return ctx, func() { cancel(); stopSignals() }
}

// replayCommand feeds a recording through the configured detectors.
func replayCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (YAML): the detectors to replay into, as for bulkhead run")
	speed := fs.Float64("speed", 0, "0: as fast as possible; 1: at the recorded pace; N: N times as fast")
	format := fs.String("format", "json", "output format: json or text")
	findingsFormat := fs.String("findings-format", "native", "findings as: native (the --format of events) or ocsf (OCSF 1.3 Detection Finding JSON, class 2004)")
	output := fs.String("output", "-", "write findings (and events) to this file instead of stdout")
	events := fs.String("events", "auto", "write the events out too: on, off, or auto (on unless detectors are configured)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	exportURL := fs.String("export", "", exportFlagUsage)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: bulkhead replay FILE [flags]\n\nFeeds a recording made by `bulkhead record` through the same dispatcher and detectors as\n`bulkhead run`, on any backend. Nothing is shed: the replay waits for the detectors.\n\n")
		fs.PrintDefaults()
	}
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return usageErr("name one recording file (got %d: %q)", len(files), files)
	}
	if *speed < 0 {
		return usageErr("--speed %g: use 0 (as fast as possible) or a positive factor", *speed)
	}
	fc, writeEvents, err := detectorsAndEvents(*configPath, *events)
	if err != nil {
		return err
	}
	path := files[0]
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var size int64
	if fi, err := f.Stat(); err == nil {
		size = fi.Size()
	}
	read := &countingReader{r: f}
	rec, err := recording.NewReader(read)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer rec.Close()
	log, err := newLogger(*logLevel, stderr)
	if err != nil {
		return err
	}
	defer log.Sync()

	h := rec.Header()
	sink, closeOut, err := openSink(*output, stdout, *format, *findingsFormat, h.Timebase(), h.Host, 0)
	if err != nil {
		return err
	}
	defer closeOut()
	exp, err := startExport(fc, *exportURL, h.Timebase(), h.Host, log)
	if err != nil {
		return err
	}
	d, err := startDispatch(fc, true, func(f detect.Finding) {
		if err := sink.WriteFinding(&f); err != nil {
			log.Error("a finding could not be written: the output fails and its backlog is full; counted in the summary",
				zap.String("detector", sinks.TextEscape(f.Detector)), zap.String("rule", sinks.TextEscape(f.Rule)), zap.Error(err))
		}
		exportFinding(exp, &f, log)
	}, log)
	if err != nil {
		closeExport(exp, stderr, log)
		return err
	}
	log.Info("replaying", zap.String("file", path), zap.String("host", h.Host), zap.String("kernel", h.Kernel),
		zap.Time("recorded", h.Created), zap.String("recorded_by", h.Bulkhead), zap.Float64("speed", *speed))

	ctx, stop := runContext(0)
	defer stop()
	start := time.Now()
	bar := progress.NewMeasured(stderr, isTerminal(stderr), "replaying "+sinks.TextEscape(path), func() float64 {
		return float64(read.n.Load()) / float64(max(size, 1))
	})
	var perKind [event.KindCount]uint64
	var firstNs uint64
	var readErr error
replay:
	for {
		evs, err := rec.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				readErr = err
			}
			break
		}
		for i := range evs {
			ev := &evs[i]
			if *speed > 0 {
				if firstNs == 0 {
					firstNs = ev.KernelTimeNs
				}
				due := start.Add(time.Duration(float64(ev.KernelTimeNs-firstNs) / *speed))
				if wait := time.Until(due); wait > 0 {
					select {
					case <-time.After(wait):
					case <-ctx.Done():
					}
				}
			}
			if ctx.Err() != nil {
				log.Info("stopped by signal")
				break replay
			}
			perKind[ev.Kind%event.KindCount]++
			if d != nil {
				d.Add(ev)
			}
			if writeEvents {
				sink.Write(ev) // an event that cannot be written is counted (sink.Stats)
			}
			if exp != nil {
				exp.Write(ev) // only when export: events: true; counted by the exporter
			}
		}
		sink.Flush()
		if exp != nil {
			exp.Flush()
		}
	}
	bar.Finish()
	var closeErr error
	var lanes []dispatch.LaneStats
	if d != nil {
		closeErr = d.Close(context.Background())
		lanes = d.Stats()
	}
	sinkErr := sink.Close()
	st, _ := sink.Stats()
	fmt.Fprintf(stderr, "\nbulkhead replay of %s (%s)\n  %-10s %12s\n", path, time.Since(start).Round(time.Millisecond), "kind", "replayed")
	for _, k := range event.AllKinds() {
		fmt.Fprintf(stderr, "  %-10s %12d\n", k, perKind[k])
	}
	printDetectors(stderr, lanes)
	fmt.Fprintf(stderr, "  replayed %d events of the recording\n", rec.Events())
	fmt.Fprintf(stderr, "  output: %d findings written, %d findings and %d events not written (%d failed writes)\n",
		st.Findings, st.FindingsLost, st.EventsLost, st.WriteErrors)
	closeExport(exp, stderr, log)
	if sinkErr != nil {
		log.Error("the output could not be written at exit", zap.Error(sinkErr))
	}
	if readErr != nil {
		closeErr = errors.Join(closeErr, fmt.Errorf("%s: %w; the %d events before the damage were replayed", path, readErr, rec.Events()))
	}
	return outputLosses(closeErr, st, sink.LastError())
}

// parseInterspersed parses flags that may come before and after the
// positional arguments (`replay FILE --config X`), which flag.Parse alone
// stops at.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
