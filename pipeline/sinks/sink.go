package sinks

import (
	"fmt"
	"io"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

// Sink takes events at the end of the pipeline.
type Sink interface {
	// Write takes one event; its strings are only valid during the call.
	Write(ev *event.Event) error
	// Flush pushes out anything buffered.
	Flush() error
}

// New returns the sink for a format name: "json" or "text".
func New(format string, w io.Writer, tb event.Timebase) (Sink, error) {
	switch format {
	case "json":
		return NewJSON(w, tb), nil
	case "text":
		return NewText(w, tb), nil
	}
	return nil, fmt.Errorf("unknown output format %q: use json or text", format)
}

// Count is a sink that only counts, per kind; benchmarks use it to measure
// the pipeline without the cost of encoding.
type Count struct {
	PerKind [event.KindCount]uint64
}

func (c *Count) Write(ev *event.Event) error { c.PerKind[ev.Kind]++; return nil }
func (c *Count) Flush() error                { return nil }
