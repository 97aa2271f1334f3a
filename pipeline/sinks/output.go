package sinks

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

// Output writes whole records (one line each) to an io.Writer, buffered,
// and survives the writer failing: unlike a bufio.Writer, whose first error
// sticks forever, it tries again, so a full disk that is freed gets the
// records that follow. It never leaves half a line behind:
//
//   - a record a failed write cut in two is finished first when writing
//     works again (its remaining bytes are always kept);
//   - records not yet started wait in a backlog of at most Backlog bytes;
//     an event that does not fit is dropped whole, a finding that does not
//     fit evicts waiting events first and is dropped whole only when the
//     backlog holds nothing but findings;
//   - at Close, what still cannot be written is counted lost, and the
//     beginning of a cut record is truncated off a regular file.
//
// Every record dropped is counted (Stats). Output is not safe for
// concurrent use (Locked makes it so), except Stats.
type Output struct {
	w       io.Writer
	buf     []byte   // records not yet written; buf[:head] is already out
	head    int      // bytes of the first record already written (a cut record)
	recs    []record // the records in buf, in order
	flushAt int      // write out when buf reaches this
	backlog int      // most bytes kept while the writer fails
	retry   time.Duration
	failing error // the last write error; nil while writes work
	lastErr error // the last write error, kept after recovering
	lastTry time.Time
	closed  bool

	written      [event.KindCount]atomic.Uint64
	findings     atomic.Uint64
	eventsLost   atomic.Uint64
	findingsLost atomic.Uint64
	writeErrors  atomic.Uint64
	recoveries   atomic.Uint64
}

type record struct {
	end     int // offset in buf just past the record's newline
	kind    event.Kind
	finding bool
}

// Stats is what an Output wrote and lost.
type Stats struct {
	Written  [event.KindCount]uint64 // events written out, by kind
	Findings uint64                  // findings written out
	// EventsLost and FindingsLost are records never written: dropped
	// while the writer failed, or still waiting when the output closed.
	EventsLost, FindingsLost uint64
	WriteErrors              uint64 // write calls that failed (each retried)
	Recoveries               uint64 // times writing worked again after failing
}

// DefaultBacklog is how many bytes of records an Output keeps while its
// writer fails.
const DefaultBacklog = 1 << 20

// ErrLost is returned for a record that was dropped: the writer fails and
// the backlog is full.
var ErrLost = errors.New("record dropped: the output fails and its backlog is full")

// NewOutput writes to w, keeping up to backlog bytes (DefaultBacklog if
// not positive) while w fails, and trying w again at most every retry.
func NewOutput(w io.Writer, backlog int, retry time.Duration) *Output {
	if backlog <= 0 {
		backlog = DefaultBacklog
	}
	return &Output{w: w, buf: make([]byte, 0, 64<<10), flushAt: min(256<<10, backlog), backlog: backlog, retry: retry}
}

// begin is where the next record starts in the buffer: append it to
// o.buf, then call event or finding.
func (o *Output) begin() int { return len(o.buf) }

// dropping reports whether an event would be dropped now, before it is
// encoded: the writer fails, the backlog is full and no retry is due.
func (o *Output) dropping() bool {
	return o.failing != nil && len(o.buf) >= o.backlog && time.Since(o.lastTry) < o.retry
}

// event takes the event record appended to o.buf since start.
func (o *Output) event(start int, kind event.Kind) error {
	return o.commit(start, record{kind: kind})
}

// finding takes the finding record appended to o.buf since start.
func (o *Output) finding(start int) error {
	return o.commit(start, record{finding: true})
}

// lose counts a record that was never taken.
func (o *Output) lose(finding bool) error {
	if finding {
		o.findingsLost.Add(1)
	} else {
		o.eventsLost.Add(1)
	}
	return ErrLost
}

func (o *Output) commit(start int, r record) error {
	if o.closed {
		o.buf = o.buf[:start]
		return o.lose(r.finding)
	}
	size := len(o.buf) - start
	if start > 0 && start+size > o.backlog {
		// It does not fit behind what waits: write that out first (or, on
		// a failing writer whose retry is not due, learn that it fails).
		o.buf = o.buf[:start]
		o.flush(false)
		if o.failing == nil && len(o.buf) == 0 {
			return o.recommit(start, size, r)
		}
		if len(o.buf)+size > o.backlog && r.finding {
			o.evictEvents(len(o.buf) + size - o.backlog)
		}
		if len(o.buf)+size > o.backlog {
			return o.lose(r.finding)
		}
		return o.recommit(start, size, r)
	}
	r.end = len(o.buf)
	o.recs = append(o.recs, r)
	if len(o.buf) >= o.flushAt {
		o.flush(false)
	}
	return nil
}

