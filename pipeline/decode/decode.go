package decode

import (
	"bytes"
	"errors"
	"net/netip"
	"strconv"
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
	offKind       = unsafe.Offsetof(bpf.HeaderRecord{}.Kind)
	offComm       = unsafe.Offsetof(bpf.HeaderRecord{}.Comm)
	offName       = unsafe.Offsetof(bpf.BPFProgRecord{}.ProgName)
	offTargetComm = unsafe.Offsetof(bpf.SignalRecord{}.TargetComm)
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
		ev.Connect = event.Connect{Fd: r.Fd, Port: r.Port, Ret: r.Ret, Addr: inetAddr(r.Family, &r.Addr)}
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
	case bpf.RecordFile:
		return d.file(raw, ev)
	case bpf.RecordNamespace:
		return d.namespace(raw, ev)
	case bpf.RecordSignal:
		var r bpf.SignalRecord
		if !load(raw, &r) {
			return ErrShort
		}
		header(raw, &r.H, ev)
		ev.Signal = event.Signal{Syscall: whatName(r.What), TargetPID: r.TargetPid, TargetTID: r.TargetTid,
			TargetComm: cstring(raw[offTargetComm : offTargetComm+uintptr(len(r.TargetComm))]), Signal: r.Sig, Ret: r.Ret}
	case bpf.RecordSocket:
		var r bpf.SocketRecord
		if !load(raw, &r) {
			return ErrShort
		}
		header(raw, &r.H, ev)
		so := event.Socket{Syscall: whatName(r.What), Fd: r.Fd, Family: r.Family, Type: r.Type, Protocol: r.Protocol,
			Backlog: r.Backlog, Ret: r.Ret}
		switch r.Family {
		case afInet, afInet6:
			so.Addr, so.Port = inetAddr(r.Family, &r.Addr), r.Port
			if (r.What == bpf.WhatAccept || r.What == bpf.WhatAccept4) && r.Ret >= 0 {
				so.Peer, so.PeerPort = inetAddr(r.Family, &r.Peer), r.PeerPort
			}
		}
		ev.Socket = so
	case bpf.RecordSys:
		var r bpf.SysRecord
		if !load(raw, &r) {
			return ErrShort
		}
		header(raw, &r.H, ev)
		name, ok := view(raw, r.Name)
		if !ok {
			return ErrBadString
		}
		if r.What == bpf.WhatKexecFileLoad {
			name = d.joinWalk(name, ev.Flags&event.FlagPseudoPath != 0)
		}
		ev.Sys = event.Sys{Syscall: whatName(r.What), Op: r.Op, Args: r.Args, Name: name, Ret: r.Ret}
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

const (
	afInet  = 2
	afInet6 = 10
)

func inetAddr(family uint16, a *[16]uint8) netip.Addr {
	if family == afInet {
		return netip.AddrFrom4([4]byte(a[:4]))
	}
	return netip.AddrFrom16(*a)
}

func (d *Decoder) exec(raw []byte, ev *event.Event) error {
	var r bpf.ExecRecord
	if !load(raw, &r) {
		return ErrShort
	}
	header(raw, &r.H, ev)
	args, ok1 := view(raw, r.Args)
	filename, ok2 := view(raw, r.Filename)
	exe, ok3 := view(raw, r.Exe)
	env, ok4 := view(raw, r.Env)
	sdir, ok5 := view(raw, r.ScriptDir)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		return ErrBadString
	}
	ev.Exec = event.Exec{
		Filename: filename,
		Exe:      d.joinWalk(exe, ev.Flags&event.FlagPseudoPath != 0),
		Args:     args,
		ArgsSize: r.ArgsSize,
		ExeNlink: r.ExeNlink,
		Env:      env,
	}
	if r.Script&bpf.ScriptIs != 0 {
		_, ev.Exec.Script = d.resolve(filename, sdir, r.Script&bpf.ScriptDirDone != 0, ev.Flags&event.FlagPseudoPath != 0)
		if ev.Exec.Script == "" {
			// The working directory could not be walked: the name as passed.
			ev.Exec.Script = filename
		}
	}
	return nil
}

