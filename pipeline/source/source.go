package source

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

// Handler receives what the reader reads, on the reader's goroutine.
type Handler interface {
	// Record is one raw record. raw is reused after Record returns.
	Record(raw []byte)
	// Flush is called at least every FlushInterval while records flow, and
	// when the ring runs dry: downstream stages push out what they hold.
	Flush()
}

// Stats count the reader's work.
type Stats struct {
	Records uint64
	Bytes   uint64
	// Polls is how often the reader woke up from its deadline, not the kernel.
	Polls uint64
}

// Reader reads one ring buffer.
type Reader struct {
	rd            *ringbuf.Reader
	flushInterval time.Duration
	stats         Stats
}

// New opens a reader on the ring buffer map. flushInterval bounds how long a
// record can wait in the ring on a quiet host.
func New(ring *ebpf.Map, flushInterval time.Duration) (*Reader, error) {
	if flushInterval <= 0 {
		return nil, fmt.Errorf("flush interval %s: must be positive", flushInterval)
	}
	rd, err := ringbuf.NewReader(ring)
	if err != nil {
		return nil, fmt.Errorf("open ring buffer reader: %w", err)
	}
	return &Reader{rd: rd, flushInterval: flushInterval}, nil
}

// Fill is how many bytes wait in the ring now, and its size. Safe to call
// from any goroutine.
func (r *Reader) Fill() (used, size int) { return r.rd.AvailableBytes(), r.rd.BufferSize() }

// Stats returns the counts so far. Call it from the reader goroutine or
// after Run returned.
func (r *Reader) Stats() Stats { return r.stats }

// Run reads until ctx is done, then reads what is left in the ring and
// returns. Detach the programs before cancelling ctx so that "what is left"
// is everything.
func (r *Reader) Run(ctx context.Context, h Handler) error {
	rec := ringbuf.Record{RawSample: make([]byte, 0, 16<<10)}
	draining := false
	nextFlush := time.Now().Add(r.flushInterval)
	r.rd.SetDeadline(nextFlush)
	var sinceCheck int
	for {
		err := r.rd.ReadInto(&rec)
		if err == nil {
			r.stats.Records++
			r.stats.Bytes += uint64(len(rec.RawSample))
			h.Record(rec.RawSample)
			// Under steady load the deadline never fires: check the clock
			// every so often so downstream still flushes on time.
			if sinceCheck++; sinceCheck >= 256 {
				sinceCheck = 0
				if ctx.Err() != nil {
					draining = true // stop at the next empty ring
				}
				if now := time.Now(); now.After(nextFlush) {
					h.Flush()
					nextFlush = now.Add(r.flushInterval)
				}
			}
			continue
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			if errors.Is(err, ringbuf.ErrClosed) {
				h.Flush()
				return nil
			}
			return fmt.Errorf("read ring buffer: %w", err)
		}
		// The ring is empty.
		h.Flush()
		if draining {
			return nil
		}
		r.stats.Polls++
		if ctx.Err() != nil {
			draining = true
			r.rd.SetDeadline(time.Now()) // read the rest without waiting
			continue
		}
		nextFlush = time.Now().Add(r.flushInterval)
		r.rd.SetDeadline(nextFlush)
	}
}

// Close releases the reader.
func (r *Reader) Close() error { return r.rd.Close() }
