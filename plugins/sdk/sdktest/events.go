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
