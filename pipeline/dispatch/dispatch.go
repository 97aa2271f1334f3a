// Package dispatch hands events to detectors. Events are copied once into
// shared batches (their strings into the batch's own arena) and, when some
// detector takes batches in the flat layout (FlatBackend: a plugin), encoded
// once into it, for every such detector at once; each detector
// has its own bounded queue and its own goroutine, so a slow, hung or dead
// detector never stalls capture or the other detectors. A queue is sized in
// events and bytes, not batches: at low rates a batch holds a few events
// (the reader flushes every few milliseconds), and a queue of batches would
// hold little time. When a detector's queue is full the batch is shed for
// that detector and every event in it that the detector wanted is counted.
// Every event a detector's queue took ends in exactly one of its counters:
// filtered, delivered, unavailable, failed, or abandoned at stop.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/wire"
	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"go.uber.org/zap"
)

// Options size the batches and queues.
type Options struct {
	BatchSize int // events per batch
	// A detector's queue is full, and what comes next is shed for it, when
	// it holds QueueEvents events, or QueueBytes bytes of batches, or
	// QueueBatches batches, whichever comes first. A batch is always
	// taken by an empty queue. Zero means the default.
	QueueEvents  int
	QueueBytes   int64
	QueueBatches int
	// Block waits for queue space instead of shedding: for replaying a
	// recording and for benchmarks, never for live capture.
	Block bool
	// DrainTimeout bounds how long Close waits for the detectors to finish
	// their queues; a detector still busy then is abandoned and what it had
	// queued or in flight is counted as abandoned. Zero waits as long as
	// the caller's context.
	DrainTimeout time.Duration
}

// Default queue budgets, per detector. 64k events are several seconds of
// a busy host's opens, execs and connects, enough for a plugin's restart
// and the redelivery after it; 64 MiB bounds the memory a detector that
// stopped answering can pin, whatever its events carry.
const (
	DefaultQueueEvents  = 64 << 10
	DefaultQueueBytes   = 64 << 20
	DefaultQueueBatches = DefaultQueueEvents // a batch holds at least one event: no limit of its own
)

// DefaultOptions suit a host.
func DefaultOptions() Options {
	return Options{BatchSize: 256, QueueEvents: DefaultQueueEvents, QueueBytes: DefaultQueueBytes, QueueBatches: DefaultQueueBatches,
		DrainTimeout: 5 * time.Second}
}

// Detector is one configured detector.
type Detector struct {
	Name    string // as configured (defaults to the definition's name)
	Backend string // "inproc", "goplugin", …: for reports
	Run     backends.Backend
	// Protections say what isolates the detector (its enclave): for reports.
	Protections []string
}

// FlatBackend is a backend that takes a batch already encoded in the flat
// layout (wire.FlatEncoder), as the dispatcher encodes it once for every
// such detector: its transport then moves the bytes as they are (one copy
// into a plugin's ring) instead of encoding the batch once per detector.
// The dispatcher uses it for a detector that wants every event of every
// batch: no filter of its own, and every kind some detector wants. Any
// other detector gets the events it wants through Submit.
type FlatBackend interface {
	// SubmitFlat is Submit for count events encoded in batch, which need
	// only stay valid until it returns.
	SubmitFlat(ctx context.Context, batch []byte, count int, done backends.Done)
}

// FindingFunc receives findings, from every detector's goroutine at once.
// The finding's events are the finding's own copies.
type FindingFunc func(f detection.Finding)

// LaneStats are one detector's counts.
type LaneStats struct {
	Name        string
	Backend     string
	Protections []string
	// Every event the detector wanted is either queued or shed; every
	// queued event, once the dispatcher is closed, is in exactly one of
	// Filtered, Delivered, Unavailable, Failed and Abandoned (see Settled).
	Queued      uint64 // events put on its queue
	Filtered    uint64 // queued events its filter turned away (neither delivered nor lost)
	Delivered   uint64 // queued events in batches the detector answered (Backends.Quarantined among them)
	Shed        uint64 // events dropped because its queue was full
	Unavailable uint64 // events dropped because it was unavailable (breaker open)
	Failed      uint64 // events whose delivery failed otherwise
	Abandoned   uint64 // events queued or in flight when it was abandoned at stop
	Backends    backends.Stats
	// Latency is how long the detector took to answer each batch.
	Latency Latency
}

