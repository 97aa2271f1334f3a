package monitor

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/internal/config"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/recording"
	"github.com/bulkhead-sec/bulkhead/pipeline/sinks"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
	"go.uber.org/zap"
)

// loadTestConfig writes yaml to a file and loads it as bulkhead would.
func loadTestConfig(t *testing.T, yaml string) config.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bulkhead.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	fc, err := config.Load(path, BuiltinNames())
	if err != nil {
		t.Fatal(err)
	}
	return fc
}

// shadowOpen is cat opening /etc/shadow, with its process: what the
// credaccess detector reports.
func shadowOpen(n uint64) *event.Event {
	ev := &event.Event{Header: event.Header{Kind: event.KindOpen, PID: 7, TID: 7, Comm: "cat", KernelTimeNs: n},
		Process: &event.Process{PID: 7, Exe: "/usr/bin/cat", Comm: "cat"}}
	ev.Open = event.Open{Syscall: "openat", Path: "/etc/shadow", Resolved: "/etc/shadow", Ret: 3}
	return ev
}

// findings collects what the detectors report.
type findings struct {
	mu  sync.Mutex
	got []detect.Finding
}

func (f *findings) add(fd detect.Finding) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, fd)
}

func (f *findings) byDetector() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := map[string]int{}
	for _, fd := range f.got {
		n[fd.Detector]++
	}
	return n
}

// No detectors configured: no dispatcher, nothing started.
func TestStartDispatchWithoutDetectors(t *testing.T) {
	d, err := StartDispatch(loadTestConfig(t, "dispatch: {batch_size: 8}\n"), true, func(detect.Finding) {}, zap.NewNop())
	if err != nil || d != nil {
		t.Fatalf("dispatcher %v, error %v; want neither", d, err)
	}
}

