package bpf_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/bpf"
	"github.com/bulkhead-sec/bulkhead/pipeline/decode"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/source"
	"github.com/bulkhead-sec/bulkhead/test/testenv"
)

// hostile is a file or process name a monitored process may pick: a
// newline, a terminal escape and a byte that is not UTF-8. It must come
// out as is.
const hostile = "ev\nil\x1b[31m\xff"

// recorder keeps every decoded event of the kinds asked for.
type recorder struct {
	mu    sync.Mutex
	dec   *decode.Decoder
	ev    event.Event
	kinds event.KindSet
	evs   []*event.Event
	errs  int
}

func (r *recorder) Record(raw []byte) {
	if err := r.dec.Decode(raw, &r.ev); err != nil {
		r.errs++
		return
	}
	if r.kinds.Has(r.ev.Kind) {
		r.mu.Lock()
		r.evs = append(r.evs, r.ev.Clone())
		r.mu.Unlock()
	}
}
func (r *recorder) Flush() {}

// capture attaches the hooks of kinds (this test process traced too), runs
// fn and returns the events of those kinds that reached user space.
func capture(t *testing.T, opts bpf.Options, kinds []uint16, fn func()) []*event.Event {
	t.Helper()
	testenv.RequireBPF(t)
	opts.RingBytes, opts.WakeupBytes, opts.SelfPID = 4<<20, 4096, 1
	k, err := bpf.Load(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if err := k.Attach(kinds); err != nil {
		t.Fatal(err)
	}
	rd, err := source.New(k.Events(), 2*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	rec := &recorder{dec: decode.New()}
	for _, kd := range kinds {
		rec.kinds = rec.kinds.With(event.Kind(kd))
	}
	rec.kinds = rec.kinds.With(event.KindExec)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- rd.Run(ctx, rec) }()
	fn()
	time.Sleep(100 * time.Millisecond)
	if err := k.Detach(); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if rec.errs != 0 {
		t.Errorf("%d records failed to decode", rec.errs)
	}
	c, err := k.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c.RingFull() != 0 {
		t.Errorf("%d records lost to a full ring", c.RingFull())
	}
	return rec.evs
}

// find returns the events of kind for which match holds.
func find(evs []*event.Event, kind event.Kind, match func(*event.Event) bool) []*event.Event {
	var out []*event.Event
	for _, e := range evs {
		if e.Kind == kind && match(e) {
			out = append(out, e)
		}
	}
	return out
}

// one is the single event find returns, or a failure naming what.
func one(t *testing.T, evs []*event.Event, kind event.Kind, what string, match func(*event.Event) bool) *event.Event {
	t.Helper()
	got := find(evs, kind, match)
	if len(got) != 1 {
		t.Fatalf("%s: %d events, want 1", what, len(got))
	}
	return got[0]
}

// tempDir is a fresh directory by its real path (no symlinks on the way).
func tempDir(t *testing.T) string {
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// sh runs a shell command in dir and fails the test if it fails.
func sh(t *testing.T, dir, script string, env ...string) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
}

func hasFlag(e *event.Event, f event.Flags) bool { return e.Flags&f != 0 }

func envHas(list []string, entry string) bool {
	for _, e := range list {
		if e == entry {
			return true
		}
	}
	return false
}

var _ = strings.Contains