// Plus adds o's counts to s (the current state, breaker and pid, stays s's):
// for a detector that was replaced by a reload.
func (s LaneStats) Plus(o LaneStats) LaneStats {
	s.Queued += o.Queued
	s.Filtered += o.Filtered
	s.Delivered += o.Delivered
	s.Shed += o.Shed
	s.Unavailable += o.Unavailable
	s.Failed += o.Failed
	s.Abandoned += o.Abandoned
	b, ob := &s.Backends, o.Backends
	b.Delivered += ob.Delivered
	b.Findings += ob.Findings
	b.Errors += ob.Errors
	b.Crashes += ob.Crashes
	b.Hangs += ob.Hangs
	b.Restarts += ob.Restarts
	b.Redelivered += ob.Redelivered
	b.Quarantined += ob.Quarantined
	b.Violations += ob.Violations
	b.LimitKills += ob.LimitKills
	b.ProtocolViolations += ob.ProtocolViolations
	b.FindingsRefused += ob.FindingsRefused
	b.LogLinesDropped += ob.LogLinesDropped
	b.RingFull += ob.RingFull
	s.Latency = s.Latency.plus(o.Latency)
	return s
}

// Dropped is every event the detector wanted and did not get.
func (s LaneStats) Dropped() uint64 { return s.Shed + s.Unavailable + s.Failed + s.Abandoned }

// Settled is how many queued events have an outcome. Once the dispatcher
// is closed it equals Queued; while it runs the difference is what is on
// the queue or in flight.
func (s LaneStats) Settled() uint64 {
	return s.Filtered + s.Delivered + s.Unavailable + s.Failed + s.Abandoned
}

// Dispatcher fans events out to detectors. Add and Flush are called from
// the pipeline's reader goroutine.
type Dispatcher struct {
	opts   Options
	log    *zap.Logger
	lanes  []*lane
	wanted event.KindSet
	// prefilter holds, per kind, the filters of the detectors that want it
	// when every one of them has a filter: an event none of them lets
	// through is not copied at all. Nil: some detector takes every event.
	prefilter [event.KindCount][]*detection.Matcher
	cur       *batch
	pool      sync.Pool // full-size batches, filled by Add
	// copyEvents: some detector takes events (CopyTo into the batch);
	// enc, when some detector takes flat batches, encodes every event once
	// into the batch's flat bytes.
	copyEvents bool
	enc        *wire.FlatEncoder
	// small[i] holds batches of 1<<i events: a batch at most half full is
	// moved into one when it is flushed behind a backlog, so a waiting
	// batch pins at most twice the memory of its events (see compact).
	small       []sync.Pool
	outstanding sync.WaitGroup // batches on a lane, not yet answered
}

type lane struct {
	d        *Dispatcher
	det      Detector
	def      detection.Definition
	match    *detection.Matcher // def.Filter, compiled once
	kinds    event.KindSet
	kindList []event.Kind // the same, to sum a batch's counts by
	queue    chan *batch
	finished chan struct{} // closed when run returns
	out      FindingFunc
	failLog  backends.Every
	flat     FlatBackend // the backend, if it takes every batch whole, flat
	// unfiltered: the detector has no filter of its own, so it wants
	// every event of the kinds it declared.
	unfiltered bool
	// What is on the queue now, for its budget: written by Flush (one
	// goroutine), taken off by run and abandon.
	waitEvents atomic.Int64
	waitBytes  atomic.Int64
	space      chan struct{} // with Block: a batch was taken off the queue
	queued     atomic.Uint64
	filtered   atomic.Uint64
	delivered  atomic.Uint64
	shed       atomic.Uint64
	unavail    atomic.Uint64
	failed     atomic.Uint64
	abandoned  atomic.Uint64
	// mu orders the outcome of every batch taken off the queue against
	// abandon, so each event is counted once: after abandon, whatever the
	// detector still answers is not counted again (nor are its findings
	// sent on: the monitor has stopped).
	mu      sync.Mutex
	gone    bool   // abandoned
	pending uint64 // events taken off the queue without an outcome yet
	// frozen is the backend's counts when the lane was abandoned: what the
	// detector does after that (answers late, its plugin killed at stop)
	// is no longer counted anywhere.
	frozen  atomic.Pointer[backends.Stats]
	latency latency
}

