// Package eventtest has events for tests of the code that carries events
// everywhere (layouts, codecs, recordings, sinks, rule fields): one event of
// every kind with every field of its payload set, and helpers to walk a
// payload's fields, so a test can fail when a kind or a field is added
// without its case.
package eventtest

import (
	"fmt"
	"net/netip"
	"reflect"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

// payloadField names each kind's payload field in event.Event.
var payloadField = [event.KindCount]string{
	event.KindExec: "Exec", event.KindFork: "Fork", event.KindExit: "Exit", event.KindOpen: "Open",
	event.KindConnect: "Connect", event.KindSetID: "SetID", event.KindPtrace: "Ptrace", event.KindModule: "Module",
	event.KindBPFProg: "BPFProg", event.KindMemfd: "Memfd", event.KindFile: "File", event.KindNamespace: "Namespace",
	event.KindSignal: "Signal", event.KindSocket: "Socket", event.KindSys: "Sys",
}

// Payload is ev's payload (ev.Exec for an exec, …), addressable: its
// fields can be set through it. It panics for a kind this package does not
// know, so that a new kind fails the tests that use it until it is added
// here.
func Payload(ev *event.Event) reflect.Value {
	k := ev.Kind
	if int(k) >= len(payloadField) || payloadField[k] == "" {
		panic(fmt.Sprintf("eventtest: no payload known for kind %s: add it to payloadField and EveryKind", k))
	}
	return reflect.ValueOf(ev).Elem().FieldByName(payloadField[k])
}

// Process is the process context of EveryKind's events.
func Process() *event.Process {
	return &event.Process{PID: 10, PPID: 1, Exe: "/usr/sbin/nginx", Comm: "nginx", Args: "nginx\x00-g\x00daemon off;\x00",
		UID: 33, EUID: 33, CgroupID: 7, CgroupPath: "/system.slice/nginx.service", ContainerID: "c0ffee", StartKernelNs: 123,
		Ancestors: []event.Ancestor{{PID: 1, Exe: "/sbin/init", Comm: "systemd"}}}
}

// EveryKind is one event of every kind, in kernel order, every field of
// its payload set to a value other than zero, sharing one process (the
// header's comm, pid … and time differ by kind). TestEveryKind checks that
// it stays so.
func EveryKind() []*event.Event {
	p := Process()
	h := func(k event.Kind) event.Header {
		return event.Header{Kind: k, Flags: event.FlagTruncPath, KernelTimeNs: 1e9 + uint64(k)*1000, PID: 11, TID: 12, PPID: 10,
			UID: 1000, GID: 1001, EUID: 1002, EGID: 1003, CgroupID: 7, Comm: "sh"}
	}
	out := []*event.Event{
		{Header: h(event.KindExec), Exec: event.Exec{Filename: "./x.sh", Exe: "/usr/bin/dash", Args: "sh\x00./x.sh\x00", ArgsSize: 12, ExeNlink: 1,
			Script: "/dev/shm/x.sh", Env: "LD_PRELOAD=/tmp/evil.so\x00HTTPS_PROXY=http://10.0.0.9:3128\x00"}},
		{Header: h(event.KindFork), Fork: event.Fork{ChildPID: 13, ChildTID: 13}},
		{Header: h(event.KindExit), Exit: event.Exit{Code: 1, Signal: 9, CoreDumped: true}},
		{Header: h(event.KindOpen), Open: event.Open{Syscall: "openat", Dfd: -100, Flags: 0o101, Mode: 0o644, Resolve: 8, Path: "x", Dir: "/srv",
			Resolved: "/srv/x", Ret: 3, FilePath: "/srv/y", Dev: 2049, Ino: 1 << 40, Nlink: 2, FileMode: 0o100640}},
		{Header: h(event.KindConnect), Connect: event.Connect{Fd: 3, Addr: netip.MustParseAddr("10.0.0.1"), Port: 4444, Ret: -115}},
		{Header: h(event.KindSetID), SetID: event.SetID{Syscall: "setresuid", Args: [3]uint32{0, 1, 2},
			Old: event.IDs{Real: 1000, Effective: 1000, Saved: 1000, FS: 1000}, New: event.IDs{Real: 3, Effective: 4, Saved: 5, FS: 6}, Ret: -1}},
		{Header: h(event.KindPtrace), Ptrace: event.Ptrace{Request: 16, TargetPID: 10, Ret: -1}},
		{Header: h(event.KindModule), Module: event.Module{Syscall: "finit_module", Len: 4096, Flags: 2, Params: "debug=1", Path: "/tmp/rk.ko", Ret: -1}},
		{Header: h(event.KindBPFProg), BPFProg: event.BPFProg{ProgType: 2, InsnCount: 12, Name: "sneaky", Ret: 7}},
		{Header: h(event.KindMemfd), Memfd: event.Memfd{Name: "payload", Flags: 1, Ret: 5}},
		{Header: h(event.KindFile), File: event.File{Op: event.FileRename, Syscall: "renameat2", Path: "a", Dir: "/tmp", Resolved: "/tmp/a",
			NewPath: "../usr/bin/b", NewDir: "/tmp", NewResolved: "/usr/bin/b", FilePath: "/tmp/a", Dev: 2049, Ino: 77, FileMode: 0o104755,
			Mode: 0o4755, UID: 1001, GID: event.NoID, Length: 9, AtFlags: 1, Ret: -2}},
		{Header: h(event.KindNamespace), Namespace: event.Namespace{Syscall: "mount", Flags: 4096, Fd: 3, NsFile: "mnt:[4026531841]",
			Source: "/dev/sda1", Target: "mnt", FSType: "ext4", Dir: "/root", Ret: -1}},
		{Header: h(event.KindSignal), Signal: event.Signal{Syscall: "tgkill", TargetPID: 10, TargetTID: 14, TargetComm: "sshd", Signal: 9, Ret: -3}},
		{Header: h(event.KindSocket), Socket: event.Socket{Syscall: "accept4", Fd: 3, Family: 10, Type: 0x80801, Protocol: 6,
			Addr: netip.MustParseAddr("::ffff:192.168.1.2"), Port: 4444, Peer: netip.MustParseAddr("2001:db8::1"), PeerPort: 50000, Backlog: 5, Ret: 4}},
		{Header: h(event.KindSys), Sys: event.Sys{Syscall: "prctl", Op: 15, Args: [3]uint64{1, 2, 1 << 63}, Name: "[kworker/0:1]", Ret: -22}},
	}
	for _, ev := range out {
		ev.Process = p
	}
	return out
}

// Of is EveryKind's event of kind k.
func Of(k event.Kind) *event.Event {
	for _, ev := range EveryKind() {
		if ev.Kind == k {
			return ev
		}
	}
	panic(fmt.Sprintf("eventtest: no event of kind %s", k))
}

// StringFields calls f with a pointer to every string field of ev's
// payload (Syscall and FileOp included), with its name.
func StringFields(ev *event.Event, f func(name string, s *string)) {
	p := Payload(ev)
	t := p.Type()
	for i := range t.NumField() {
		if t.Field(i).Type.Kind() == reflect.String {
			fv := p.Field(i)
			f(t.Field(i).Name, (*string)(fv.Addr().UnsafePointer()))
		}
	}
}

// SetStrings sets every string field of ev's payload, and its comm, to s
// (Syscall and FileOp included: they are the kernel's, but carried as
// bytes all the same).
func SetStrings(ev *event.Event, s string) {
	ev.Comm = s
	StringFields(ev, func(_ string, p *string) { *p = s })
}

// ZeroFields names the fields of ev's payload that are zero: EveryKind's
// events have none.
func ZeroFields(ev *event.Event) []string {
	var out []string
	p := Payload(ev)
	for i := range p.NumField() {
		if p.Field(i).IsZero() {
			out = append(out, p.Type().Field(i).Name)
		}
	}
	return out
}

// Opens is n open events of one process (/usr/bin/cat opening
// /etc/hostname), none of which a library detector reports: the stream the
// dispatch benchmarks push, so that what they measure is the backend.
func Opens(n int) []*event.Event {
	proc := &event.Process{PID: 4242, Exe: "/usr/bin/cat", Comm: "cat", Args: "cat\x00/etc/hostname\x00",
		Ancestors: []event.Ancestor{{PID: 1, Exe: "/sbin/init", Comm: "init"}}}
	out := make([]*event.Event, n)
	for i := range out {
		ev := &event.Event{Header: event.Header{Kind: event.KindOpen, PID: 4242, TID: 4242, PPID: 1, Comm: "cat", KernelTimeNs: uint64(i)}}
		ev.Open = event.Open{Syscall: "openat", Dfd: -100, Path: "/etc/hostname", Resolved: "/etc/hostname", Ret: 3}
		ev.Process = proc
		out[i] = ev
	}
	return out
}
