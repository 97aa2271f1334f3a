// Package inproc runs a detector in the monitor's own process, on the
// dispatcher's goroutine: no copies, no IPC — and no isolation. A panic,
// a fatal error, os.Exit, a hang or runaway memory in the detector is the
// monitor's own. By default nothing here recovers from it, on purpose: this
// backend is the "kernel-style" baseline the isolation backends are
// measured against. New with Recover catches a panic in OnEvent (on the
// dispatcher's goroutine, the only place recover can): the event is counted
// as an error and the detector goes on. Nothing else can be caught: a
// fatal runtime error, os.Exit, a panic on the detector's own goroutine,
// running out of memory, or a hang.
package inproc

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"go.uber.org/zap"
)

// Backend calls a detector directly.
type Backend struct {
	d                           detection.Detector
	def                         detection.Definition
	delivered, findings, errors atomic.Uint64
	errLog                      backends.Every
	log                         *zap.Logger
	recover                     bool
}

// Options change how a detector runs in process.
type Options struct {
	// Recover catches a panic in OnEvent: counted as an error, logged, and
	// the detector keeps running (its state may be inconsistent).
	Recover bool
}

// New initialises d with cfg and returns its backend.
func New(ctx context.Context, d detection.Detector, cfg detection.Config, log *zap.Logger) (*Backend, error) {
	return NewWith(ctx, d, cfg, Options{}, log)
}

// NewWith is New with options.
func NewWith(ctx context.Context, d detection.Detector, cfg detection.Config, o Options, log *zap.Logger) (*Backend, error) {
	def := d.Definition()
	if err := def.Validate(); err != nil {
		return nil, fmt.Errorf("detector definition: %w", err)
	}
	if err := d.Init(ctx, cfg, log); err != nil {
		return nil, fmt.Errorf("detector %s: init: %w", def.Name, err)
	}
	// Asked again: a configured detector may narrow its filter.
	if def = d.Definition(); def.Validate() != nil {
		return nil, fmt.Errorf("detector %s: definition after init: %w", def.Name, def.Validate())
	}
	return &Backend{d: d, def: def, log: log, recover: o.Recover}, nil
}

func (b *Backend) Definition() detection.Definition { return b.def }

// Submit calls OnEvent for each event, on the caller's goroutine, and then
// done.
func (b *Backend) Submit(ctx context.Context, events []*event.Event, done backends.Done) {
	done(b.deliver(ctx, events))
}

func (b *Backend) deliver(ctx context.Context, events []*event.Event) ([]detection.Finding, error) {
	var out []detection.Finding
	onEvent := b.d.OnEvent // chosen per batch: the default path calls the detector directly
	if b.recover {
		onEvent = b.recovering
	}
	for _, ev := range events {
		found, err := onEvent(ctx, ev)
		if err != nil {
			b.errors.Add(1)
			if b.errLog.Allow(10 * time.Second) {
				b.log.Warn("the detector returned an error (counted; logged at most every 10s)", zap.Error(err),
					zap.Uint64("errors_so_far", b.errors.Load()))
			}
		}
		out = append(out, found...)
	}
	b.delivered.Add(uint64(len(events)))
	b.findings.Add(uint64(len(out)))
	return out, nil
}

// recovering is OnEvent, turning a panic into an error.
func (b *Backend) recovering(ctx context.Context, ev *event.Event) (found []detection.Finding, err error) {
	defer func() {
		if r := recover(); r != nil {
			found, err = nil, fmt.Errorf("recovered from a panic in OnEvent: %v", r)
		}
	}()
	return b.d.OnEvent(ctx, ev)
}

func (b *Backend) Stats() backends.Stats {
	return backends.Stats{Delivered: b.delivered.Load(), Findings: b.findings.Load(), Errors: b.errors.Load()}
}

func (b *Backend) Close(ctx context.Context) error { return b.d.Close(ctx) }
