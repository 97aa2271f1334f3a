package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/event/eventtest"
)

func encodeFlat(evs []*event.Event) []byte {
	e := NewFlatEncoder()
	for _, ev := range evs {
		e.Add(ev)
	}
	return bytes.Clone(e.Bytes())
}

// The structs are the layout: a field that moves changes the bytes every
// plugin of the same FlatVersion reads.
func TestFlatLayout(t *testing.T) {
	sizes := map[string][2]uintptr{
		"header":   {unsafe.Sizeof(flatHeader{}), 16},
		"event":    {unsafe.Sizeof(flatEvent{}), 64},
		"process":  {unsafe.Sizeof(flatProcess{}), 88},
		"ancestor": {unsafe.Sizeof(flatAncestor{}), 24},
		"exec":     {unsafe.Sizeof(flatExec{}), 48},
		"fork":     {unsafe.Sizeof(flatFork{}), 8},
		"exit":     {unsafe.Sizeof(flatExit{}), 16},
		"open":     {unsafe.Sizeof(flatOpen{}), 104},
		"connect":  {unsafe.Sizeof(flatConnect{}), 32},
		"setid":    {unsafe.Sizeof(flatSetID{}), 64},
		"ptrace":   {unsafe.Sizeof(flatPtrace{}), 24},
		"module":   {unsafe.Sizeof(flatModule{}), 48},
		"bpfprog":  {unsafe.Sizeof(flatBPFProg{}), 24},
		"memfd":    {unsafe.Sizeof(flatMemfd{}), 24},
		"file":     {unsafe.Sizeof(flatFile{}), 128},
		"ns":       {unsafe.Sizeof(flatNamespace{}), 72},
		"signal":   {unsafe.Sizeof(flatSignal{}), 40},
		"socket":   {unsafe.Sizeof(flatSocket{}), 72},
		"sys":      {unsafe.Sizeof(flatSys{}), 56},
	}
	for name, s := range sizes {
		if s[0] != s[1] || s[0]%8 != 0 {
			t.Errorf("%s: %d bytes, the layout says %d (a multiple of 8)", name, s[0], s[1])
		}
	}
	offsets := map[string][2]uintptr{
		"event.Time":      {unsafe.Offsetof(flatEvent{}.Time), 8},
		"event.Process":   {unsafe.Offsetof(flatEvent{}.Process), 44},
		"event.Cgroup":    {unsafe.Offsetof(flatEvent{}.Cgroup), 48},
		"event.Comm":      {unsafe.Offsetof(flatEvent{}.Comm), 56},
		"process.Cgroup":  {unsafe.Offsetof(flatProcess{}.Cgroup), 32},
		"process.Exe":     {unsafe.Offsetof(flatProcess{}.Exe), 48},
		"open.Flags":      {unsafe.Offsetof(flatOpen{}.Flags), 16},
		"open.Syscall":    {unsafe.Offsetof(flatOpen{}.Syscall), 64},
		"connect.Addr":    {unsafe.Offsetof(flatConnect{}.Addr), 16},
		"setid.Ret":       {unsafe.Offsetof(flatSetID{}.Ret), 48},
		"module.Syscall":  {unsafe.Offsetof(flatModule{}.Syscall), 24},
		"ancestor.Exe":    {unsafe.Offsetof(flatAncestor{}.Exe), 8},
		"exit.CoreDumped": {unsafe.Offsetof(flatExit{}.CoreDumped), 8},
		"exec.Script":     {unsafe.Offsetof(flatExec{}.Script), 32},
		"exec.Env":        {unsafe.Offsetof(flatExec{}.Env), 40},
		"file.AtFlags":    {unsafe.Offsetof(flatFile{}.AtFlags), 16},
		"file.Length":     {unsafe.Offsetof(flatFile{}.Length), 24},
		"file.Ino":        {unsafe.Offsetof(flatFile{}.Ino), 48},
		"file.Op":         {unsafe.Offsetof(flatFile{}.Op), 56},
		"file.NewPath":    {unsafe.Offsetof(flatFile{}.NewPath), 96},
		"file.FilePath":   {unsafe.Offsetof(flatFile{}.FilePath), 120},
		"ns.Fd":           {unsafe.Offsetof(flatNamespace{}.Fd), 16},
		"ns.Syscall":      {unsafe.Offsetof(flatNamespace{}.Syscall), 24},
		"ns.Dir":          {unsafe.Offsetof(flatNamespace{}.Dir), 64},
		"signal.Ret":      {unsafe.Offsetof(flatSignal{}.Ret), 16},
		"signal.Comm":     {unsafe.Offsetof(flatSignal{}.TargetComm), 32},
		"socket.Family":   {unsafe.Offsetof(flatSocket{}.Family), 16},
		"socket.PeerKind": {unsafe.Offsetof(flatSocket{}.PeerKind), 23},
		"socket.Ret":      {unsafe.Offsetof(flatSocket{}.Ret), 24},
		"socket.Addr":     {unsafe.Offsetof(flatSocket{}.Addr), 32},
		"socket.Peer":     {unsafe.Offsetof(flatSocket{}.Peer), 48},
		"socket.Syscall":  {unsafe.Offsetof(flatSocket{}.Syscall), 64},
		"sys.Args":        {unsafe.Offsetof(flatSys{}.Args), 8},
		"sys.Ret":         {unsafe.Offsetof(flatSys{}.Ret), 32},
		"sys.Name":        {unsafe.Offsetof(flatSys{}.Name), 48},
	}
	for name, o := range offsets {
		if o[0] != o[1] {
			t.Errorf("%s at %d, the layout says %d", name, o[0], o[1])
		}
	}
	for _, k := range event.AllKinds() {
		if payloadSize(k) == 0 {
			t.Errorf("kind %s has no flat payload", k)
		}
	}
}

