package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/bulkhead-sec/bulkhead/internal/monitor"
	"github.com/bulkhead-sec/bulkhead/internal/progress"
	"github.com/bulkhead-sec/bulkhead/pipeline/dispatch"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/recording"
	"github.com/bulkhead-sec/bulkhead/pipeline/sinks"
	"go.uber.org/zap"
)

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
	exp, err := monitor.StartExport(fc, *exportURL, h.Timebase(), h.Host, versionString(), log)
	if err != nil {
		return err
	}
	d, err := monitor.StartDispatch(fc, true, monitor.Findings(sink, exp, log), log)
	if err != nil {
		monitor.CloseExport(exp, stderr, log)
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
	perKind, readErr := monitor.Replay(ctx, rec, *speed, d, sink, writeEvents, exp, log)
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
	monitor.PrintDetectors(stderr, lanes)
	fmt.Fprintf(stderr, "  replayed %d events of the recording\n", rec.Events())
	fmt.Fprintf(stderr, "  output: %d findings written, %d findings and %d events not written (%d failed writes)\n",
		st.Findings, st.FindingsLost, st.EventsLost, st.WriteErrors)
	monitor.CloseExport(exp, stderr, log)
	if sinkErr != nil {
		log.Error("the output could not be written at exit", zap.Error(sinkErr))
	}
	if readErr != nil {
		closeErr = errors.Join(closeErr, fmt.Errorf("%s: %w; the %d events before the damage were replayed", path, readErr, rec.Events()))
	}
	return outputLosses(closeErr, st, sink.LastError())
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
