// Package dispatch hands events to detectors. Events are copied once into
// shared batches (their strings into the batch's own arena); each detector
// has its own bounded queue of batches and its own goroutine, so a slow,
// hung or dead detector never stalls capture or the other detectors. When a
// detector's queue is full the batch is shed for that detector and every
// event in it that the detector wanted is counted.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
	"go.uber.org/zap"
)

// Options size the batches and queues.
type Options struct {
	BatchSize    int // events per batch
	QueueBatches int // batches a detector's queue holds before shedding
	// Block waits for queue space instead of shedding: for replaying a
	// recording and for benchmarks, never for live capture.
	Block bool
	// DrainTimeout bounds how long Close waits for the detectors to finish
	// their queues; a detector still busy then is abandoned and what it had
	// queued is counted as shed. Zero waits as long as the caller's context.
	DrainTimeout time.Duration
}

// DefaultOptions suit a host.
func DefaultOptions() Options {
	return Options{BatchSize: 256, QueueBatches: 64, DrainTimeout: 5 * time.Second}
}

// Detector is one configured detector.
type Detector struct {
	Name    string // as configured (defaults to the definition's name)
	Backend string // "inproc", "goplugin", …: for reports
	Run     backends.Backend
	// Protections say what isolates the detector (its enclave): for reports.
	Protections []string
}

// FindingFunc receives findings, from every detector's goroutine at once.
// The finding's events are the finding's own copies.
type FindingFunc func(f detect.Finding)

// LaneStats are one detector's counts.
type LaneStats struct {
	Name        string
	Backend     string
	Protections []string
	Queued      uint64 // events put on its queue
	Filtered    uint64 // queued events its filter turned away (neither delivered nor lost)
	Shed        uint64 // events dropped because its queue was full
	Unavailable uint64 // events dropped because it was unavailable (breaker open)
	Failed      uint64 // events whose delivery failed otherwise
	Backends    backends.Stats
	// Latency is how long the detector took to answer each batch.
	Latency Latency
}

// Plus adds o's counts to s (the current state, breaker and pid, stays s's):
// for a detector that was replaced by a reload.
func (s LaneStats) Plus(o LaneStats) LaneStats {
	s.Queued += o.Queued
	s.Filtered += o.Filtered
	s.Shed += o.Shed
	s.Unavailable += o.Unavailable
	s.Failed += o.Failed
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
	s.Latency = s.Latency.plus(o.Latency)
	return s
}

// Dropped is every event the detector wanted and did not get.
func (s LaneStats) Dropped() uint64 { return s.Shed + s.Unavailable + s.Failed }

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
	prefilter   [event.KindCount][]detect.Filter
	cur         *batch
	pool        sync.Pool
	outstanding sync.WaitGroup // batches on a lane, not yet answered
}

type lane struct {
	d        *Dispatcher
	det      Detector
	def      detect.Definition
	kinds    event.KindSet
	kindList []event.Kind // the same, to sum a batch's counts by
	queue    chan *batch
	finished chan struct{} // closed when run returns
	out      FindingFunc
	failLog  backends.Every
	queued   atomic.Uint64
	filtered atomic.Uint64
	shed     atomic.Uint64
	unavail  atomic.Uint64
	failed   atomic.Uint64
	latency  latency
}

// batch is shared by every lane that wants some of its events; the last to
// release it returns it to the pool.
type batch struct {
	events  []event.Event
	arena   []byte
	perKind [event.KindCount]uint32 // events of each kind in the batch
	refs    atomic.Int32
}

