// Package sinks writes events out: JSON lines (one object per event, for
// machines) or text (one line per event, for people). Both encode by
// appending into reused buffers, so writing allocates nothing per event.
package sinks
