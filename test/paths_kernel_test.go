package test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/bpf"
	"github.com/bulkhead-sec/bulkhead/pipeline/decode"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/source"
	"github.com/bulkhead-sec/bulkhead/test/testenv"
	"golang.org/x/sys/unix"
)

// opens keeps this process's decoded open events, by the path passed.
type opens struct {
	dec  *decode.Decoder
	ev   event.Event
	pid  uint32
	seen map[string]*event.Event
	errs int
}

func (o *opens) Record(raw []byte) {
	if err := o.dec.Decode(raw, &o.ev); err != nil {
		o.errs++
		return
	}
	if o.ev.Kind != event.KindOpen || o.ev.PID != o.pid {
		return
	}
	c := o.ev.Clone() // the decoded strings borrow from the ring
	o.seen[c.Open.Path] = c
}
func (o *opens) Flush() {}

// The kernel reports the opened file's own path and identity, however it
// was named: checked against realpath and stat for real opens of real
// files, short names (kept in the dentry) and long ones, across a mount.
func TestKernelPathOfOpenedFile(t *testing.T) {
	testenv.RequireBPF(t)
	dir := scratch(t, "")
	long := strings.Repeat("L", 255) // NAME_MAX: the longest name a walk must copy whole
	mid := strings.Repeat("m", 60)   // longer than a dentry's inline name
	target := filepath.Join(dir, mid, long)
	mustDo(t, os.MkdirAll(filepath.Dir(target), 0o755))
	mustDo(t, os.WriteFile(target, nil, 0o644))
	mustDo(t, os.WriteFile(filepath.Join(dir, "f"), nil, 0o644))
	mustDo(t, os.Symlink(dir, filepath.Join(dir, "dirlink")))
	mustDo(t, os.Symlink(filepath.Join(dir, "f"), filepath.Join(dir, "filelink")))
	mustDo(t, os.Link(filepath.Join(dir, "f"), filepath.Join(dir, "hard")))
	realDir, err := filepath.EvalSymlinks(dir)
	mustDo(t, err)

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
	h := &opens{dec: decode.New(), pid: uint32(os.Getpid()), seen: map[string]*event.Event{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- rd.Run(ctx, h) }()

	dirfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	mustDo(t, err)
	defer unix.Close(dirfd)
	cases := []struct {
		name, path string
		dirfd      int
		want       string // the file's real path
	}{
		{"dot-dot", dir + "/" + mid + "/../f", unix.AT_FDCWD, realDir + "/f"},
		{"double slash and dot", dir + "//./f", unix.AT_FDCWD, realDir + "/f"},
		{"symlink to the directory", dir + "/dirlink/f", unix.AT_FDCWD, realDir + "/f"},
		{"symlink to the file", dir + "/filelink", unix.AT_FDCWD, realDir + "/f"},
		{"hard link: its own name", dir + "/hard", unix.AT_FDCWD, realDir + "/hard"},
		{"relative to a directory fd", "./dirlink/" + mid + "/" + long, dirfd, realDir + "/" + mid + "/" + long},
		{"across a mount", "/dev/../dev/null", unix.AT_FDCWD, "/dev/null"},
	}
	for _, c := range cases {
		fd, err := unix.Openat(c.dirfd, c.path, unix.O_RDONLY, 0)
		mustDo(t, err)
		unix.Close(fd)
	}
	// A pipe reopened through /proc: a file with no path from any root,
	// which must not pass for one.
	var p [2]int
	mustDo(t, unix.Pipe(p[:]))
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	pipePath := "/proc/self/fd/" + strconv.Itoa(p[0])
	fd, err := unix.Open(pipePath, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	mustDo(t, err)
	unix.Close(fd)
	time.Sleep(50 * time.Millisecond)
	mustDo(t, k.Detach())
	cancel()
	mustDo(t, <-done)

	if h.errs != 0 {
		t.Errorf("%d records did not decode", h.errs)
	}
	t.Run("pipe", func(t *testing.T) {
		ev := h.seen[pipePath]
		if ev == nil {
			t.Fatalf("no open event for %q", pipePath)
		}
		o := &ev.Open
		// pipefs names its dentries only when asked (d_dname): no name to copy.
		if strings.HasPrefix(o.FilePath, "/") || ev.Flags&event.FlagFilePseudo == 0 || o.KernelPath() != "" || o.ID().IsZero() {
			t.Errorf("pipe: file path %q kernel path %q flags %v id %+v", o.FilePath, o.KernelPath(), ev.Flags.Names(), o.ID())
		}
	})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := h.seen[c.path]
			if ev == nil {
				t.Fatalf("no open event for %q", c.path)
			}
			var st unix.Stat_t
			mustDo(t, unix.Stat(c.want, &st))
			o := &ev.Open
			if o.FilePath != c.want || o.KernelPath() != c.want {
				t.Errorf("kernel path %q, want %q (flags %v)", o.FilePath, c.want, ev.Flags.Names())
			}
			if o.ID() != (event.FileID{Dev: st.Dev, Ino: st.Ino}) || o.Nlink != uint32(st.Nlink) || o.FileMode != st.Mode {
				t.Errorf("identity dev %d ino %d nlink %d mode %o; stat says dev %d ino %d nlink %d mode %o",
					o.Dev, o.Ino, o.Nlink, o.FileMode, st.Dev, st.Ino, st.Nlink, st.Mode)
			}
		})
	}
}
