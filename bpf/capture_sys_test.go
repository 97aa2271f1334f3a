package bpf_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"unsafe"

	"github.com/bulkhead-sec/bulkhead/bpf"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"golang.org/x/sys/unix"
)

// The rare calls of KindSys, made for real: their arguments come out, and
// of prctl only PR_SET_NAME, of bpf() only the attach and reach-in commands.
func TestCaptureSys(t *testing.T) {
	me := uint32(os.Getpid())
	d := tempDir(t)
	kernel := filepath.Join(d, "vmlinuz-"+hostile)
	if err := os.WriteFile(kernel, []byte("not a kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var caps [2]unix.CapUserData
	if err := unix.Capget(&hdr, &caps[0]); err != nil {
		t.Fatal(err)
	}
	wantEff := uint64(caps[0].Effective) | uint64(caps[1].Effective)<<32
	wantPerm := uint64(caps[0].Permitted) | uint64(caps[1].Permitted)<<32

	evs := capture(t, bpf.Options{}, []uint16{bpf.RecordSys, bpf.RecordBPFProg}, func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var old [16]byte
		unix.Prctl(unix.PR_GET_NAME, uintptr(unsafe.Pointer(&old[0])), 0, 0, 0)
		name := []byte(hostile + "\x00")
		if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0); err != nil {
			t.Fatal(err)
		}
		unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&old[0])), 0, 0, 0)
		unix.Prctl(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
		if err := unix.Capset(&hdr, &caps[0]); err != nil {
			t.Fatal(err)
		}
		if fd, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK, 0, 0); errno == 0 {
			unix.Close(int(fd))
		}
		var params [120]byte
		if fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 4, uintptr(unsafe.Pointer(&params[0])), 0); errno == 0 {
			unix.Close(int(fd))
		}
		// bpf(): a reach-in by id (no such map), a pinned object by path.
		attr := [4]uint32{0x7ffffff0}
		unix.Syscall(unix.SYS_BPF, 14, uintptr(unsafe.Pointer(&attr[0])), unsafe.Sizeof(attr)) // BPF_MAP_GET_FD_BY_ID
		path := []byte("/sys/fs/bpf/" + hostile + "\x00")
		var obj [16]byte
		*(*uint64)(unsafe.Pointer(&obj[0])) = uint64(uintptr(unsafe.Pointer(&path[0])))
		unix.Syscall(unix.SYS_BPF, 7, uintptr(unsafe.Pointer(&obj[0])), unsafe.Sizeof(obj)) // BPF_OBJ_GET
		runtime.KeepAlive(path)
		var info [8]uint32
		unix.Syscall(unix.SYS_BPF, 15, uintptr(unsafe.Pointer(&info[0])), unsafe.Sizeof(info)) // BPF_OBJ_GET_INFO_BY_FD: not reported
		// kexec_file_load of a file that is no kernel: refused, reported.
		f, err := os.Open(kernel)
		if err != nil {
			t.Fatal(err)
		}
		unix.Syscall6(unix.SYS_KEXEC_FILE_LOAD, f.Fd(), ^uintptr(0), 0, 0, 4 /* KEXEC_FILE_NO_INITRAMFS */, 0)
		f.Close()
	})
	mine := func(sc event.Syscall) []*event.Event {
		return find(evs, event.KindSys, func(e *event.Event) bool { return e.PID == me && e.Sys.Syscall == sc })
	}
	if p := mine("prctl"); len(p) != 2 || p[0].Sys.Name != hostile || p[0].Sys.Op != unix.PR_SET_NAME {
		t.Errorf("prctl: %d events (want the two PR_SET_NAME), first %+v", len(p), p)
	}
	if c := mine("capset"); len(c) != 1 || c[0].Sys.Args[0] != wantEff || c[0].Sys.Args[1] != wantPerm || c[0].Sys.Ret != 0 {
		t.Errorf("capset: %d events, want eff %#x perm %#x: %+v", len(c), wantEff, wantPerm, c)
	}
	if u := mine("userfaultfd"); len(u) != 1 || u[0].Sys.Args[0] != unix.O_CLOEXEC|unix.O_NONBLOCK {
		t.Errorf("userfaultfd: %+v", u)
	}
	if u := mine("io_uring_setup"); len(u) != 1 || u[0].Sys.Args[0] != 4 {
		t.Errorf("io_uring_setup: %+v", u)
	}
	// The exit hook's own attach (BPF_LINK_CREATE) is reported too: skip it.
	b := find(mine("bpf"), event.KindSys, func(e *event.Event) bool { return e.Sys.Op != 28 })
	if len(b) != 2 {
		for _, e := range b {
			t.Logf("bpf: %+v", e.Sys)
		}
		t.Fatalf("bpf: %d events, want 2", len(b))
	}
	if b[0].Sys.Op != 14 || b[0].Sys.Args[1] != 0x7ffffff0 || b[0].Sys.Ret >= 0 {
		t.Errorf("bpf map get fd by id: %+v", b[0].Sys)
	}
	if b[1].Sys.Op != 7 || b[1].Sys.Name != "/sys/fs/bpf/"+hostile {
		t.Errorf("bpf obj get: %+v", b[1].Sys)
	}
	if k := mine("kexec_file_load"); len(k) != 1 || k[0].Sys.Name != kernel || k[0].Sys.Args[0] != 4 || k[0].Sys.Ret >= 0 {
		t.Errorf("kexec_file_load: %+v", k)
	}
}

// Every ptrace request is reported, PTRACE_TRACEME and GETREGS included.
func TestCapturePtraceEveryRequest(t *testing.T) {
	var pid int
	evs := capture(t, bpf.Options{}, []uint16{bpf.RecordPtrace}, func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cmd := exec.Command("/bin/true")
		cmd.SysProcAttr = &syscall.SysProcAttr{Ptrace: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid = cmd.Process.Pid
		var ws unix.WaitStatus
		if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil || !ws.Stopped() {
			t.Fatalf("tracee did not stop: %v %v", err, ws)
		}
		var regs unix.PtraceRegs
		if err := unix.PtraceGetRegs(pid, &regs); err != nil {
			t.Errorf("getregs: %v", err)
		}
		unix.PtraceDetach(pid)
		cmd.Wait()
	})
	if tm := find(evs, event.KindPtrace, func(e *event.Event) bool {
		return e.PID == uint32(pid) && e.Ptrace.Request == unix.PTRACE_TRACEME
	}); len(tm) == 0 {
		t.Error("no PTRACE_TRACEME from the child")
	}
	// x/sys asks for the registers with PTRACE_GETREGSET.
	g := one(t, evs, event.KindPtrace, "PTRACE_GETREGS(ET)", func(e *event.Event) bool {
		return e.PID == uint32(os.Getpid()) && (e.Ptrace.Request == unix.PTRACE_GETREGS || e.Ptrace.Request == unix.PTRACE_GETREGSET)
	})
	if g.Ptrace.TargetPID != uint32(pid) || g.Ptrace.Ret != 0 {
		t.Errorf("getregs: %+v", g.Ptrace)
	}
}