// batch is shared by every lane that wants some of its events; the last to
// release it returns it to its pool.
type batch struct {
	events  []event.Event // copies (when the dispatcher copies events)
	arena   []byte
	n       int                     // events in the batch
	flat    []byte                  // the batch in the flat layout (when the dispatcher encodes it)
	perKind [event.KindCount]uint32 // events of each kind in the batch
	refs    atomic.Int32
	pool    *sync.Pool // where it goes back to
}

// eventSize is what an event's slot in a batch costs, strings apart.
const eventSize = int64(unsafe.Sizeof(event.Event{}))

// size is the memory b pins: its slots and its arena.
func (b *batch) size() int64 {
	return int64(cap(b.events))*eventSize + int64(cap(b.arena)) + int64(cap(b.flat))
}

// New starts one goroutine per detector.
func New(ctx context.Context, opts Options, detectors []Detector, out FindingFunc, log *zap.Logger) *Dispatcher {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1
	}
	if opts.QueueEvents <= 0 {
		opts.QueueEvents = DefaultQueueEvents
	}
	if opts.QueueBytes <= 0 {
		opts.QueueBytes = DefaultQueueBytes
	}
	if opts.QueueBatches <= 0 {
		opts.QueueBatches = DefaultQueueBatches
	}
	// The channel needs no room for more batches than the event budget
	// lets in (each has at least one event), plus the one an empty queue
	// always takes.
	slots := min(opts.QueueBatches, opts.QueueEvents+1)
	d := &Dispatcher{opts: opts, log: log}
	for _, det := range detectors {
		def := det.Run.Definition()
		l := &lane{d: d, det: det, def: def, match: def.Filter.Compile(), kinds: def.KindSet(), kindList: def.KindSet().Kinds(), queue: make(chan *batch, slots),
			finished: make(chan struct{}), space: make(chan struct{}, 1), out: out, unfiltered: def.Filter.Empty()}
		d.lanes = append(d.lanes, l)
		d.wanted |= l.kinds
	}
	// A detector takes flat batches when it can take every batch whole:
	// no filter, and every kind any detector wants (every batch has only
	// those). Any other gets the events it wants, copied, as an in-process
	// one does: encoding every event for it and decoding the batch again
	// to pick its events would cost more than the copy it saves.
	for _, l := range d.lanes {
		if fb, ok := l.det.Run.(FlatBackend); ok && l.unfiltered && d.wanted&^l.kinds == 0 {
			l.flat = fb
			if d.enc == nil {
				d.enc = wire.NewFlatEncoder()
			}
		} else {
			d.copyEvents = true
		}
	}
	// Sized by what the batch carries: copies of events (eventSize bytes
	// each, and their strings), flat records (a fraction of that), or both.
	events, arena, flat := opts.BatchSize, 64<<10, 0
	if d.enc != nil {
		flat = 64 << 10
	}
	if !d.copyEvents {
		events, arena = 0, 0
	}
	d.pool.New = func() any {
		return &batch{events: make([]event.Event, 0, events), arena: make([]byte, 0, arena), flat: make([]byte, 0, flat), pool: &d.pool}
	}
	d.small = make([]sync.Pool, bits.Len(uint(opts.BatchSize/2)))
	for i := range d.small {
		p := &d.small[i]
		p.New = func() any {
			return &batch{events: make([]event.Event, 0, min(events, 1<<i)), arena: make([]byte, 0, min(arena, 256<<i)),
				flat: make([]byte, 0, min(flat, 256<<i)), pool: p}
		}
	}
	for _, k := range d.wanted.Kinds() {
		var fs []*detection.Matcher
		for _, l := range d.lanes {
			if !l.kinds.Has(k) {
				continue
			}
			if l.def.Filter.Empty() {
				fs = nil
				break
			}
			fs = append(fs, l.match)
		}
		d.prefilter[k] = fs
	}
	for _, l := range d.lanes {
		go l.run(ctx)
	}
	return d
}

