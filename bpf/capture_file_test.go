package bpf_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bulkhead-sec/bulkhead/bpf"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"golang.org/x/sys/unix"
)

// Every file change of the family, made for real by this process (paths
// relative to a dirfd) and by a shell (paths relative to its cwd), comes
// out with its path as passed, the directory it was resolved against and
// the resolved path; the fd calls with the file's kernel path.
func TestCaptureFile(t *testing.T) {
	d := tempDir(t)
	if err := os.WriteFile(filepath.Join(d, "f"), []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	dirfd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dirfd)
	f, err := os.OpenFile(filepath.Join(d, "f"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	fd := int(f.Fd())

	evs := capture(t, bpf.Options{}, []uint16{bpf.RecordFile}, func() {
		must := func(what string, err error) {
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		must("mkdirat", unix.Mkdirat(dirfd, hostile, 0o1755))
		must("symlinkat", unix.Symlinkat("../target", dirfd, "lnk"))
		must("linkat", unix.Linkat(dirfd, "f", dirfd, "hard", 0))
		must("renameat2", unix.Renameat2(dirfd, "hard", unix.AT_FDCWD, d+"/./renamed", unix.RENAME_NOREPLACE))
		must("fchmodat", unix.Fchmodat(dirfd, "f", 0o4755, 0))
		must("fchmod", unix.Fchmod(fd, 0o2750))
		must("fchownat", unix.Fchownat(dirfd, "f", -1, 0, 0))
		must("ftruncate", unix.Ftruncate(fd, 7))
		must("truncate", unix.Truncate(d+"/f", 3))
		must("unlinkat", unix.Unlinkat(dirfd, "renamed", 0))
		must("rmdir", unix.Unlinkat(dirfd, hostile, unix.AT_REMOVEDIR))
		if err := unix.Unlinkat(dirfd, "missing", 0); err != unix.ENOENT {
			t.Fatalf("unlinkat missing: %v", err)
		}
		// Relative to the working directory, by other programs.
		sh(t, d, "mkdir sub && chmod 600 f && chown 0:0 f && ln -s f sub/s && mv sub/s sub/t && rm sub/t && rmdir sub")
	})

	got := func(what string, op event.FileOp, match func(*event.File) bool) *event.File {
		t.Helper()
		// This process's calls, or the shell's in d: other work on the host changes files too.
		return &one(t, evs, event.KindFile, what, func(e *event.Event) bool {
			mine := e.PID == uint32(os.Getpid()) || (len(e.File.Resolved) > len(d) && e.File.Resolved[:len(d)+1] == d+"/")
			return mine && e.File.Op == op && match(&e.File)
		}).File
	}
	check := func(what, gotS, want string) {
		t.Helper()
		if gotS != want {
			t.Errorf("%s = %q, want %q", what, gotS, want)
		}
	}

	m := got("mkdirat", event.FileMkdir, func(f *event.File) bool { return f.Path == hostile })
	check("mkdirat syscall", string(m.Syscall), "mkdirat")
	check("mkdirat dir", m.Dir, d)
	check("mkdirat resolved", m.Resolved, d+"/"+hostile)
	if m.Mode != 0o1755 || len(m.SpecialBits()) != 1 || m.SpecialBits()[0] != "sticky" || m.Ret != 0 {
		t.Errorf("mkdirat mode %o bits %v ret %d", m.Mode, m.SpecialBits(), m.Ret)
	}

	s := got("symlinkat", event.FileSymlink, func(f *event.File) bool { return f.NewPath == "lnk" })
	check("symlink target", s.Path, "../target")
	check("symlink new resolved", s.NewResolved, d+"/lnk")
	check("symlink new dir", s.NewDir, d)
	check("symlink target resolved", s.Resolved, filepath.Dir(d)+"/target")

	l := got("linkat", event.FileLink, func(f *event.File) bool { return f.NewPath == "hard" })
	check("link resolved", l.Resolved, d+"/f")
	check("link new resolved", l.NewResolved, d+"/hard")

	r := got("renameat2", event.FileRename, func(f *event.File) bool { return f.Path == "hard" })
	check("rename syscall", string(r.Syscall), "renameat2")
	check("rename resolved", r.Resolved, d+"/hard")
	check("rename new path", r.NewPath, d+"/./renamed")
	check("rename new resolved", r.NewResolved, d+"/renamed")
	if r.AtFlags != unix.RENAME_NOREPLACE {
		t.Errorf("rename flags %#x", r.AtFlags)
	}

	c := got("fchmodat", event.FileChmod, func(f *event.File) bool { return f.Syscall == "fchmodat" && f.Mode == 0o4755 })
	check("fchmodat resolved", c.Resolved, d+"/f")
	if c.Mode != 0o4755 || c.SpecialBits()[0] != "setuid" {
		t.Errorf("fchmodat mode %o", c.Mode)
	}
	fc := got("fchmod", event.FileChmod, func(f *event.File) bool { return f.Syscall == "fchmod" })
	check("fchmod file", fc.FilePath, d+"/f")
	if fc.Path != "" || fc.Mode != 0o2750 || fc.Ino != st.Ino || fc.Dev != st.Dev || fc.FileMode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("fchmod: %+v (stat dev %d ino %d)", fc, st.Dev, st.Ino)
	}
	o := got("fchownat", event.FileChown, func(f *event.File) bool { return f.Syscall == "fchownat" && f.UID == event.NoID })
	if o.UID != event.NoID || o.GID != 0 || o.Resolved != d+"/f" {
		t.Errorf("fchownat: %+v", o)
	}
	ft := got("ftruncate", event.FileTruncate, func(f *event.File) bool { return f.Syscall == "ftruncate" })
	if ft.Length != 7 || ft.FilePath != d+"/f" {
		t.Errorf("ftruncate: %+v", ft)
	}
	tr := got("truncate", event.FileTruncate, func(f *event.File) bool { return f.Syscall == "truncate" })
	if tr.Length != 3 || tr.Resolved != d+"/f" || tr.Dir != "" {
		t.Errorf("truncate: %+v", tr)
	}
	u := got("unlinkat", event.FileUnlink, func(f *event.File) bool { return f.Path == "renamed" })
	check("unlink resolved", u.Resolved, d+"/renamed")
	rd := got("rmdir", event.FileRmdir, func(f *event.File) bool { return f.Path == hostile })
	check("rmdir resolved", rd.Resolved, d+"/"+hostile)
	if rd.AtFlags != unix.AT_REMOVEDIR {
		t.Errorf("rmdir flags %#x", rd.AtFlags)
	}
	miss := got("unlinkat missing", event.FileUnlink, func(f *event.File) bool { return f.Path == "missing" })
	if miss.Ret != -int64(unix.ENOENT) {
		t.Errorf("unlinkat missing ret %d", miss.Ret)
	}

	// The shell's calls, relative to its working directory.
	sm := got("mkdir sub", event.FileMkdir, func(f *event.File) bool { return f.Path == "sub" })
	check("mkdir sub dir", sm.Dir, d)
	check("mkdir sub resolved", sm.Resolved, d+"/sub")
	got("chmod 600", event.FileChmod, func(f *event.File) bool { return f.Resolved == d+"/f" && f.Mode == 0o600 })
	got("chown 0:0", event.FileChown, func(f *event.File) bool { return f.Resolved == d+"/f" && f.UID == 0 && f.GID == 0 })
	ln := got("ln -s", event.FileSymlink, func(f *event.File) bool { return f.NewPath == "sub/s" })
	check("ln -s target resolved", ln.Resolved, d+"/sub/f")
	check("ln -s new resolved", ln.NewResolved, d+"/sub/s")
	got("mv", event.FileRename, func(f *event.File) bool { return f.Resolved == d+"/sub/s" && f.NewResolved == d+"/sub/t" })
	got("rm", event.FileUnlink, func(f *event.File) bool { return f.Resolved == d+"/sub/t" })
	got("rmdir sub", event.FileRmdir, func(f *event.File) bool { return f.Resolved == d+"/sub" })
}
