package decode

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/bulkhead-sec/bulkhead/bpf"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"golang.org/x/sys/unix"
)

// record lays out a fixed part followed by strings, as the kernel does.
type record[T any] struct {
	fixed T
	tail  []byte
}

// str appends s (NUL-terminated) to the tail and returns its reference.
func (r *record[T]) str(s string) bpf.StrRef {
	off := int(unsafe.Sizeof(r.fixed)) + len(r.tail)
	r.tail = append(r.tail, s...)
	r.tail = append(r.tail, 0)
	return bpf.StrRef{Off: uint16(off), Len: uint16(len(s))}
}

// walk appends leaf-first components and returns the reference the kernel
// would send for them.
func (r *record[T]) walk(comps ...string) bpf.StrRef {
	off := int(unsafe.Sizeof(r.fixed)) + len(r.tail)
	for _, c := range comps {
		r.tail = append(r.tail, c...)
		r.tail = append(r.tail, 0)
	}
	return bpf.StrRef{Off: uint16(off), Len: uint16(int(unsafe.Sizeof(r.fixed)) + len(r.tail) - off)}
}

func (r *record[T]) bytes() []byte {
	fixed := unsafe.Slice((*byte)(unsafe.Pointer(&r.fixed)), unsafe.Sizeof(r.fixed))
	return append(append([]byte(nil), fixed...), r.tail...)
}

func hdr(kind uint16, comm string) bpf.HeaderRecord {
	h := bpf.HeaderRecord{TsNs: 42, CgroupId: 7, Pid: 100, Tid: 101, Ppid: 1, Uid: 1000, Gid: 1000, Euid: 1000, Egid: 1000, Kind: kind}
	copy(h.Comm[:], comm)
	return h
}

func TestDecodeExec(t *testing.T) {
	var r record[bpf.ExecRecord]
	r.fixed.H = hdr(bpf.RecordExec, "cat")
	r.fixed.Args = r.walk("cat", "/etc/hostname") // NUL-separated, like argv
	r.fixed.Filename = r.str("/bin/cat")
	r.fixed.Exe = r.walk("cat", "bin", "usr")
	r.fixed.ArgsSize = 18
	r.fixed.ExeNlink = 1

	var ev event.Event
	d := New()
	if err := d.Decode(r.bytes(), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Kind != event.KindExec || ev.PID != 100 || ev.TID != 101 || ev.PPID != 1 || ev.Comm != "cat" || ev.CgroupID != 7 {
		t.Errorf("header: %+v", ev.Header)
	}
	if ev.Exec.Filename != "/bin/cat" || ev.Exec.Exe != "/usr/bin/cat" {
		t.Errorf("filename %q exe %q", ev.Exec.Filename, ev.Exec.Exe)
	}
	if got := ev.Exec.ArgList(); len(got) != 2 || got[0] != "cat" || got[1] != "/etc/hostname" {
		t.Errorf("args %q", got)
	}
	if d.Stats().Decoded[event.KindExec] != 1 {
		t.Errorf("stats %+v", d.Stats())
	}
}

func TestDecodeOpenPaths(t *testing.T) {
	for _, tc := range []struct {
		name, path     string
		dir            []string // leaf first
		dfd            int32
		flags          uint16
		wantDir, wantR string
	}{
		{name: "absolute", path: "/etc/hostname", dfd: -100, wantR: "/etc/hostname"},
		{name: "absolute with dot-dot", path: "/etc/../etc/shadow", dfd: -100, wantR: "/etc/shadow"},
		{name: "absolute with double slash", path: "/etc//shadow", dfd: -100, wantR: "/etc/shadow"},
		{name: "absolute with dot", path: "/etc/./shadow", dfd: -100, wantR: "/etc/shadow"},
		{name: "absolute with trailing slash", path: "/etc/", dfd: -100, wantR: "/etc"},
		{name: "absolute dotfile kept", path: "/root/.bashrc", dfd: -100, wantR: "/root/.bashrc"},
		{name: "absolute dot-dot-name kept", path: "/x/..y/.z.", dfd: -100, wantR: "/x/..y/.z."},
		{name: "absolute root", path: "/", dfd: -100, wantR: "/"},
		{name: "absolute past root", path: "/../etc/./", dfd: -100, wantR: "/etc"},
		{name: "relative to cwd", path: "hostname", dir: []string{"etc"}, dfd: -100, wantDir: "/etc", wantR: "/etc/hostname"},
		{name: "dot segments", path: "./a/../b//c", dir: []string{"tmp", "root"}, dfd: -100, wantDir: "/root/tmp", wantR: "/root/tmp/b/c"},
		{name: "dotdot past root", path: "../../x", dir: []string{"etc"}, dfd: -100, wantDir: "/etc", wantR: "/x"},
		{name: "cwd is root", path: "etc/passwd", dfd: -100, wantDir: "/", wantR: "/etc/passwd"},
		{name: "relative to dirfd", path: "f", dir: []string{"d", "tmp"}, dfd: 5, wantDir: "/tmp/d", wantR: "/tmp/d/f"},
		{name: "dirfd unresolvable", path: "f", dfd: 5},
		{name: "walk cut short", path: "f", dfd: -100, flags: bpf.FlagTruncWalk},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r record[bpf.OpenRecord]
			r.fixed.H = hdr(bpf.RecordOpen, "cat")
			r.fixed.H.Flags = tc.flags
			r.fixed.What = bpf.WhatOpenat
			r.fixed.Dfd = tc.dfd
			r.fixed.Ret = 3
			r.fixed.Path = r.str(tc.path)
			if tc.dir != nil {
				r.fixed.Dir = r.walk(tc.dir...)
			}
			var ev event.Event
			if err := New().Decode(r.bytes(), &ev); err != nil {
				t.Fatal(err)
			}
			o := ev.Open
			if o.Path != tc.path || o.Dir != tc.wantDir || o.Resolved != tc.wantR || o.Ret != 3 || o.Syscall != "openat" {
				t.Errorf("got path %q dir %q resolved %q ret %d syscall %q; want dir %q resolved %q", o.Path, o.Dir, o.Resolved, o.Ret, o.Syscall, tc.wantDir, tc.wantR)
			}
		})
	}
}

