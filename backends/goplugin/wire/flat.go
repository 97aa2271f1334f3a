package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"unsafe"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"google.golang.org/grpc/mem"
)

// FlatVersion is the version of the flat batch layout: the layout of every
// batch the monitor sends a plugin, through the shm ring or on the gRPC
// stream. A decoder refuses any other version. (Recordings keep the
// compact stream codec, Encoder and Decoder.) Version 2 added exec's
// script and environment and the file, namespace, signal, socket and sys
// kinds.
const FlatVersion = 2

// FlatRedelivered is the header flag of a batch the monitor sent before
// (to a process that died or hung with it, or as part of a larger batch).
const FlatRedelivered = 1

// Redelivered returns a copy of the flat batch b marked as sent again.
func Redelivered(b []byte) []byte {
	c := bytes.Clone(b)
	if len(c) >= flatHeaderSize && c[0] == flatTag {
		binary.LittleEndian.PutUint16(c[2:], binary.LittleEndian.Uint16(c[2:])|FlatRedelivered)
	}
	return c
}

// flatTag is a flat batch's first byte: no stream codec version uses it,
// so a decoder of either kind names what it got.
const flatTag = 'F'

// The flat layout. Every record is a fixed part, at fixed offsets, that a
// decoder reads with plain loads, followed by the record's strings; a
// string is an offset (from the record's start) and a length, and is
// viewed, not copied. Little endian, every record 8-aligned and a multiple
// of 8 bytes, padding zero.
//
//	batch    = header record*
//	header   = 'F' version:u8 flags:u16 nevents:u32 nprocs:u32 0:u32 (flatHeader)
//	record   = process | event
//	process  = flatProcess ancestor* strings                         (kind 0xff)
//	ancestor = flatAncestor
//	event    = flatEvent payload strings                             (kind 1…)
//	payload  = the kind's fixed part (flatExec, flatOpen, …)
//
// A process record comes before the first event that refers to it; an
// event refers to its process by number (1-based in the batch; 0: none).
// The structs below are the layout: their field offsets are the byte
// offsets (TestFlatLayout pins them), so encoding and decoding a fixed part
// is one struct copy.
type (
	flatHeader struct {
		Tag     uint8
		Version uint8
		Flags   uint16 // FlatRedelivered
		Events  uint32
		Procs   uint32
		_       uint32
	}
	flatStr struct{ Off, Len uint32 }

	flatEvent struct {
		Len     uint32
		Kind    uint8
		_       uint8
		Flags   uint16
		Time    uint64
		PID     uint32
		TID     uint32
		PPID    uint32
		UID     uint32
		GID     uint32
		EUID    uint32
		EGID    uint32
		Process uint32
		Cgroup  uint64
		Comm    flatStr
	}
	flatProcess struct {
		Len         uint32
		Kind        uint8 // flatProcessKind
		FromProc    uint8
		_           uint16
		PID         uint32
		PPID        uint32
		UID         uint32
		EUID        uint32
		Ancestors   uint32
		_           uint32
		Cgroup      uint64
		Start       uint64
		Exe         flatStr
		Comm        flatStr
		Args        flatStr
		CgroupPath  flatStr
		ContainerID flatStr
	}
	flatAncestor struct {
		PID  uint32
		_    uint32
		Exe  flatStr
		Comm flatStr
	}

	flatExec struct {
		ArgsSize uint32
		ExeNlink uint32
		Filename flatStr
		Exe      flatStr
		Args     flatStr
		Script   flatStr
		Env      flatStr
	}
	flatFork struct{ ChildPID, ChildTID uint32 }
	flatExit struct {
		Code       uint32
		Signal     uint32
		CoreDumped uint8
		_          [7]uint8
	}
	flatOpen struct {
		Dfd      int32
		Nlink    uint32
		FileMode uint32
		_        uint32
		Flags    uint64
		Mode     uint64
		Resolve  uint64
		Ret      int64
		Dev      uint64
		Ino      uint64
		Syscall  flatStr
		Path     flatStr
		Dir      flatStr
		Resolved flatStr
		FilePath flatStr
	}
	flatConnect struct {
		Fd   int32
		Port uint16
		Is4  uint8
		_    uint8
		Ret  int64
		Addr [16]byte
	}
	flatSetID struct {
		Args    [3]uint32
		Old     [4]uint32
		New     [4]uint32
		_       uint32
		Ret     int64
		Syscall flatStr
	}
	flatPtrace struct {
		Request   int64
		TargetPID uint32
		_         uint32
		Ret       int64
	}
	flatModule struct {
		Len     uint64
		Flags   uint32
		_       uint32
		Ret     int64
		Syscall flatStr
		Params  flatStr
		Path    flatStr
	}
	flatBPFProg struct {
		ProgType  uint32
		InsnCount uint32
		Ret       int64
		Name      flatStr
	}
	flatMemfd struct {
		Flags uint32
		_     uint32
		Ret   int64
		Name  flatStr
	}
	flatFile struct {
		Mode        uint32
		UID         uint32
		GID         uint32
		FileMode    uint32
		AtFlags     uint32
		_           uint32
		Length      int64
		Ret         int64
		Dev         uint64
		Ino         uint64
		Op          flatStr
		Syscall     flatStr
		Path        flatStr
		Dir         flatStr
		Resolved    flatStr
		NewPath     flatStr
		NewDir      flatStr
		NewResolved flatStr
		FilePath    flatStr
	}
	flatNamespace struct {
		Flags   uint64
		Ret     int64
		Fd      int32
		_       uint32
		Syscall flatStr
		NsFile  flatStr
		Source  flatStr
		Target  flatStr
		FSType  flatStr
		Dir     flatStr
	}
	flatSignal struct {
		TargetPID  int32
		TargetTID  int32
		Signal     uint32
		_          uint32
		Ret        int64
		Syscall    flatStr
		TargetComm flatStr
	}
	flatSocket struct {
		Fd       int32
		Type     uint32
		Protocol uint32
		Backlog  int32
		Family   uint16
		Port     uint16
		PeerPort uint16
		AddrKind uint8 // flatAddrNone, flatAddr4, flatAddr6
		PeerKind uint8
		Ret      int64
		Addr     [16]byte
		Peer     [16]byte
		Syscall  flatStr
	}
	flatSys struct {
		Op      uint64
		Args    [3]uint64
		Ret     int64
		Syscall flatStr
		Name    flatStr
	}
)

