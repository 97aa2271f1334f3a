package bpf_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/bulkhead-sec/bulkhead/bpf"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"golang.org/x/sys/unix"
)

// A signal to another process comes out with its target and the target's
// comm (a hostile one here, as is); signals a process sends itself (the Go
// runtime's, and one sent on purpose) do not.
func TestCaptureSignal(t *testing.T) {
	d := tempDir(t)
	// The target's comm is its binary's name: a hostile one.
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	bin := filepath.Join(d, hostile)
	data, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	target := exec.Command(bin, "30")
	if err := target.Start(); err != nil {
		t.Fatal(err)
	}
	defer target.Wait()
	defer target.Process.Kill()
	pid := target.Process.Pid
	me := os.Getpid()

	evs := capture(t, bpf.Options{}, []uint16{bpf.RecordSignal}, func() {
		if err := unix.Kill(pid, 0); err != nil {
			t.Fatal(err)
		}
		if err := unix.Tgkill(pid, pid, unix.SIGCONT); err != nil {
			t.Fatal(err)
		}
		if err := unix.Tgkill(me, unix.Gettid(), 0); err != nil {
			t.Fatal(err)
		}
		if err := unix.Kill(me, 0); err != nil {
			t.Fatal(err)
		}
		if err := unix.Kill(1<<22+7, unix.SIGTERM); err != unix.ESRCH {
			t.Fatalf("kill of no process: %v", err)
		}
	})
	mine := func(e *event.Event) bool { return e.PID == uint32(me) }
	k := one(t, evs, event.KindSignal, "kill 0", func(e *event.Event) bool {
		return mine(e) && e.Signal.Syscall == "kill" && e.Signal.TargetPID == int32(pid)
	}).Signal
	if k.Signal != 0 || k.Ret != 0 || k.TargetComm != hostile {
		t.Errorf("kill: %+v, want comm %q", k, hostile)
	}
	g := one(t, evs, event.KindSignal, "tgkill SIGCONT", func(e *event.Event) bool {
		return mine(e) && e.Signal.Syscall == "tgkill"
	}).Signal
	if g.TargetPID != int32(pid) || g.TargetTID != int32(pid) || g.Signal != uint32(unix.SIGCONT) || g.TargetComm != hostile {
		t.Errorf("tgkill: %+v", g)
	}
	e := one(t, evs, event.KindSignal, "kill of no process", func(e *event.Event) bool {
		return mine(e) && e.Signal.TargetPID == 1<<22+7
	}).Signal
	if e.Ret != -int64(unix.ESRCH) || e.TargetComm != "" || e.Signal != uint32(unix.SIGTERM) {
		t.Errorf("kill of no process: %+v", e)
	}
	if self := find(evs, event.KindSignal, func(e *event.Event) bool { return mine(e) && e.Signal.TargetPID == int32(me) }); len(self) != 0 {
		t.Errorf("%d signals to itself reported: %+v", len(self), self[0].Signal)
	}
}
