package decode

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/bulkhead-sec/bulkhead/bpf"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

// newKindRecords are one synthetic record of each new kind, for the tests
// here and as fuzz seeds.
func newKindRecords() map[string][]byte {
	out := map[string][]byte{}

	var f record[bpf.FileRecord]
	f.fixed.H = hdr(bpf.RecordFile, "mv")
	f.fixed.What, f.fixed.Dfd, f.fixed.Newdfd, f.fixed.Fd = bpf.WhatRenameat2, -100, 5, -1
	f.fixed.Path = f.str("../a/./x")
	f.fixed.Dir = f.walk("w", "home")
	f.fixed.NewPath = f.str("y\n\x1b")
	f.fixed.NewDir = f.walk() // the walk reached the root at once: "/"
	f.fixed.Dirs = bpf.DirDone | bpf.NewDirDone
	f.fixed.AtFlags = 1
	out["rename"] = f.bytes()

	var s record[bpf.FileRecord]
	s.fixed.H = hdr(bpf.RecordFile, "ln")
	s.fixed.What, s.fixed.Dfd, s.fixed.Newdfd, s.fixed.Fd = bpf.WhatSymlinkat, -100, -100, -1
	s.fixed.Path = s.str("../etc/shadow")
	s.fixed.NewPath = s.str("l")
	s.fixed.NewDir = s.walk("tmp", "var")
	s.fixed.Dirs = bpf.NewDirDone
	out["symlink"] = s.bytes()

	var c record[bpf.FileRecord]
	c.fixed.H = hdr(bpf.RecordFile, "chmod")
	c.fixed.What, c.fixed.Fd, c.fixed.Mode, c.fixed.Imode, c.fixed.Ino, c.fixed.Dev = bpf.WhatFchmod, 3, 0o4755, 0o100755, 42, 8<<20|1
	c.fixed.Uid, c.fixed.Gid = ^uint32(0), ^uint32(0)
	c.fixed.File = c.walk("sh", "bin", "usr")
	out["fchmod"] = c.bytes()

	var n record[bpf.NamespaceRecord]
	n.fixed.H = hdr(bpf.RecordNamespace, "nsenter")
	n.fixed.What, n.fixed.Fd, n.fixed.Flags, n.fixed.NsIno = bpf.WhatSetns, 3, 0x20000, 4026531841
	n.fixed.NsFile = n.str("mnt")
	out["setns"] = n.bytes()

	var m record[bpf.NamespaceRecord]
	m.fixed.H = hdr(bpf.RecordNamespace, "mount")
	m.fixed.What, m.fixed.Fd = bpf.WhatMount, -1
	m.fixed.Source = m.str("/dev/sda1")
	m.fixed.Fstype = m.str("ext4")
	m.fixed.Target = m.str("mnt")
	m.fixed.Dir = m.walk("root")
	m.fixed.Dirs = bpf.DirDone
	out["mount"] = m.bytes()

	var sig record[bpf.SignalRecord]
	sig.fixed.H = hdr(bpf.RecordSignal, "kill")
	sig.fixed.What, sig.fixed.TargetPid, sig.fixed.Sig = bpf.WhatKill, 77, 9
	copy(sig.fixed.TargetComm[:], "sshd")
	out["kill"] = sig.bytes()

	var so record[bpf.SocketRecord]
	so.fixed.H = hdr(bpf.RecordSocket, "nc")
	so.fixed.What, so.fixed.Fd, so.fixed.Ret, so.fixed.Family, so.fixed.Port, so.fixed.PeerPort = bpf.WhatAccept4, 3, 4, 10, 4444, 50000
	so.fixed.Addr = netip.MustParseAddr("::1").As16()
	so.fixed.Peer = netip.MustParseAddr("fe80::1").As16()
	out["accept4"] = so.bytes()

	var sy record[bpf.SysRecord]
	sy.fixed.H = hdr(bpf.RecordSys, "kexec")
	sy.fixed.What, sy.fixed.Args = bpf.WhatKexecFileLoad, [3]uint64{4}
	sy.fixed.Name = sy.walk("vmlinuz", "boot")
	out["kexec_file_load"] = sy.bytes()

	var e record[bpf.ExecRecord]
	e.fixed.H = hdr(bpf.RecordExec, "sh")
	e.fixed.Filename = e.str("./x.sh")
	e.fixed.Exe = e.walk("dash", "bin", "usr")
	e.fixed.Env = e.walk("LD_PRELOAD=/tmp/e.so", "HISTFILE=/dev/null")
	e.fixed.Script = bpf.ScriptIs | bpf.ScriptDirDone
	e.fixed.ScriptDir = e.walk("shm", "dev")
	out["exec-script"] = e.bytes()
	return out
}

