package event

import (
	"net/netip"
	"reflect"
	"testing"
)

// one event of every kind, every payload field set.
func everyKind() []*Event {
	p := &Process{PID: 1, Exe: "/bin/x"}
	h := func(k Kind) Header { return Header{Kind: k, PID: 7, Comm: "c", KernelTimeNs: uint64(k)} }
	return []*Event{
		{Header: h(KindExec), Process: p, Exec: Exec{Filename: "f", Exe: "/e", Args: "a\x00", ArgsSize: 2, ExeNlink: 1, Script: "/s.sh", Env: "LD_PRELOAD=/x.so\x00"}},
		{Header: h(KindFork), Fork: Fork{ChildPID: 2, ChildTID: 3}},
		{Header: h(KindExit), Exit: Exit{Code: 1, Signal: 9, CoreDumped: true}},
		{Header: h(KindOpen), Process: p, Open: Open{Syscall: "openat", Dfd: -100, Flags: 1, Mode: 2, Resolve: 3, Path: "p", Dir: "/d", Resolved: "/d/p", Ret: 4,
			FilePath: "/k/p", Dev: 2049, Ino: 77, Nlink: 2, FileMode: 0o100644}},
		{Header: h(KindConnect), Connect: Connect{Fd: 3, Addr: netip.MustParseAddr("::1"), Port: 80, Ret: -1}},
		{Header: h(KindSetID), SetID: SetID{Syscall: "setuid", Args: [3]uint32{1, 2, 3}, Old: IDs{1, 1, 1, 1}, New: IDs{0, 0, 0, 0}}},
		{Header: h(KindPtrace), Ptrace: Ptrace{Request: 16, TargetPID: 5, Ret: 0}},
		{Header: h(KindModule), Module: Module{Syscall: "init_module", Len: 9, Flags: 1, Params: "x=1", Path: "/m.ko", Ret: -1}},
		{Header: h(KindBPFProg), BPFProg: BPFProg{ProgType: 1, InsnCount: 2, Name: "n", Ret: 3}},
		{Header: h(KindMemfd), Memfd: Memfd{Name: "m", Flags: 1, Ret: 3}},
		{Header: h(KindFile), File: File{Op: FileRename, Syscall: "renameat2", Path: "a", Dir: "/d", Resolved: "/d/a", NewPath: "/b", NewDir: "/n", NewResolved: "/b",
			FilePath: "/k", Dev: 1, Ino: 2, FileMode: 0o100755, Mode: 0o4755, UID: 1, GID: NoID, Length: 9, AtFlags: 1, Ret: -2}},
		{Header: h(KindNamespace), Namespace: Namespace{Syscall: "mount", Flags: 4096, Fd: 3, NsFile: "mnt:[1]", Source: "/dev/sda1", Target: "mnt", FSType: "ext4", Dir: "/root", Ret: -1}},
		{Header: h(KindSignal), Signal: Signal{Syscall: "tgkill", TargetPID: 10, TargetTID: 11, TargetComm: "sshd", Signal: 9}},
		{Header: h(KindSocket), Socket: Socket{Syscall: "accept4", Fd: 3, Family: 10, Type: 1, Protocol: 6, Addr: netip.MustParseAddr("::"), Port: 4444,
			Peer: netip.MustParseAddr("10.0.0.1"), PeerPort: 50000, Backlog: 5, Ret: 4}},
		{Header: h(KindSys), Sys: Sys{Syscall: "prctl", Op: 15, Args: [3]uint64{1, 2, 3}, Name: "[kworker/0:1]", Ret: 0}},
	}
}

// Copying into a slot that held any other kind gives the same event as
// copying into a zero slot.
func TestCopyToReusedSlot(t *testing.T) {
	all := everyKind()
	for _, before := range all {
		for _, e := range all {
			var slot Event
			arena := before.CopyTo(&slot, nil)
			e.CopyTo(&slot, arena)
			if !reflect.DeepEqual(&slot, e) {
				t.Errorf("%s over %s:\n got %+v\nwant %+v", e.Kind, before.Kind, slot, *e)
			}
		}
	}
}

// A clone shares no memory with its source: overwriting every byte the
// source's strings and process point at leaves the clone unchanged.
func TestCloneSharesNothing(t *testing.T) {
	for _, e := range everyKind() {
		buf := []byte("openat/bin/xcpathdir")
		borrowed := func(s string) string { return string(buf[:0]) + s } // fresh, then overwritten below
		e.Comm = borrowed(e.Comm)
		if e.Process != nil {
			p := *e.Process
			p.Ancestors = []Ancestor{{PID: 1, Exe: "/sbin/init", Comm: "init"}}
			e.Process = &p
		}
		want := *e
		wantProc := Process{}
		if e.Process != nil {
			wantProc = *e.Process.Clone()
		}
		c := e.Clone()
		if e.Process != nil {
			e.Process.Exe, e.Process.Ancestors[0].Exe = "changed", "changed"
			if c.Process == e.Process || c.Process.Exe != wantProc.Exe || c.Process.Ancestors[0].Exe != "/sbin/init" {
				t.Errorf("%s: the clone's process follows the source's", e.Kind)
			}
		}
		c.Process, want.Process = nil, nil
		if !reflect.DeepEqual(*c, want) {
			t.Errorf("%s: clone %+v, want %+v", e.Kind, *c, want)
		}
	}
}

// everyKind covers every kind: a kind added without a case here (and in
// CopyTo, Reset and Clone) fails.
func TestEveryKindCovered(t *testing.T) {
	seen := map[Kind]bool{}
	for _, e := range everyKind() {
		seen[e.Kind] = true
	}
	for _, k := range AllKinds() {
		if !seen[k] {
			t.Errorf("kind %s has no event in everyKind", k)
		}
	}
}
