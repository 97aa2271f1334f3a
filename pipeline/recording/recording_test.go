package recording

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/event/eventtest"
)

// sample is n events of every kind, sharing two processes.
func sample(n int) []event.Event { return sampleOf(n, event.AllKinds()) }

// sampleOf is n events of the given kinds in turn.
func sampleOf(n int, kinds []event.Kind) []event.Event {
	procs := []*event.Process{
		{PID: 10, PPID: 1, Exe: "/usr/bin/bash", Comm: "bash", Args: "bash\x00", Ancestors: []event.Ancestor{{PID: 1, Exe: "/sbin/init", Comm: "systemd"}}},
		{PID: 11, PPID: 10, Exe: "/usr/bin/cat", Comm: "cat", Args: "cat\x00/etc/shadow\x00", ContainerID: "abc", CgroupPath: "/x"},
	}
	out := make([]event.Event, n)
	every := map[event.Kind]*event.Event{}
	for _, ev := range eventtest.EveryKind() {
		every[ev.Kind] = ev
	}
	for i := range out {
		ev := &out[i]
		p := procs[i%2]
		ev.Header = event.Header{Kind: kinds[i%len(kinds)], PID: p.PID, TID: p.PID, PPID: p.PPID, Comm: p.Comm, KernelTimeNs: uint64(1e9 + i*1000), UID: 1000}
		ev.Process = p
		switch ev.Kind {
		case event.KindExec:
			ev.Exec = event.Exec{Filename: "/bin/cat", Exe: "/usr/bin/cat", Args: "cat\x00x\x00", ExeNlink: 1,
				Script: "/tmp/x.sh", Env: "LD_PRELOAD=/tmp/\xff.so\x00"}
		case event.KindOpen:
			ev.Open = event.Open{Syscall: "openat", Path: fmt.Sprintf("f%d", i), Dir: "/tmp", Resolved: fmt.Sprintf("/tmp/f%d", i), Ret: 3,
				FilePath: fmt.Sprintf("/var/tmp/f%d", i), Dev: 2049, Ino: uint64(i), Nlink: 1, FileMode: 0o100644}
		case event.KindConnect:
			ev.Connect = event.Connect{Addr: netip.MustParseAddr("10.0.0.1"), Port: 443}
		case event.KindSetID:
			ev.SetID = event.SetID{Syscall: "setuid", Old: event.IDs{Real: 1000}, New: event.IDs{}}
		case event.KindBPFProg:
			ev.BPFProg = event.BPFProg{Name: "p", InsnCount: 2}
		case event.KindFile, event.KindNamespace, event.KindSignal, event.KindSocket, event.KindSys:
			eventtest.Payload(ev).Set(eventtest.Payload(every[ev.Kind]))
		}
	}
	return out
}

func record(t testing.TB, evs []event.Event) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Host: "h", BootEpochNs: 42})
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		if err := w.Write(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if s := w.Stats(); s.Events != uint64(len(evs)) || s.Bytes != uint64(buf.Len()) {
		t.Fatalf("stats %+v for %d events, %d bytes", s, len(evs), buf.Len())
	}
	return buf.Bytes()
}

// readAll reads every frame, copying the events out.
func readAll(b []byte) (Header, []event.Event, error) {
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return Header{}, nil, err
	}
	defer r.Close()
	var out []event.Event
	for {
		evs, err := r.Next()
		for i := range evs {
			out = append(out, *evs[i].Clone())
		}
		if errors.Is(err, io.EOF) {
			return r.Header(), out, nil
		}
		if err != nil {
			return r.Header(), out, err
		}
	}
}

func TestRoundTrip(t *testing.T) {
	in := sample(3000) // three frames
	h, out, err := readAll(record(t, in))
	if err != nil {
		t.Fatal(err)
	}
	if h.Format != Format || h.Schema != Schema || h.Host != "h" || h.Timebase().BootEpochNs() != 42 {
		t.Fatalf("header %+v", h)
	}
	if len(out) != len(in) {
		t.Fatalf("%d events back, %d recorded", len(out), len(in))
	}
	for i := range in {
		a, b := in[i], out[i]
		if !reflect.DeepEqual(a.Process, b.Process) {
			t.Fatalf("event %d: recorded process %+v, read %+v", i, a.Process, b.Process)
		}
		a.Process, b.Process = nil, nil
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("event %d: recorded %+v, read %+v", i, a, b)
		}
	}
}

// A recording cut at any byte reads up to the cut and says where it is.
func TestTruncatedAnywhere(t *testing.T) {
	full := record(t, sample(2100))
	for cut := 0; cut < len(full); cut += 1 + cut/50 {
		_, out, err := readAll(full[:cut])
		var d *DamageError
		switch {
		case errors.Is(err, ErrNotRecording) || (err != nil && strings.Contains(err.Error(), "header")):
			if cut > 200 {
				t.Fatalf("cut at %d: %v", cut, err)
			}
		case errors.As(err, &d):
			if !strings.Contains(err.Error(), "truncated") || d.Events != uint64(len(out)) {
				t.Fatalf("cut at %d: %v after %d events", cut, err, len(out))
			}
		default:
			t.Fatalf("cut at %d: want damage, got %v with %d events", cut, err, len(out))
		}
	}
}

