package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"unsafe"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

// CodecVersion is the first byte of every encoded batch. A decoder refuses
// versions it does not know.
const CodecVersion = 1

// Encoder packs events for the wire: a version byte, the batch's distinct
// processes, then the events, each naming its process by index. Appending
// into reused buffers, it allocates nothing per event once warm.
type Encoder struct {
	procs   []byte
	events  []byte
	out     []byte
	procIdx map[*event.Process]uint32
	nprocs  uint32
	nevents uint32
}

// NewEncoder returns an empty encoder.
func NewEncoder() *Encoder {
	return &Encoder{procIdx: make(map[*event.Process]uint32)}
}

// Reset empties the encoder for the next batch.
func (e *Encoder) Reset() {
	e.procs, e.events = e.procs[:0], e.events[:0]
	clear(e.procIdx)
	e.nprocs, e.nevents = 0, 0
}

// Count is the number of events added since Reset.
func (e *Encoder) Count() uint32 { return e.nevents }

// Bytes returns the encoded batch; valid until the next Reset.
func (e *Encoder) Bytes() []byte {
	e.out = append(e.out[:0], CodecVersion)
	e.out = binary.AppendUvarint(e.out, uint64(e.nprocs))
	e.out = append(e.out, e.procs...)
	return append(e.out, e.events...)
}

