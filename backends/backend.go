// Package backends defines how the monitor runs a detector: the Backend
// interface, implemented in the monitor's own process by backends/inproc
// ("kernel-style": fastest, and the detector's crash is the monitor's) and
// in a supervised plugin process by backends/goplugin.
package backends

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

// Backend runs one detector.
type Backend interface {
	// Definition is what the detector declared.
	Definition() detection.Definition
	// Submit hands the detector a batch of events. The events need only
	// stay valid until Submit returns: a backend that answers later keeps
	// its own copy. done is called exactly once per batch, in submission
	// order, with the batch's findings or an error, possibly before Submit
	// returns; the findings and their events are only valid during the
	// call. Submit is called from one goroutine at a time and blocks while
	// the backend has as many batches in flight as it takes.
	Submit(ctx context.Context, events []*event.Event, done Done)
	// Stats reports what the backend did. Safe to call at any time.
	Stats() Stats
	// Close stops the detector (and its process, if it has one).
	Close(ctx context.Context) error
}

// Done receives a batch's outcome.
type Done func(findings []detection.Finding, err error)

// Deliver submits events and waits for the outcome: one batch at a time,
// for tests and callers that need no pipelining. The findings' events are
// their own copies.
func Deliver(ctx context.Context, b Backend, events []*event.Event) ([]detection.Finding, error) {
	type outcome struct {
		fs  []detection.Finding
		err error
	}
	ch := make(chan outcome, 1)
	b.Submit(ctx, events, func(fs []detection.Finding, err error) {
		for _, f := range fs {
			for i, ev := range f.Events {
				f.Events[i] = ev.Clone()
			}
		}
		ch <- outcome{fs, err}
	})
	o := <-ch
	return o.fs, o.err
}

// Stats are a backend's counters.
type Stats struct {
	Delivered   uint64 // events the detector has processed
	Findings    uint64
	Errors      uint64 // OnEvent calls that returned an error
	Crashes     uint64 // plugin process deaths (exit, kill, broken stream)
	Hangs       uint64 // batches that ran past the deadline (the plugin was killed)
	Restarts    uint64 // plugin processes started after the first
	Redelivered uint64 // events sent again after a crash or hang
	Quarantined uint64 // poison events given up on
	Violations  uint64 // plugin processes killed by their enclave for a forbidden system call
	LimitKills  uint64 // plugin processes killed at their enclave's memory or CPU limit
	// ProtocolViolations counts the plugin's breaches of the protocol:
	// each kind of bound a result broke (too many findings, a field too
	// long, a bad severity or error count, fabricated evidence), each
	// unreadable or oversized answer (the plugin is killed for those), and
	// each flood of its log.
	ProtocolViolations uint64
	FindingsRefused    uint64 // findings dropped for breaking the protocol
	LogLinesDropped    uint64 // plugin log lines dropped over the rate limit
	// RingFull counts batches the shm transport's ring had no room for
	// when they came (they waited in flight for the plugin to make room).
	RingFull    uint64
	BreakerOpen bool // crash-looping: not restarted until the cool-down ends
	PID         int  // the plugin's process id (0 in-process)
}

// ErrUnavailable is the outcome of a batch when the detector cannot take
// events now (its circuit breaker is open); the caller counts them as shed.
var ErrUnavailable = errors.New("detector unavailable")

// ErrStopped is the outcome of a batch the backend was stopped before the
// detector answered (a plugin that died or hung then, or whose breaker was
// open). It is an ErrUnavailable: errors.Is(err, ErrUnavailable) holds.
var ErrStopped = fmt.Errorf("detector stopped before it answered: %w", ErrUnavailable)

// Every lets something happen at most once per interval, from any
// goroutine: detector errors are counted always and logged this often.
type Every struct{ last atomic.Int64 }

// Allow reports whether interval has passed since it last returned true.
func (e *Every) Allow(interval time.Duration) bool {
	now := time.Now().UnixNano()
	last := e.last.Load()
	return now-last >= int64(interval) && e.last.CompareAndSwap(last, now)
}