// A configuration's detectors are started on their backends, named as
// configured, behind one dispatcher with the configured batches; events
// reach them and their findings reach the FindingFunc. Needs no root.
func TestStartDispatchWiresTheConfiguration(t *testing.T) {
	fc := loadTestConfig(t, `dispatch: {batch_size: 16}
detectors:
  - {name: cred, backend: inproc, builtin: credaccess}
  - {name: ex, backend: inproc, builtin: example, recover_panics: true, config: {paths: [/etc/shadow]}}
`)
	if got := fc.Dispatch.Options(true); got.BatchSize != 16 || !got.Block || got.QueueEvents == 0 {
		t.Errorf("dispatch options %+v: want batch 16, blocking, default queues", got)
	}
	var f findings
	d, err := StartDispatch(fc, true, f.add, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	for i := range uint64(n) {
		d.Add(shadowOpen(i + 1))
	}
	d.Drain()
	lanes := d.Stats()
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(lanes) != 2 || lanes[0].Name != "cred" || lanes[1].Name != "ex" || lanes[0].Backend != "inproc" || lanes[1].Backend != "inproc" {
		t.Fatalf("lanes %+v: want cred and ex on inproc, in order", lanes)
	}
	for _, l := range lanes {
		if l.Delivered != n || l.Dropped() != 0 {
			t.Errorf("%s: %d delivered, %d dropped; want %d and 0", l.Name, l.Delivered, l.Dropped(), n)
		}
	}
	if got := f.byDetector(); got["cred"] != n || got["ex"] != n {
		t.Errorf("findings per detector %v: want %d from each of cred and ex", got, n)
	}
}

// A detector that cannot start stops them all, with its number, name and
// backend in the error.
func TestStartDispatchNamesTheDetectorThatFails(t *testing.T) {
	fc := loadTestConfig(t, "detectors: [{name: ok, backend: inproc, builtin: example}, {name: bad, backend: inproc, builtin: example, config: {paths: [relative]}}]\n")
	_, err := StartDispatch(fc, false, func(detect.Finding) {}, zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "detector #2 (bad, backend inproc)") {
		t.Fatalf("error %v: want it to name detector #2 (bad, backend inproc)", err)
	}
}

// pathSink counts the events that open path, as a sink of the monitor.
type pathSink struct {
	path string
	n    atomic.Uint64
}

func (s *pathSink) Write(ev *event.Event) error {
	if ev.Kind == event.KindOpen && ev.Open.Path == s.path {
		s.n.Add(1)
	}
	return nil
}
func (s *pathSink) Flush() error { return nil }

// The whole monitor on the real kernel: a child's open reaches the sink
// and the detector, a reload replaces the detectors without losing their
// counts, and Stop's summary accounts for what was written. Needs root
// (BPF); without it, the part above this covers what is wired.
func TestMonitorCapturesAndReloads(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: Start loads and attaches BPF programs (the detectors' wiring is tested above without it)")
	}
	target := filepath.Join(t.TempDir(), "target")
	if err := os.WriteFile(target, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	fc := loadTestConfig(t, "detectors: [{name: ex, backend: inproc, builtin: example, config: {paths: ["+target+"]}}]\n")
	var f findings
	d, err := StartDispatch(fc, false, f.add, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultCapture()
	cfg.RingMiB = 4
	sink := &pathSink{path: target}
	m, err := Start(zap.NewNop(), cfg, sink, d)
	if err != nil {
		d.Close(context.Background())
		t.Fatal(err)
	}
	defer m.Stop()
	// The monitor's own process is never captured: a child opens it.
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10s", what)
			}
			if err := exec.Command("cat", target).Run(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("the child's open in the sink and a finding", func() bool { return sink.n.Load() > 0 && f.byDetector()["ex"] > 0 })

	next, err := StartDispatch(fc, false, f.add, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	before := m.DetectorStats()[0].Delivered
	if err := m.replaceDetectors(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	seen := f.byDetector()["ex"]
	waitFor("a finding from the new detectors", func() bool { return f.byDetector()["ex"] > seen })
	s, err := m.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Detectors) != 1 || s.Detectors[0].Name != "ex" || s.Detectors[0].Delivered <= before {
		t.Errorf("detectors %+v: want one row, ex, past the %d delivered before the reload", s.Detectors, before)
	}
	if s.Written[event.KindOpen] == 0 || s.Kernel.Emitted[event.KindOpen] == 0 || s.Decode.Decoded[event.KindOpen] == 0 {
		t.Errorf("summary: written %v, emitted %v, decoded %v: want opens in each", s.Written, s.Kernel.Emitted, s.Decode.Decoded)
	}
	select {
	case <-m.Done():
	default:
		t.Error("Done not closed after Stop")
	}
	if _, last := m.WriteErrors(); last != nil {
		t.Errorf("sink errors: %v", last)
	}
}

// A recording replays through the detectors and the output: every event
// counted by kind, every one delivered, a finding for each, and the
// events written out when asked.
func TestReplayFeedsDetectorsAndOutput(t *testing.T) {
	const n = 500
	var rec bytes.Buffer
	w, err := recording.NewWriter(&rec, recording.Header{Host: "test"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range uint64(n) {
		w.Write(shadowOpen(i + 1))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := recording.NewReader(&rec)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	base, err := sinks.NewWithBacklog("json", io.Discard, r.Header().Timebase(), 0)
	if err != nil {
		t.Fatal(err)
	}
	out := sinks.NewLocked(base)
	var f findings
	d, err := StartDispatch(loadTestConfig(t, "detectors: [{name: cred, backend: inproc, builtin: credaccess}]\n"), true, f.add, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	perKind, err := Replay(context.Background(), r, 0, d, out, true, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, _ := out.Stats()
	if perKind[event.KindOpen] != n || d.Stats()[0].Delivered != n || f.byDetector()["cred"] != n || st.Written[event.KindOpen] != n {
		t.Errorf("replayed %d opens, delivered %d, %d findings, %d written; want %d of each",
			perKind[event.KindOpen], d.Stats()[0].Delivered, f.byDetector()["cred"], st.Written[event.KindOpen], n)
	}
}
