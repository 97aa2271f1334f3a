package bpf_test

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/bulkhead-sec/bulkhead/bpf"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"golang.org/x/sys/unix"
)

// TestNsChild is TestCaptureNamespace's child: in a mount namespace of its
// own it mounts, unmounts, joins its own network namespace and changes
// its root, so that nothing outside it changes.
func TestNsChild(t *testing.T) {
	if os.Getenv("BULKHEAD_NS_CHILD") == "" {
		t.Skip("only a child of TestCaptureNamespace")
	}
	runtime.LockOSThread()
	fail := func(what string, err error) {
		if err != nil {
			fmt.Printf("%s: %v\n", what, err)
			os.Exit(1)
		}
	}
	fail("unshare", unix.Unshare(unix.CLONE_NEWNS))
	fail("private", unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""))
	fail("mkdir", os.Mkdir("mnt", 0o755))
	fail("mount", unix.Mount(hostile, "mnt", "tmpfs", unix.MS_NOSUID, "size=1m"))
	fail("umount2", unix.Unmount("mnt", unix.MNT_DETACH))
	fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY, 0)
	fail("open ns", err)
	fail("setns", unix.Setns(fd, unix.CLONE_NEWNET))
	fail("chroot", unix.Chroot("mnt"))
	fmt.Println("ok")
}

// Mounts, namespace changes and clones with CLONE_NEW* flags, made for
// real in a child of their own, come out with their arguments; a relative
// mount point with the directory it was resolved against.
func TestCaptureNamespace(t *testing.T) {
	d := tempDir(t)
	nsLink, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var child, plain, uts int
	evs := capture(t, bpf.Options{}, []uint16{bpf.RecordNamespace}, func() {
		cmd := exec.Command(os.Args[0], "-test.run=^TestNsChild$")
		cmd.Dir = d
		cmd.Env = append(os.Environ(), "BULKHEAD_NS_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "ok") {
			t.Fatalf("namespace child: %v\n%s", err, out)
		}
		child = cmd.Process.Pid
		p := exec.Command("/bin/true")
		if err := p.Run(); err != nil {
			t.Fatal(err)
		}
		plain = p.Process.Pid
		u := exec.Command("/bin/true")
		u.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUTS}
		if err := u.Run(); err != nil {
			t.Fatal(err)
		}
		uts = u.Process.Pid
	})
	mine := func(what string, sc event.Syscall) *event.Namespace {
		t.Helper()
		return &one(t, evs, event.KindNamespace, what, func(e *event.Event) bool {
			return int(e.PID) == child && e.Namespace.Syscall == sc
		}).Namespace
	}
	un := mine("unshare", "unshare")
	if un.Flags != unix.CLONE_NEWNS || un.Ret != 0 || len(un.Namespaces()) != 1 || un.Namespaces()[0] != "mnt" {
		t.Errorf("unshare: %+v", un)
	}
	mounts := find(evs, event.KindNamespace, func(e *event.Event) bool { return int(e.PID) == child && e.Namespace.Syscall == "mount" })
	var m *event.Namespace
	for _, e := range mounts {
		if e.Namespace.Target == "mnt" {
			m = &e.Namespace
		}
	}
	if m == nil {
		t.Fatalf("no mount of mnt among %d mounts", len(mounts))
	}
	if m.Source != hostile || m.FSType != "tmpfs" || m.Dir != d || m.Flags != unix.MS_NOSUID || m.Ret != 0 {
		t.Errorf("mount: %+v", m)
	}
	um := mine("umount2", "umount2")
	if um.Target != "mnt" || um.Dir != d || um.Flags != unix.MNT_DETACH {
		t.Errorf("umount2: %+v", um)
	}
	sn := mine("setns", "setns")
	if sn.NsFile != nsLink || sn.Flags != unix.CLONE_NEWNET || sn.Fd < 0 || sn.Ret != 0 {
		t.Errorf("setns: %+v, want ns file %q", sn, nsLink)
	}
	cr := mine("chroot", "chroot")
	if cr.Target != "mnt" || cr.Dir != d || cr.Ret != 0 {
		t.Errorf("chroot: %+v", cr)
	}
	me := uint32(os.Getpid())
	cl := one(t, evs, event.KindNamespace, "clone with CLONE_NEWUTS", func(e *event.Event) bool {
		return e.PID == me && e.Namespace.Ret == int64(uts)
	}).Namespace
	if (cl.Syscall != "clone" && cl.Syscall != "clone3") || cl.Flags&unix.CLONE_NEWUTS == 0 {
		t.Errorf("clone: %+v", cl)
	}
	if n := find(evs, event.KindNamespace, func(e *event.Event) bool { return e.Namespace.Ret == int64(plain) || e.Namespace.Ret == int64(child) }); len(n) != 0 {
		t.Errorf("plain forks reported as namespace changes: %+v", n[0].Namespace)
	}
}