// resolve makes path absolute against the walked directory dirComps
// (leaf first), lexically, as open does: ("", "") for an empty path, and
// no Resolved for a relative path whose directory is unknown. walked says
// the walk reached the root (dirComps empty then means "/").
func (d *Decoder) resolve(path, dirComps string, walked, pseudo bool) (dir, resolved string) {
	switch {
	case path == "":
		return "", ""
	case path[0] == '/':
		if needsClean(path) {
			return "", d.clean("/", path)
		}
		return "", path
	case dirComps != "":
		dir = d.joinWalk(dirComps, pseudo)
		return dir, d.clean(dir, path)
	case walked:
		return "/", d.clean("/", path)
	}
	return "", ""
}

const atRemovedir = 0x200

// fileOps is each file syscall's operation, by enum syscall_what.
var fileOps = map[uint32]event.FileOp{
	bpf.WhatUnlink: event.FileUnlink, bpf.WhatUnlinkat: event.FileUnlink, bpf.WhatRmdir: event.FileRmdir,
	bpf.WhatRename: event.FileRename, bpf.WhatRenameat: event.FileRename, bpf.WhatRenameat2: event.FileRename,
	bpf.WhatLink: event.FileLink, bpf.WhatLinkat: event.FileLink,
	bpf.WhatSymlink: event.FileSymlink, bpf.WhatSymlinkat: event.FileSymlink,
	bpf.WhatMkdir: event.FileMkdir, bpf.WhatMkdirat: event.FileMkdir,
	bpf.WhatChmod: event.FileChmod, bpf.WhatFchmod: event.FileChmod, bpf.WhatFchmodat: event.FileChmod, bpf.WhatFchmodat2: event.FileChmod,
	bpf.WhatChown: event.FileChown, bpf.WhatFchown: event.FileChown, bpf.WhatLchown: event.FileChown, bpf.WhatFchownat: event.FileChown,
	bpf.WhatTruncate: event.FileTruncate, bpf.WhatFtruncate: event.FileTruncate,
}

func (d *Decoder) file(raw []byte, ev *event.Event) error {
	var r bpf.FileRecord
	if !load(raw, &r) {
		return ErrShort
	}
	header(raw, &r.H, ev)
	path, ok1 := view(raw, r.Path)
	dir, ok2 := view(raw, r.Dir)
	newPath, ok3 := view(raw, r.NewPath)
	newDir, ok4 := view(raw, r.NewDir)
	file, ok5 := view(raw, r.File)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		return ErrBadString
	}
	op, known := fileOps[r.What]
	if !known {
		return ErrUnknownKind
	}
	if r.What == bpf.WhatUnlinkat && r.AtFlags&atRemovedir != 0 {
		op = event.FileRmdir
	}
	pseudo := ev.Flags&event.FlagPseudoPath != 0
	f := event.File{Op: op, Syscall: whatName(r.What), Path: path, NewPath: newPath, Mode: r.Mode, UID: r.Uid, GID: r.Gid,
		Length: r.Length, AtFlags: r.AtFlags, Ret: r.Ret}
	f.NewDir, f.NewResolved = d.resolve(newPath, newDir, r.Dirs&bpf.NewDirDone != 0, pseudo)
	if op == event.FileSymlink {
		// The target is text the kernel resolves against the link's own
		// directory when the link is followed.
		switch {
		case path == "":
		case path[0] == '/':
			_, f.Resolved = d.resolve(path, "", false, false)
		case f.NewResolved != "":
			f.Dir = parentDir(f.NewResolved)
			f.Resolved = d.clean(f.Dir, path)
		}
	} else {
		f.Dir, f.Resolved = d.resolve(path, dir, r.Dirs&bpf.DirDone != 0, pseudo)
	}
	if r.Fd >= 0 && r.Imode != 0 {
		f.FilePath = d.joinWalk(file, ev.Flags&(event.FlagFilePseudo|event.FlagFileTruncWalk) != 0)
		f.Dev, f.Ino, f.FileMode = devFromKernel(r.Dev), r.Ino, r.Imode
	}
	ev.File = f
	return nil
}