// A flipped byte inside a frame stops the reader at that frame; the frames
// before it were read.
func TestCorruptFrame(t *testing.T) {
	full := record(t, sample(3000))
	bad := bytes.Clone(full)
	bad[len(bad)-200] ^= 0xff // in the last frame
	_, out, err := readAll(bad)
	var d *DamageError
	if !errors.As(err, &d) || d.Frame != 3 || len(out) != 2048 || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("got %v after %d events", err, len(out))
	}
	want := fmt.Sprintf("damaged at byte %d (frame 3, after 2048 events): checksum mismatch", d.Offset)
	if err.Error() != want {
		t.Fatalf("message %q, want %q", err, want)
	}
}

func TestNewerVersionRefused(t *testing.T) {
	var buf bytes.Buffer
	hb := []byte(`{"format":1,"schema":99,"bulkhead_version":"v9.0.0"}`)
	buf.WriteString(magic)
	buf.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(hb))))
	buf.Write(hb)
	_, err := NewReader(&buf)
	want := fmt.Sprintf("this recording was made by a newer bulkhead (v9.0.0): format 1, event schema 99; this bulkhead reads format 1 and schema %d or older: replay it with that version or newer", Schema)
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if _, err := NewReader(strings.NewReader(`{"type":"event"}` + "\n")); !errors.Is(err, ErrNotRecording) {
		t.Fatalf("a JSON file: %v", err)
	}
}

// A recording written in pieces is readable at every Flush.
func TestFlushedFramesAreReadable(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, Header{})
	evs := sample(10)
	for i := range evs {
		w.Write(&evs[i])
	}
	w.opened = w.opened.Add(-frameAge) // as if a second had passed
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	_, out, err := readAll(buf.Bytes())
	var d *DamageError
	if len(out) != 10 || !errors.As(err, &d) {
		t.Fatalf("%d events, %v: want the 10 flushed and a missing trailer", len(out), err)
	}
}

func FuzzReader(f *testing.F) {
	f.Add(record(f, sample(20)))
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		defer r.Close()
		for i := 0; i < 1000; i++ {
			if _, err := r.Next(); err != nil {
				return
			}
		}
	})
}

func BenchmarkWrite(b *testing.B) {
	evs := sample(4096)
	w, _ := NewWriter(io.Discard, Header{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.Write(&evs[i%len(evs)])
	}
	w.Close()
}

func BenchmarkRead(b *testing.B) {
	data := record(b, sample(1<<16))
	b.ReportAllocs()
	b.SetBytes(int64(len(data)) / (1 << 16))
	b.ResetTimer()
	n := 0
	for n < b.N {
		r, _ := NewReader(bytes.NewReader(data))
		for {
			evs, err := r.Next()
			n += len(evs)
			if err != nil {
				break
			}
		}
		r.Close()
	}
}

// A recording of schema 3 (testdata/schema3.bhrec, written by the
// bulkhead before schema 4: every kind of then, 1,500 events in two
// frames) reads whole, the same events it was made from.
func TestReadsSchema3Recording(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "schema3.bhrec"))
	if err != nil {
		t.Fatal(err)
	}
	h, got, err := readAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.Schema != 3 || h.Format != 1 {
		t.Fatalf("header %+v", h)
	}
	// What it was made from: sample(3000)'s events of the ten kinds of
	// schema 3, the first 1,500 (the kinds in turn as they were then).
	var want []event.Event
	for _, ev := range sampleOf(3000, event.AllKinds()[:15]) {
		if ev.Kind <= event.KindMemfd {
			ev.Exec.Script, ev.Exec.Env = "", "" // schema 4's
			want = append(want, ev)
		}
	}
	want = want[:1500]
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	for i := range want {
		a, b := want[i], got[i]
		if !reflect.DeepEqual(a.Process, b.Process) {
			t.Fatalf("event %d: process %+v, want %+v", i, b.Process, a.Process)
		}
		a.Process, b.Process = nil, nil
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("event %d: %+v, want %+v", i, b, a)
		}
	}
}

// A recording made before open events carried the opened file (schema 2)
// still reads, whole: its opens just have no file.
func TestReadsSchema2Recording(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "recordings", "library.bhrec"))
	if err != nil {
		t.Skipf("no schema 2 recording to read: %v", err)
	}
	h, evs, err := readAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.Schema != 2 {
		t.Skipf("library.bhrec has schema %d now; this test reads a schema 2 one", h.Schema)
	}
	opens := 0
	for i := range evs {
		if o := &evs[i].Open; evs[i].Kind == event.KindOpen {
			opens++
			if o.FilePath != "" || !o.ID().IsZero() || o.Resolved == "" && o.Path == "" {
				t.Fatalf("schema 2 open %d: %+v", i, *o)
			}
		}
	}
	if len(evs) < 1000 || opens == 0 {
		t.Fatalf("%d events, %d opens: the recording did not read whole", len(evs), opens)
	}
}