// The opened file's kernel path and identity come from the descriptor the
// call returned, whatever string was passed.
func TestDecodeOpenedFile(t *testing.T) {
	const kdev = 259<<20 | 3 // the kernel's dev_t of major 259, minor 3
	for _, tc := range []struct {
		name      string
		path      string
		ret       int64
		file      []string // leaf first
		flags     uint16
		wantFile  string
		wantKPath string
		wantID    bool
	}{
		{name: "dot-dot", path: "/etc/../etc/shadow", ret: 3, file: []string{"shadow", "etc"}, wantFile: "/etc/shadow", wantKPath: "/etc/shadow", wantID: true},
		{name: "symlink to the directory", path: "/tmp/l/shadow", ret: 3, file: []string{"shadow", "etc"}, wantFile: "/etc/shadow", wantKPath: "/etc/shadow", wantID: true},
		{name: "file in the root directory", path: "/x", ret: 3, file: []string{"x"}, wantFile: "/x", wantKPath: "/x", wantID: true},
		{name: "failed open has no file", path: "/etc/shadow", ret: -13, file: []string{"stale"}},
		{name: "pseudo file", path: "/proc/self/fd/3", ret: 4, file: []string{"memfd:x (deleted)"}, flags: bpf.FlagFilePseudo,
			wantFile: "memfd:x (deleted)", wantID: true},
		{name: "walk cut short is not rooted", path: "/d/e/f", ret: 4, file: []string{"f", "e"}, flags: bpf.FlagFileTruncWalk,
			wantFile: "e/f", wantID: true},
		// The dir walk's pseudo flag says nothing of the opened file.
		{name: "dir flags do not touch the file", path: "/a/b", ret: 3, file: []string{"b", "a"}, flags: bpf.FlagPseudoPath | bpf.FlagTruncWalk,
			wantFile: "/a/b", wantKPath: "/a/b", wantID: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r record[bpf.OpenRecord]
			r.fixed.H = hdr(bpf.RecordOpen, "cat")
			r.fixed.H.Flags = tc.flags
			r.fixed.What = bpf.WhatOpenat
			r.fixed.Dfd = -100
			r.fixed.Ret = tc.ret
			r.fixed.Path = r.str(tc.path)
			r.fixed.File = r.walk(tc.file...)
			r.fixed.Dev, r.fixed.Ino, r.fixed.Nlink, r.fixed.Imode = kdev, 1234, 2, 0o100640
			var ev event.Event
			if err := New().Decode(r.bytes(), &ev); err != nil {
				t.Fatal(err)
			}
			o := &ev.Open
			if o.FilePath != tc.wantFile || o.KernelPath() != tc.wantKPath {
				t.Errorf("file path %q kernel path %q, want %q and %q", o.FilePath, o.KernelPath(), tc.wantFile, tc.wantKPath)
			}
			want := event.FileID{}
			if tc.wantID {
				want = event.FileID{Dev: unix.Mkdev(259, 3), Ino: 1234}
			}
			if o.ID() != want {
				t.Errorf("identity %+v, want %+v", o.ID(), want)
			}
			if tc.wantID && (o.Nlink != 2 || !o.Regular()) {
				t.Errorf("nlink %d mode %o", o.Nlink, o.FileMode)
			}
			if o.Path != tc.path {
				t.Errorf("path as passed %q, want %q", o.Path, tc.path)
			}
		})
	}
}

