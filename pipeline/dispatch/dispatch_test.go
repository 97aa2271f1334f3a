package dispatch

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/test/testenv"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.Cleanup()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines leaked:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// fake answers every batch with a finding on its first event, after
// waiting for gate (when set).
type fake struct {
	def  detection.Definition
	gate chan struct{}
	mu   sync.Mutex
	seen []string // Open.Resolved of every event received, copied
	// closeCtxErr is the context's error when Close was called.
	closeCtxErr error
	closed      bool
}

func (f *fake) Definition() detection.Definition { return f.def }
func (f *fake) Stats() backends.Stats            { return backends.Stats{} }
func (f *fake) Close(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed, f.closeCtxErr = true, ctx.Err()
	return nil
}
func (f *fake) Submit(_ context.Context, evs []*event.Event, done backends.Done) {
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	for _, ev := range evs {
		f.seen = append(f.seen, strings.Clone(ev.Open.Resolved)) // ev is only valid during Submit
	}
	f.mu.Unlock()
	done([]detection.Finding{detection.NewFinding(evs[0], "first", detection.SeverityLow, "")}, nil)
}

func (f *fake) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seen)
}

func opens(n int, prefix string) []*event.Event {
	out := make([]*event.Event, n)
	for i := range out {
		out[i] = &event.Event{Header: event.Header{Kind: event.KindOpen, Comm: "cat"}}
		out[i].Open.Resolved = prefix + string(rune('a'+i%26))
	}
	return out
}

// A detector that does not answer fills its own queue and sheds; Add never
// blocks and the other detector gets every event. Every shed event is
// counted against the stuck detector.
func TestStuckDetectorShedsAloneAndCounts(t *testing.T) {
	stuck := &fake{def: detection.Definition{Name: "stuck", Kinds: []event.Kind{event.KindOpen}}, gate: make(chan struct{})}
	fine := &fake{def: detection.Definition{Name: "fine", Kinds: []event.Kind{event.KindOpen}}}
	var mu sync.Mutex
	findings := map[string]int{}
	d := New(context.Background(), Options{BatchSize: 4, QueueBatches: 2},
		[]Detector{{Name: "stuck", Run: stuck}, {Name: "fine", Run: fine}},
		func(f detection.Finding) { mu.Lock(); findings[f.Detector]++; mu.Unlock() }, zaptest.NewLogger(t))

	// A batch at a time, each handed on before the next: a healthy detector
	// keeps up, and the stuck one must not hold the producer back.
	added := make(chan struct{})
	go func() {
		defer close(added)
		for i, ev := range opens(400, "/x/") {
			d.Add(ev)
			if (i+1)%4 == 0 {
				for deadline := time.Now().Add(5 * time.Second); fine.count() < i+1 && time.Now().Before(deadline); {
					time.Sleep(100 * time.Microsecond)
				}
			}
		}
	}()
	select {
	case <-added:
	case <-time.After(20 * time.Second):
		t.Fatal("Add blocked behind a stuck detector")
	}
	close(stuck.gate)
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := map[string]LaneStats{}
	for _, s := range d.Stats() {
		st[s.Name] = s
	}
	if len(fine.seen) != 400 || st["fine"].Dropped() != 0 || findings["fine"] != 100 {
		t.Errorf("the other detector: %d events, %d dropped, %d findings; want 400, 0, 100", len(fine.seen), st["fine"].Dropped(), findings["fine"])
	}
	s := st["stuck"]
	if s.Shed == 0 || s.Queued+s.Shed != 400 || uint64(len(stuck.seen)) != s.Queued {
		t.Errorf("stuck: queued %d + shed %d (want 400 with some shed), received %d", s.Queued, s.Shed, len(stuck.seen))
	}
}

// Detectors get only the kinds and the filter they declared; findings
// carry copies of their events, valid after the batch is reused.
func TestSelectionAndFindingCopies(t *testing.T) {
	only := &fake{def: detection.Definition{Name: "etc", Kinds: []event.Kind{event.KindOpen},
		Filter: detection.Filter{PathPrefixes: []string{"/etc/"}, ExcludeComms: []string{"sshd"}}}}
	var got []detection.Finding
	d := New(context.Background(), Options{BatchSize: 8, QueueBatches: 8, Block: true}, []Detector{{Name: "etc", Run: only}},
		func(f detection.Finding) { got = append(got, f) }, zaptest.NewLogger(t))
	evs := append(opens(3, "/etc/"), opens(3, "/tmp/")...)
	evs[1].Comm = "sshd"
	exec := &event.Event{Header: event.Header{Kind: event.KindExec}}
	for _, ev := range append(evs, exec) {
		d.Add(ev)
	}
	d.Drain()
	for _, ev := range opens(16, "/etc/reuse-") { // recycles the batch the finding came from
		d.Add(ev)
	}
	d.Close(context.Background())
	if want := []string{"/etc/a", "/etc/c"}; len(only.seen) < 2 || only.seen[0] != want[0] || only.seen[1] != want[1] {
		t.Fatalf("first batch delivered %v, want %v", only.seen, want)
	}
	if len(got) == 0 || got[0].Events[0].Open.Resolved != "/etc/a" || got[0].Detector != "etc" {
		t.Fatalf("first finding %+v", got)
	}
}

