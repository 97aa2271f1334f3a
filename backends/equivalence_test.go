package backends_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/bulkhead-sec/bulkhead/backends/goplugin"
	"github.com/bulkhead-sec/bulkhead/backends/inproc"
	"github.com/bulkhead-sec/bulkhead/pipeline/decode"
	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/dispatch"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/example"
	"github.com/bulkhead-sec/bulkhead/test/testenv"
	"go.uber.org/zap/zaptest"
)

// recordedStream is real kernel records (pipeline/decode/testdata) plus
// opens of watched and unwatched paths, each event with process context.
func recordedStream(t *testing.T) []event.Event {
	files, _ := filepath.Glob("../pipeline/decode/testdata/records/*.bin")
	if len(files) == 0 {
		t.Fatal("no recorded records")
	}
	var out []event.Event
	d := decode.New()
	proc := &event.Process{PID: 4242, Exe: "/usr/bin/cat", Comm: "cat", Ancestors: []event.Ancestor{{PID: 1, Exe: "/sbin/init"}}}
	for i := 0; i < 300; i++ {
		raw, _ := os.ReadFile(files[i%len(files)])
		var ev event.Event
		if err := d.Decode(raw, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Kind == event.KindOpen {
			switch i % 3 {
			case 0:
				ev.Open.Resolved = "/etc/shadow"
			case 1:
				ev.Open.Resolved = "/etc/gshadow"
			}
		}
		ev.PID = uint32(1000 + i)
		ev.Process = proc
		out = append(out, *ev.Clone())
	}
	return out
}

type findingKey struct {
	rule, summary, path, exe string
	pid                      uint32
}

func run(t *testing.T, det dispatch.Detector, stream []event.Event) []findingKey {
	var mu sync.Mutex
	var got []findingKey
	d := dispatch.New(context.Background(), dispatch.Options{BatchSize: 64, QueueBatches: 1024}, []dispatch.Detector{det}, func(f detection.Finding) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, findingKey{f.Rule, f.Summary, f.Events[0].Open.Resolved, f.Events[0].Process.Exe, f.Events[0].PID})
	}, zaptest.NewLogger(t))
	for i := range stream {
		d.Add(&stream[i])
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := d.Stats()[0]; s.Dropped() != 0 {
		t.Fatalf("%s dropped %d events", det.Name, s.Dropped())
	}
	sort.Slice(got, func(i, j int) bool { return got[i].pid < got[j].pid })
	return got
}

// The same detector, linked in and run as a plugin, finds the same things
// in the same stream.
func TestSameFindingsOnBothBackends(t *testing.T) {
	stream := recordedStream(t)
	cfg := detection.Config(`{"paths":["/etc/shadow","/etc/gshadow"]}`)

	in, err := inproc.New(context.Background(), example.New(), cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	inFindings := run(t, dispatch.Detector{Name: "example", Backend: "inproc", Run: in}, stream)

	o := goplugin.DefaultOptions(testenv.Plugin(t, "example"))
	o.Config = cfg
	pl, err := goplugin.New(o, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	plFindings := run(t, dispatch.Detector{Name: "example", Backend: "goplugin", Run: pl}, stream)

	if len(inFindings) == 0 {
		t.Fatal("no findings at all: the stream does not exercise the detector")
	}
	if len(inFindings) != len(plFindings) {
		t.Fatalf("inproc found %d, goplugin %d", len(inFindings), len(plFindings))
	}
	for i := range inFindings {
		if inFindings[i] != plFindings[i] {
			t.Errorf("finding %d differs:\n inproc   %+v\n goplugin %+v", i, inFindings[i], plFindings[i])
		}
	}
	t.Logf("%d identical findings", len(inFindings))
}
