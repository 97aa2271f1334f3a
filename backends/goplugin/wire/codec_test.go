package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/event/eventtest"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// sampleEvents is one event of every kind, sharing two processes.
func sampleEvents() []*event.Event {
	web := &event.Process{PID: 10, PPID: 1, Exe: "/usr/sbin/nginx", Comm: "nginx", Args: "nginx\x00-g\x00daemon off;\x00",
		UID: 33, EUID: 33, CgroupID: 7, CgroupPath: "/system.slice/nginx.service", StartKernelNs: 123, FromProc: true,
		Ancestors: []event.Ancestor{{PID: 1, Exe: "/sbin/init", Comm: "systemd"}}}
	sh := &event.Process{PID: 11, PPID: 10, Exe: "/bin/sh", Comm: "sh", ContainerID: strings.Repeat("ab", 32),
		Ancestors: []event.Ancestor{{PID: 10, Exe: "/usr/sbin/nginx", Comm: "nginx"}, {PID: 1, Exe: "/sbin/init", Comm: "systemd"}}}
	hdr := func(k event.Kind, p *event.Process) event.Header {
		return event.Header{Kind: k, Flags: event.FlagTruncPath, KernelTimeNs: 1e9 + uint64(k), PID: p.PID, TID: p.PID + 1, PPID: p.PPID,
			UID: 33, GID: 34, EUID: 35, EGID: 36, CgroupID: 7, Comm: p.Comm}
	}
	var out []*event.Event
	add := func(k event.Kind, p *event.Process, fill func(*event.Event)) {
		ev := &event.Event{Header: hdr(k, p), Process: p}
		fill(ev)
		out = append(out, ev)
	}
	add(event.KindExec, sh, func(e *event.Event) {
		e.Exec = event.Exec{Filename: "/bin/sh", Exe: "/usr/bin/dash", Args: "sh\x00-c\x00id\x00", ArgsSize: 9, ExeNlink: 1}
	})
	add(event.KindFork, web, func(e *event.Event) { e.Fork = event.Fork{ChildPID: 11, ChildTID: 11} })
	add(event.KindExit, sh, func(e *event.Event) { e.Exit = event.Exit{Code: 1, Signal: 9, CoreDumped: true} })
	add(event.KindOpen, web, func(e *event.Event) {
		e.Open = event.Open{Syscall: "openat2", Dfd: -100, Flags: 0o101, Mode: 0o644, Resolve: 8, Path: "x", Dir: "/srv", Resolved: "/srv/x", Ret: -13}
	})
	add(event.KindOpen, sh, func(e *event.Event) {
		e.Open = event.Open{Syscall: "openat", Dfd: -100, Path: "/tmp/l/../shadow", Resolved: "/tmp/shadow", Ret: 3,
			FilePath: "/etc/shadow", Dev: 2049, Ino: 1 << 40, Nlink: 2, FileMode: 0o100640}
	})
	add(event.KindConnect, sh, func(e *event.Event) {
		e.Connect = event.Connect{Fd: 3, Addr: netip.MustParseAddr("127.0.0.1"), Port: 4444, Ret: -115}
	})
	add(event.KindConnect, sh, func(e *event.Event) {
		e.Connect = event.Connect{Fd: 4, Addr: netip.MustParseAddr("::1"), Port: 443}
	})
	add(event.KindSetID, sh, func(e *event.Event) {
		e.SetID = event.SetID{Syscall: "setresuid", Args: [3]uint32{0, 0, 0}, Old: event.IDs{Real: 1000, Effective: 1000, Saved: 1000, FS: 1000}, Ret: -1}
	})
	add(event.KindPtrace, sh, func(e *event.Event) { e.Ptrace = event.Ptrace{Request: 16, TargetPID: 10, Ret: 0} })
	add(event.KindModule, sh, func(e *event.Event) {
		e.Module = event.Module{Syscall: "finit_module", Len: 4096, Flags: 2, Params: "debug=1", Path: "/tmp/rk.ko", Ret: -1}
	})
	add(event.KindBPFProg, sh, func(e *event.Event) { e.BPFProg = event.BPFProg{ProgType: 2, InsnCount: 12, Name: "sneaky", Ret: 7} })
	add(event.KindMemfd, sh, func(e *event.Event) { e.Memfd = event.Memfd{Name: "payload", Flags: 1, Ret: 5} })
	out = append(out, &event.Event{Header: event.Header{Kind: event.KindExit, PID: 99, Comm: "gone"}}) // no process context
	// The events above are what codec version 3 and flat layout version 1
	// carried (testdata/codec_v3.bin holds them so); those below came
	// after. Keep the first 13 as they are.
	for _, ev := range eventtest.EveryKind() {
		if ev.Kind == event.KindExec || ev.Kind > event.KindMemfd {
			out = append(out, ev) // exec with a script and an environment, and every new kind
		}
	}
	add(event.KindFile, sh, func(e *event.Event) {
		e.File = event.File{Op: event.FileChmod, Syscall: "fchmod", FilePath: "/usr/bin/passwd", Dev: 8, Ino: 9, FileMode: 0o100755, Mode: 0o6755, UID: event.NoID, GID: event.NoID, Ret: 0}
	})
	add(event.KindNamespace, sh, func(e *event.Event) {
		e.Namespace = event.Namespace{Syscall: "setns", Flags: 0x20000, Fd: 5, NsFile: "mnt:[4026531841]", Ret: 0}
	})
	add(event.KindSignal, sh, func(e *event.Event) { e.Signal = event.Signal{Syscall: "kill", TargetPID: -1, Signal: 9} })
	add(event.KindSocket, sh, func(e *event.Event) {
		e.Socket = event.Socket{Syscall: "socket", Family: 17, Type: 3, Protocol: 0x300, Ret: 6} // AF_PACKET, SOCK_RAW: no address
	})
	add(event.KindSocket, web, func(e *event.Event) {
		e.Socket = event.Socket{Syscall: "bind", Fd: 6, Family: 2, Addr: netip.MustParseAddr("0.0.0.0"), Port: 8080}
	})
	add(event.KindSys, sh, func(e *event.Event) {
		e.Sys = event.Sys{Syscall: "capset", Args: [3]uint64{1<<40 - 1, 1<<40 - 1, 0}, Ret: 0}
	})
	return out
}

