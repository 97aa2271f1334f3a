package decode

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"unsafe"

	"github.com/bulkhead-sec/bulkhead/bpf"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"golang.org/x/sys/unix"
)

// Errors a record can fail with. They are sentinel values so that counting
// them on the hot path allocates nothing.
var (
	ErrShort       = errors.New("record is shorter than its kind's fixed layout")
	ErrUnknownKind = errors.New("record has an unknown kind")
	ErrBadString   = errors.New("record has a string reference outside the record")
)

// Stats count what the decoder saw.
type Stats struct {
	Decoded     [event.KindCount]uint64
	Short       uint64
	UnknownKind uint64
	BadString   uint64
}

// Errors is the number of records skipped as malformed.
func (s Stats) Errors() uint64 { return s.Short + s.UnknownKind + s.BadString }

// Total is the number of records decoded.
func (s Stats) Total() uint64 {
	var n uint64
	for _, d := range s.Decoded {
		n += d
	}
	return n
}

// Decoder turns ring-buffer records into events. It is not safe for
// concurrent use: the pipeline has one, on the reader goroutine.
type Decoder struct {
	stats Stats
	// scratch holds strings the decoder builds (paths put back in order);
	// like the record itself, it is reused for the next record.
	scratch []byte
}

// New returns a Decoder.
func New() *Decoder {
	return &Decoder{scratch: make([]byte, 0, 16<<10)}
}

// Stats returns the counts so far.
func (d *Decoder) Stats() Stats { return d.stats }

var (
	offKind = unsafe.Offsetof(bpf.HeaderRecord{}.Kind)
	offComm = unsafe.Offsetof(bpf.HeaderRecord{}.Comm)
	offName = unsafe.Offsetof(bpf.BPFProgRecord{}.ProgName)
)

const headerSize = int(unsafe.Sizeof(bpf.HeaderRecord{}))

// Decode fills ev from raw. The strings in ev borrow from raw and from the
// decoder: they stay valid until the next call (see event.Event.Clone). A
// malformed record is counted and reported; ev is then unspecified.
func (d *Decoder) Decode(raw []byte, ev *event.Event) error {
	err := d.decode(raw, ev)
	switch err {
	case nil:
		d.stats.Decoded[ev.Kind]++
	case ErrShort:
		d.stats.Short++
	case ErrUnknownKind:
		d.stats.UnknownKind++
	case ErrBadString:
		d.stats.BadString++
	}
	return err
}

func (d *Decoder) decode(raw []byte, ev *event.Event) error {
	// Only the header and the payload of its kind can be set (see
	// event.Event): clearing those is a third of zeroing the whole value.
	ev.Reset()
	d.scratch = d.scratch[:0]
	if len(raw) < headerSize {
		return ErrShort
	}
	switch uint16(raw[offKind]) | uint16(raw[offKind+1])<<8 {
	case bpf.RecordExec:
		return d.exec(raw, ev)
	case bpf.RecordFork:
		var r bpf.ForkRecord
		if !load(raw, &r) {
			return ErrShort
		}
		header(raw, &r.H, ev)
		ev.Fork = event.Fork{ChildPID: r.ChildPid, ChildTID: r.ChildTid}
	case bpf.RecordExit:
		var r bpf.ExitRecord
		if !load(raw, &r) {
			return ErrShort
		}
		header(raw, &r.H, ev)
		ev.Exit = event.Exit{Code: r.ExitCode, Signal: r.Signal, CoreDumped: r.CoreDumped != 0}
	case bpf.RecordOpen:
		return d.open(raw, ev)
	case bpf.RecordConnect:
		var r bpf.ConnectRecord
		if !load(raw, &r) {
			return ErrShort
		}
		header(raw, &r.H, ev)
		ev.Connect = event.Connect{Fd: r.Fd, Port: r.Port, Ret: r.Ret}
		if r.Family == afInet {
			ev.Connect.Addr = netip.AddrFrom4([4]byte(r.Addr[:4]))
		} else {
			ev.Connect.Addr = netip.AddrFrom16(r.Addr)
		}
	case bpf.RecordSetID:
		var r bpf.SetIDRecord
		if !load(raw, &r) {
			return ErrShort
		}
		header(raw, &r.H, ev)
		ev.SetID = event.SetID{
			Syscall: whatName(r.What),
			Args:    r.Args,
			Old:     event.IDs{Real: r.OldIds[0], Effective: r.OldIds[1], Saved: r.OldIds[2], FS: r.OldIds[3]},
			New:     event.IDs{Real: r.NewIds[0], Effective: r.NewIds[1], Saved: r.NewIds[2], FS: r.NewIds[3]},
			Ret:     r.Ret,
		}
	case bpf.RecordPtrace:
		var r bpf.PtraceRecord
		if !load(raw, &r) {
			return ErrShort
		}
		header(raw, &r.H, ev)
		ev.Ptrace = event.Ptrace{Request: r.Request, TargetPID: r.TargetPid, Ret: r.Ret}
	case bpf.RecordModule:
		return d.module(raw, ev)
	case bpf.RecordBPFProg:
		var r bpf.BPFProgRecord
		if !load(raw, &r) {
			return ErrShort
		}
		header(raw, &r.H, ev)
		ev.BPFProg = event.BPFProg{ProgType: r.ProgType, InsnCount: r.InsnCnt, Ret: r.Ret,
			Name: cstring(raw[offName : offName+uintptr(len(r.ProgName))])}
	case bpf.RecordMemfd:
		var r bpf.MemfdRecord
		if !load(raw, &r) {
			return ErrShort
		}
		header(raw, &r.H, ev)
		name, ok := view(raw, r.Name)
		if !ok {
			return ErrBadString
		}
		ev.Memfd = event.Memfd{Name: name, Flags: r.Flags, Ret: r.Ret}
	default:
		return ErrUnknownKind
	}
	return nil
}