func TestFlatRoundTripEveryKind(t *testing.T) {
	want := sampleEvents()
	var d FlatDecoder
	for round := range 3 { // then with the decoder's memory reused, then reversed
		if round == 2 {
			slices.Reverse(want)
		}
		got, err := d.Decode(encodeFlat(want))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d events, want %d", len(got), len(want))
		}
		for i := range want {
			if !reflect.DeepEqual(&got[i], want[i]) {
				t.Errorf("round %d event %d (%s):\n got %+v\n     %+v\nwant %+v\n     %+v", round, i, want[i].Kind, got[i], got[i].Process, *want[i], want[i].Process)
			}
		}
	}
	got, _ := d.Decode(encodeFlat(sampleEvents()))
	if got[0].Process != got[2].Process || got[0].Process == got[1].Process {
		t.Error("process sharing was not kept")
	}
}

// Every kind, with every payload field set, survives the flat layout, and
// so does any byte sequence in any string, in a decoder whose slots held
// every other kind before.
func TestFlatEveryKindEveryField(t *testing.T) {
	var d FlatDecoder
	for _, hostile := range []string{"", "\x00\xff\x1b[2J\n\u009b\u202e"} {
		want := eventtest.EveryKind()
		if hostile != "" {
			for _, ev := range want {
				eventtest.SetStrings(ev, hostile)
			}
			slices.Reverse(want)
		}
		got, err := d.Decode(encodeFlat(want))
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if !reflect.DeepEqual(&got[i], want[i]) {
				t.Errorf("%s:\n got %+v\nwant %+v", want[i].Kind, got[i], *want[i])
			}
			if FlatSize(want[i]) != len(encodeFlat(want[i:i+1]))-FlatBatchHeaderSize {
				t.Errorf("%s: FlatSize %d is not its batch's size", want[i].Kind, FlatSize(want[i]))
			}
		}
	}
}

