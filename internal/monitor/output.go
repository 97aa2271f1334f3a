package monitor

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/bulkhead-sec/bulkhead/internal/config"
	"github.com/bulkhead-sec/bulkhead/pipeline/dispatch"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/export"
	"github.com/bulkhead-sec/bulkhead/pipeline/sinks"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
	"go.uber.org/zap"
)

// Findings is where the detectors' findings go: written to sink (one it
// cannot take, its backlog full, is logged and counted in its stats) and
// given to the exporter, if any.
func Findings(sink *sinks.Locked, exp *export.Exporter, log *zap.Logger) dispatch.FindingFunc {
	return func(f detect.Finding) {
		if err := sink.WriteFinding(&f); err != nil {
			log.Error("a finding could not be written: the output fails and its backlog is full; counted in the summary",
				zap.String("detector", sinks.TextEscape(f.Detector)), zap.String("rule", sinks.TextEscape(f.Rule)), zap.Error(err))
		}
		exportFinding(exp, &f, log)
	}
}

// WatchOutput flushes the output every retry interval, so a failing
// output is tried again even when nothing new is written, and logs when it
// starts failing and when it works again. The returned func stops it; it
// may be called more than once.
func WatchOutput(sink *sinks.Locked, log *zap.Logger) func() {
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

// StartExport starts the exporter when the configuration has an export:
// section or url is given (--export, which wins over export: url:); nil
// otherwise. host is the subject's host unless export: host: is set;
// version is the monitor's, as findings carry it.
func StartExport(fc config.File, url string, tb event.Timebase, host, version string, log *zap.Logger) (*export.Exporter, error) {
	if fc.Export == nil && url == "" {
		return nil, nil
	}
	var c export.Config
	if fc.Export != nil {
		c = *fc.Export
	}
	if url != "" {
		c.URL = url
	}
	if c.Host == "" {
		c.Host = host
	}
	return export.New(c, tb, version, log.Named("export"))
}

// exportFinding gives f to the exporter (nil: none); a finding it
// cannot take is logged (and counted in its summary).
func exportFinding(x *export.Exporter, f *detect.Finding, log *zap.Logger) {
	if x == nil {
		return
	}
	if err := x.WriteFinding(f); err != nil {
		log.Error("a finding could not be exported: the export spool is full or cannot be written; counted in the summary",
			zap.String("detector", sinks.TextEscape(f.Detector)), zap.String("rule", sinks.TextEscape(f.Rule)), zap.Error(err))
	}
}

// CloseExport drains the exporter (up to its drain_timeout) and writes
// its summary lines.
func CloseExport(x *export.Exporter, w io.Writer, log *zap.Logger) {
	if x == nil {
		return
	}
	if err := x.Close(context.Background()); err != nil {
		log.Error("export: closing", zap.Error(err))
	}
	x.Stats().Summary(w)
}