const afInet = 2

func (d *Decoder) exec(raw []byte, ev *event.Event) error {
	var r bpf.ExecRecord
	if !load(raw, &r) {
		return ErrShort
	}
	header(raw, &r.H, ev)
	args, ok1 := view(raw, r.Args)
	filename, ok2 := view(raw, r.Filename)
	exe, ok3 := view(raw, r.Exe)
	if !ok1 || !ok2 || !ok3 {
		return ErrBadString
	}
	ev.Exec = event.Exec{
		Filename: filename,
		Exe:      d.joinWalk(exe, ev.Flags&event.FlagPseudoPath != 0),
		Args:     args,
		ArgsSize: r.ArgsSize,
		ExeNlink: r.ExeNlink,
	}
	return nil
}

const atFdcwd = -100

func (d *Decoder) open(raw []byte, ev *event.Event) error {
	var r bpf.OpenRecord
	if !load(raw, &r) {
		return ErrShort
	}
	header(raw, &r.H, ev)
	path, ok1 := view(raw, r.Path)
	dir, ok2 := view(raw, r.Dir)
	file, ok3 := view(raw, r.File)
	if !ok1 || !ok2 || !ok3 {
		return ErrBadString
	}
	o := event.Open{Syscall: whatName(r.What), Dfd: r.Dfd, Flags: r.Flags, Mode: r.Mode, Resolve: r.Resolve, Path: path, Ret: r.Ret}
	if r.Ret >= 0 {
		// A walk cut short is joined without its leading slash, like a
		// pseudo file's name: only a complete walk is a path from the root.
		o.FilePath = d.joinWalk(file, ev.Flags&(event.FlagFilePseudo|event.FlagFileTruncWalk) != 0)
		o.Dev = devFromKernel(r.Dev)
		o.Ino, o.Nlink, o.FileMode = r.Ino, r.Nlink, r.Imode
	}
	switch {
	case len(path) > 0 && path[0] == '/':
		o.Resolved = path
		if needsClean(path) {
			o.Resolved = d.clean("/", path)
		}
	case dir != "":
		o.Dir = d.joinWalk(dir, ev.Flags&event.FlagPseudoPath != 0)
		o.Resolved = d.clean(o.Dir, path)
	case r.Dfd == atFdcwd && len(path) > 0 && ev.Flags&event.FlagTruncWalk == 0:
		// The walk wrote no component: the working directory is the root.
		o.Dir = "/"
		o.Resolved = d.clean("/", path)
	}
	ev.Open = o
	return nil
}

func (d *Decoder) module(raw []byte, ev *event.Event) error {
	var r bpf.ModuleRecord
	if !load(raw, &r) {
		return ErrShort
	}
	header(raw, &r.H, ev)
	params, ok1 := view(raw, r.Params)
	path, ok2 := view(raw, r.Path)
	if !ok1 || !ok2 {
		return ErrBadString
	}
	ev.Module = event.Module{Syscall: whatName(r.What), Len: r.Len, Flags: r.Flags, Params: params,
		Path: d.joinWalk(path, ev.Flags&event.FlagPseudoPath != 0), Ret: r.Ret}
	return nil
}

// devFromKernel turns a kernel dev_t (major << 20 | minor) into the
// encoding stat(2) reports as st_dev, so identities compare with a stat.
func devFromKernel(dev uint32) uint64 {
	return unix.Mkdev(dev>>20, dev&(1<<20-1))
}

// load copies the fixed part of a record into an aligned Go value.
func load[T any](raw []byte, rec *T) bool {
	n := int(unsafe.Sizeof(*rec))
	if len(raw) < n {
		return false
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(rec)), n), raw[:n])
	return true
}

