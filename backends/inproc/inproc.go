// Package inproc runs a detector in the monitor's own process, on the
// dispatcher's goroutine: no copies, no IPC — and no isolation. A panic,
// a fatal error, os.Exit, a hang or runaway memory in the detector is the
// monitor's own; nothing here recovers from it, on purpose: this backend is
// the "kernel-style" baseline the isolation backends are measured against.
package inproc

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
	"go.uber.org/zap"
)

// Backend calls a detector directly.
type Backend struct {
	d                           detect.Detector
	def                         detect.Definition
	delivered, findings, errors atomic.Uint64
	errLog                      backends.Every
	log                         *zap.Logger
}

// New initialises d with cfg and returns its backend.
func New(ctx context.Context, d detect.Detector, cfg detect.Config, log *zap.Logger) (*Backend, error) {
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
	return &Backend{d: d, def: def, log: log}, nil
}

func (b *Backend) Definition() detect.Definition { return b.def }

// Submit calls OnEvent for each event, on the caller's goroutine, and then
// done.
func (b *Backend) Submit(ctx context.Context, events []*event.Event, done backends.Done) {
	done(b.deliver(ctx, events))
}

func (b *Backend) deliver(ctx context.Context, events []*event.Event) ([]detect.Finding, error) {
	var out []detect.Finding
	for _, ev := range events {
		found, err := b.d.OnEvent(ctx, ev)
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

func (b *Backend) Stats() backends.Stats {
	return backends.Stats{Delivered: b.delivered.Load(), Findings: b.findings.Load(), Errors: b.errors.Load()}
}

func (b *Backend) Close(ctx context.Context) error { return b.d.Close(ctx) }