// An address of a socket event: none (the call has none, or it was not
// read), IPv4, or IPv6 (an IPv4-mapped one included), in 16 bytes.
const (
	flatAddrNone = 0
	flatAddr4    = 4
	flatAddr6    = 6
)

func flatAddr(a netip.Addr) (kind uint8, b [16]byte) {
	switch {
	case !a.IsValid():
		return flatAddrNone, b
	case a.Is4():
		return flatAddr4, a.As16()
	}
	return flatAddr6, a.As16()
}

// readFlatAddr is flatAddr's reverse; ok is false for a kind it does not
// write.
func readFlatAddr(kind uint8, b [16]byte) (a netip.Addr, ok bool) {
	switch kind {
	case flatAddrNone:
		return netip.Addr{}, true
	case flatAddr4:
		return netip.AddrFrom16(b).Unmap(), true
	case flatAddr6:
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}

const (
	flatProcessKind   = 0xff
	flatHeaderSize    = int(unsafe.Sizeof(flatHeader{}))
	flatEventSize     = int(unsafe.Sizeof(flatEvent{}))
	flatProcessSize   = int(unsafe.Sizeof(flatProcess{}))
	flatAncestorSize  = int(unsafe.Sizeof(flatAncestor{}))
	flatMinRecordSize = flatEventSize
)

// flatPayloadSize is the size of each kind's fixed payload; 0 for a kind
// the layout does not know.
var flatPayloadSize = [...]int{
	event.KindExec:      int(unsafe.Sizeof(flatExec{})),
	event.KindFork:      int(unsafe.Sizeof(flatFork{})),
	event.KindExit:      int(unsafe.Sizeof(flatExit{})),
	event.KindOpen:      int(unsafe.Sizeof(flatOpen{})),
	event.KindConnect:   int(unsafe.Sizeof(flatConnect{})),
	event.KindSetID:     int(unsafe.Sizeof(flatSetID{})),
	event.KindPtrace:    int(unsafe.Sizeof(flatPtrace{})),
	event.KindModule:    int(unsafe.Sizeof(flatModule{})),
	event.KindBPFProg:   int(unsafe.Sizeof(flatBPFProg{})),
	event.KindMemfd:     int(unsafe.Sizeof(flatMemfd{})),
	event.KindFile:      int(unsafe.Sizeof(flatFile{})),
	event.KindNamespace: int(unsafe.Sizeof(flatNamespace{})),
	event.KindSignal:    int(unsafe.Sizeof(flatSignal{})),
	event.KindSocket:    int(unsafe.Sizeof(flatSocket{})),
	event.KindSys:       int(unsafe.Sizeof(flatSys{})),
}

func payloadSize(k event.Kind) int {
	if int(k) < len(flatPayloadSize) {
		return flatPayloadSize[k]
	}
	return 0
}

// at views b[off:] as a T. The caller has checked that b holds a T there;
// b is 8-aligned (FlatEncoder's buffers, the ring, or the decoder's copy).
func at[T any](b []byte, off int) *T { return (*T)(unsafe.Pointer(&b[off])) }

func align8(n int) int { return (n + 7) &^ 7 }

// FlatEncoder packs events in the flat layout. It allocates nothing per
// event once warm. Call Reset before the first Add of every batch.
type FlatEncoder struct {
	pool  *bufferPool
	bufp  *[]byte
	buf   []byte
	procs procIndex

	nevents uint32
	str     int  // where the record being written puts its next string
	into    bool // ResetInto: buf is the caller's (no Finish)
}

// NewFlatEncoder returns an empty encoder.
func NewFlatEncoder() *FlatEncoder {
	e := &FlatEncoder{pool: &bufferPool{}, procs: newProcIndex()}
	e.Reset()
	return e
}

// Reset empties the encoder for the next batch.
func (e *FlatEncoder) Reset() {
	if e.bufp == nil {
		e.bufp = e.pool.Get(0)
	}
	e.buf = slices.Grow((*e.bufp)[:0], flatHeaderSize)[:flatHeaderSize]
	e.procs.reset()
	e.nevents, e.into = 0, false
}

// ResetInto starts a batch in buf (from its start, up to its capacity),
// for a batch encoded straight into memory the caller owns (a ring
// reservation). Should the batch outgrow buf, it continues in memory of
// its own: Into says whether it stayed.
func (e *FlatEncoder) ResetInto(buf []byte) {
	e.buf = slices.Grow(buf[:0], flatHeaderSize)[:flatHeaderSize]
	e.procs.reset()
	e.nevents, e.into = 0, true
}

// Into says whether the batch is still in buf (given to ResetInto).
func (e *FlatEncoder) Into(buf []byte) bool {
	return cap(buf) > 0 && cap(e.buf) > 0 && &e.buf[:1][0] == &buf[:1][0]
}

// Count is the number of events added since Reset.
func (e *FlatEncoder) Count() uint32 { return e.nevents }

// Len is the size of the batch so far.
func (e *FlatEncoder) Len() int { return len(e.buf) }

// Bytes returns the encoded batch; valid until the next Reset.
func (e *FlatEncoder) Bytes() []byte {
	*at[flatHeader](e.buf, 0) = flatHeader{Tag: flatTag, Version: FlatVersion, Events: e.nevents, Procs: e.procs.n}
	return e.buf
}

// Finish ends the batch and hands over its buffer, with one reference, for
// an OutBatch or the ring; the last Free returns it to the encoder's pool.
func (e *FlatEncoder) Finish() mem.Buffer {
	if e.into {
		panic("wire: Finish of a batch encoded into the caller's memory")
	}
	*e.bufp = e.Bytes()
	b := mem.NewBuffer(e.bufp, e.pool)
	e.bufp, e.buf = nil, nil
	return b
}

// record grows the batch by a record of fixed bytes and the given bytes of
// strings, and returns the record's offset. Strings are then placed with
// put, in any order, starting right after the fixed part.
func (e *FlatEncoder) record(fixed, strings int) int {
	off := len(e.buf)
	n := align8(fixed + strings)
	if cap(e.buf)-off < n {
		e.buf = slices.Grow(e.buf, n)
	}
	e.buf = e.buf[:off+n]
	// Zero the fixed part (the caller sets its fields, not its padding)
	// and the tail padding, so no byte of an earlier batch leaks.
	clear(e.buf[off : off+fixed])
	clear(e.buf[off+n-8 : off+n])
	e.str = off + fixed
	return off
}

// put copies s to the record at off and returns its reference.
func (e *FlatEncoder) put(off int, s string) flatStr {
	if len(s) == 0 {
		return flatStr{}
	}
	r := flatStr{Off: uint32(e.str - off), Len: uint32(len(s))}
	e.str += copy(e.buf[e.str:], s)
	return r
}

// Add encodes ev. An event of a kind the layout does not know is encoded
// with its header only.
func (e *FlatEncoder) Add(ev *event.Event) {
	e.nevents++
	ref := e.process(ev.Process)
	psize, strs := payloadSize(ev.Kind), eventStrings(ev)
	off := e.record(flatEventSize+psize, strs)
	b, p := e.buf, off+flatEventSize
	h := at[flatEvent](b, off)
	h.Len, h.Kind, h.Flags, h.Time = uint32(align8(flatEventSize+psize+strs)), uint8(ev.Kind), uint16(ev.Flags), ev.KernelTimeNs
	h.PID, h.TID, h.PPID, h.UID, h.GID, h.EUID, h.EGID = ev.PID, ev.TID, ev.PPID, ev.UID, ev.GID, ev.EUID, ev.EGID
	h.Process, h.Cgroup, h.Comm = ref, ev.CgroupID, e.put(off, ev.Comm)
	switch ev.Kind {
	case event.KindExec:
		x, f := &ev.Exec, at[flatExec](b, p)
		f.ArgsSize, f.ExeNlink = x.ArgsSize, x.ExeNlink
		f.Filename, f.Exe, f.Args = e.put(off, x.Filename), e.put(off, x.Exe), e.put(off, x.Args)
		f.Script, f.Env = e.put(off, x.Script), e.put(off, x.Env)
	case event.KindFork:
		f := at[flatFork](b, p)
		f.ChildPID, f.ChildTID = ev.Fork.ChildPID, ev.Fork.ChildTID
	case event.KindExit:
		x, f := &ev.Exit, at[flatExit](b, p)
		f.Code, f.Signal = x.Code, x.Signal
		if x.CoreDumped {
			f.CoreDumped = 1
		}
	case event.KindOpen:
		x, f := &ev.Open, at[flatOpen](b, p)
		f.Dfd, f.Nlink, f.FileMode = x.Dfd, x.Nlink, x.FileMode
		f.Flags, f.Mode, f.Resolve, f.Ret, f.Dev, f.Ino = x.Flags, x.Mode, x.Resolve, x.Ret, x.Dev, x.Ino
		f.Syscall, f.Path, f.Dir = e.put(off, string(x.Syscall)), e.put(off, x.Path), e.put(off, x.Dir)
		f.Resolved, f.FilePath = e.put(off, x.Resolved), e.put(off, x.FilePath)
	case event.KindConnect:
		x, f := &ev.Connect, at[flatConnect](b, p)
		f.Fd, f.Port, f.Ret, f.Addr = x.Fd, x.Port, x.Ret, x.Addr.As16()
		if x.Addr.Is4() {
			f.Is4 = 1
		}
	case event.KindSetID:
		x, f := &ev.SetID, at[flatSetID](b, p)
		f.Args = x.Args
		f.Old = [4]uint32{x.Old.Real, x.Old.Effective, x.Old.Saved, x.Old.FS}
		f.New = [4]uint32{x.New.Real, x.New.Effective, x.New.Saved, x.New.FS}
		f.Ret, f.Syscall = x.Ret, e.put(off, string(x.Syscall))
	case event.KindPtrace:
		x, f := &ev.Ptrace, at[flatPtrace](b, p)
		f.Request, f.TargetPID, f.Ret = x.Request, x.TargetPID, x.Ret
	case event.KindModule:
		x, f := &ev.Module, at[flatModule](b, p)
		f.Len, f.Flags, f.Ret = x.Len, x.Flags, x.Ret
		f.Syscall, f.Params, f.Path = e.put(off, string(x.Syscall)), e.put(off, x.Params), e.put(off, x.Path)
	case event.KindBPFProg:
		x, f := &ev.BPFProg, at[flatBPFProg](b, p)
		f.ProgType, f.InsnCount, f.Ret, f.Name = x.ProgType, x.InsnCount, x.Ret, e.put(off, x.Name)
	case event.KindMemfd:
		x, f := &ev.Memfd, at[flatMemfd](b, p)
		f.Flags, f.Ret, f.Name = x.Flags, x.Ret, e.put(off, x.Name)
	case event.KindFile:
		x, f := &ev.File, at[flatFile](b, p)
		f.Mode, f.UID, f.GID, f.FileMode, f.AtFlags = x.Mode, x.UID, x.GID, x.FileMode, x.AtFlags
		f.Length, f.Ret, f.Dev, f.Ino = x.Length, x.Ret, x.Dev, x.Ino
		f.Op, f.Syscall = e.put(off, string(x.Op)), e.put(off, string(x.Syscall))
		f.Path, f.Dir, f.Resolved = e.put(off, x.Path), e.put(off, x.Dir), e.put(off, x.Resolved)
		f.NewPath, f.NewDir, f.NewResolved = e.put(off, x.NewPath), e.put(off, x.NewDir), e.put(off, x.NewResolved)
		f.FilePath = e.put(off, x.FilePath)
	case event.KindNamespace:
		x, f := &ev.Namespace, at[flatNamespace](b, p)
		f.Flags, f.Ret, f.Fd = x.Flags, x.Ret, x.Fd
		f.Syscall, f.NsFile, f.Source = e.put(off, string(x.Syscall)), e.put(off, x.NsFile), e.put(off, x.Source)
		f.Target, f.FSType, f.Dir = e.put(off, x.Target), e.put(off, x.FSType), e.put(off, x.Dir)
	case event.KindSignal:
		x, f := &ev.Signal, at[flatSignal](b, p)
		f.TargetPID, f.TargetTID, f.Signal, f.Ret = x.TargetPID, x.TargetTID, x.Signal, x.Ret
		f.Syscall, f.TargetComm = e.put(off, string(x.Syscall)), e.put(off, x.TargetComm)
	case event.KindSocket:
		x, f := &ev.Socket, at[flatSocket](b, p)
		f.Fd, f.Type, f.Protocol, f.Backlog, f.Family = x.Fd, x.Type, x.Protocol, x.Backlog, x.Family
		f.Port, f.PeerPort, f.Ret = x.Port, x.PeerPort, x.Ret
		f.AddrKind, f.Addr = flatAddr(x.Addr)
		f.PeerKind, f.Peer = flatAddr(x.Peer)
		f.Syscall = e.put(off, string(x.Syscall))
	case event.KindSys:
		x, f := &ev.Sys, at[flatSys](b, p)
		f.Op, f.Args, f.Ret = x.Op, x.Args, x.Ret
		f.Syscall, f.Name = e.put(off, string(x.Syscall)), e.put(off, x.Name)
	}
}

// FlatSize is how many bytes ev takes in a flat batch of its own: its
// record and its process's. A batch of several events takes at most the
// batch header and the sum of theirs (processes are written once).
func FlatSize(ev *event.Event) int {
	n := align8(flatEventSize + payloadSize(ev.Kind) + eventStrings(ev))
	if p := ev.Process; p != nil {
		n += align8(flatProcessSize + len(p.Ancestors)*flatAncestorSize + processStrings(p))
	}
	return n
}

// eventStrings is the bytes of ev's strings, as its record carries them.
func eventStrings(ev *event.Event) int {
	n := len(ev.Comm)
	switch ev.Kind {
	case event.KindExec:
		x := &ev.Exec
		n += len(x.Filename) + len(x.Exe) + len(x.Args) + len(x.Script) + len(x.Env)
	case event.KindOpen:
		x := &ev.Open
		n += len(x.Syscall) + len(x.Path) + len(x.Dir) + len(x.Resolved) + len(x.FilePath)
	case event.KindSetID:
		n += len(ev.SetID.Syscall)
	case event.KindModule:
		n += len(ev.Module.Syscall) + len(ev.Module.Params) + len(ev.Module.Path)
	case event.KindBPFProg:
		n += len(ev.BPFProg.Name)
	case event.KindMemfd:
		n += len(ev.Memfd.Name)
	case event.KindFile:
		x := &ev.File
		n += len(x.Op) + len(x.Syscall) + len(x.Path) + len(x.Dir) + len(x.Resolved) +
			len(x.NewPath) + len(x.NewDir) + len(x.NewResolved) + len(x.FilePath)
	case event.KindNamespace:
		x := &ev.Namespace
		n += len(x.Syscall) + len(x.NsFile) + len(x.Source) + len(x.Target) + len(x.FSType) + len(x.Dir)
	case event.KindSignal:
		n += len(ev.Signal.Syscall) + len(ev.Signal.TargetComm)
	case event.KindSocket:
		n += len(ev.Socket.Syscall)
	case event.KindSys:
		n += len(ev.Sys.Syscall) + len(ev.Sys.Name)
	}
	return n
}

// processStrings is the bytes of p's strings, ancestors' included.
func processStrings(p *event.Process) int {
	n := len(p.Exe) + len(p.Comm) + len(p.Args) + len(p.CgroupPath) + len(p.ContainerID)
	for _, a := range p.Ancestors {
		n += len(a.Exe) + len(a.Comm)
	}
	return n
}

// FlatBatchHeaderSize is the size of a flat batch's header.
const FlatBatchHeaderSize = flatHeaderSize

// process returns p's number in the batch (0: none), writing its record
// the first time the batch meets it.
func (e *FlatEncoder) process(p *event.Process) uint32 {
	i, first := e.procs.ref(p)
	if first {
		e.writeProcess(p)
	}
	return i
}

func (e *FlatEncoder) writeProcess(p *event.Process) {
	strs := processStrings(p)
	fixed := flatProcessSize + len(p.Ancestors)*flatAncestorSize
	off := e.record(fixed, strs)
	fp := flatProcess{Len: uint32(align8(fixed + strs)), Kind: flatProcessKind, PID: p.PID, PPID: p.PPID, UID: p.UID, EUID: p.EUID,
		Ancestors: uint32(len(p.Ancestors)), Cgroup: p.CgroupID, Start: p.StartKernelNs,
		Exe: e.put(off, p.Exe), Comm: e.put(off, p.Comm), Args: e.put(off, p.Args),
		CgroupPath: e.put(off, p.CgroupPath), ContainerID: e.put(off, p.ContainerID)}
	if p.FromProc {
		fp.FromProc = 1
	}
	*at[flatProcess](e.buf, off) = fp
	for i, a := range p.Ancestors {
		*at[flatAncestor](e.buf, off+flatProcessSize+i*flatAncestorSize) = flatAncestor{PID: a.PID, Exe: e.put(off, a.Exe), Comm: e.put(off, a.Comm)}
	}
}

// FlatDecoder unpacks flat batches, reusing its memory from one batch to
// the next.
type FlatDecoder struct {
	events    []event.Event
	procs     []event.Process
	ancestors []event.Ancestor
	aligned   []byte // a copy of a batch that is not 8-aligned
	flags     uint16 // of the batch last decoded
}

// Redelivered says whether the batch last decoded was sent before.
func (d *FlatDecoder) Redelivered() bool { return d.flags&FlatRedelivered != 0 }

// Decode unpacks a flat batch. The events, their processes and every
// string in them view b (or the decoder's copy of it) and the decoder:
// they are valid until the next Decode and while b is unchanged. Clone an
// event to keep it. A batch that is not well formed is refused whole.
func (d *FlatDecoder) Decode(b []byte) ([]event.Event, error) {
	d.events, d.procs, d.ancestors, d.flags = d.events[:0], d.procs[:0], d.ancestors[:0], 0
	if len(b) < flatHeaderSize {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the batch header", ErrCorrupt, len(b))
	}
	if b[0] != flatTag {
		return nil, fmt.Errorf("%w: not a flat batch (first byte %#x); build the plugin against the same bulkhead release as the monitor", ErrCorrupt, b[0])
	}
	if b[1] != FlatVersion {
		return nil, fmt.Errorf("flat batch layout version %d: this side reads version %d; build the plugin against the same bulkhead release as the monitor", b[1], FlatVersion)
	}
	if uintptr(unsafe.Pointer(&b[0]))&7 != 0 {
		d.aligned = append(d.aligned[:0], b...) // a fresh allocation is 8-aligned
		b = d.aligned
	}
	h := at[flatHeader](b, 0)
	nevents, nprocs := h.Events, h.Procs
	d.flags = h.Flags
	// Counts that cannot fit are corrupt and must not size an allocation.
	if uint64(nprocs)*uint64(flatProcessSize)+uint64(nevents)*uint64(flatMinRecordSize) > uint64(len(b)-flatHeaderSize) {
		return nil, fmt.Errorf("%w: %d processes and %d events in %d bytes", ErrCorrupt, nprocs, nevents, len(b))
	}
	// Sized once: events point into procs, which must not move.
	if cap(d.procs) < int(nprocs) {
		d.procs = make([]event.Process, 0, nprocs)
	}
	if cap(d.events) < int(nevents) {
		d.events = make([]event.Event, 0, nevents)
	}
	for off := flatHeaderSize; off < len(b); {
		if len(b)-off < 8 {
			return nil, fmt.Errorf("%w: %d stray bytes at the end", ErrCorrupt, len(b)-off)
		}
		n := int(*at[uint32](b, off))
		if n < flatEventSize || n&7 != 0 || n > len(b)-off {
			return nil, fmt.Errorf("%w: record of %d bytes at %d of %d", ErrCorrupt, n, off, len(b))
		}
		rec := b[off : off+n : off+n]
		off += n
		if rec[4] == flatProcessKind {
			if len(d.procs) == int(nprocs) {
				return nil, fmt.Errorf("%w: more processes than the %d announced", ErrCorrupt, nprocs)
			}
			d.procs = append(d.procs, event.Process{})
			if err := d.readProcess(rec, &d.procs[len(d.procs)-1]); err != nil {
				return nil, err
			}
			continue
		}
		if len(d.events) == int(nevents) {
			return nil, fmt.Errorf("%w: more events than the %d announced", ErrCorrupt, nevents)
		}
		i := len(d.events)
		d.events = d.events[:i+1]
		d.events[i].Reset()
		if err := d.readEvent(rec, &d.events[i]); err != nil {
			return nil, err
		}
	}
	if len(d.events) != int(nevents) || len(d.procs) != int(nprocs) {
		return nil, fmt.Errorf("%w: %d events and %d processes, %d and %d announced", ErrCorrupt, len(d.events), len(d.procs), nevents, nprocs)
	}
	return d.events, nil
}

// DecodeFlat unpacks a flat batch into newly allocated events.
func DecodeFlat(b []byte) ([]event.Event, error) {
	var d FlatDecoder
	return d.Decode(b)
}

// strs resolves a record's string references; the first that does not lie
// inside the record makes ok false.
type strs struct {
	rec []byte
	bad bool
}

func (s *strs) get(r flatStr) string {
	if r.Len == 0 {
		return ""
	}
	if uint64(r.Off)+uint64(r.Len) > uint64(len(s.rec)) {
		s.bad = true
		return ""
	}
	return unsafe.String(&s.rec[r.Off], int(r.Len))
}

func (d *FlatDecoder) readProcess(rec []byte, p *event.Process) error {
	if len(rec) < flatProcessSize {
		return fmt.Errorf("%w: process record of %d bytes", ErrCorrupt, len(rec))
	}
	fp := at[flatProcess](rec, 0)
	if uint64(fp.Ancestors)*uint64(flatAncestorSize) > uint64(len(rec)-flatProcessSize) {
		return fmt.Errorf("%w: %d ancestors in a process record of %d bytes", ErrCorrupt, fp.Ancestors, len(rec))
	}
	s := strs{rec: rec}
	*p = event.Process{PID: fp.PID, PPID: fp.PPID, UID: fp.UID, EUID: fp.EUID, CgroupID: fp.Cgroup, StartKernelNs: fp.Start,
		FromProc: fp.FromProc != 0, Exe: s.get(fp.Exe), Comm: s.get(fp.Comm), Args: s.get(fp.Args),
		CgroupPath: s.get(fp.CgroupPath), ContainerID: s.get(fp.ContainerID)}
	if n := int(fp.Ancestors); n > 0 {
		start := len(d.ancestors)
		for i := range n {
			fa := at[flatAncestor](rec, flatProcessSize+i*flatAncestorSize)
			d.ancestors = append(d.ancestors, event.Ancestor{PID: fa.PID, Exe: s.get(fa.Exe), Comm: s.get(fa.Comm)})
		}
		// If append moved the arena, earlier processes keep the old
		// array, which stays alive and unchanged.
		p.Ancestors = d.ancestors[start:len(d.ancestors):len(d.ancestors)]
	}
	if s.bad {
		return fmt.Errorf("%w: a string of process %d lies outside its record", ErrCorrupt, fp.PID)
	}
	return nil
}

func (d *FlatDecoder) readEvent(rec []byte, ev *event.Event) error {
	fe := at[flatEvent](rec, 0)
	kind := event.Kind(fe.Kind)
	psize := payloadSize(kind)
	if psize == 0 {
		return fmt.Errorf("%w: unknown event kind %d", ErrCorrupt, kind)
	}
	if len(rec) < flatEventSize+psize {
		return fmt.Errorf("%w: %s event record of %d bytes", ErrCorrupt, kind, len(rec))
	}
	s := strs{rec: rec}
	// ev was Reset: setting fields is cheaper than a struct copy.
	h := &ev.Header
	h.Kind, h.Flags, h.KernelTimeNs = kind, event.Flags(fe.Flags), fe.Time
	h.PID, h.TID, h.PPID, h.UID, h.GID, h.EUID, h.EGID = fe.PID, fe.TID, fe.PPID, fe.UID, fe.GID, fe.EUID, fe.EGID
	h.CgroupID, h.Comm = fe.Cgroup, s.get(fe.Comm)
	if ref := fe.Process; ref > 0 {
		if uint64(ref) > uint64(len(d.procs)) {
			return fmt.Errorf("%w: event refers to process %d before it was sent (%d so far)", ErrCorrupt, ref, len(d.procs))
		}
		ev.Process = &d.procs[ref-1]
	}
	const p = flatEventSize
	switch kind {
	case event.KindExec:
		x := at[flatExec](rec, p)
		ev.Exec = event.Exec{Filename: s.get(x.Filename), Exe: s.get(x.Exe), Args: s.get(x.Args), ArgsSize: x.ArgsSize, ExeNlink: x.ExeNlink,
			Script: s.get(x.Script), Env: s.get(x.Env)}
	case event.KindFork:
		x := at[flatFork](rec, p)
		ev.Fork = event.Fork{ChildPID: x.ChildPID, ChildTID: x.ChildTID}
	case event.KindExit:
		x := at[flatExit](rec, p)
		ev.Exit = event.Exit{Code: x.Code, Signal: x.Signal, CoreDumped: x.CoreDumped != 0}
	case event.KindOpen:
		x, o := at[flatOpen](rec, p), &ev.Open
		o.Syscall, o.Dfd, o.Flags, o.Mode, o.Resolve, o.Ret = event.Syscall(s.get(x.Syscall)), x.Dfd, x.Flags, x.Mode, x.Resolve, x.Ret
		o.Path, o.Dir, o.Resolved = s.get(x.Path), s.get(x.Dir), s.get(x.Resolved)
		o.FilePath, o.Dev, o.Ino, o.Nlink, o.FileMode = s.get(x.FilePath), x.Dev, x.Ino, x.Nlink, x.FileMode
	case event.KindConnect:
		x := at[flatConnect](rec, p)
		addr := netip.AddrFrom16(x.Addr)
		if x.Is4 != 0 {
			addr = addr.Unmap()
		}
		ev.Connect = event.Connect{Fd: x.Fd, Port: x.Port, Ret: x.Ret, Addr: addr}
	case event.KindSetID:
		x := at[flatSetID](rec, p)
		ev.SetID = event.SetID{Syscall: event.Syscall(s.get(x.Syscall)), Args: x.Args, Ret: x.Ret,
			Old: event.IDs{Real: x.Old[0], Effective: x.Old[1], Saved: x.Old[2], FS: x.Old[3]},
			New: event.IDs{Real: x.New[0], Effective: x.New[1], Saved: x.New[2], FS: x.New[3]}}
	case event.KindPtrace:
		x := at[flatPtrace](rec, p)
		ev.Ptrace = event.Ptrace{Request: x.Request, TargetPID: x.TargetPID, Ret: x.Ret}
	case event.KindModule:
		x := at[flatModule](rec, p)
		ev.Module = event.Module{Syscall: event.Syscall(s.get(x.Syscall)), Len: x.Len, Flags: x.Flags, Ret: x.Ret,
			Params: s.get(x.Params), Path: s.get(x.Path)}
	case event.KindBPFProg:
		x := at[flatBPFProg](rec, p)
		ev.BPFProg = event.BPFProg{ProgType: x.ProgType, InsnCount: x.InsnCount, Ret: x.Ret, Name: s.get(x.Name)}
	case event.KindMemfd:
		x := at[flatMemfd](rec, p)
		ev.Memfd = event.Memfd{Flags: x.Flags, Ret: x.Ret, Name: s.get(x.Name)}
	case event.KindFile:
		x, f := at[flatFile](rec, p), &ev.File
		f.Op, f.Syscall = event.FileOp(s.get(x.Op)), event.Syscall(s.get(x.Syscall))
		f.Path, f.Dir, f.Resolved = s.get(x.Path), s.get(x.Dir), s.get(x.Resolved)
		f.NewPath, f.NewDir, f.NewResolved = s.get(x.NewPath), s.get(x.NewDir), s.get(x.NewResolved)
		f.FilePath, f.Dev, f.Ino, f.FileMode = s.get(x.FilePath), x.Dev, x.Ino, x.FileMode
		f.Mode, f.UID, f.GID, f.Length, f.AtFlags, f.Ret = x.Mode, x.UID, x.GID, x.Length, x.AtFlags, x.Ret
	case event.KindNamespace:
		x, n := at[flatNamespace](rec, p), &ev.Namespace
		n.Syscall, n.Flags, n.Fd, n.Ret = event.Syscall(s.get(x.Syscall)), x.Flags, x.Fd, x.Ret
		n.NsFile, n.Source, n.Target, n.FSType, n.Dir = s.get(x.NsFile), s.get(x.Source), s.get(x.Target), s.get(x.FSType), s.get(x.Dir)
	case event.KindSignal:
		x := at[flatSignal](rec, p)
		ev.Signal = event.Signal{Syscall: event.Syscall(s.get(x.Syscall)), TargetPID: x.TargetPID, TargetTID: x.TargetTID,
			TargetComm: s.get(x.TargetComm), Signal: x.Signal, Ret: x.Ret}
	case event.KindSocket:
		x, k := at[flatSocket](rec, p), &ev.Socket
		addr, ok1 := readFlatAddr(x.AddrKind, x.Addr)
		peer, ok2 := readFlatAddr(x.PeerKind, x.Peer)
		if !ok1 || !ok2 {
			return fmt.Errorf("%w: socket event with address kinds %d and %d", ErrCorrupt, x.AddrKind, x.PeerKind)
		}
		k.Syscall, k.Fd, k.Family, k.Type, k.Protocol = event.Syscall(s.get(x.Syscall)), x.Fd, x.Family, x.Type, x.Protocol
		k.Addr, k.Port, k.Peer, k.PeerPort, k.Backlog, k.Ret = addr, x.Port, peer, x.PeerPort, x.Backlog, x.Ret
	case event.KindSys:
		x := at[flatSys](rec, p)
		ev.Sys = event.Sys{Syscall: event.Syscall(s.get(x.Syscall)), Op: x.Op, Args: x.Args, Name: s.get(x.Name), Ret: x.Ret}
	}
	if s.bad {
		return fmt.Errorf("%w: a string of a %s event lies outside its record", ErrCorrupt, kind)
	}
	return nil
}
