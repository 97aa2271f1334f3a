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
	"time"

	"github.com/bulkhead-sec/bulkhead/bpf"
	"github.com/bulkhead-sec/bulkhead/internal/monitor"
	"github.com/bulkhead-sec/bulkhead/internal/progress"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/recording"
	"github.com/bulkhead-sec/bulkhead/pipeline/sinks"
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
	m, err := monitor.Start(log.Named("monitor"), cfg, w, nil)
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
	case <-m.Done():
	}
	if bar != nil {
		bar.Finish()
	}
	if ctx.Err() != nil {
		log.Info("stopping: detaching programs and draining the ring")
	} else {
		log.Error("the ring buffer reader stopped", zap.Error(m.Err()))
	}
	s, err := m.Stop()
	closeErr := errors.Join(w.Close(), f.Sync())
	s.Print(stderr)
	st := w.Stats()
	fmt.Fprintf(stderr, "  recorded %d events in %d frames, %d bytes (%.0f bytes/event) to %s\n", st.Events, st.Frames, st.Bytes,
		float64(st.Bytes)/float64(max(st.Events, 1)), *output)
	if n, last := m.WriteErrors(); last != nil {
		return fmt.Errorf("%d events could not be written: %w", n, last)
	}
	return errors.Join(err, closeErr)
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
