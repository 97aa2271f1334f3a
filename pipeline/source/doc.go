// Package source reads records from the kernel's BPF ring buffer on one
// goroutine, reusing one record buffer, and hands each to a Handler. The
// kernel wakes the reader only when enough data is queued; the reader's own
// deadline makes sure a quiet host still delivers within FlushInterval.
package source