// New starts one goroutine per detector.
func New(ctx context.Context, opts Options, detectors []Detector, out FindingFunc, log *zap.Logger) *Dispatcher {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1
	}
	if opts.QueueBatches <= 0 {
		opts.QueueBatches = 1
	}
	d := &Dispatcher{opts: opts, log: log}
	d.pool.New = func() any {
		return &batch{events: make([]event.Event, 0, opts.BatchSize), arena: make([]byte, 0, 64<<10)}
	}
	for _, det := range detectors {
		def := det.Run.Definition()
		l := &lane{d: d, det: det, def: def, kinds: def.KindSet(), kindList: def.KindSet().Kinds(), queue: make(chan *batch, opts.QueueBatches),
			finished: make(chan struct{}), out: out}
		d.lanes = append(d.lanes, l)
		d.wanted |= l.kinds
	}
	for _, k := range d.wanted.Kinds() {
		var fs []detect.Filter
		for _, l := range d.lanes {
			if !l.kinds.Has(k) {
				continue
			}
			if l.def.Filter.Empty() {
				fs = nil
				break
			}
			fs = append(fs, l.def.Filter)
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

// Add copies ev into the current batch, sending the batch when it is full.
func (d *Dispatcher) Add(ev *event.Event) {
	if !d.wanted.Has(ev.Kind) || !d.anyWants(ev) {
		return
	}
	if d.cur == nil {
		d.cur = d.pool.Get().(*batch)
	}
	b := d.cur
	// CopyTo overwrites the whole slot: no need to zero it first.
	if n := len(b.events); n < cap(b.events) {
		b.events = b.events[:n+1]
	} else {
		b.events = append(b.events, event.Event{})
	}
	b.arena = ev.CopyTo(&b.events[len(b.events)-1], b.arena)
	b.perKind[ev.Kind]++
	if len(b.events) >= d.opts.BatchSize {
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
	b.refs.Store(1) // held while queueing, so no lane can recycle it early
	for _, l := range d.lanes {
		n := l.count(b)
		if n == 0 {
			continue
		}
		b.refs.Add(1)
		d.outstanding.Add(1)
		if d.opts.Block {
			l.queue <- b
			l.queued.Add(n)
			continue
		}
		select {
		case l.queue <- b:
			l.queued.Add(n)
		default:
			l.shed.Add(n)
			b.refs.Add(-1)
			d.outstanding.Done()
		}
	}
	d.release(b)
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
		d.pool.Put(b)
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
// DrainTimeout (or before ctx ends) — a hung in-process detector — is
// abandoned so the monitor can still stop: its queued events are counted as
// shed, it is not closed, and the error names it.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.Flush()
	for _, l := range d.lanes {
		close(l.queue)
	}
	if d.opts.DrainTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.opts.DrainTimeout)
		defer cancel()
	}
	var errs []error
	for _, l := range d.lanes {
		select {
		case <-l.finished:
		case <-ctx.Done():
		}
		select {
		case <-l.finished:
			if err := l.det.Run.Close(ctx); err != nil {
				errs = append(errs, err)
			}
		default:
			n := l.abandon()
			errs = append(errs, fmt.Errorf("detector %s did not finish in time and was abandoned: %d queued events shed, plus the batch it is stuck on", l.det.Name, n))
		}
	}
	return errors.Join(errs...)
}

// abandon sheds what is left on a closed lane's queue.
func (l *lane) abandon() uint64 {
	var n uint64
	for b := range l.queue {
		c := l.count(b)
		n += c
		l.shed.Add(c)
		l.d.outstanding.Done()
		l.d.release(b)
	}
	return n
}

// Stats returns every detector's counts.
func (d *Dispatcher) Stats() []LaneStats {
	out := make([]LaneStats, 0, len(d.lanes))
	for _, l := range d.lanes {
		out = append(out, LaneStats{Name: l.det.Name, Backend: l.det.Backend, Protections: l.det.Protections, Queued: l.queued.Load(), Filtered: l.filtered.Load(), Shed: l.shed.Load(),
			Unavailable: l.unavail.Load(), Failed: l.failed.Load(), Backends: l.det.Run.Stats(), Latency: l.latency.snapshot()})
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
		sel = sel[:0]
		for i := range b.events {
			ev := &b.events[i]
			if l.kinds.Has(ev.Kind) && l.def.Filter.Wants(ev) {
				sel = append(sel, ev)
			}
		}
		if n := l.count(b) - uint64(len(sel)); n > 0 {
			l.filtered.Add(n)
		}
		if len(sel) > 0 {
			n := len(sel)
			inflight.Add(1)
			submitted := time.Now()
			l.det.Run.Submit(ctx, sel, func(found []detect.Finding, err error) {
				defer inflight.Done()
				l.latency.observe(time.Since(submitted))
				l.finish(n, found, err)
			})
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

// finish takes a batch's outcome: findings out (with their own copies of
// the events), failures counted.
func (l *lane) finish(n int, found []detect.Finding, err error) {
	switch {
	case errors.Is(err, backends.ErrUnavailable):
		l.unavail.Add(uint64(n))
	case err != nil:
		l.failed.Add(uint64(n))
		if l.failLog.Allow(time.Second) {
			l.d.log.Warn("delivery failed", zap.String("detector", l.det.Name), zap.Error(err))
		}
	}
	for _, f := range found {
		f.Detector = l.det.Name
		for i, ev := range f.Events {
			f.Events[i] = ev.Clone()
		}
		l.out(f)
	}
	l.d.outstanding.Done()
}
