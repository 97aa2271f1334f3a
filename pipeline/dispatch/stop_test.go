package dispatch

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin"
	"github.com/bulkhead-sec/bulkhead/backends/inproc"
	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/chaos"
	"github.com/bulkhead-sec/bulkhead/test/testenv"
	"go.uber.org/zap/zaptest"
)

// The monitor stops while a slow detector — the real chaos detector, each
// event costing 2ms, in process and as a plugin process — has batches in
// flight and more queued. Close abandons it after DrainTimeout, and every
// event its queue took is in exactly one counter: delivered (and reported:
// chaos reports each event, so findings == delivered), or abandoned (in
// flight or still queued). Nothing is shed, nothing is left uncounted, and
// what the detector answers after it was abandoned, or what happens to it
// at stop, changes no counter and sends no finding.
func TestStopAccountsForEveryEvent(t *testing.T) {
	const cfg = `{"fault": "slow", "delay": "2ms", "report_on": "/mark/"}`
	for _, backend := range []string{"inproc", "goplugin"} {
		t.Run(backend, func(t *testing.T) {
			log := zaptest.NewLogger(t)
			var run backends.Backend
			var err error
			switch backend {
			case "inproc":
				run, err = inproc.New(context.Background(), chaos.New(), detection.Config(cfg), log)
			case "goplugin":
				o := goplugin.DefaultOptions(testenv.Plugin(t, "chaos"))
				o.Config = detection.Config(cfg)
				o.BatchDeadline = time.Minute // slow, not hung: this test is not about deadlines
				run, err = goplugin.New(o, log)
			}
			if err != nil {
				t.Fatal(err)
			}
			var findings atomic.Uint64
			d := New(context.Background(), Options{BatchSize: 16, DrainTimeout: 300 * time.Millisecond},
				[]Detector{{Name: "slow", Backend: backend, Run: run}}, func(detection.Finding) { findings.Add(1) }, log)
			const total = 4000
			for i := range total {
				ev := &event.Event{Header: event.Header{Kind: event.KindOpen, PID: 7, Comm: "cat"}}
				ev.Open.Resolved = fmt.Sprintf("/mark/%d", i)
				d.Add(ev)
			}
			time.Sleep(200 * time.Millisecond) // some batches answered
			err = d.Close(context.Background())
			var all, inflight, queued uint64
			if err == nil {
				t.Fatal("Close returned no error: the slow detector finished 4000 events of 2ms in 0.5s?")
			}
			if _, serr := fmt.Sscanf(err.Error()[strings.Index(err.Error(), "abandoned: ")+len("abandoned: "):],
				"%d events abandoned (%d in flight, %d queued)", &all, &inflight, &queued); serr != nil {
				t.Fatalf("Close: %v (%v)", err, serr)
			}
			s := d.Stats()[0]
			t.Logf("queued %d: delivered %d, filtered %d, unavailable %d, failed %d, abandoned %d (%d in flight, %d queued); shed %d; findings %d",
				s.Queued, s.Delivered, s.Filtered, s.Unavailable, s.Failed, s.Abandoned, inflight, queued, s.Shed, findings.Load())
			if s.Queued != total || s.Shed != 0 {
				t.Errorf("queued %d, shed %d; want %d and 0", s.Queued, s.Shed, total)
			}
			if s.Settled() != s.Queued || s.Delivered+s.Abandoned != s.Queued {
				t.Errorf("queued %d but delivered %d + filtered %d + unavailable %d + failed %d + abandoned %d = %d",
					s.Queued, s.Delivered, s.Filtered, s.Unavailable, s.Failed, s.Abandoned, s.Settled())
			}
			if s.Delivered == 0 || inflight == 0 || queued == 0 || s.Abandoned != all {
				t.Errorf("want some delivered, some abandoned in flight and some queued: delivered %d, abandoned %d of %d (%d in flight, %d queued)",
					s.Delivered, s.Abandoned, all, inflight, queued)
			}
			if f := findings.Load(); f != s.Delivered {
				t.Errorf("%d findings for %d delivered events (one each)", f, s.Delivered)
			}
			// The detector answers what it still had; none of it counts.
			select {
			case <-d.lanes[0].finished:
			case <-time.After(30 * time.Second):
				t.Fatal("the abandoned detector's goroutine never ended")
			}
			if after := d.Stats()[0]; after.Delivered != s.Delivered || after.Abandoned != s.Abandoned || findings.Load() != s.Delivered {
				t.Errorf("after the late answers: delivered %d, abandoned %d, findings %d; was %d, %d, %d",
					after.Delivered, after.Abandoned, findings.Load(), s.Delivered, s.Abandoned, s.Delivered)
			}
			// Nor does what happens to it at stop (a plugin killed there is
			// not a crash): the backend's counts are those at abandonment.
			if err := run.Close(context.Background()); err != nil {
				t.Error(err)
			}
			if after := d.Stats()[0]; after.Backends != s.Backends {
				t.Errorf("the backend's counts moved after it was abandoned: %+v, was %+v", after.Backends, s.Backends)
			}
			t.Logf("the backend itself went on: %d events delivered when abandoned, %d after (not counted)", s.Backends.Delivered, run.Stats().Delivered)
		})
	}
}