func encode(evs []*event.Event) []byte {
	e := NewEncoder()
	for _, ev := range evs {
		e.Add(ev)
	}
	return bytes.Clone(e.Bytes())
}

func TestRoundTripEveryKind(t *testing.T) {
	want := sampleEvents()
	var d Decoder
	for range 2 { // the second time with the decoder's memory reused
		got, err := d.Decode(encode(want))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d events, want %d", len(got), len(want))
		}
		for i := range want {
			if !reflect.DeepEqual(&got[i], want[i]) {
				t.Errorf("event %d (%s):\n got %+v\n     %+v\nwant %+v\n     %+v", i, want[i].Kind, got[i], got[i].Process, *want[i], want[i].Process)
			}
		}
		// Events of the same process share one decoded Process.
		if got[0].Process != got[2].Process || got[0].Process == got[1].Process {
			t.Error("process sharing was not kept")
		}
	}
}

// A reused slot that held another kind of event is as clean as a new one.
func TestDecoderReusesSlotsCleanly(t *testing.T) {
	want := sampleEvents()
	var d Decoder
	if _, err := d.Decode(encode(want)); err != nil {
		t.Fatal(err)
	}
	slices.Reverse(want)
	got, err := d.Decode(encode(want))
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if !reflect.DeepEqual(&got[i], want[i]) {
			t.Errorf("slot %d (%s after %s) holds %+v", i, want[i].Kind, want[len(want)-1-i].Kind, got[i])
		}
	}
}

func TestEncoderReuse(t *testing.T) {
	evs := sampleEvents()
	e := NewEncoder()
	e.Add(evs[0])
	e.Reset()
	for _, ev := range evs[3:6:6] {
		if ev.Kind != event.KindConnect {
			e.Add(ev)
		}
	}
	got, err := Decode(bytes.Clone(e.Bytes()))
	if err != nil || len(got) != 2 || got[0].Open.Resolved != "/srv/x" || got[0].Process.Exe != "/usr/sbin/nginx" {
		t.Fatalf("after Reset: %v %+v", err, got)
	}
}

