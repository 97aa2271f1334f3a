package dispatch

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/wire"
	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"go.uber.org/zap/zaptest"
)

// flatFake is a fake that also takes flat batches (a plugin's backend), and
// counts how each batch came.
type flatFake struct {
	fake
	flatMu       sync.Mutex
	flats, lists int
}

func (f *flatFake) Submit(ctx context.Context, evs []*event.Event, done backends.Done) {
	f.flatMu.Lock()
	f.lists++
	f.flatMu.Unlock()
	f.fake.Submit(ctx, evs, done)
}

func (f *flatFake) SubmitFlat(ctx context.Context, batch []byte, count int, done backends.Done) {
	f.flatMu.Lock()
	f.flats++
	f.flatMu.Unlock()
	if f.gate != nil {
		<-f.gate
	}
	evs, err := wire.DecodeFlat(batch) // views batch: valid during the call only
	if err != nil || len(evs) != count {
		done(nil, err)
		return
	}
	f.mu.Lock()
	for i := range evs {
		f.seen = append(f.seen, strings.Clone(evs[i].Open.Resolved))
	}
	f.mu.Unlock()
	done([]detection.Finding{detection.NewFinding(&evs[0], "first", detection.SeverityLow, "")}, nil)
}

// A detector that takes flat batches gets each batch as encoded once when
// it wants every event of every batch (no filter, every kind some detector
// wants); one with a filter, or fewer kinds, gets the events it wants as
// an in-process one does. With or without a detector that takes events
// beside it; findings carry copies.
func TestFlatBatches(t *testing.T) {
	for _, c := range []string{"alone", "with others"} {
		all := &flatFake{fake: fake{def: detection.Definition{Name: "all", Kinds: []event.Kind{event.KindOpen, event.KindExec}}}}
		opensOnly := &flatFake{fake: fake{def: detection.Definition{Name: "opens", Kinds: []event.Kind{event.KindOpen}}}}
		etc := &flatFake{fake: fake{def: detection.Definition{Name: "etc", Kinds: []event.Kind{event.KindOpen, event.KindExec},
			Filter: detection.Filter{PathPrefixes: []string{"/etc/"}}}}}
		plain := &fake{def: detection.Definition{Name: "plain", Kinds: []event.Kind{event.KindOpen}}}
		dets := []Detector{{Name: "all", Run: all}}
		if c != "alone" {
			dets = append(dets, Detector{Name: "opens", Run: opensOnly}, Detector{Name: "etc", Run: etc}, Detector{Name: "plain", Run: plain})
		}
		var mu sync.Mutex
		var found []detection.Finding
		d := New(context.Background(), Options{BatchSize: 4, QueueBatches: 8, Block: true}, dets,
			func(f detection.Finding) { mu.Lock(); found = append(found, f); mu.Unlock() }, zaptest.NewLogger(t))
		// Batches of 4: two of opens only, then one with an exec.
		evs := append(opens(4, "/etc/"), opens(4, "/usr/")...)
		evs = append(evs, opens(3, "/etc/x")...)
		evs = append(evs, &event.Event{Header: event.Header{Kind: event.KindExec, Comm: "sh"}})
		for _, ev := range evs {
			d.Add(ev)
		}
		d.Drain()
		for _, ev := range opens(8, "/reuse/") { // recycles the batches the findings came from
			d.Add(ev)
		}
		if err := d.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if all.count() != 20 || all.flats != 5 || all.lists != 0 {
			t.Errorf("%s: unfiltered detector got %d events in %d flat batches and %d lists, want 20, 5, 0", c, all.count(), all.flats, all.lists)
		}
		if c != "alone" {
			if opensOnly.count() != 19 || opensOnly.flats != 0 || opensOnly.lists != 5 {
				t.Errorf("opens-only detector got %d events in %d flat batches and %d lists, want 19, 0, 5", opensOnly.count(), opensOnly.flats, opensOnly.lists)
			}
			if etc.count() != 7 || etc.flats != 0 || !strings.HasPrefix(etc.seen[0], "/etc/") || !strings.HasPrefix(etc.seen[6], "/etc/x") {
				t.Errorf("filtered detector got %v in %d flat batches, want the 7 opens under /etc/ as lists (the exec has no binary under it)", etc.seen, etc.flats)
			}
			if plain.count() != 19 {
				t.Errorf("the detector taking events got %d, want 19", plain.count())
			}
		}
		for _, s := range d.Stats() {
			if s.Settled() != s.Queued || s.Dropped() != 0 || s.Delivered+s.Filtered != s.Queued {
				t.Errorf("%s: %s: %+v", c, s.Name, s)
			}
		}
		mu.Lock()
		for _, f := range found {
			if r := f.Events[0].Open.Resolved; f.Events[0].Kind == event.KindOpen && !strings.HasPrefix(r, "/etc/") && !strings.HasPrefix(r, "/usr/") && !strings.HasPrefix(r, "/reuse/") {
				t.Errorf("%s: finding of %s on %q: its event was not copied", c, f.Detector, r)
			}
		}
		mu.Unlock()
	}
}

// A flushed batch at most half full, behind a backlog, is compacted with
// its flat bytes: the detector still gets every event, once.
func TestFlatBatchesCompacted(t *testing.T) {
	slow := &flatFake{fake: fake{def: detection.Definition{Name: "slow", Kinds: []event.Kind{event.KindOpen}}, gate: make(chan struct{})}}
	d := New(context.Background(), Options{BatchSize: 64, QueueBatches: 64}, []Detector{{Name: "slow", Run: slow}},
		func(detection.Finding) {}, zaptest.NewLogger(t))
	n := 0
	for i := range 20 {
		for _, ev := range opens(i%5+1, "/c/") {
			d.Add(ev)
			n++
		}
		d.Flush()
	}
	close(slow.gate)
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if slow.count() != n || slow.lists != 0 {
		t.Fatalf("got %d events (%d as lists), want %d as flat batches", slow.count(), slow.lists, n)
	}
	for i, r := range slow.seen {
		if !strings.HasPrefix(r, "/c/") {
			t.Fatalf("event %d: %q", i, r)
		}
	}
}
