package bpf_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/bulkhead-sec/bulkhead/bpf"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"golang.org/x/sys/unix"
)

// TestSetIDChild is TestCaptureSetID's child. Once it reads a line on
// stdin it changes credentials with raw syscalls (not Go's all-threads
// ones), each on a locked thread of its own: the main thread setresgid
// then setresuid, twice; another thread only setresuid. Credentials are
// per thread in the kernel, so the other thread's "before" is root's.
func TestSetIDChild(t *testing.T) {
	if os.Getenv("BULKHEAD_SETID_CHILD") == "" {
		t.Skip("only a child of TestCaptureSetID")
	}
	runtime.LockOSThread()
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fmt.Println("stdin:", err)
		os.Exit(1)
	}
	fail := func(what string, errno unix.Errno) {
		if errno != 0 {
			fmt.Printf("%s: %v\n", what, errno)
			os.Exit(1)
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var otherErr unix.Errno
	go func() {
		defer wg.Done()
		runtime.LockOSThread() // this thread ends with the goroutine: never reused
		_, _, otherErr = unix.RawSyscall(unix.SYS_SETRESUID, 3000, 3000, 3000)
	}()
	wg.Wait()
	fail("other thread setresuid", otherErr)
	_, _, errno := unix.RawSyscall(unix.SYS_SETRESGID, 2000, 2001, 2002)
	fail("setresgid", errno)
	_, _, errno = unix.RawSyscall(unix.SYS_SETRESUID, 1000, 1001, 0)
	fail("setresuid", errno)
	_, _, errno = unix.RawSyscall(unix.SYS_SETRESUID, 0, 0, 0) // saved 0: allowed
	fail("setresuid back", errno)
	fmt.Println("ok", unix.Gettid())
}

// setidChild starts TestSetIDChild, waiting for a line on its stdin.
func setidChild(t *testing.T) (cmd *exec.Cmd, run func() string) {
	t.Helper()
	cmd = exec.Command(os.Args[0], "-test.run=^TestSetIDChild$")
	cmd.Env = append(os.Environ(), "BULKHEAD_SETID_CHILD=1")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(out)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "ready") {
		t.Fatalf("setid child: %q %v", line, err)
	}
	return cmd, func() string {
		fmt.Fprintln(in)
		rest, _ := io.ReadAll(r)
		if err := cmd.Wait(); err != nil || !strings.Contains(string(rest), "ok") {
			t.Fatalf("setid child: %v\n%s", err, rest)
		}
		return string(rest)
	}
}

// setid changes come out with the credentials before and after, with no
// enter hook: for a process older than the hooks (its credentials read
// from /proc when they were attached) as for one started after them, and
// per thread: a thread's "before" is its own, not another thread's.
func TestCaptureSetID(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changes credentials: needs root")
	}
	old, runOld := setidChild(t)
	var young *exec.Cmd
	var oldOut, youngOut string
	evs := capture(t, bpf.Options{}, []uint16{bpf.RecordSetID}, func() {
		oldOut = runOld()
		var runYoung func() string
		young, runYoung = setidChild(t)
		youngOut = runYoung()
	})
	ids := func(v [4]uint32) event.IDs { return event.IDs{Real: v[0], Effective: v[1], Saved: v[2], FS: v[3]} }
	for _, child := range []struct {
		name string
		pid  int
		out  string
	}{{"started before the hooks", old.Process.Pid, oldOut}, {"started after them", young.Process.Pid, youngOut}} {
		t.Run(child.name, func(t *testing.T) {
			var tid uint32 // the thread that changed credentials three times
			if _, err := fmt.Sscanf(child.out[strings.Index(child.out, "ok"):], "ok %d", &tid); err != nil {
				t.Fatalf("child's output %q: %v", child.out, err)
			}
			mine := find(evs, event.KindSetID, func(e *event.Event) bool { return e.PID == uint32(child.pid) })
			want := []struct {
				same     bool // on the thread that printed ok
				syscall  string
				old, new event.IDs
			}{
				{false, "setresuid", ids([4]uint32{0, 0, 0, 0}), ids([4]uint32{3000, 3000, 3000, 3000})},
				{true, "setresgid", ids([4]uint32{0, 0, 0, 0}), ids([4]uint32{2000, 2001, 2002, 2001})},
				// Not the other thread's 3000: the main thread's own, root.
				{true, "setresuid", ids([4]uint32{0, 0, 0, 0}), ids([4]uint32{1000, 1001, 0, 1001})},
				{true, "setresuid", ids([4]uint32{1000, 1001, 0, 1001}), ids([4]uint32{0, 0, 0, 0})},
			}
			if len(mine) != len(want) {
				for _, e := range mine {
					t.Logf("tid %d %s %+v → %+v", e.TID, e.SetID.Syscall, e.SetID.Old, e.SetID.New)
				}
				t.Fatalf("%d setid events, want %d", len(mine), len(want))
			}
			for i, w := range want {
				got := mine[i]
				if (got.TID == tid) != w.same || string(got.SetID.Syscall) != w.syscall || got.SetID.Old != w.old || got.SetID.New != w.new || got.SetID.Ret != 0 {
					t.Errorf("event %d: tid %d %s %+v → %+v ret %d; want on tid %d: %v, %s %+v → %+v",
						i, got.TID, got.SetID.Syscall, got.SetID.Old, got.SetID.New, got.SetID.Ret, tid, w.same, w.syscall, w.old, w.new)
				}
			}
		})
	}
}
