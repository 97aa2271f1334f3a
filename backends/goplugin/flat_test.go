package goplugin

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/bulkhead-sec/bulkhead/backends/goplugin/wire"
	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/test/testenv"
	"go.uber.org/zap/zaptest"
)

// submitFlat encodes events as the dispatcher does and hands them over
// with SubmitFlat; the encoded bytes are overwritten once it returns, as
// the dispatcher's batch is reused.
func submitFlat(b *Backend, events []*event.Event, done func([]detection.Finding, error)) {
	enc := wire.NewFlatEncoder()
	enc.ResetInto(make([]byte, 0, 4<<10))
	for _, ev := range events {
		enc.Add(ev)
	}
	batch := enc.Bytes()
	b.SubmitFlat(context.Background(), batch, len(events), done)
	clear(batch)
}

func deliverFlat(b *Backend, events []*event.Event) ([]detection.Finding, error) {
	type out struct {
		fs  []detection.Finding
		err error
	}
	c := make(chan out, 1)
	submitFlat(b, events, func(fs []detection.Finding, err error) {
		for i := range fs { // valid during the call only
			for j, ev := range fs[i].Events {
				fs[i].Events[j] = ev.Clone()
			}
		}
		c <- out{fs, err}
	})
	o := <-c
	return o.fs, o.err
}

// Batches the dispatcher encoded are delivered as they are, on either
// transport: findings point at their events; a plugin killed between
// batches and during one loses none of them (sent again from the monitor's
// copy, not from the dispatcher's bytes, which are gone).
func TestSubmitFlat(t *testing.T) { transports(t, testSubmitFlat) }

func testSubmitFlat(t *testing.T, tr string) {
	b, err := New(withTransport(fastOptions(testenv.Plugin(t, "chaos"), `{"report_on":"/mark/"}`), tr), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	seen := map[string]int{}
	for i := range 20 {
		if i%5 == 2 {
			syscall.Kill(b.Stats().PID, syscall.SIGKILL)
		}
		fs, err := deliverFlat(b, opens("/x", fmt.Sprintf("/mark/%d", i), "/y"))
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		for _, f := range fs {
			seen[f.Events[0].Open.Resolved]++
		}
	}
	for i := range 20 {
		if seen[fmt.Sprintf("/mark/%d", i)] == 0 {
			t.Errorf("event %d never delivered", i)
		}
	}
	if s := b.Stats(); s.Crashes != 4 || s.Restarts != 4 || s.Delivered < 60 {
		t.Errorf("stats %+v: want 4 crashes, 4 restarts, 60 delivered", s)
	}
}

// Through a ring with room for one batch at a time, encoded batches wait
// in flight (copied) and are each answered once; one larger than the ring
// is split by event.
func TestSubmitFlatRingFull(t *testing.T) {
	o := withTransport(fastOptions(testenv.Plugin(t, "rogue"), `{"attack":"slow","delay":"20ms","report_on":"/ok"}`), TransportShm)
	o.Window, o.BatchEvents, o.RingBytes = 2, 1, 8<<10
	b, err := New(o, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
	)
	const n = 6
	for i := range n {
		evs := opens(fmt.Sprintf("/ok/%d/%s", i, strings.Repeat("p", 2<<10)))
		if i == n-1 { // three events of 2 KiB twice: more than the 8 KiB ring
			evs = opens(fmt.Sprintf("/ok/%d/%s", i, strings.Repeat("p", 2<<10)), "/ok/a"+strings.Repeat("p", 2<<10), "/ok/b"+strings.Repeat("p", 2<<10))
		}
		wg.Add(1)
		submitFlat(b, evs, func(fs []detection.Finding, err error) {
			defer wg.Done()
			if err != nil {
				t.Errorf("batch: %v", err)
			}
			mu.Lock()
			for p, k := range reported(fs) {
				seen[p[:strings.LastIndexByte(p, '/')]] += k
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	for i := range n {
		if p := fmt.Sprintf("/ok/%d", i); seen[p] != 1 {
			t.Errorf("%s answered %d times", p, seen[p])
		}
	}
	if s := b.Stats(); s.RingFull == 0 || s.Crashes+s.Hangs+s.Restarts+s.ProtocolViolations != 0 || s.Delivered != n+2 {
		t.Errorf("stats %+v: want the ring full at times, %d delivered, and nothing else", s, n+2)
	}
}
