package sinks

import (
	"fmt"
	"io"
	"sync"

	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
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
	WriteFinding(f *detection.Finding) error
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
// when the next batch of events fills the buffer. It returns an error only
// when f was dropped: a failing output keeps it and tries again.
func (l *Locked) WriteFinding(f *detection.Finding) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.s.WriteFinding(f); err != nil {
		return err
	}
	if _, ok := l.s.(interface{ Output() *Output }); ok {
		l.s.Flush() // a failure keeps f waiting; it is not lost
		return nil
	}
	return l.s.Flush()
}

func (l *Locked) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.Flush()
}

// output is the wrapped sink's Output, or nil.
func (l *Locked) output() *Output {
	if o, ok := l.s.(interface{ Output() *Output }); ok {
		return o.Output()
	}
	return nil
}

// Stats is what the wrapped sink's Output wrote and lost; ok is false for
// a sink without one. Safe from any goroutine.
func (l *Locked) Stats() (s Stats, ok bool) {
	if o := l.output(); o != nil {
		return o.Stats(), true
	}
	return s, false
}

// Failing is the output's last write error while it fails, nil while it
// works (or for a sink without an Output).
func (l *Locked) Failing() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if o := l.output(); o != nil {
		return o.Failing()
	}
	return nil
}

// LastError is the output's last write error, even if writing works
// again (nil for a sink without an Output).
func (l *Locked) LastError() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if o := l.output(); o != nil {
		return o.LastError()
	}
	return nil
}

// Close flushes one last time; records that still cannot be written are
// counted lost (see Output.Close). It does not close the writer.
func (l *Locked) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if o := l.output(); o != nil {
		l.s.Flush()
		return o.Close()
	}
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
	return NewWithBacklog(format, w, tb, 0)
}

// NewWithBacklog is New with the Output's backlog in bytes (0: the
// default): what is kept while w fails.
func NewWithBacklog(format string, w io.Writer, tb event.Timebase, backlog int) (FindingSink, error) {
	switch format {
	case "json":
		return NewJSONTo(NewOutput(w, backlog, DefaultRetry), tb), nil
	case "text":
		return NewTextTo(NewOutput(w, backlog, DefaultRetry), tb), nil
	}
	return nil, fmt.Errorf("unknown output format %q: use json or text", format)
}
