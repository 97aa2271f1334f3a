package bpf_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"github.com/bulkhead-sec/bulkhead/bpf"
	"github.com/bulkhead-sec/bulkhead/pipeline/decode"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/source"
	"github.com/bulkhead-sec/bulkhead/test/testenv"
	"golang.org/x/sys/unix"
)

// openSeen is one open of this process: the decoded event and whether the
// record's directory was sent as the tail of the file's own path.
type openSeen struct {
	ev        *event.Event
	dirInFile bool
}

type openRecorder struct {
	dec   *decode.Decoder
	ev    event.Event
	pid   uint32
	seen  map[string]openSeen
	errs  int
	total int
}

func (o *openRecorder) Record(raw []byte) {
	if err := o.dec.Decode(raw, &o.ev); err != nil {
		o.errs++
		return
	}
	o.total++
	if o.ev.Kind != event.KindOpen || o.ev.PID != o.pid {
		return
	}
	var r bpf.OpenRecord
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&r)), unsafe.Sizeof(r)), raw)
	in := r.Dir.Off >= r.File.Off && uint32(r.Dir.Off)+uint32(r.Dir.Len) <= uint32(r.File.Off)+uint32(r.File.Len) && r.File.Len > 0
	c := o.ev.Clone() // the decoded strings borrow from the ring
	o.seen[c.Open.Path] = openSeen{ev: c, dirInFile: in}
}
func (o *openRecorder) Flush() {}

// A relative open's directory (cwd or dfd) is what the kernel resolved the
// path against, whether the kernel sends it as the tail of the opened
// file's own path (the directory is on that path) or walks it apart (a
// "..", a symlink out of it, a failed open). Both ways are exercised here
// and checked against the real paths.
func TestOpenRelativeDirectory(t *testing.T) {
	testenv.RequireBPF(t)
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"a/b", "x"} {
		if err := os.MkdirAll(filepath.Join(d, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"f1", "f2", "f3", "f4", "f5", "f6", "f7"} {
		if err := os.WriteFile(filepath.Join(d, "a/b", f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(d, "a"), filepath.Join(d, "l")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(d, "a"), filepath.Join(d, "x/out")); err != nil {
		t.Fatal(err)
	}
	dirA, err := unix.Open(filepath.Join(d, "a"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dirA)
	dirX, err := unix.Open(filepath.Join(d, "x"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dirX)

	cases := []struct {
		name, cwd, path string
		dirfd           int
		dir, resolved   string
		file            string // "" for a failed open
		dirInFile       bool
	}{
		{"name in cwd", d + "/a/b", "f1", unix.AT_FDCWD, d + "/a/b", d + "/a/b/f1", d + "/a/b/f1", true},
		{"components below cwd", d, "a/b/f2", unix.AT_FDCWD, d, d + "/a/b/f2", d + "/a/b/f2", true},
		{"symlink below cwd", d, "l/b/f3", unix.AT_FDCWD, d, d + "/l/b/f3", d + "/a/b/f3", true},
		{"dot-dot out of cwd", d + "/x", "../a/b/f4", unix.AT_FDCWD, d + "/x", d + "/a/b/f4", d + "/a/b/f4", false},
		{"symlink out of cwd", d + "/x", "out/b/f5", unix.AT_FDCWD, d + "/x", d + "/x/out/b/f5", d + "/a/b/f5", false},
		{"below a directory fd", "", "b/f6", dirA, d + "/a", d + "/a/b/f6", d + "/a/b/f6", true},
		{"dot-dot out of a directory fd", "", "../a/b/f7", dirX, d + "/x", d + "/a/b/f7", d + "/a/b/f7", false},
		{"failed open", d, "a/nope", unix.AT_FDCWD, d, d + "/a/nope", "", false},
		{"cwd is the root", "/", "dev/null", unix.AT_FDCWD, "/", "/dev/null", "/dev/null", true},
		{"cwd is a mount's root", "/dev", "null", unix.AT_FDCWD, "/dev", "/dev/null", "/dev/null", true},
	}

	k, err := bpf.Load(bpf.Options{RingBytes: 4 << 20, WakeupBytes: 4096, SelfPID: 1}) // trace this test too
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if err := k.Attach([]uint16{bpf.RecordOpen}); err != nil {
		t.Fatal(err)
	}
	rd, err := source.New(k.Events(), 2*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	h := &openRecorder{dec: decode.New(), pid: uint32(os.Getpid()), seen: map[string]openSeen{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- rd.Run(ctx, h) }()

	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if c.cwd != "" {
			if err := os.Chdir(c.cwd); err != nil {
				t.Fatal(err)
			}
		}
		fd, err := unix.Openat(c.dirfd, c.path, unix.O_RDONLY, 0)
		if err == nil {
			unix.Close(fd)
		} else if c.file != "" {
			t.Fatalf("%s: open %s: %v", c.name, c.path, err)
		}
	}
	if err := os.Chdir(wd); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if err := k.Detach(); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if h.errs != 0 {
		t.Errorf("%d records did not decode", h.errs)
	}
	t.Logf("%d records, %d of this process's opens", h.total, len(h.seen))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, ok := h.seen[c.path]
			if !ok {
				t.Fatalf("no open event for %q", c.path)
			}
			o := &s.ev.Open
			if o.Dir != c.dir || o.Resolved != c.resolved || o.FilePath != c.file {
				t.Errorf("dir %q resolved %q file %q, want %q %q %q (flags %v)", o.Dir, o.Resolved, o.FilePath, c.dir, c.resolved, c.file, s.ev.Flags.Names())
			}
			if s.ev.Flags&(event.FlagTruncWalk|event.FlagPseudoPath|event.FlagFileTruncWalk|event.FlagFilePseudo) != 0 {
				t.Errorf("flags %v", s.ev.Flags.Names())
			}
			if s.dirInFile != c.dirInFile {
				t.Errorf("directory sent as the tail of the file's path: %v, want %v", s.dirInFile, c.dirInFile)
			}
		})
	}
}