// Wants reports whether any detector wants events of kind k.
func (d *Dispatcher) Wants(k event.Kind) bool { return d.wanted.Has(k) }

// Add copies ev into the current batch (and encodes it into the batch's
// flat bytes), sending the batch when it is full.
func (d *Dispatcher) Add(ev *event.Event) {
	if !d.wanted.Has(ev.Kind) || !d.anyWants(ev) {
		return
	}
	if d.cur == nil {
		d.cur = d.pool.Get().(*batch)
		if d.enc != nil {
			d.enc.ResetInto(d.cur.flat)
		}
	}
	b := d.cur
	if d.copyEvents {
		// CopyTo overwrites the whole slot: no need to zero it first.
		if n := len(b.events); n < cap(b.events) {
			b.events = b.events[:n+1]
		} else {
			b.events = append(b.events, event.Event{})
		}
		b.arena = ev.CopyTo(&b.events[len(b.events)-1], b.arena)
	}
	if d.enc != nil {
		d.enc.Add(ev)
	}
	b.n++
	b.perKind[ev.Kind]++
	if b.n >= d.opts.BatchSize {
		d.Flush()
	}
}

// anyWants reports whether some detector's filter lets ev through, when
// all the detectors of its kind have one.
func (d *Dispatcher) anyWants(ev *event.Event) bool {
	fs := d.prefilter[ev.Kind]
	if fs == nil {
		return true
	}
	for i := range fs {
		if fs[i].Wants(ev) {
			return true
		}
	}
	return false
}

// Flush sends the current batch, full or not: the reader calls it when the
// ring is dry and at least every flush interval, which bounds latency.
func (d *Dispatcher) Flush() {
	b := d.cur
	if b == nil {
		return
	}
	d.cur = nil
	if d.enc != nil {
		// The encoder's buffer: b.flat's, or a larger one it moved to.
		b.flat = d.enc.Bytes()
	}
	if b.n <= d.opts.BatchSize/2 && d.backlog() {
		b = d.compact(b)
	}
	size := b.size()
	b.refs.Store(1) // held while queueing, so no lane can recycle it early
	for _, l := range d.lanes {
		n := l.count(b)
		if n == 0 {
			continue
		}
		b.refs.Add(1)
		d.outstanding.Add(1)
		if d.opts.Block {
			for !l.fits(n, size) {
				<-l.space
			}
			l.waitEvents.Add(int64(n))
			l.waitBytes.Add(size)
			l.queue <- b
			l.queued.Add(n)
			continue
		}
		if l.fits(n, size) {
			// Counted before it is sent: run takes it off as it receives.
			l.waitEvents.Add(int64(n))
			l.waitBytes.Add(size)
			select {
			case l.queue <- b:
				l.queued.Add(n)
				continue
			default:
				l.waitEvents.Add(-int64(n))
				l.waitBytes.Add(-size)
			}
		}
		l.shed.Add(n)
		b.refs.Add(-1)
		d.outstanding.Done()
	}
	d.release(b)
}

// fits reports whether a batch of n wanted events pinning size bytes fits
// the lane's budget. An empty queue takes any batch.
func (l *lane) fits(n uint64, size int64) bool {
	e, by := l.waitEvents.Load(), l.waitBytes.Load()
	return e <= 0 || (e+int64(n) <= int64(l.d.opts.QueueEvents) && by+size <= l.d.opts.QueueBytes)
}

// backlog reports whether some detector has batches waiting: then a
// small batch will wait too, and is worth compacting.
func (d *Dispatcher) backlog() bool {
	for _, l := range d.lanes {
		if l.waitEvents.Load() > 0 {
			return true
		}
	}
	return false
}

// compact moves the events of a batch at most half full into a batch of
// the next power of two in size, and recycles the full-size one at once:
// at low rates a flush carries a few events, and a queue of them must not
// pin a full batch's memory each. It costs a copy (about 30 ns an event),
// so it is done only when some queue has a backlog: a batch that a
// detector takes at once pins nothing for long, and the byte budget counts
// every batch at its full size anyway.
func (d *Dispatcher) compact(b *batch) *batch {
	n := b.n
	if n == 0 {
		return b
	}
	i := bits.Len(uint(n - 1)) // 1<<i >= n
	if i >= len(d.small) {
		return b
	}
	s := d.small[i].Get().(*batch)
	if d.copyEvents {
		s.events = s.events[:n]
		for j := range b.events {
			s.arena = b.events[j].CopyTo(&s.events[j], s.arena)
		}
	}
	s.flat = append(s.flat[:0], b.flat...) // fresh allocations: 8-aligned
	s.n, s.perKind = n, b.perKind
	b.refs.Store(1)
	d.release(b)
	return s
}