func TestDecodeRejects(t *testing.T) {
	good := encode(sampleEvents())
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "shorter than the batch header"},
		{"newer codec", append([]byte{CodecVersion + 1}, good[1:]...), fmt.Sprintf("codec version %d: this side knows versions 2 to %d", CodecVersion+1, CodecVersion)},
		{"older than the oldest", append([]byte{OldestCodecVersion - 1}, good[1:]...), fmt.Sprintf("codec version 1: this side knows versions 2 to %d", CodecVersion)},
		{"huge counts", append(append([]byte{}, good[:1]...), append([]byte{0xff, 0xff, 0xff, 0x7f, 1, 0, 0, 0}, good[9:]...)...), "processes and"},
		{"unknown kind", func() []byte {
			b := []byte{CodecVersion, 0, 0, 0, 0, 1, 0, 0, 0, event.KindCount}
			return append(append(b, make([]byte, eventFixedSize)...), make([]byte, 10)...)
		}(), fmt.Sprintf("unknown event kind %d", event.KindCount)},
		{"a new kind in a version 3 batch", func() []byte {
			b := encode([]*event.Event{{Header: event.Header{Kind: event.KindSignal}}})
			b[0] = 3
			return b
		}(), "a signal event in a version 3 batch, which had no such kind"},
		{"socket address of an unknown kind", func() []byte {
			b := encode([]*event.Event{{Header: event.Header{Kind: event.KindSocket}}})
			b[batchHeaderSize+1+eventFixedSize+1+1+30] = 5 // after kind, fixed header, process ref, comm: the local address's kind
			return b
		}(), "socket event with address kinds 5 and 0"},
		{"process before it is sent", func() []byte {
			b := append([]byte{}, good[:9]...)
			b[1], b[5] = 0, 1 // 0 processes, 1 event
			b = append(b, byte(event.KindFork))
			b = append(b, make([]byte, eventFixedSize)...)
			return append(append(b, 1), make([]byte, 9)...) // refers to process 1
		}(), "before it was sent"},
		{"more events than fit", []byte{CodecVersion, 0, 0, 0, 0, 2, 0, 0, 0, byte(event.KindFork), 0, 0}, "0 processes and 2 events in 12 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want it to say %q", err, tt.want)
			}
		})
	}
}

// A version 2 batch (what old recordings hold) still decodes: its open
// events have no opened file.
func TestDecodeVersion2(t *testing.T) {
	ev := sampleEvents()[3]
	o := &ev.Open
	b := []byte{2, 1, 0, 0, 0, 1, 0, 0, 0}
	enc := NewEncoder()
	enc.writeProcess(ev.Process)
	b = append(b, enc.buf[batchHeaderSize:]...)
	b = append(b, byte(ev.Kind))
	b = binary.LittleEndian.AppendUint16(b, uint16(ev.Flags))
	b = binary.LittleEndian.AppendUint64(b, ev.KernelTimeNs)
	for _, v := range []uint32{ev.PID, ev.TID, ev.PPID, ev.UID, ev.GID, ev.EUID, ev.EGID} {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	b = binary.LittleEndian.AppendUint64(b, ev.CgroupID)
	b = binary.AppendUvarint(b, 1)
	b = appendStr(b, ev.Comm)
	b = binary.LittleEndian.AppendUint32(b, uint32(o.Dfd))
	for _, v := range []uint64{o.Flags, o.Mode, o.Resolve, uint64(o.Ret)} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	b = appendStr(appendStr(appendStr(appendStr(b, string(o.Syscall)), o.Path), o.Dir), o.Resolved)

	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !reflect.DeepEqual(&got[0], ev) {
		t.Fatalf("got %+v\nwant %+v", got, *ev)
	}
}

// A version 3 batch, as the encoder of that version wrote it (what
// recordings of schema 3 hold), decodes to the events it was made from:
// an exec without a script or an environment, none of the kinds version 4
// added.
func TestDecodeVersion3(t *testing.T) {
	b, err := os.ReadFile("testdata/codec_v3.bin")
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 3 {
		t.Fatalf("codec_v3.bin is version %d", b[0])
	}
	want := sampleEvents()[:13]
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(&got[i], want[i]) {
			t.Errorf("event %d (%s):\n got %+v\nwant %+v", i, want[i].Kind, got[i], *want[i])
		}
	}
}

// Every kind, with every payload field set, survives the stream codec, and
// so does any byte sequence in any string.
func TestCodecEveryKindEveryField(t *testing.T) {
	for _, hostile := range []string{"", "\x00\xff\x1b[2J\n\u009b\u202e"} {
		want := eventtest.EveryKind()
		if hostile != "" {
			for _, ev := range want {
				eventtest.SetStrings(ev, hostile)
			}
		}
		got, err := Decode(encode(want))
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if !reflect.DeepEqual(&got[i], want[i]) {
				t.Errorf("%s:\n got %+v\nwant %+v", want[i].Kind, got[i], *want[i])
			}
		}
	}
}