// A batch of the previous layout (as a monitor of the previous release
// sends it to a plugin) is refused, naming both versions.
func TestFlatRefusesVersion1(t *testing.T) {
	b, err := os.ReadFile("testdata/flat_v1.bin")
	if err != nil {
		t.Fatal(err)
	}
	_, err = DecodeFlat(b)
	want := fmt.Sprintf("flat batch layout version 1: this side reads version %d; build the plugin against the same bulkhead release as the monitor", FlatVersion)
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

// Any byte sequence is carried as is, and a batch that is not 8-aligned
// (as gRPC delivers it) decodes the same.
func TestFlatArbitraryBytesAndAlignment(t *testing.T) {
	ev := sampleEvents()[4]
	ev.Comm = "\x00\xff\x1b[31m"
	ev.Open.Path = string([]byte{0, 1, 2, 0xc3, 0x28, '\n'})
	ev.Process.Args = strings.Repeat("\x00", 9)
	batch := encodeFlat([]*event.Event{ev})
	for shift := range 8 {
		buf := make([]byte, len(batch)+shift)
		copy(buf[shift:], batch)
		got, err := DecodeFlat(buf[shift:])
		if err != nil || len(got) != 1 || !reflect.DeepEqual(&got[0], ev) {
			t.Fatalf("shift %d: %v %+v", shift, err, got)
		}
	}
}

// Reused buffers leak nothing of an earlier batch into the padding.
func TestFlatPaddingIsZero(t *testing.T) {
	e := NewFlatEncoder()
	long := sampleEvents()[0]
	long.Comm = strings.Repeat("\xaa", 15)
	e.Add(long)
	e.Reset()
	short := &event.Event{Header: event.Header{Kind: event.KindFork, Comm: "a"}}
	e.Add(short)
	b := e.Bytes()
	rec := b[flatHeaderSize:]
	n := binary.LittleEndian.Uint32(rec)
	if int(n) != len(rec) || n != uint32(align8(flatEventSize+8+1)) {
		t.Fatalf("record of %d bytes in %d", n, len(rec))
	}
	if bytes.IndexByte(rec, 0xaa) >= 0 {
		t.Errorf("an earlier batch's bytes show through: % x", rec)
	}
}

// FlatSize bounds what an event adds to a batch, and is exact for a
// batch of one.
func TestFlatSize(t *testing.T) {
	total := FlatBatchHeaderSize
	for _, ev := range sampleEvents() {
		one := encodeFlat([]*event.Event{ev})
		if got := FlatSize(ev); got != len(one)-FlatBatchHeaderSize {
			t.Errorf("%s: FlatSize %d, a batch of it alone %d bytes", ev.Kind, got, len(one))
		}
		total += FlatSize(ev)
	}
	if all := encodeFlat(sampleEvents()); len(all) > total {
		t.Errorf("batch of %d bytes, the sizes add to %d", len(all), total)
	}
}

func TestFlatDecodeRejects(t *testing.T) {
	good := encodeFlat(sampleEvents())
	mut := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	first := flatHeaderSize // the first record: sh's process
	firstEvent := first + int(binary.LittleEndian.Uint32(good[first:]))
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "shorter than the batch header"},
		{"stream codec", encode(sampleEvents()), "not a flat batch"},
		{"newer layout", mut(func(b []byte) { b[1] = FlatVersion + 1 }), fmt.Sprintf("layout version %d: this side reads version %d", FlatVersion+1, FlatVersion)},
		{"older layout", mut(func(b []byte) { b[1] = FlatVersion - 1 }), fmt.Sprintf("layout version %d: this side reads version %d", FlatVersion-1, FlatVersion)},
		{"huge counts", mut(func(b []byte) { binary.LittleEndian.PutUint32(b[4:], 1<<30) }), "processes and 1073741824 events"},
		{"fewer events", mut(func(b []byte) { binary.LittleEndian.PutUint32(b[4:], 3) }), "more events than the 3 announced"},
		{"truncated", good[:len(good)-8], "record of"},
		{"record past the end", mut(func(b []byte) { binary.LittleEndian.PutUint32(b[first:], 1<<20) }), "record of 1048576 bytes"},
		{"unaligned record", mut(func(b []byte) { binary.LittleEndian.PutUint32(b[first:], 100) }), "record of 100 bytes"},
		{"string outside", mut(func(b []byte) { binary.LittleEndian.PutUint32(b[firstEvent+56:], 1<<31) }), "lies outside its record"},
		{"unknown kind", mut(func(b []byte) { b[firstEvent+4] = 200 }), "unknown event kind"},
		{"process forward ref", mut(func(b []byte) { binary.LittleEndian.PutUint32(b[firstEvent+44:], 2) }), "refers to process 2 before it was sent"},
		{"ancestors overflow", mut(func(b []byte) { binary.LittleEndian.PutUint32(b[first+24:], 1<<30) }), "ancestors in a process record"},
		{"stray bytes", append(bytes.Clone(good), 1, 2, 3), "stray bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeFlat(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func FuzzDecodeFlat(f *testing.F) {
	f.Add(encodeFlat(sampleEvents()))
	f.Add(encodeFlat(sampleEvents()[3:4]))
	f.Add(encodeFlat(eventtest.EveryKind()[10:]))
	f.Add(encodeFlat(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		var d FlatDecoder
		evs, err := d.Decode(b)
		if err != nil {
			return
		}
		// What decodes encodes to something that decodes the same.
		again, err := DecodeFlat(encodeFlat(ptrs(evs)))
		if err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, evs) {
			t.Fatalf("round trip changed the events")
		}
	})
}

// ns/op is per event.
func BenchmarkFlatEncode(b *testing.B) {
	evs := benchBatch(256)
	e := NewFlatEncoder()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%len(evs) == 0 {
			e.Reset()
		}
		e.Add(evs[i%len(evs)])
		i++
	}
	b.ReportMetric(float64(e.Len())/float64(e.Count()), "bytes/event")
}

// ns/op is per event.
func BenchmarkFlatDecode(b *testing.B) {
	batch := encodeFlat(benchBatch(256))
	var d FlatDecoder
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 256 {
		if _, err := d.Decode(batch); err != nil {
			b.Fatal(err)
		}
	}
}

func TestFlatRedeliveredFlag(t *testing.T) {
	batch := encodeFlat(sampleEvents())
	var d FlatDecoder
	if _, err := d.Decode(batch); err != nil || d.Redelivered() {
		t.Fatalf("a fresh batch: %v, redelivered %v", err, d.Redelivered())
	}
	again := Redelivered(batch)
	if _, err := d.Decode(again); err != nil || !d.Redelivered() {
		t.Fatalf("a batch sent again: %v, redelivered %v", err, d.Redelivered())
	}
	if _, err := d.Decode(batch); err != nil || d.Redelivered() {
		t.Fatal("Redelivered changed the original, or the flag stuck")
	}
}