// parentDir is the directory of an absolute, cleaned path.
func parentDir(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

func (d *Decoder) namespace(raw []byte, ev *event.Event) error {
	var r bpf.NamespaceRecord
	if !load(raw, &r) {
		return ErrShort
	}
	header(raw, &r.H, ev)
	source, ok1 := view(raw, r.Source)
	target, ok2 := view(raw, r.Target)
	fstype, ok3 := view(raw, r.Fstype)
	dir, ok4 := view(raw, r.Dir)
	nsFile, ok5 := view(raw, r.NsFile)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		return ErrBadString
	}
	n := event.Namespace{Syscall: whatName(r.What), Flags: r.Flags, Fd: r.Fd, Source: source, Target: target, FSType: fstype, Ret: r.Ret}
	if target != "" && target[0] != '/' {
		n.Dir, _ = d.resolve(target, dir, r.Dirs&bpf.DirDone != 0, ev.Flags&event.FlagPseudoPath != 0)
	}
	switch {
	case r.NsIno != 0:
		// As /proc/PID/ns/ names it: "mnt:[4026531841]".
		start := len(d.scratch)
		d.scratch = append(d.scratch, nsFile...)
		d.scratch = append(d.scratch, ":["...)
		d.scratch = strconv.AppendUint(d.scratch, r.NsIno, 10)
		d.scratch = append(d.scratch, ']')
		n.NsFile = d.borrow(start)
	case nsFile != "":
		n.NsFile = d.joinWalk(nsFile, ev.Flags&(event.FlagFilePseudo|event.FlagFileTruncWalk) != 0)
	}
	ev.Namespace = n
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
	// A cwd walk that wrote no component and was not cut short: the
	// working directory is the root.
	walked := r.Dfd == atFdcwd && ev.Flags&event.FlagTruncWalk == 0
	o.Dir, o.Resolved = d.resolve(path, dir, walked, ev.Flags&event.FlagPseudoPath != 0)
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
	bpf.WhatConnect: "connect", bpf.WhatPtrace: "ptrace", bpf.WhatBPF: "bpf", bpf.WhatMemfdCreate: "memfd_create",
	bpf.WhatUnlink: "unlink", bpf.WhatUnlinkat: "unlinkat", bpf.WhatRmdir: "rmdir",
	bpf.WhatRename: "rename", bpf.WhatRenameat: "renameat", bpf.WhatRenameat2: "renameat2",
	bpf.WhatLink: "link", bpf.WhatLinkat: "linkat", bpf.WhatSymlink: "symlink", bpf.WhatSymlinkat: "symlinkat",
	bpf.WhatMkdir: "mkdir", bpf.WhatMkdirat: "mkdirat",
	bpf.WhatChmod: "chmod", bpf.WhatFchmod: "fchmod", bpf.WhatFchmodat: "fchmodat", bpf.WhatFchmodat2: "fchmodat2",
	bpf.WhatChown: "chown", bpf.WhatFchown: "fchown", bpf.WhatLchown: "lchown", bpf.WhatFchownat: "fchownat",
	bpf.WhatTruncate: "truncate", bpf.WhatFtruncate: "ftruncate",
	bpf.WhatMount: "mount", bpf.WhatUmount2: "umount2", bpf.WhatPivotRoot: "pivot_root", bpf.WhatChroot: "chroot",
	bpf.WhatSetns: "setns", bpf.WhatUnshare: "unshare", bpf.WhatClone: "clone", bpf.WhatClone3: "clone3",
	bpf.WhatKill: "kill", bpf.WhatTkill: "tkill", bpf.WhatTgkill: "tgkill",
	bpf.WhatSocket: "socket", bpf.WhatBind: "bind", bpf.WhatListen: "listen", bpf.WhatAccept: "accept", bpf.WhatAccept4: "accept4",
	bpf.WhatCapset: "capset", bpf.WhatPrctl: "prctl", bpf.WhatUserfaultfd: "userfaultfd", bpf.WhatIOUringSetup: "io_uring_setup",
	bpf.WhatKexecLoad: "kexec_load", bpf.WhatKexecFileLoad: "kexec_file_load", bpf.WhatBPFCmd: "bpf",
}

func whatName(w uint32) event.Syscall {
	if w < uint32(len(whatNames)) {
		return whatNames[w]
	}
	return ""
}