// Add encodes ev.
func (e *Encoder) Add(ev *event.Event) {
	e.nevents++
	b := e.events
	b = binary.LittleEndian.AppendUint16(b, uint16(ev.Kind))
	b = binary.LittleEndian.AppendUint16(b, uint16(ev.Flags))
	b = binary.LittleEndian.AppendUint64(b, ev.KernelTimeNs)
	for _, v := range [...]uint32{ev.PID, ev.TID, ev.PPID, ev.UID, ev.GID, ev.EUID, ev.EGID} {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	b = binary.LittleEndian.AppendUint64(b, ev.CgroupID)
	b = appendStr(b, ev.Comm)
	b = binary.AppendUvarint(b, uint64(e.process(ev.Process)))
	switch ev.Kind {
	case event.KindExec:
		x := &ev.Exec
		b = appendStr(appendStr(appendStr(b, x.Filename), x.Exe), x.Args)
		b = binary.LittleEndian.AppendUint32(b, x.ArgsSize)
		b = binary.LittleEndian.AppendUint32(b, x.ExeNlink)
	case event.KindFork:
		b = binary.LittleEndian.AppendUint32(b, ev.Fork.ChildPID)
		b = binary.LittleEndian.AppendUint32(b, ev.Fork.ChildTID)
	case event.KindExit:
		b = binary.LittleEndian.AppendUint32(b, ev.Exit.Code)
		b = binary.LittleEndian.AppendUint32(b, ev.Exit.Signal)
		b = appendBool(b, ev.Exit.CoreDumped)
	case event.KindOpen:
		x := &ev.Open
		b = appendStr(b, string(x.Syscall))
		b = binary.LittleEndian.AppendUint32(b, uint32(x.Dfd))
		b = binary.LittleEndian.AppendUint64(b, x.Flags)
		b = binary.LittleEndian.AppendUint64(b, x.Mode)
		b = binary.LittleEndian.AppendUint64(b, x.Resolve)
		b = appendStr(appendStr(appendStr(b, x.Path), x.Dir), x.Resolved)
		b = binary.LittleEndian.AppendUint64(b, uint64(x.Ret))
	case event.KindConnect:
		x := &ev.Connect
		b = binary.LittleEndian.AppendUint32(b, uint32(x.Fd))
		b = appendBool(b, x.Addr.Is4())
		a16 := x.Addr.As16()
		b = append(b, a16[:]...)
		b = binary.LittleEndian.AppendUint16(b, x.Port)
		b = binary.LittleEndian.AppendUint64(b, uint64(x.Ret))
	case event.KindSetID:
		x := &ev.SetID
		b = appendStr(b, string(x.Syscall))
		for _, v := range [...]uint32{x.Args[0], x.Args[1], x.Args[2], x.Old.Real, x.Old.Effective, x.Old.Saved, x.Old.FS, x.New.Real, x.New.Effective, x.New.Saved, x.New.FS} {
			b = binary.LittleEndian.AppendUint32(b, v)
		}
		b = binary.LittleEndian.AppendUint64(b, uint64(x.Ret))
	case event.KindPtrace:
		b = binary.LittleEndian.AppendUint64(b, uint64(ev.Ptrace.Request))
		b = binary.LittleEndian.AppendUint32(b, ev.Ptrace.TargetPID)
		b = binary.LittleEndian.AppendUint64(b, uint64(ev.Ptrace.Ret))
	case event.KindModule:
		x := &ev.Module
		b = appendStr(b, string(x.Syscall))
		b = binary.LittleEndian.AppendUint64(b, x.Len)
		b = binary.LittleEndian.AppendUint32(b, x.Flags)
		b = appendStr(appendStr(b, x.Params), x.Path)
		b = binary.LittleEndian.AppendUint64(b, uint64(x.Ret))
	case event.KindBPFProg:
		x := &ev.BPFProg
		b = binary.LittleEndian.AppendUint32(b, x.ProgType)
		b = binary.LittleEndian.AppendUint32(b, x.InsnCount)
		b = appendStr(b, x.Name)
		b = binary.LittleEndian.AppendUint64(b, uint64(x.Ret))
	case event.KindMemfd:
		x := &ev.Memfd
		b = appendStr(b, x.Name)
		b = binary.LittleEndian.AppendUint32(b, x.Flags)
		b = binary.LittleEndian.AppendUint64(b, uint64(x.Ret))
	}
	e.events = b
}

// process returns p's index+1 in the batch's process table (0: none),
// encoding it the first time the batch meets it.
func (e *Encoder) process(p *event.Process) uint32 {
	if p == nil {
		return 0
	}
	if i, ok := e.procIdx[p]; ok {
		return i
	}
	e.nprocs++
	e.procIdx[p] = e.nprocs
	b := e.procs
	b = binary.LittleEndian.AppendUint32(b, p.PID)
	b = binary.LittleEndian.AppendUint32(b, p.PPID)
	b = appendStr(appendStr(appendStr(b, p.Exe), p.Comm), p.Args)
	b = binary.LittleEndian.AppendUint32(b, p.UID)
	b = binary.LittleEndian.AppendUint32(b, p.EUID)
	b = binary.LittleEndian.AppendUint64(b, p.CgroupID)
	b = appendStr(appendStr(b, p.CgroupPath), p.ContainerID)
	b = binary.LittleEndian.AppendUint64(b, p.StartKernelNs)
	b = appendBool(b, p.FromProc)
	b = binary.AppendUvarint(b, uint64(len(p.Ancestors)))
	for _, a := range p.Ancestors {
		b = binary.LittleEndian.AppendUint32(b, a.PID)
		b = appendStr(appendStr(b, a.Exe), a.Comm)
	}
	e.procs = b
	return e.nprocs
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// ErrCorrupt is returned for a batch that does not decode.
var ErrCorrupt = errors.New("corrupt event batch")

// Decode unpacks a batch into events, appended to dst. The events' strings
// borrow from b, which must not change while they are in use.
func Decode(b []byte, dst []event.Event) ([]event.Event, error) {
	if len(b) == 0 {
		return dst, fmt.Errorf("%w: empty", ErrCorrupt)
	}
	if b[0] != CodecVersion {
		return dst, fmt.Errorf("event batch codec version %d: this side knows version %d; build the plugin against the same bulkhead release as the monitor", b[0], CodecVersion)
	}
	r := reader{b: b[1:]}
	nprocs := r.uvarint()
	if nprocs > uint64(len(b)) {
		return dst, fmt.Errorf("%w: %d processes in %d bytes", ErrCorrupt, nprocs, len(b))
	}
	procs := make([]event.Process, nprocs)
	for i := range procs {
		p := &procs[i]
		p.PID, p.PPID = r.u32(), r.u32()
		p.Exe, p.Comm, p.Args = r.str(), r.str(), r.str()
		p.UID, p.EUID = r.u32(), r.u32()
		p.CgroupID = r.u64()
		p.CgroupPath, p.ContainerID = r.str(), r.str()
		p.StartKernelNs = r.u64()
		p.FromProc = r.bool()
		n := r.uvarint()
		if n > uint64(len(r.b)) {
			return dst, fmt.Errorf("%w: %d ancestors", ErrCorrupt, n)
		}
		if n > 0 {
			p.Ancestors = make([]event.Ancestor, n)
			for j := range p.Ancestors {
				p.Ancestors[j] = event.Ancestor{PID: r.u32(), Exe: r.str(), Comm: r.str()}
			}
		}
	}
	for len(r.b) > 0 && r.err == nil {
		dst = append(dst, event.Event{})
		ev := &dst[len(dst)-1]
		ev.Kind, ev.Flags = event.Kind(r.u16()), event.Flags(r.u16())
		ev.KernelTimeNs = r.u64()
		ev.PID, ev.TID, ev.PPID, ev.UID, ev.GID, ev.EUID, ev.EGID = r.u32(), r.u32(), r.u32(), r.u32(), r.u32(), r.u32(), r.u32()
		ev.CgroupID = r.u64()
		ev.Comm = r.str()
		if pi := r.uvarint(); pi > 0 {
			if pi > uint64(len(procs)) {
				return dst, fmt.Errorf("%w: process %d of %d", ErrCorrupt, pi, len(procs))
			}
			ev.Process = &procs[pi-1]
		}
		switch ev.Kind {
		case event.KindExec:
			ev.Exec = event.Exec{Filename: r.str(), Exe: r.str(), Args: r.str(), ArgsSize: r.u32(), ExeNlink: r.u32()}
		case event.KindFork:
			ev.Fork = event.Fork{ChildPID: r.u32(), ChildTID: r.u32()}
		case event.KindExit:
			ev.Exit = event.Exit{Code: r.u32(), Signal: r.u32(), CoreDumped: r.bool()}
		case event.KindOpen:
			ev.Open = event.Open{Syscall: event.Syscall(r.str()), Dfd: int32(r.u32()), Flags: r.u64(), Mode: r.u64(), Resolve: r.u64(),
				Path: r.str(), Dir: r.str(), Resolved: r.str(), Ret: int64(r.u64())}
		case event.KindConnect:
			c := &ev.Connect
			c.Fd = int32(r.u32())
			is4 := r.bool()
			c.Addr = netip.AddrFrom16(r.a16())
			if is4 {
				c.Addr = c.Addr.Unmap()
			}
			c.Port = r.u16()
			c.Ret = int64(r.u64())
		case event.KindSetID:
			s := &ev.SetID
			s.Syscall = event.Syscall(r.str())
			s.Args = [3]uint32{r.u32(), r.u32(), r.u32()}
			s.Old = event.IDs{Real: r.u32(), Effective: r.u32(), Saved: r.u32(), FS: r.u32()}
			s.New = event.IDs{Real: r.u32(), Effective: r.u32(), Saved: r.u32(), FS: r.u32()}
			s.Ret = int64(r.u64())
		case event.KindPtrace:
			ev.Ptrace = event.Ptrace{Request: int64(r.u64()), TargetPID: r.u32(), Ret: int64(r.u64())}
		case event.KindModule:
			ev.Module = event.Module{Syscall: event.Syscall(r.str()), Len: r.u64(), Flags: r.u32(), Params: r.str(), Path: r.str(), Ret: int64(r.u64())}
		case event.KindBPFProg:
			ev.BPFProg = event.BPFProg{ProgType: r.u32(), InsnCount: r.u32(), Name: r.str(), Ret: int64(r.u64())}
		case event.KindMemfd:
			ev.Memfd = event.Memfd{Name: r.str(), Flags: r.u32(), Ret: int64(r.u64())}
		default:
			return dst, fmt.Errorf("%w: unknown event kind %d", ErrCorrupt, ev.Kind)
		}
	}
	if r.err != nil {
		return dst, r.err
	}
	return dst, nil
}

// reader reads little-endian values; the first overrun sticks in err and
// every later read returns zero.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil || n > len(r.b) || n < 0 {
		if r.err == nil {
			r.err = fmt.Errorf("%w: truncated", ErrCorrupt)
		}
		r.b = nil
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u16() uint16 {
	if b := r.take(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (r *reader) bool() bool {
	b := r.take(1)
	return b != nil && b[0] != 0
}

func (r *reader) a16() [16]byte {
	var a [16]byte
	copy(a[:], r.take(16))
	return a
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("%w: bad varint", ErrCorrupt)
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.take(len(r.b) + 1)
		return ""
	}
	b := r.take(int(n))
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
