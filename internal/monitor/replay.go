package monitor

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/bulkhead-sec/bulkhead/pipeline/dispatch"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/export"
	"github.com/bulkhead-sec/bulkhead/pipeline/recording"
	"github.com/bulkhead-sec/bulkhead/pipeline/sinks"
	"go.uber.org/zap"
)

// Replay feeds a recording's events, frame by frame, to the detectors
// behind d (nil: none), to out when writeEvents, and to exp (nil: none;
// it exports events only when its configuration says so), flushing out and
// exp after each frame. speed 0 replays as fast as the detectors take the
// events (d should block, not shed), N at N times the recorded pace. It
// stops at the recording's end, when ctx is done, or where the recording
// is damaged, and returns the events replayed per kind and the damage (nil
// at the end).
func Replay(ctx context.Context, rec *recording.Reader, speed float64, d *dispatch.Dispatcher, out *sinks.Locked, writeEvents bool, exp *export.Exporter, log *zap.Logger) ([event.KindCount]uint64, error) {
	start := time.Now()
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
			if speed > 0 {
				if firstNs == 0 {
					firstNs = ev.KernelTimeNs
				}
				due := start.Add(time.Duration(float64(ev.KernelTimeNs-firstNs) / speed))
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
				out.Write(ev) // an event that cannot be written is counted (out.Stats)
			}
			if exp != nil {
				exp.Write(ev) // only when export: events: true; counted by the exporter
			}
		}
		out.Flush()
		if exp != nil {
			exp.Flush()
		}
	}
	return perKind, readErr
}