func (d *Dispatcher) release(b *batch) {
	if b.refs.Add(-1) == 0 {
		// Drop the process pointers for the GC. The strings point into the
		// batch's own arena, and the next CopyTo overwrites every slot, so
		// clearing the whole 544-byte events (19 ns an event) buys nothing.
		for i := range b.events {
			b.events[i].Process = nil
		}
		b.events, b.arena, b.perKind = b.events[:0], b.arena[:0], [event.KindCount]uint32{}
		b.n, b.flat = 0, b.flat[:0]
		b.pool.Put(b)
	}
}

// Drain sends what is left and waits until every detector has answered
// for every batch queued so far. Call it from the goroutine that calls Add.
func (d *Dispatcher) Drain() {
	d.Flush()
	d.outstanding.Wait()
}

// Close sends what is left, lets every detector finish its queue, and
// closes the backends. A detector that has not finished within
// DrainTimeout (or before ctx ends) — a hung in-process detector, or one
// too slow to finish its queue in time — is abandoned so the monitor can
// still stop: the events it had queued or in flight are counted as
// abandoned, its backend's counts stay as they were then, it is not
// closed, and the error names it. When Close returns,
// every event each detector's queue took has its outcome counted.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.Flush()
	for _, l := range d.lanes {
		close(l.queue)
	}
	drain := ctx
	if d.opts.DrainTimeout > 0 {
		var cancel context.CancelFunc
		drain, cancel = context.WithTimeout(ctx, d.opts.DrainTimeout)
		defer cancel()
	}
	var errs []error
	finished := make([]*lane, 0, len(d.lanes))
	for _, l := range d.lanes {
		select {
		case <-l.finished:
		case <-drain.Done():
		}
		select {
		case <-l.finished:
			finished = append(finished, l)
		default:
			inflight, queued := l.abandon()
			errs = append(errs, fmt.Errorf("detector %s did not finish in time and was abandoned: %d events abandoned (%d in flight, %d queued)",
				l.det.Name, inflight+queued, inflight, queued))
		}
	}
	// The detectors that finished are closed with time of their own: a
	// drain that ran out on a slow detector must not cut the others short.
	closing, cancel := context.WithTimeout(context.WithoutCancel(ctx), CloseTimeout)
	defer cancel()
	for _, l := range finished {
		if err := l.det.Run.Close(closing); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// CloseTimeout bounds closing the detectors that finished their queues,
// all together, after the drain.
const CloseTimeout = 5 * time.Second

// abandon gives up on a closed lane: what it has in flight and what is
// left on its queue are counted as abandoned, and its backend's counts are
// kept as they are now. Its goroutine may still be running; whatever it
// takes or answers from now on is counted here, once.
func (l *lane) abandon() (inflight, queued uint64) {
	l.mu.Lock()
	l.gone = true
	inflight, l.pending = l.pending, 0
	before := l.abandoned.Add(inflight)
	st := l.det.Run.Stats()
	l.frozen.Store(&st)
	l.mu.Unlock()
	for b := range l.queue {
		l.take(b)
	}
	// The lane's goroutine may have taken some of the queue too (its
	// backend made room): every batch taken since is counted abandoned,
	// whoever took it.
	return inflight, l.abandoned.Load() - before
}

// take takes a batch off the queue. It returns how many of its events the
// lane wants when the lane was abandoned (they are counted as abandoned
// and the batch is released), zero otherwise: they are now pending.
func (l *lane) take(b *batch) (abandoned uint64) {
	n := l.count(b)
	l.waitEvents.Add(-int64(n))
	l.waitBytes.Add(-b.size())
	if l.d.opts.Block {
		select {
		case l.space <- struct{}{}:
		default:
		}
	}
	l.mu.Lock()
	gone := l.gone
	if gone {
		l.abandoned.Add(n)
	} else {
		l.pending += n
	}
	l.mu.Unlock()
	if gone {
		l.d.outstanding.Done()
		l.d.release(b)
		return n
	}
	return 0
}

// settle gives n pending events their outcome, counted in c. It reports
// false when the lane was abandoned meanwhile: they are counted already.
func (l *lane) settle(n uint64, c *atomic.Uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gone {
		return false
	}
	l.pending -= n
	c.Add(n)
	return true
}

// Stats returns every detector's counts.
func (d *Dispatcher) Stats() []LaneStats {
	out := make([]LaneStats, 0, len(d.lanes))
	for _, l := range d.lanes {
		var b backends.Stats
		if f := l.frozen.Load(); f != nil {
			b = *f
		} else {
			b = l.det.Run.Stats()
		}
		out = append(out, LaneStats{Name: l.det.Name, Backend: l.det.Backend, Protections: l.det.Protections, Queued: l.queued.Load(),
			Filtered: l.filtered.Load(), Delivered: l.delivered.Load(), Shed: l.shed.Load(), Unavailable: l.unavail.Load(),
			Failed: l.failed.Load(), Abandoned: l.abandoned.Load(), Backends: b, Latency: l.latency.snapshot()})
	}
	return out
}

// count is how many of b's events the lane wants, by kind.
func (l *lane) count(b *batch) uint64 {
	var n uint64
	for _, k := range l.kindList {
		n += uint64(b.perKind[k])
	}
	return n
}

func (l *lane) run(ctx context.Context) {
	defer close(l.finished)
	// Not deferred: if a detector panics in-process, the panic must take the
	// monitor down (that is the inproc contract), not wait here forever.
	var inflight sync.WaitGroup
	var sel []*event.Event
	for b := range l.queue {
		if l.take(b) > 0 {
			continue
		}
		if l.flat != nil {
			// The batch as the dispatcher encoded it: every event in it
			// is one the detector wants.
			l.flat.SubmitFlat(ctx, b.flat, b.n, l.answer(b.n, &inflight))
			l.d.release(b)
			continue
		}
		sel = sel[:0]
		for i := range b.events {
			ev := &b.events[i]
			if l.kinds.Has(ev.Kind) && l.match.Wants(ev) {
				sel = append(sel, ev)
			}
		}
		if n := l.count(b) - uint64(len(sel)); n > 0 {
			l.settle(n, &l.filtered)
		}
		if len(sel) > 0 {
			l.det.Run.Submit(ctx, sel, l.answer(len(sel), &inflight))
		} else {
			l.d.outstanding.Done()
		}
		// The backend is done with the events once Submit returns: the
		// batch goes back to the pool while it is still in the cache.
		clear(sel)
		l.d.release(b)
	}
	inflight.Wait()
}

// answer is the Done of a batch of n events submitted now: its latency
// observed, its outcome taken (finish), inflight told.
func (l *lane) answer(n int, inflight *sync.WaitGroup) backends.Done {
	inflight.Add(1)
	submitted := time.Now()
	return func(found []detection.Finding, err error) {
		defer inflight.Done()
		l.latency.observe(time.Since(submitted))
		l.finish(n, found, err)
	}
}

// finish takes a batch's outcome: its events counted, findings out (with
// their own copies of the events). An answer that comes after the lane was
// abandoned is dropped: its events are counted as abandoned already.
func (l *lane) finish(n int, found []detection.Finding, err error) {
	defer l.d.outstanding.Done()
	c := &l.delivered
	switch {
	case errors.Is(err, backends.ErrUnavailable):
		c = &l.unavail
	case err != nil:
		c = &l.failed
	}
	if !l.settle(uint64(n), c) {
		return
	}
	if err != nil && c == &l.failed && l.failLog.Allow(time.Second) {
		l.d.log.Warn("delivery failed", zap.String("detector", l.det.Name), zap.Error(err))
	}
	for _, f := range found {
		f.Detector = l.det.Name
		for i, ev := range f.Events {
			f.Events[i] = ev.Clone()
		}
		l.out(f)
	}
}
