package dispatch

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"go.uber.org/zap/zaptest"
)

// waitTaken waits until the lane has taken everything off its queue (a
// stuck detector: the first batch, then it blocks in Submit).
func waitTaken(t *testing.T, l *lane) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); l.waitEvents.Load() != 0; {
		if time.Now().After(deadline) {
			t.Fatal("the detector never took its first batch")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// A queue is sized in events and bytes, not batches: a detector that does
// not answer keeps taking small batches (a quiet host's flushes) until its
// event or byte budget, or an explicit batch limit, is reached; only then
// is anything shed, and every event is either queued or shed. An empty
// queue takes any batch, however large.
func TestQueueBudgets(t *testing.T) {
	small := eventSize + 256 // a one-event batch after compaction: one slot, its arena
	full := 256*eventSize + 64<<10
	for _, c := range []struct {
		name         string
		opts         Options
		batches, per int    // after the first (in flight): batches of per events
		queued, shed uint64 // of those
	}{
		// With a queue of 64 batches, 935 of these were shed.
		{"defaults hold many small flushes", Options{BatchSize: 256}, 1000, 1, 1000, 0},
		{"event budget", Options{BatchSize: 256, QueueEvents: 100}, 500, 1, 100, 400},
		{"event budget, bigger batches", Options{BatchSize: 256, QueueEvents: 100}, 50, 3, 99, 51},
		// The first batch behind the one in flight finds the queue empty:
		// not compacted, it counts at its full size.
		{"byte budget", Options{BatchSize: 256, QueueBytes: full + 10*small}, 50, 1, 11, 39},
		{"batch limit", Options{BatchSize: 256, QueueBatches: 4}, 50, 1, 4, 46},
		{"an empty queue takes a batch over budget", Options{BatchSize: 8, QueueEvents: 2}, 2, 8, 8, 8},
	} {
		t.Run(c.name, func(t *testing.T) {
			stuck := &fake{def: detection.Definition{Name: "stuck", Kinds: []event.Kind{event.KindOpen}}, gate: make(chan struct{})}
			d := New(context.Background(), c.opts, []Detector{{Name: "stuck", Run: stuck}}, func(detection.Finding) {}, zaptest.NewLogger(t))
			d.Add(opens(1, "/first/")[0])
			d.Flush()
			waitTaken(t, d.lanes[0])
			for i := range c.batches {
				for _, ev := range opens(c.per, fmt.Sprintf("/b%d/", i)) {
					d.Add(ev)
				}
				d.Flush()
			}
			s := d.Stats()[0]
			if s.Queued != 1+c.queued || s.Shed != c.shed {
				t.Errorf("queued %d, shed %d; want %d (one in flight) and %d", s.Queued, s.Shed, 1+c.queued, c.shed)
			}
			close(stuck.gate)
			if err := d.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			s = d.Stats()[0]
			if s.Delivered != s.Queued || s.Settled() != s.Queued || uint64(stuck.count()) != s.Queued {
				t.Errorf("after Close: %d queued, %d delivered, %d settled, %d received", s.Queued, s.Delivered, s.Settled(), stuck.count())
			}
		})
	}
}

// A batch flushed at most half full is moved into a batch of its own size:
// a queue of a quiet host's flushes pins about what its events take, not a
// full batch each, and the events arrive intact.
func TestSmallBatchesAreCompacted(t *testing.T) {
	stuck := &fake{def: detection.Definition{Name: "stuck", Kinds: []event.Kind{event.KindOpen}}, gate: make(chan struct{})}
	found := make(chan detection.Finding, 1024)
	d := New(context.Background(), Options{BatchSize: 256}, []Detector{{Name: "stuck", Run: stuck}}, func(f detection.Finding) { found <- f }, zaptest.NewLogger(t))
	d.Add(opens(1, "/first/")[0])
	d.Flush()
	waitTaken(t, d.lanes[0])
	const flushes = 1000
	var want []string
	for i := range flushes {
		for _, ev := range opens(1+i%5, fmt.Sprintf("/%d/", i)) { // 1 to 5 events
			want = append(want, ev.Open.Resolved)
			d.Add(ev)
		}
		d.Flush()
	}
	l := d.lanes[0]
	events, bytes := l.waitEvents.Load(), l.waitBytes.Load()
	full := int64(256)*eventSize + 64<<10
	// At most twice the slots, and a 256-byte arena per slot; the first
	// batch found the queue empty and is not compacted.
	if perEvent := (bytes - full) / events; perEvent > 2*(eventSize+256) {
		t.Errorf("%d queued events pin %d bytes: %d per event (a full batch pins %d)", events, bytes, perEvent, full)
	}
	t.Logf("%d queued events in %d flushes pin %d KiB (%d B per event); as full-size batches: %d MiB",
		events, flushes, bytes>>10, bytes/events, flushes*full>>20)
	close(stuck.gate)
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if stuck.count() != 1+len(want) {
		t.Fatalf("received %d events, want %d", stuck.count(), 1+len(want))
	}
	for i, p := range want {
		if stuck.seen[1+i] != p {
			t.Fatalf("event %d: %q, want %q", i, stuck.seen[1+i], p)
		}
	}
	if n := len(found); n != 1+flushes {
		t.Errorf("%d findings, want one per batch (%d)", n, 1+flushes)
	}
	for range 1 + flushes {
		if f := <-found; len(f.Events) != 1 || f.Events[0].Open.Resolved == "" {
			t.Fatalf("finding %+v", f)
		}
	}
}

// With Block the producer waits for the budget instead of shedding.
func TestBlockWaitsForTheBudget(t *testing.T) {
	gated := &fake{def: detection.Definition{Name: "gated", Kinds: []event.Kind{event.KindOpen}}, gate: make(chan struct{})}
	d := New(context.Background(), Options{BatchSize: 4, QueueEvents: 8, Block: true}, []Detector{{Name: "gated", Run: gated}},
		func(detection.Finding) {}, zaptest.NewLogger(t))
	added := make(chan struct{})
	go func() {
		defer close(added)
		for _, ev := range opens(400, "/x/") {
			d.Add(ev)
		}
		d.Flush()
	}()
	time.Sleep(50 * time.Millisecond)
	select {
	case <-added:
		t.Fatal("Add did not wait for a detector that does not answer")
	default:
	}
	if e := d.lanes[0].waitEvents.Load(); e > 8 {
		t.Errorf("%d events waiting, budget 8", e)
	}
	close(gated.gate)
	<-added
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := d.Stats()[0]; s.Queued != 400 || s.Shed != 0 || s.Delivered != 400 || gated.count() != 400 {
		t.Errorf("queued %d, shed %d, delivered %d, received %d; want 400, 0, 400, 400", s.Queued, s.Shed, s.Delivered, gated.count())
	}
}