// Every truncation of a good batch is an error, never a panic.
func TestDecodeTruncated(t *testing.T) {
	good := encode(sampleEvents())
	for n := range len(good) {
		if _, err := Decode(good[:n]); err == nil {
			t.Fatalf("%d of %d bytes decoded without error", n, len(good))
		} else if n >= batchHeaderSize && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%d bytes: %v is not ErrCorrupt", n, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encode(sampleEvents()))
	f.Add(encode(sampleEvents()[3:4]))
	f.Add(encode(eventtest.EveryKind()[10:]))
	f.Add([]byte{CodecVersion, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Decoder
		evs, err := d.Decode(b)
		if err != nil {
			return
		}
		// What decodes encodes to something that decodes the same.
		again, err := Decode(encode(ptrs(evs)))
		if err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, evs) {
			t.Fatalf("round trip changed the events")
		}
	})
}

func ptrs(evs []event.Event) []*event.Event {
	out := make([]*event.Event, len(evs))
	for i := range evs {
		out[i] = &evs[i]
	}
	return out
}

// OutBatch's hand-written header and the bytes after it are a protobuf
// Batch; InBatch reads what protobuf writes.
func TestBatchCodecIsProtobuf(t *testing.T) {
	c := Codec()
	events := encode(sampleEvents())
	out, err := c.Marshal(&OutBatch{Seq: 1 << 40, Count: 12, Events: mem.SliceBuffer(events)})
	if err != nil {
		t.Fatal(err)
	}
	var pb Batch
	if err := proto.Unmarshal(out.Materialize(), &pb); err != nil {
		t.Fatal(err)
	}
	if pb.Seq != 1<<40 || pb.Count != 12 || !bytes.Equal(pb.Events, events) {
		t.Fatalf("protobuf read seq %d count %d and %d bytes", pb.Seq, pb.Count, len(pb.Events))
	}

	wireBytes, err := proto.Marshal(&Batch{Seq: 7, Count: 3, Events: events})
	if err != nil {
		t.Fatal(err)
	}
	var in InBatch
	for range 2 {
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(wireBytes[:5]), mem.SliceBuffer(wireBytes[5:])}, &in); err != nil {
			t.Fatal(err)
		}
		if in.Seq != 7 || in.Count != 3 || !bytes.Equal(in.Events, events) {
			t.Fatalf("InBatch read seq %d count %d and %d bytes", in.Seq, in.Count, len(in.Events))
		}
	}
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(wireBytes[:len(wireBytes)-1])}, &in); err == nil {
		t.Fatal("a truncated batch was accepted")
	}

	// Other messages are plain protobuf.
	res := &Result{Seq: 9, Errors: 1, LastError: []byte("x")}
	rb, err := c.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := c.Unmarshal(rb, &back); err != nil || !proto.Equal(res, &back) {
		t.Fatalf("Result round trip: %v %v", err, &back)
	}
}

// benchBatch is n open events of one process, as the dispatcher sends.
func benchBatch(n int) []*event.Event {
	proc := &event.Process{PID: 4242, Exe: "/usr/bin/cat", Comm: "cat", Args: "cat\x00/etc/hostname\x00",
		Ancestors: []event.Ancestor{{PID: 1, Exe: "/sbin/init", Comm: "init"}}}
	out := make([]*event.Event, n)
	for i := range out {
		ev := &event.Event{Header: event.Header{Kind: event.KindOpen, PID: 4242, TID: 4242, PPID: 1, Comm: "cat", KernelTimeNs: uint64(i)}, Process: proc}
		ev.Open = event.Open{Syscall: "openat", Dfd: -100, Path: "/etc/hostname", Resolved: "/etc/hostname", Ret: 3}
		out[i] = ev
	}
	return out
}

// ns/op is per event.
func BenchmarkEncode(b *testing.B) {
	evs := benchBatch(256)
	e := NewEncoder()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%len(evs) == 0 {
			e.Reset()
		}
		e.Add(evs[i%len(evs)])
		i++
	}
	b.ReportMetric(float64(len(e.Bytes()))/float64(e.Count()), "bytes/event")
}

// ns/op is per event.
func BenchmarkDecode(b *testing.B) {
	batch := encode(benchBatch(256))
	var d Decoder
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 256 {
		if _, err := d.Decode(batch); err != nil {
			b.Fatal(err)
		}
	}
}