// A detector that never finishes (a hung in-process one) cannot keep Close
// from returning: after DrainTimeout it is abandoned, named in the error,
// and what it still had queued or in flight is counted as abandoned. The
// other detector is closed normally.
func TestCloseAbandonsHungDetector(t *testing.T) {
	hung := &fake{def: detection.Definition{Name: "hung", Kinds: []event.Kind{event.KindOpen}}, gate: make(chan struct{})}
	defer close(hung.gate) // let its goroutine end, for the leak check
	fine := &fake{def: detection.Definition{Name: "fine", Kinds: []event.Kind{event.KindOpen}}}
	d := New(context.Background(), Options{BatchSize: 4, QueueBatches: 8, DrainTimeout: 200 * time.Millisecond},
		[]Detector{{Name: "hung", Run: hung}, {Name: "fine", Run: fine}}, func(detection.Finding) {}, zaptest.NewLogger(t))
	for _, ev := range opens(20, "/x/") {
		d.Add(ev)
	}
	start := time.Now()
	err := d.Close(context.Background())
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Close took %s", took)
	}
	if err == nil || !strings.Contains(err.Error(), "detector hung did not finish in time") {
		t.Fatalf("Close: %v", err)
	}
	st := map[string]LaneStats{}
	for _, s := range d.Stats() {
		st[s.Name] = s
	}
	// 5 batches queued: one is stuck in Submit, four still queued at Close.
	if !strings.Contains(err.Error(), "20 events abandoned (4 in flight, 16 queued)") {
		t.Errorf("Close: %v", err)
	}
	if h := st["hung"]; h.Queued != 20 || h.Abandoned != 20 || h.Shed != 0 || h.Settled() != h.Queued || fine.count() != 20 {
		t.Fatalf("hung: queued %d, abandoned %d, shed %d, settled %d (want 20, 20, 0, 20); fine got %d (want 20)",
			h.Queued, h.Abandoned, h.Shed, h.Settled(), fine.count())
	}
	if f := st["fine"]; f.Delivered != 20 || f.Settled() != 20 || f.Dropped() != 0 {
		t.Errorf("fine: %+v", f)
	}
	// The drain ran out on the hung one: the fine one is still closed
	// with time of its own, not with the spent drain context.
	fine.mu.Lock()
	defer fine.mu.Unlock()
	if !fine.closed || fine.closeCtxErr != nil {
		t.Errorf("fine closed %v, with context error %v", fine.closed, fine.closeCtxErr)
	}
}

// When every detector of a kind has a filter, events none of them wants are
// dropped before they are copied: they are not queued for anyone. A
// detector without a filter still gets everything.
func TestEventsNoFilterWantsAreNotCopied(t *testing.T) {
	etc := &fake{def: detection.Definition{Name: "etc", Kinds: []event.Kind{event.KindOpen}, Filter: detection.Filter{PathPrefixes: []string{"/etc/"}}}}
	home := &fake{def: detection.Definition{Name: "home", Kinds: []event.Kind{event.KindOpen}, Filter: detection.Filter{PathPrefixes: []string{"/home/"}}}}
	d := New(context.Background(), Options{BatchSize: 4, QueueBatches: 8}, []Detector{{Name: "etc", Run: etc}, {Name: "home", Run: home}},
		func(detection.Finding) {}, zaptest.NewLogger(t))
	for _, ev := range append(append(opens(10, "/usr/"), opens(3, "/etc/")...), opens(2, "/home/")...) {
		d.Add(ev)
	}
	d.Close(context.Background())
	for _, s := range d.Stats() {
		if s.Queued != 5 {
			t.Errorf("%s: %d queued, want the 5 some filter wanted", s.Name, s.Queued)
		}
	}
	if etc.count() != 3 || home.count() != 2 {
		t.Errorf("etc got %d (want 3), home %d (want 2)", etc.count(), home.count())
	}

	all := &fake{def: detection.Definition{Name: "all", Kinds: []event.Kind{event.KindOpen}}}
	etc2 := &fake{def: etc.def}
	d = New(context.Background(), Options{BatchSize: 4, QueueBatches: 8}, []Detector{{Name: "etc", Run: etc2}, {Name: "all", Run: all}},
		func(detection.Finding) {}, zaptest.NewLogger(t))
	for _, ev := range append(opens(10, "/usr/"), opens(3, "/etc/")...) {
		d.Add(ev)
	}
	d.Close(context.Background())
	if all.count() != 13 || etc2.count() != 3 {
		t.Errorf("unfiltered got %d (want 13), filtered %d (want 3)", all.count(), etc2.count())
	}
}