func header(raw []byte, h *bpf.HeaderRecord, ev *event.Event) {
	ev.Header = event.Header{
		Kind:         event.Kind(h.Kind),
		Flags:        event.Flags(h.Flags),
		KernelTimeNs: h.TsNs,
		PID:          h.Pid,
		TID:          h.Tid,
		PPID:         h.Ppid,
		UID:          h.Uid,
		GID:          h.Gid,
		EUID:         h.Euid,
		EGID:         h.Egid,
		CgroupID:     h.CgroupId,
		Comm:         cstring(raw[offComm : offComm+uintptr(len(h.Comm))]),
	}
}

// view borrows the string a reference points at, checking it lies inside raw.
func view(raw []byte, ref bpf.StrRef) (string, bool) {
	if ref.Len == 0 {
		return "", true
	}
	end := int(ref.Off) + int(ref.Len)
	if end > len(raw) {
		return "", false
	}
	return unsafe.String(&raw[ref.Off], int(ref.Len)), true
}

// cstring borrows b up to its first NUL.
func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// joinWalk puts the leaf-first, NUL-terminated components of a kernel path
// walk back in order: "b\x00a\x00" becomes "/a/b". A pseudo path (memfd,
// pipe) has no root and keeps no leading slash.
func (d *Decoder) joinWalk(comps string, pseudo bool) string {
	if comps == "" {
		return ""
	}
	start := len(d.scratch)
	end := len(comps)
	if comps[end-1] == 0 {
		end--
	}
	first := true
	for end >= 0 {
		i := end - 1
		for i >= 0 && comps[i] != 0 {
			i--
		}
		if !(pseudo && first) {
			d.scratch = append(d.scratch, '/')
		}
		d.scratch = append(d.scratch, comps[i+1:end]...)
		first = false
		end = i
	}
	return d.borrow(start)
}

// clean joins dir and a path and removes ".", ".." and repeated slashes,
// lexically (symlinks are not followed: user space cannot see
// what the kernel resolved).
func (d *Decoder) clean(dir, rel string) string {
	start := len(d.scratch)
	d.scratch = append(d.scratch, dir...)
	for len(rel) > 0 {
		var seg string
		if i := strings.IndexByte(rel, '/'); i >= 0 {
			seg, rel = rel[:i], rel[i+1:]
		} else {
			seg, rel = rel, ""
		}
		switch seg {
		case "", ".":
		case "..":
			if j := bytes.LastIndexByte(d.scratch[start:], '/'); j > 0 {
				d.scratch = d.scratch[:start+j]
			} else {
				d.scratch = d.scratch[:start]
			}
		default:
			if n := len(d.scratch); n == start || d.scratch[n-1] != '/' {
				d.scratch = append(d.scratch, '/')
			}
			d.scratch = append(d.scratch, seg...)
		}
	}
	if len(d.scratch) == start {
		d.scratch = append(d.scratch, '/')
	}
	return d.borrow(start)
}

// needsClean reports whether an absolute path has a "//", "." or ".."
// that clean would remove: most do not, and keep their own bytes.
func needsClean(p string) bool {
	if len(p) > 1 && p[len(p)-1] == '/' {
		return true
	}
	// Most paths have neither: two vectorised scans decide.
	if strings.IndexByte(p, '.') < 0 && !strings.Contains(p, "//") {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '/' || i+1 == len(p) {
			continue
		}
		switch p[i+1] {
		case '/':
			return true
		case '.':
			rest := p[i+2:]
			if rest == "" || rest[0] == '/' || rest == "." || (rest[0] == '.' && (len(rest) == 1 || rest[1] == '/')) {
				return true
			}
		}
	}
	return len(p) > 1 && p[len(p)-1] == '/'
}

func (d *Decoder) borrow(start int) string {
	if len(d.scratch) == start {
		return ""
	}
	return unsafe.String(&d.scratch[start], len(d.scratch)-start)
}

// whatNames is indexed by enum syscall_what: an array, since every open,
// setid and module record looks its syscall up.
var whatNames = [...]event.Syscall{
	bpf.WhatOpenat: "openat", bpf.WhatOpenat2: "openat2", bpf.WhatOpen: "open",
	bpf.WhatSetuid: "setuid", bpf.WhatSetgid: "setgid", bpf.WhatSetreuid: "setreuid",
	bpf.WhatSetregid: "setregid", bpf.WhatSetresuid: "setresuid", bpf.WhatSetresgid: "setresgid",
	bpf.WhatSetfsuid: "setfsuid", bpf.WhatSetfsgid: "setfsgid",
	bpf.WhatInitModule: "init_module", bpf.WhatFinitModule: "finit_module",
}

func whatName(w uint32) event.Syscall {
	if w < uint32(len(whatNames)) {
		return whatNames[w]
	}
	return ""
}