func TestDecodeNewKinds(t *testing.T) {
	recs := newKindRecords()
	d := New()
	var ev event.Event
	dec := func(name string) *event.Event {
		t.Helper()
		if err := d.Decode(recs[name], &ev); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return &ev
	}
	if f := dec("rename").File; f.Op != event.FileRename || f.Syscall != "renameat2" || f.Dir != "/home/w" || f.Resolved != "/home/a/x" ||
		f.NewDir != "/" || f.NewResolved != "/y\n\x1b" || f.AtFlags != 1 || f.FilePath != "" {
		t.Errorf("rename: %+v", f)
	}
	if f := dec("symlink").File; f.Op != event.FileSymlink || f.Path != "../etc/shadow" || f.NewResolved != "/var/tmp/l" ||
		f.Dir != "/var/tmp" || f.Resolved != "/var/etc/shadow" {
		t.Errorf("symlink: %+v", f)
	}
	if f := dec("fchmod").File; f.Op != event.FileChmod || f.FilePath != "/usr/bin/sh" || f.Ino != 42 || f.Dev == 0 || f.Path != "" ||
		f.UID != event.NoID || len(f.SpecialBits()) != 1 {
		t.Errorf("fchmod: %+v", f)
	}
	if n := dec("setns").Namespace; n.Syscall != "setns" || n.NsFile != "mnt:[4026531841]" || n.Fd != 3 || n.Namespaces()[0] != "mnt" {
		t.Errorf("setns: %+v", n)
	}
	if n := dec("mount").Namespace; n.Target != "mnt" || n.Dir != "/root" || n.Source != "/dev/sda1" || n.FSType != "ext4" {
		t.Errorf("mount: %+v", n)
	}
	if s := dec("kill").Signal; s.Syscall != "kill" || s.TargetPID != 77 || s.Signal != 9 || s.TargetComm != "sshd" {
		t.Errorf("kill: %+v", s)
	}
	if s := dec("accept4").Socket; s.Addr != netip.MustParseAddr("::1") || s.Peer != netip.MustParseAddr("fe80::1") || s.Port != 4444 ||
		s.PeerPort != 50000 || s.Syscall != "accept4" {
		t.Errorf("accept4: %+v", s)
	}
	if s := dec("kexec_file_load").Sys; s.Name != "/boot/vmlinuz" || s.Args[0] != 4 {
		t.Errorf("kexec_file_load: %+v", s)
	}
	if e := dec("exec-script").Exec; e.Script != "/dev/shm/x.sh" || len(e.EnvList()) != 2 || e.EnvList()[0] != "LD_PRELOAD=/tmp/e.so" {
		t.Errorf("exec: script %q env %q", e.Script, e.EnvList())
	}

	// A file record with a syscall it does not know is refused, not guessed.
	var bad record[bpf.FileRecord]
	bad.fixed.H = hdr(bpf.RecordFile, "x")
	bad.fixed.What = bpf.WhatOpenat
	if err := d.Decode(bad.bytes(), &ev); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("file record of openat: %v", err)
	}
	// Every new kind's strings are bounds-checked.
	for name, raw := range recs {
		cut := raw[:len(raw)-2] // past the last string's NUL: into its bytes, or the fixed part
		if err := d.Decode(cut, &ev); !errors.Is(err, ErrBadString) && !errors.Is(err, ErrShort) {
			t.Errorf("%s cut short: %v", name, err)
		}
	}
}
