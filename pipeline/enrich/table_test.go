package enrich

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"go.uber.org/zap/zaptest"
)

// fakeProc writes a /proc-like tree: pid → (ppid, comm, exe).
func fakeProc(t *testing.T, procs map[uint32][3]string) string {
	t.Helper()
	root := t.TempDir()
	for pid, p := range procs {
		dir := filepath.Join(root, fmt.Sprint(pid))
		must(t, os.MkdirAll(dir, 0o755))
		must(t, os.WriteFile(filepath.Join(dir, "stat"), []byte(fmt.Sprintf("%d (%s) S %s 1 1 0 -1", pid, p[1], p[0])), 0o644))
		must(t, os.WriteFile(filepath.Join(dir, "cmdline"), []byte(p[2]+"\x00--flag\x00"), 0o644))
		must(t, os.WriteFile(filepath.Join(dir, "status"), []byte("Name:\tx\nUid:\t1000\t0\t0\t0\n"), 0o644))
		must(t, os.WriteFile(filepath.Join(dir, "cgroup"), []byte("1:name=systemd:/\n0::/system.slice/docker-"+fmt.Sprintf("%064x", pid)+".scope\n"), 0o644))
		must(t, os.Symlink(p[2], filepath.Join(dir, "exe")))
	}
	return root
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func newTable(t *testing.T, root string, maxAnc, maxProcs int) *Table {
	opts := DefaultOptions()
	opts.ProcRoot, opts.MaxAncestors, opts.MaxProcesses = root, maxAnc, maxProcs
	return New(opts, zaptest.NewLogger(t))
}

func TestSeedLinksAncestry(t *testing.T) {
	root := fakeProc(t, map[uint32][3]string{
		1:  {"0", "init", "/sbin/init"},
		10: {"1", "sshd", "/usr/sbin/sshd"},
		20: {"10", "bash", "/usr/bin/bash"},
	})
	tb := newTable(t, root, 16, 100)
	n, err := tb.Seed()
	if err != nil || n != 3 {
		t.Fatalf("Seed() = %d, %v", n, err)
	}
	p := tb.Lookup(20)
	if p == nil || p.Exe != "/usr/bin/bash" || p.Comm != "bash" || p.PPID != 10 || p.UID != 1000 || !p.FromProc {
		t.Fatalf("pid 20: %+v", p)
	}
	if len(p.Ancestors) != 2 || p.Ancestors[0].Exe != "/usr/sbin/sshd" || p.Ancestors[1].PID != 1 {
		t.Errorf("ancestry %+v", p.Ancestors)
	}
	if p.ContainerID != fmt.Sprintf("%064x", 20) {
		t.Errorf("container id %q", p.ContainerID)
	}
}

func TestForkExecExit(t *testing.T) {
	root := fakeProc(t, map[uint32][3]string{1: {"0", "init", "/sbin/init"}, 10: {"1", "nginx", "/usr/sbin/nginx"}})
	tb := newTable(t, root, 16, 100)
	if _, err := tb.Seed(); err != nil {
		t.Fatal(err)
	}
	fork := event.Event{Header: event.Header{Kind: event.KindFork, PID: 10, PPID: 1, Comm: "nginx"}, Fork: event.Fork{ChildPID: 11}}
	tb.Enrich(&fork)
	if fork.Process == nil || fork.Process.PID != 10 {
		t.Fatalf("fork event's process: %+v", fork.Process)
	}
	exec := event.Event{Header: event.Header{Kind: event.KindExec, PID: 11, PPID: 10, Comm: "sh"}, Exec: event.Exec{Exe: "/bin/sh", Args: "sh\x00-c\x00id\x00"}}
	tb.Enrich(&exec)
	p := exec.Process
	if p == nil || p.Exe != "/bin/sh" || p.Comm != "sh" || len(p.Ancestors) != 2 || p.Ancestors[0].Exe != "/usr/sbin/nginx" || p.Ancestors[1].Exe != "/sbin/init" {
		t.Fatalf("exec'd process: %+v", p)
	}
	open := event.Event{Header: event.Header{Kind: event.KindOpen, PID: 11}}
	tb.Enrich(&open)
	if open.Process != p {
		t.Errorf("open after exec got %+v, want the exec'd process", open.Process)
	}
	exit := event.Event{Header: event.Header{Kind: event.KindExit, PID: 11}}
	tb.Enrich(&exit)
	if exit.Process != p || tb.Lookup(11) != nil {
		t.Errorf("exit did not evict pid 11")
	}
	if s := tb.Stats(); s.Forks != 1 || s.Execs != 1 || s.Exits != 1 || s.Processes != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestAncestryIsBounded(t *testing.T) {
	tb := newTable(t, t.TempDir(), 3, 1000)
	for pid := uint32(2); pid < 20; pid++ {
		ev := event.Event{Header: event.Header{Kind: event.KindExec, PID: pid, PPID: pid - 1, Comm: "x"}, Exec: event.Exec{Exe: fmt.Sprint("/bin/p", pid)}}
		tb.Enrich(&ev)
		if len(ev.Process.Ancestors) > 3 {
			t.Fatalf("pid %d has %d ancestors, max 3", pid, len(ev.Process.Ancestors))
		}
	}
	if a := tb.Lookup(19).Ancestors; a[0].Exe != "/bin/p18" || a[2].Exe != "/bin/p16" {
		t.Errorf("ancestry %+v", a)
	}
}

// A process gone from /proc is known from its event; the table never grows
// past its bound, even when exits are missed.
func TestUnknownAndEviction(t *testing.T) {
	tb := newTable(t, t.TempDir(), 4, 50)
	for pid := uint32(1000); pid < 1200; pid++ {
		ev := event.Event{Header: event.Header{Kind: event.KindOpen, PID: pid, PPID: 1, Comm: "ghost", UID: 7}}
		tb.Enrich(&ev)
		if ev.Process == nil || ev.Process.Comm != "ghost" || ev.Process.UID != 7 {
			t.Fatalf("pid %d: %+v", pid, ev.Process)
		}
		if n := tb.Stats().Processes; n > 50 {
			t.Fatalf("table holds %d processes, bound is 50", n)
		}
	}
	if tb.Stats().Evicted == 0 {
		t.Error("nothing evicted")
	}
}

func TestContainerID(t *testing.T) {
	id := "4f1b2c3d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789abcdef"
	for _, tc := range []struct{ path, want string }{
		{"/system.slice/docker-" + id + ".scope", id},
		{"/docker/" + id, id},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice/cri-containerd-" + id + ".scope", id},
		{"/machine.slice/libpod-conmon-" + id + ".scope", ""},
		{"/user.slice/user-0.slice/session-1.scope", ""},
		{"", ""},
	} {
		if got := ContainerID(tc.path); got != tc.want {
			t.Errorf("ContainerID(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}

// A process's argv read from /proc is kept as the kernel side captures it
// at exec (ArgvMax), however long it is: a local user's 2 MiB argv must not
// size the monitor's table or the records sent to plugins.
func TestProcArgvIsBounded(t *testing.T) {
	root := fakeProc(t, map[uint32][3]string{1: {"0", "init", "/sbin/init"}, 30: {"1", "long", "/usr/bin/long"}})
	must(t, os.WriteFile(filepath.Join(root, "30", "cmdline"), bytes.Repeat([]byte("A\x00"), 1<<20), 0o644))
	tb := newTable(t, root, 16, 100)
	if _, err := tb.Seed(); err != nil {
		t.Fatal(err)
	}
	if p := tb.Lookup(30); p == nil || len(p.Args) != ArgvMax {
		t.Fatalf("pid 30 kept %d bytes of argv, want %d", len(p.Args), ArgvMax)
	}
}