// The device number in an identity is the one stat(2) gives for the same
// filesystem.
func TestDevMatchesStat(t *testing.T) {
	var st unix.Stat_t
	if err := unix.Stat(".", &st); err != nil {
		t.Fatal(err)
	}
	major, minor := unix.Major(st.Dev), unix.Minor(st.Dev)
	if got := devFromKernel(major<<20 | minor); got != st.Dev {
		t.Errorf("devFromKernel(%d:%d) = %d, stat says %d", major, minor, got, st.Dev)
	}
}

func TestDecodePseudoExe(t *testing.T) {
	var r record[bpf.ExecRecord]
	r.fixed.H = hdr(bpf.RecordExec, "x")
	r.fixed.H.Flags = bpf.FlagPseudoPath
	r.fixed.Exe = r.walk("memfd:payload")
	var ev event.Event
	if err := New().Decode(r.bytes(), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Exec.Exe != "memfd:payload" || ev.Flags&event.FlagPseudoPath == 0 {
		t.Errorf("exe %q flags %v", ev.Exec.Exe, ev.Flags.Names())
	}
}

func TestDecodeConnect(t *testing.T) {
	for _, tc := range []struct {
		family uint16
		addr   netip.Addr
	}{
		{2, netip.MustParseAddr("127.0.0.1")},
		{10, netip.MustParseAddr("::1")},
	} {
		var r record[bpf.ConnectRecord]
		r.fixed.H = hdr(bpf.RecordConnect, "curl")
		r.fixed.Family = tc.family
		r.fixed.Port = 8080
		r.fixed.Ret = -111
		a := tc.addr.AsSlice()
		copy(r.fixed.Addr[:], a)
		var ev event.Event
		if err := New().Decode(r.bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Connect.Addr != tc.addr || ev.Connect.Port != 8080 || ev.Connect.Ret != -111 {
			t.Errorf("connect %+v, want %s:8080", ev.Connect, tc.addr)
		}
	}
}

func TestDecodeSetIDAndSmallKinds(t *testing.T) {
	d := New()
	var ev event.Event

	var s record[bpf.SetIDRecord]
	s.fixed.H = hdr(bpf.RecordSetID, "python3")
	s.fixed.What = bpf.WhatSetresuid
	s.fixed.Args = [3]uint32{0, 0, 0}
	s.fixed.OldIds = [4]uint32{1000, 1000, 1000, 1000}
	if err := d.Decode(s.bytes(), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.SetID.Syscall != "setresuid" || ev.SetID.Old.Effective != 1000 || ev.SetID.New.Effective != 0 {
		t.Errorf("setid %+v", ev.SetID)
	}

	var b record[bpf.BPFProgRecord]
	b.fixed.H = hdr(bpf.RecordBPFProg, "loader")
	copy(b.fixed.ProgName[:], "my_prog")
	b.fixed.ProgType = 5
	if err := d.Decode(b.bytes(), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.BPFProg.Name != "my_prog" || ev.BPFProg.ProgType != 5 {
		t.Errorf("bpf %+v", ev.BPFProg)
	}

	var m record[bpf.MemfdRecord]
	m.fixed.H = hdr(bpf.RecordMemfd, "x")
	m.fixed.Name = m.str("payload")
	m.fixed.Ret = 4
	if err := d.Decode(m.bytes(), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Memfd.Name != "payload" || ev.Memfd.Ret != 4 {
		t.Errorf("memfd %+v", ev.Memfd)
	}

	var e record[bpf.ExitRecord]
	e.fixed.H = hdr(bpf.RecordExit, "x")
	e.fixed.ExitCode, e.fixed.Signal = 3, 9
	if err := d.Decode(e.bytes(), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Exit.Code != 3 || ev.Exit.Signal != 9 {
		t.Errorf("exit %+v", ev.Exit)
	}
}

func TestDecodeMalformed(t *testing.T) {
	var good record[bpf.OpenRecord]
	good.fixed.H = hdr(bpf.RecordOpen, "cat")
	good.fixed.Path = good.str("/etc/hostname")
	raw := good.bytes()

	var r record[bpf.OpenRecord]
	r.fixed = good.fixed
	r.fixed.Path = bpf.StrRef{Off: uint16(len(raw)), Len: 10}
	badRef := r.bytes()

	unknown := append([]byte(nil), raw...)
	unknown[offKind] = 99

	for _, tc := range []struct {
		name string
		raw  []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"header only partly there", raw[:10], ErrShort},
		{"fixed part cut", raw[:headerSize+4], ErrShort},
		{"string past the end", badRef, ErrBadString},
		{"unknown kind", unknown, ErrUnknownKind},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := New()
			var ev event.Event
			if err := d.Decode(tc.raw, &ev); !errors.Is(err, tc.want) {
				t.Fatalf("Decode() = %v, want %v", err, tc.want)
			}
			if d.Stats().Errors() != 1 || d.Stats().Total() != 0 {
				t.Errorf("stats %+v: want exactly one error counted", d.Stats())
			}
		})
	}
}

// Records captured from the kernel on a real run (see test/capture_test.go,
// which rewrites them with BULKHEAD_UPDATE_RECORDS=1) must keep decoding.
func TestDecodeRecordedRecords(t *testing.T) {
	files, _ := filepath.Glob("testdata/records/*.bin")
	if len(files) == 0 {
		t.Skip("no recorded records in testdata/records")
	}
	d := New()
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var ev event.Event
		if err := d.Decode(raw, &ev); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if want := filepath.Base(f); want[:len(ev.Kind.String())] != ev.Kind.String() {
			t.Errorf("%s decoded as %s", f, ev.Kind)
		}
	}
}

func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/records/*.bin")
	for _, file := range files {
		if raw, err := os.ReadFile(file); err == nil {
			f.Add(raw)
		}
	}
	var r record[bpf.ExecRecord]
	r.fixed.H = hdr(bpf.RecordExec, "cat")
	r.fixed.Args = r.walk("cat", "x")
	r.fixed.Exe = r.walk("cat", "bin")
	f.Add(r.bytes())
	for _, raw := range newKindRecords() {
		f.Add(raw)
	}
	f.Add([]byte{})
	d := New()
	f.Fuzz(func(t *testing.T, raw []byte) {
		var ev event.Event
		if err := d.Decode(raw, &ev); err != nil {
			return
		}
		// Whatever decodes must be a known kind with strings inside bounds
		// (touching them would fault otherwise) and must clone cleanly.
		if !ev.Kind.Valid() {
			t.Fatalf("decoded unknown kind %d", ev.Kind)
		}
		c := ev.Clone()
		_ = len(c.Comm) + len(c.Exec.Args) + len(c.Exec.Exe) + len(c.Open.Resolved) + len(c.Open.FilePath) + len(c.Module.Path) + len(c.Memfd.Name) +
			len(c.Exec.Env) + len(c.Exec.Script) + len(c.File.Resolved) + len(c.File.NewResolved) + len(c.File.FilePath) + len(c.File.Dir) +
			len(c.Namespace.NsFile) + len(c.Namespace.Dir) + len(c.Namespace.Target) + len(c.Signal.TargetComm) + len(c.Sys.Name)
	})
}

func BenchmarkDecodeOpen(b *testing.B) {
	var r record[bpf.OpenRecord]
	r.fixed.H = hdr(bpf.RecordOpen, "cat")
	r.fixed.What = bpf.WhatOpenat
	r.fixed.Path = r.str("hostname")
	r.fixed.File = r.walk("hostname", "etc")
	r.fixed.Dir = r.walk("etc")
	r.fixed.Dfd = -100
	r.fixed.Ret = 3
	raw := r.bytes()
	d := New()
	var ev event.Event
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if err := d.Decode(raw, &ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeExec(b *testing.B) {
	var r record[bpf.ExecRecord]
	r.fixed.H = hdr(bpf.RecordExec, "bash")
	r.fixed.Args = r.walk("bash", "-c", "echo hello world")
	r.fixed.Filename = r.str("/bin/bash")
	r.fixed.Exe = r.walk("bash", "bin", "usr")
	raw := r.bytes()
	d := New()
	var ev event.Event
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(raw, &ev); err != nil {
			b.Fatal(err)
		}
	}
}

// needsClean says yes exactly when clean would change an absolute path.
func TestNeedsCleanAgreesWithClean(t *testing.T) {
	segs := []string{"", ".", "..", "a", ".a", "a.", "..a", "a..", "...", "/"}
	d := New()
	var walk func(p string, depth int)
	walk = func(p string, depth int) {
		if depth == 0 {
			return
		}
		for _, s := range segs {
			q := p + "/" + s
			d.scratch = d.scratch[:0]
			if got, want := needsClean(q), d.clean("/", q) != q; got != want {
				t.Fatalf("needsClean(%q) = %v; clean gives %q", q, got, d.clean("/", q))
			}
			walk(q, depth-1)
		}
	}
	walk("", 4)
}

// Decoding into an event that held another kind leaves nothing of it.
func TestDecodeReusedEventIsClean(t *testing.T) {
	var x record[bpf.ExecRecord]
	x.fixed.H = hdr(bpf.RecordExec, "cat")
	x.fixed.Exe = x.walk("cat", "bin")
	var o record[bpf.OpenRecord]
	o.fixed.H = hdr(bpf.RecordOpen, "cat")
	o.fixed.Path = o.str("/etc/hostname")
	o.fixed.File = o.walk("hostname", "etc")
	o.fixed.Ret = 3
	var bad record[bpf.OpenRecord]
	bad.fixed = o.fixed
	bad.fixed.File = bpf.StrRef{Off: 9999, Len: 5}

	d := New()
	var ev event.Event
	for _, raw := range [][]byte{x.bytes(), bad.bytes(), o.bytes(), x.bytes()} {
		d.Decode(raw, &ev)
	}
	want := event.Event{}
	if err := New().Decode(x.bytes(), &want); err != nil {
		t.Fatal(err)
	}
	if ev.Open != (event.Open{}) || ev.Exec != want.Exec || ev.Header != want.Header {
		t.Errorf("reused event: %+v\nwant %+v", ev, want)
	}
}

// A relative open whose directory lies on the opened file's path: the
// kernel sends dir as the tail of the file's components, not a walk of its
// own. Both decode from the same bytes, and the directory is the same as
// when walked apart (also when it is the root: an empty tail).
func TestDecodeOpenDirInFileWalk(t *testing.T) {
	for _, tc := range []struct {
		name, path    string
		file          []string
		skip          int // leading components of file that are below dir
		dir, resolved string
		filePath      string
	}{
		{"name in cwd", "f", []string{"f", "b", "a"}, 1, "/a/b", "/a/b/f", "/a/b/f"},
		{"components below cwd", "b/f", []string{"f", "b", "a"}, 2, "/a", "/a/b/f", "/a/b/f"},
		{"symlink below cwd", "l/f", []string{"f", "b", "a"}, 2, "/a", "/a/l/f", "/a/b/f"},
		{"cwd is the root", "a/b/f", []string{"f", "b", "a"}, 3, "/", "/a/b/f", "/a/b/f"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r record[bpf.OpenRecord]
			r.fixed.H = hdr(bpf.RecordOpen, "cat")
			r.fixed.What = bpf.WhatOpenat
			r.fixed.Dfd = -100
			r.fixed.Ret = 3
			r.fixed.Path = r.str(tc.path)
			r.fixed.File = r.walk(tc.file...)
			below := 0
			for _, c := range tc.file[:tc.skip] {
				below += len(c) + 1
			}
			r.fixed.Dir = bpf.StrRef{Off: r.fixed.File.Off + uint16(below), Len: r.fixed.File.Len - uint16(below)}
			var ev event.Event
			if err := New().Decode(r.bytes(), &ev); err != nil {
				t.Fatal(err)
			}
			o := &ev.Open
			if o.Dir != tc.dir || o.Resolved != tc.resolved || o.FilePath != tc.filePath {
				t.Errorf("dir %q resolved %q file %q, want %q %q %q", o.Dir, o.Resolved, o.FilePath, tc.dir, tc.resolved, tc.filePath)
			}
		})
	}
}