// recommit moves the record that was at buf[start:start+size] (still in
// the backing array, past len) to the end of what waits now.
func (o *Output) recommit(start, size int, r record) error {
	n := len(o.buf)
	o.buf = o.buf[:start+size]
	if n != start {
		copy(o.buf[n:], o.buf[start:start+size])
	}
	o.buf = o.buf[:n+size]
	r.end = len(o.buf)
	o.recs = append(o.recs, r)
	return nil
}

// evictEvents drops waiting events that no write has started, oldest
// first, until need bytes are free or none is left; each is counted lost.
func (o *Output) evictEvents(need int) {
	freed, out, prev, keepFrom := 0, 0, 0, 0
	if o.head > 0 {
		keepFrom = 1 // the cut record must be finished
	}
	kept := o.recs[:0]
	for i, r := range o.recs {
		start := prev
		prev = r.end
		if i >= keepFrom && !r.finding && freed < need {
			freed += r.end - start
			o.eventsLost.Add(1)
			continue
		}
		n := copy(o.buf[out:], o.buf[start:r.end])
		out += n
		r.end = out
		kept = append(kept, r)
	}
	o.buf, o.recs = o.buf[:out], kept
}

// Flush writes what waits. While the writer fails, it tries again only when
// the retry interval has passed, and returns the writer's last error.
func (o *Output) Flush() error { return o.flush(false) }

func (o *Output) flush(force bool) error {
	if len(o.buf) == 0 {
		return nil
	}
	if o.failing != nil && !force && time.Since(o.lastTry) < o.retry {
		return o.failing
	}
	o.lastTry = time.Now()
	n, err := o.w.Write(o.buf[o.head:])
	if err == nil && o.head+n < len(o.buf) {
		err = io.ErrShortWrite
	}
	o.advance(o.head + n)
	if err != nil {
		o.writeErrors.Add(1)
		o.failing, o.lastErr = err, err
		return err
	}
	if o.failing != nil {
		o.failing = nil
		o.recoveries.Add(1)
	}
	return nil
}

// advance drops the first done bytes of buf, which are written: the
// records they complete are counted; a record they cut keeps its place.
func (o *Output) advance(done int) {
	k, cut := 0, 0
	var findings uint64
	var kinds [event.KindCount]uint64
	for k < len(o.recs) && o.recs[k].end <= done {
		r := o.recs[k]
		if r.finding {
			findings++
		} else {
			kinds[r.kind%event.KindCount]++
		}
		cut = r.end
		k++
	}
	for i, n := range kinds {
		if n > 0 {
			o.written[i].Add(n)
		}
	}
	if findings > 0 {
		o.findings.Add(findings)
	}
	rest := copy(o.buf, o.buf[cut:])
	o.buf = o.buf[:rest]
	m := copy(o.recs, o.recs[k:])
	o.recs = o.recs[:m]
	for i := range o.recs {
		o.recs[i].end -= cut
	}
	o.head = done - cut
}

// Failing is the writer's last error while it fails, nil while it works.
func (o *Output) Failing() error { return o.failing }

// LastError is the writer's last error, even if writing works again.
func (o *Output) LastError() error { return o.lastErr }

// Close writes what waits one last time; what it cannot write is counted
// lost. A record cut by a failed write is truncated off a regular file, so
// the file ends with a whole line. It does not close the writer, and
// returns ErrLost (with the writer's error) if records were lost.
func (o *Output) Close() error {
	if o.closed {
		return nil
	}
	o.closed = true
	if o.flush(true) == nil {
		return nil
	}
	var events, findings uint64
	for _, r := range o.recs {
		if r.finding {
			findings++
		} else {
			events++
		}
	}
	o.eventsLost.Add(events)
	o.findingsLost.Add(findings)
	err := fmt.Errorf("%w: %d events and %d findings were still waiting (%v)", ErrLost, events, findings, o.failing)
	if o.head > 0 {
		if terr := truncateCut(o.w, int64(o.head)); terr != nil {
			err = fmt.Errorf("%w; the last line of the output is cut: %v", err, terr)
		}
	}
	o.buf, o.recs, o.head = o.buf[:0], o.recs[:0], 0
	return err
}

// truncateCut removes the n bytes of a cut record from the end of w, if w
// is a regular file (an *os.File, or anything with its Stat and Truncate).
func truncateCut(w io.Writer, n int64) error {
	f, ok := w.(interface {
		Stat() (os.FileInfo, error)
		Truncate(size int64) error
	})
	if !ok {
		return errors.New("not a file")
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() || st.Size() < n {
		return errors.New("not a regular file")
	}
	return f.Truncate(st.Size() - n)
}

// Stats returns the counts so far; safe from any goroutine.
func (o *Output) Stats() Stats {
	var s Stats
	for i := range o.written {
		s.Written[i] = o.written[i].Load()
	}
	s.Findings = o.findings.Load()
	s.EventsLost, s.FindingsLost = o.eventsLost.Load(), o.findingsLost.Load()
	s.WriteErrors, s.Recoveries = o.writeErrors.Load(), o.recoveries.Load()
	return s
}
