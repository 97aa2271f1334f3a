package sdktest

import (
	"net/netip"
	"path"
	"slices"
	"strings"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

// Proc describes a process for building test events shaped as the monitor
// delivers them: header filled, process context attached.
//
//	nginx := sdktest.Proc{PID: 10, Exe: "/usr/sbin/nginx", UID: 33, EUID: 33}
//	sh := nginx.Child(11, "/bin/sh", "sh", "-c", "id")
//	findings, _ := d.OnEvent(ctx, sh.Exec())
type Proc struct {
	PID, PPID uint32
	Exe       string
	Comm      string // defaults to Exe's last element
	Args      []string
	UID, EUID uint32
	// Ancestors, parent first, as binaries.
	Ancestors []string
	chain     []event.Ancestor // set by Child: the ancestors with their comms
}

// Child is a process p started that exec'd exe with argv.
func (p Proc) Child(pid uint32, exe string, argv ...string) Proc {
	parent := p.Process()
	return Proc{PID: pid, PPID: p.PID, Exe: exe, Args: argv, UID: p.UID, EUID: p.EUID,
		chain: append([]event.Ancestor{{PID: p.PID, Exe: p.Exe, Comm: p.comm()}}, parent.Ancestors...)}
}

func (p Proc) comm() string {
	if p.Comm != "" {
		return p.Comm
	}
	c := path.Base(p.Exe)
	if len(c) > 15 {
		c = c[:15]
	}
	return c
}

func (p Proc) args() string {
	if len(p.Args) == 0 {
		return ""
	}
	return strings.Join(p.Args, "\x00") + "\x00"
}

// Process is p's context as enrichment attaches it.
func (p Proc) Process() *event.Process {
	out := &event.Process{PID: p.PID, PPID: p.PPID, Exe: p.Exe, Comm: p.comm(), Args: p.args(), UID: p.UID, EUID: p.EUID}
	out.Ancestors = slices.Clip(p.chain)
	for i, a := range p.Ancestors {
		out.Ancestors = append(out.Ancestors, event.Ancestor{PID: p.PPID - uint32(i), Exe: a, Comm: path.Base(a)})
	}
	return out
}

// Event is an event of kind k from p, with an empty payload.
func (p Proc) Event(k event.Kind) *event.Event {
	return &event.Event{Header: event.Header{Kind: k, PID: p.PID, TID: p.PID, PPID: p.PPID, UID: p.UID, EUID: p.EUID,
		GID: p.UID, EGID: p.EUID, Comm: p.comm(), KernelTimeNs: 1}, Process: p.Process()}
}

// Exec is p's successful exec of its binary.
func (p Proc) Exec() *event.Event {
	ev := p.Event(event.KindExec)
	ev.Exec = event.Exec{Filename: p.Exe, Exe: p.Exe, Args: p.args(), ArgsSize: uint32(len(p.args())), ExeNlink: 1}
	return ev
}

// Open is p opening path with flags (O_*), returning ret.
func (p Proc) Open(file string, flags uint64, ret int64) *event.Event {
	ev := p.Event(event.KindOpen)
	ev.Open = event.Open{Syscall: "openat", Dfd: -100, Flags: flags, Path: file, Resolved: file, Ret: ret}
	return ev
}

// Connect is p connecting to addr:port.
func (p Proc) Connect(addr string, port uint16, ret int64) *event.Event {
	ev := p.Event(event.KindConnect)
	ev.Connect = event.Connect{Fd: 3, Addr: netip.MustParseAddr(addr), Port: port, Ret: ret}
	return ev
}

// SetID is p's successful setid-family call moving its uids from old to new.
func (p Proc) SetID(syscall string, old, new event.IDs) *event.Event {
	ev := p.Event(event.KindSetID)
	// The header carries the thread's uids after the call (as the kernel
	// side reports them); old and new are gids for the setgid family.
	if strings.Contains(syscall, "gid") || strings.Contains(syscall, "groups") {
		ev.GID, ev.EGID = new.Real, new.Effective
	} else {
		ev.UID, ev.EUID = new.Real, new.Effective
	}
	ev.SetID = event.SetID{Syscall: event.Syscall(syscall), Args: [3]uint32{new.Real, new.Effective, new.Saved}, Old: old, New: new}
	return ev
}

// Ptrace is p's ptrace request on target.
func (p Proc) Ptrace(request int64, target uint32, ret int64) *event.Event {
	ev := p.Event(event.KindPtrace)
	ev.Ptrace = event.Ptrace{Request: request, TargetPID: target, Ret: ret}
	return ev
}

// Module is p loading a kernel module from file (finit_module).
func (p Proc) Module(file string, ret int64) *event.Event {
	ev := p.Event(event.KindModule)
	ev.Module = event.Module{Syscall: "finit_module", Path: file, Ret: ret}
	return ev
}

// BPFProg is p loading a BPF program.
func (p Proc) BPFProg(name string, progType uint32, ret int64) *event.Event {
	ev := p.Event(event.KindBPFProg)
	ev.BPFProg = event.BPFProg{Name: name, ProgType: progType, InsnCount: 2, Ret: ret}
	return ev
}

// Fork is p starting child.
func (p Proc) Fork(child uint32) *event.Event {
	ev := p.Event(event.KindFork)
	ev.Fork = event.Fork{ChildPID: child, ChildTID: child}
	return ev
}

// Exit is the end of p.
func (p Proc) Exit() *event.Event { return p.Event(event.KindExit) }

// ExecWith is p's exec with the selected environment variables env
// ("NAME=value" each, as Exec.Env carries them) and, for a #! script, the
// script's path (Exec.Script; "" for a binary).
func (p Proc) ExecWith(script string, env ...string) *event.Event {
	ev := p.Exec()
	ev.Exec.Script = script
	if len(env) > 0 {
		ev.Exec.Env = strings.Join(env, "\x00") + "\x00"
	}
	return ev
}

// File is p's change op to file (absolute), returning ret. For rename,
// link and symlink, File.NewPath is set with FileTo; for chmod and mkdir,
// the mode with FileMode.
func (p Proc) File(op event.FileOp, file string, ret int64) *event.Event {
	ev := p.Event(event.KindFile)
	sc := map[event.FileOp]event.Syscall{event.FileUnlink: "unlinkat", event.FileRmdir: "unlinkat", event.FileRename: "renameat2",
		event.FileLink: "linkat", event.FileSymlink: "symlinkat", event.FileMkdir: "mkdirat", event.FileChmod: "fchmodat",
		event.FileChown: "fchownat", event.FileTruncate: "truncate"}[op]
	ev.File = event.File{Op: op, Syscall: sc, Path: file, Dir: path.Dir(file), Resolved: file, UID: event.NoID, GID: event.NoID, Ret: ret}
	return ev
}

// FileTo is p's rename, link or symlink of from to the new name to. For a
// symlink from is the link's contents as passed (relative ones are kept
// as they are in Path and made absolute against to's directory in
// Resolved, as the kernel side does).
func (p Proc) FileTo(op event.FileOp, from, to string, ret int64) *event.Event {
	ev := p.File(op, from, ret)
	f := &ev.File
	if op == event.FileSymlink && !strings.HasPrefix(from, "/") {
		f.Dir, f.Resolved = path.Dir(to), path.Join(path.Dir(to), from)
	}
	f.NewPath, f.NewDir, f.NewResolved = to, path.Dir(to), to
	return ev
}

// FileMode is p's chmod (or mkdir, with op) of file to mode.
func (p Proc) FileMode(op event.FileOp, file string, mode uint32, ret int64) *event.Event {
	ev := p.File(op, file, ret)
	ev.File.Mode = mode
	return ev
}

// FileFd is p's fd call (fchmod, fchown, ftruncate) on the open file whose
// kernel path is file.
func (p Proc) FileFd(op event.FileOp, syscall, file string, ret int64) *event.Event {
	ev := p.File(op, "", ret)
	f := &ev.File
	f.Syscall, f.Dir, f.Resolved, f.FilePath, f.Dev, f.Ino, f.FileMode = event.Syscall(syscall), "", "", file, 2049, 1234, 0o100644
	return ev
}

// Namespace is p's namespace call (mount, umount2, chroot, setns,
// unshare, clone, ...) with its flags, returning ret. Mount fields are set
// with Mount.
func (p Proc) Namespace(syscall string, flags uint64, ret int64) *event.Event {
	ev := p.Event(event.KindNamespace)
	ev.Namespace = event.Namespace{Syscall: event.Syscall(syscall), Flags: flags, Fd: -1, Ret: ret}
	return ev
}

// Setns is p's setns into the namespace nsFile ("mnt:[4026531841]").
func (p Proc) Setns(nsFile string, nstype uint64, ret int64) *event.Event {
	ev := p.Namespace("setns", nstype, ret)
	ev.Namespace.Fd, ev.Namespace.NsFile = 3, nsFile
	return ev
}

// Mount is p's mount of source (of type fstype) on target (absolute).
func (p Proc) Mount(source, target, fstype string, flags uint64, ret int64) *event.Event {
	ev := p.Namespace("mount", flags, ret)
	n := &ev.Namespace
	n.Source, n.Target, n.FSType, n.Dir = source, target, fstype, path.Dir(target)
	return ev
}

// Signal is p's kill of target (whose comm is targetComm) with sig.
func (p Proc) Signal(target int32, targetComm string, sig uint32, ret int64) *event.Event {
	ev := p.Event(event.KindSignal)
	ev.Signal = event.Signal{Syscall: "kill", TargetPID: target, TargetComm: targetComm, Signal: sig, Ret: ret}
	return ev
}

// Socket is p's socket-family call: socket (family, typ, proto), bind or
// listen on addr:port, accept from peer; see the Socket* helpers.
func (p Proc) Socket(syscall string, family uint16, ret int64) *event.Event {
	ev := p.Event(event.KindSocket)
	ev.Socket = event.Socket{Syscall: event.Syscall(syscall), Fd: 3, Family: family, Ret: ret}
	return ev
}

// SocketNew is p's socket(family, typ, proto).
func (p Proc) SocketNew(family uint16, typ, proto uint32, ret int64) *event.Event {
	ev := p.Socket("socket", family, ret)
	ev.Socket.Fd, ev.Socket.Type, ev.Socket.Protocol = -1, typ, proto
	return ev
}

// Bind is p's bind (syscall "bind"), listen or accept on the local
// address addr:port (IPv4 or IPv6); accept's peer is set with Peer.
func (p Proc) Bind(syscall, addr string, port uint16, ret int64) *event.Event {
	a := netip.MustParseAddr(addr)
	fam := uint16(2) // AF_INET
	if a.Is6() {
		fam = 10
	}
	ev := p.Socket(syscall, fam, ret)
	ev.Socket.Addr, ev.Socket.Port = a, port
	if syscall == "listen" {
		ev.Socket.Backlog = 1
	}
	return ev
}

// Accept is p's accept4 of a connection from peer:peerPort on addr:port.
func (p Proc) Accept(addr string, port uint16, peer string, peerPort uint16, ret int64) *event.Event {
	ev := p.Bind("accept4", addr, port, ret)
	ev.Socket.Peer, ev.Socket.PeerPort = netip.MustParseAddr(peer), peerPort
	return ev
}

// Sys is p's call of one of KindSys's syscalls (prctl, userfaultfd,
// kexec_load, bpf, ...) with op (prctl option, bpf command), args and name.
func (p Proc) Sys(syscall string, op uint64, args [3]uint64, name string, ret int64) *event.Event {
	ev := p.Event(event.KindSys)
	ev.Sys = event.Sys{Syscall: event.Syscall(syscall), Op: op, Args: args, Name: name, Ret: ret}
	return ev
}
