package sinks

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
)

// Sink takes events at the end of the pipeline.
type Sink interface {
	// Write takes one event; its strings are only valid during the call.
	Write(ev *event.Event) error
	// Flush pushes out anything buffered.
	Flush() error
}

// FindingSink also takes findings.
type FindingSink interface {
	Sink
	WriteFinding(f *detect.Finding) error
}

// Locked makes a FindingSink safe for the reader goroutine (events) and
// the detectors' goroutines (findings) at once.
type Locked struct {
	mu sync.Mutex
	s  FindingSink
}

// NewLocked wraps s.
func NewLocked(s FindingSink) *Locked { return &Locked{s: s} }

func (l *Locked) Write(ev *event.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.Write(ev)
}

// WriteFinding writes f and flushes at once: findings are rare, and whoever
// tails the output (an operator, a SIEM shipper) must see them now, not
// when the next batch of events fills the buffer.
func (l *Locked) WriteFinding(f *detect.Finding) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return errors.Join(l.s.WriteFinding(f), l.s.Flush())
}

func (l *Locked) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.Flush()
}

// WithFindings returns base, or for findingsFormat "ocsf" a sink that
// writes base's events and OCSF findings to w; "" keeps base's own format.
func WithFindings(base FindingSink, findingsFormat string, w io.Writer, tb event.Timebase, version, host string) (FindingSink, error) {
	switch findingsFormat {
	case "", "native":
		return base, nil
	case "ocsf":
		return NewOCSF(base, w, tb, version, host), nil
	}
	return nil, fmt.Errorf("unknown findings format %q: use native (the --format of events) or ocsf", findingsFormat)
}

// New returns the sink for a format name: "json" or "text".
func New(format string, w io.Writer, tb event.Timebase) (FindingSink, error) {
	switch format {
	case "json":
		return NewJSON(w, tb), nil
	case "text":
		return NewText(w, tb), nil
	}
	return nil, fmt.Errorf("unknown output format %q: use json or text", format)
}
