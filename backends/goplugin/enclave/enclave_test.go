package enclave

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// run interprets the filter on one call, as the kernel would, and returns
// the action.
func run(t *testing.T, prog []bpf.Instruction, a *arch.Info, nr int, args ...uint64) uint32 {
	t.Helper()
	var data [64]byte // struct seccomp_data, little-endian
	binary.LittleEndian.PutUint32(data[0:], uint32(nr))
	binary.LittleEndian.PutUint32(data[4:], uint32(a.ID))
	for i, v := range args {
		binary.LittleEndian.PutUint64(data[16+8*i:], v)
	}
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		switch in := prog[pc].(type) {
		case bpf.LoadAbsolute:
			acc = binary.LittleEndian.Uint32(data[in.Off:])
		case bpf.JumpIf:
			var ok bool
			switch in.Cond {
			case bpf.JumpEqual:
				ok = acc == in.Val
			case bpf.JumpNotEqual:
				ok = acc != in.Val
			case bpf.JumpGreaterOrEqual:
				ok = acc >= in.Val
			case bpf.JumpGreaterThan:
				ok = acc > in.Val
			case bpf.JumpBitsSet:
				ok = acc&in.Val != 0
			default:
				t.Fatalf("instruction %d: jump %v not interpreted", pc, in.Cond)
			}
			if ok {
				pc += int(in.SkipTrue)
			} else {
				pc += int(in.SkipFalse)
			}
		case bpf.Jump:
			pc += int(in.Skip)
		case bpf.RetConstant:
			return in.Val
		default:
			t.Fatalf("instruction %d: %v not interpreted", pc, in)
		}
	}
	t.Fatal("the filter ran off its end")
	return 0
}

func TestSeccompDecides(t *testing.T) {
	a := arch.X86_64
	prog, err := program(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bpf.Assemble(prog); err != nil {
		t.Fatal(err)
	}
	n := func(name string) int { return a.SyscallNames[name] }
	const (
		allowed = uint32(seccomp.ActionAllow)
		killed  = uint32(seccomp.ActionKillProcess)
		eperm   = uint32(seccomp.ActionErrno) | uint32(unix.EPERM)
		enosys  = uint32(seccomp.ActionErrno) | uint32(unix.ENOSYS)
	)
	hi := uint64(1) << 32 // high bits the kernel ignores for an int argument
	for _, c := range []struct {
		what string
		nr   int
		args []uint64
		want uint32
	}{
		{"read", n("read"), nil, allowed},
		{"execve", n("execve"), nil, allowed},
		{"ptrace", n("ptrace"), nil, killed},
		{"setsid", n("setsid"), nil, killed},
		{"memfd_create", n("memfd_create"), nil, killed},
		{"bpf", n("bpf"), nil, killed},
		{"fork", n("fork"), nil, eperm},
		{"clone3", n("clone3"), nil, enosys},
		{"clone a thread", n("clone"), []uint64{unix.CLONE_VM | unix.CLONE_THREAD | unix.CLONE_SIGHAND}, allowed},
		{"clone a process", n("clone"), []uint64{unix.CLONE_VM | unix.CLONE_VFORK}, killed},
		{"socket AF_UNIX", n("socket"), []uint64{unix.AF_UNIX}, allowed},
		{"socket AF_INET", n("socket"), []uint64{unix.AF_INET}, killed},
		// an argument equal to a later call's number must not reach that call's rule
		{"socket with the number of socketpair as family", n("socket"), []uint64{uint64(n("socketpair"))}, killed},
		{"socketpair AF_UNIX", n("socketpair"), []uint64{unix.AF_UNIX}, allowed},
		{"ioctl FIONREAD", n("ioctl"), []uint64{0, 0x541b}, allowed},
		{"ioctl TCGETS", n("ioctl"), []uint64{0, unix.TCGETS}, allowed},
		{"ioctl TIOCSTI", n("ioctl"), []uint64{0, unix.TIOCSTI}, eperm},
		{"ioctl TIOCSTI with high bits", n("ioctl"), []uint64{0, unix.TIOCSTI | hi}, eperm},
		{"ioctl TIOCLINUX", n("ioctl"), []uint64{0, unix.TIOCLINUX}, eperm},
		{"ioctl TIOCSCTTY", n("ioctl"), []uint64{0, unix.TIOCSCTTY}, eperm},
		{"prctl PR_SET_VMA (Go runtime)", n("prctl"), []uint64{unix.PR_SET_VMA, unix.PR_SET_VMA_ANON_NAME}, allowed},
		{"prctl PR_SET_NAME", n("prctl"), []uint64{unix.PR_SET_NAME}, allowed},
		{"prctl PR_SET_PDEATHSIG", n("prctl"), []uint64{unix.PR_SET_PDEATHSIG, 0}, eperm},
		{"prctl PR_SET_PDEATHSIG with high bits", n("prctl"), []uint64{unix.PR_SET_PDEATHSIG | hi, 0}, eperm},
		{"prctl PR_SET_CHILD_SUBREAPER", n("prctl"), []uint64{unix.PR_SET_CHILD_SUBREAPER, 1}, eperm},
		{"prctl PR_SET_DUMPABLE", n("prctl"), []uint64{unix.PR_SET_DUMPABLE, 1}, eperm},
		{"prctl PR_SET_PTRACER", n("prctl"), []uint64{unix.PR_SET_PTRACER, ^uint64(0)}, eperm},
		{"prctl option = number of socket", n("prctl"), []uint64{uint64(n("socket")), 0}, eperm},
		{"x32 read", n("read") | arch.X32.SeccompMask, nil, enosys},
	} {
		if got := run(t, prog, a, c.nr, c.args...); got != c.want {
			t.Errorf("%s: action %#x, want %#x", c.what, got, c.want)
		}
	}
	// Another architecture is killed whatever the call.
	if got := run(t, prog, arch.I386, n("read")); got != killed {
		t.Errorf("i386 read: %#x", got)
	}
	for _, name := range allowedSyscalls {
		for _, forbidden := range []string{"ptrace", "bpf", "init_module", "finit_module", "kexec_load", "mount", "reboot", "setuid", "unshare", "process_vm_writev", "setsid", "setpgid", "prctl", "ioctl"} {
			if name == forbidden {
				t.Errorf("%s is allowed without conditions", name)
			}
		}
	}
}

func TestCheckSHA256(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "plugin")
	os.WriteFile(bin, []byte("hello\n"), 0o755)
	const sum = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03" // sha256sum of "hello\n"
	if err := CheckSHA256(bin, sum); err != nil {
		t.Errorf("matching sum: %v", err)
	}
	if err := CheckSHA256(bin, strings.Repeat("ab", 32)); err == nil || !strings.Contains(err.Error(), "SHA-256 is "+sum+", the configuration expects") {
		t.Errorf("other sum: %v", err)
	}
	if err := CheckSHA256(bin, "xyz"); err == nil || !strings.Contains(err.Error(), "not a SHA-256 in hex") {
		t.Errorf("bad sum: %v", err)
	}
}

func TestConfigCheck(t *testing.T) {
	for _, c := range []Config{{MemoryMB: 8}, {OpenFiles: 3}, {Processes: 2}, {CPUSeconds: -1}, {Read: []string{"relative"}}} {
		if c.Check() == nil {
			t.Errorf("%+v passed", c)
		}
	}
	if err := (Config{}).Check(); err != nil {
		t.Error(err)
	}
	if d := (Config{MemoryMB: 64}).WithDefaults(); d.MemoryMB != 64 || d.OpenFiles != Defaults.OpenFiles {
		t.Errorf("defaults: %+v", d)
	}
}

// fakeCgroups lays out a cgroup filesystem in a directory.
func fakeCgroups(t *testing.T, self string, files ...string) cgroupFS {
	root := t.TempDir()
	for _, f := range files {
		os.MkdirAll(filepath.Join(root, filepath.Dir(f)), 0o755)
		os.WriteFile(filepath.Join(root, f), nil, 0o644)
	}
	return cgroupFS{root: root, self: []byte(self)}
}

func TestCgroupV1(t *testing.T) {
	fs := fakeCgroups(t, "8:pids:/\n4:memory:/svc\n2:cpu,cpuacct:/\n0::/\n",
		"memory/cgroup.procs", "memory/svc/cgroup.procs", "pids/cgroup.procs", "cpu/cgroup.procs")
	if k := fs.kind(); k != cgroupV1 {
		t.Fatalf("kind %q", k)
	}
	g, err := fs.newGroup(cgroupV1, "bulkhead-1-x", Config{MemoryMB: 64, Processes: 32, CPUPercent: 50})
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{"memory/svc/bulkhead-1-x/memory.limit_in_bytes": "67108864",
		"pids/bulkhead-1-x/pids.max": "32", "cpu/bulkhead-1-x/cpu.cfs_quota_us": "50000"} {
		if got, _ := os.ReadFile(filepath.Join(fs.root, file)); string(got) != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	os.WriteFile(filepath.Join(g.dirs["memory"], "memory.oom_control"), []byte("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"), 0o644)
	if n := g.oomKills(); n != 3 {
		t.Errorf("oom kills %d", n)
	}
	if len(g.procs()) != 3 {
		t.Errorf("procs %v", g.procs())
	}
}

func TestCgroupV2NeedsDelegatedControllers(t *testing.T) {
	fs := fakeCgroups(t, "0::/bulkhead.service\n", "bulkhead.service/cgroup.subtree_control")
	if k := fs.kind(); k != cgroupNone {
		t.Fatalf("kind %q without delegated controllers", k)
	}
	os.WriteFile(filepath.Join(fs.root, "bulkhead.service/cgroup.subtree_control"), []byte("cpu memory pids\n"), 0o644)
	if k := fs.kind(); k != cgroupV2 {
		t.Fatalf("kind %q", k)
	}
	g, err := fs.newGroup(cgroupV2, "p", Config{MemoryMB: 32, Processes: 16, CPUPercent: 100})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(g.dirs[""], "cpu.max")); string(got) != "100000 100000" {
		t.Errorf("cpu.max %q", got)
	}
	os.WriteFile(filepath.Join(g.dirs[""], "memory.events"), []byte("low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\n"), 0o644)
	if n := g.oomKills(); n != 2 {
		t.Errorf("oom kills %d", n)
	}
}

func TestUIDRangesAreExclusive(t *testing.T) {
	dir := t.TempDir()
	var held []*os.File
	seen := map[int]bool{}
	for i := 0; i < UIDRanges; i++ {
		f, base, err := claimUIDs(dir)
		if err != nil {
			t.Fatalf("claim %d: %v", i, err)
		}
		if seen[base] || base < UIDBase || base+UIDRange-1 >= 65534 {
			t.Fatalf("claim %d: range at %d (taken before, or out of bounds)", i, base)
		}
		seen[base] = true
		held = append(held, f)
	}
	if _, _, err := claimUIDs(dir); err == nil || !strings.Contains(err.Error(), "held by other monitors") {
		t.Fatalf("a claim past the last range: %v", err)
	}
	held[3].Close() // its monitor died: the kernel drops the lock
	if _, base, err := claimUIDs(dir); err != nil || base != UIDBase+3*UIDRange {
		t.Errorf("after range 3 was released: base %d, %v", base, err)
	}
	for _, f := range held {
		f.Close()
	}
}

func TestIDsStayInTheMonitorsRange(t *testing.T) {
	if uid, gid, err := (Config{}).ids(UIDBase+UIDRange, 5); err != nil || uid != UIDBase+UIDRange+5 || gid != uid {
		t.Errorf("slot 5 of range 1: %d %d %v", uid, gid, err)
	}
	if _, _, err := (Config{}).ids(UIDBase, UIDRange); err == nil {
		t.Error("a slot past the range was given a uid")
	}
	if uid, _, err := (Config{User: "70000"}).ids(UIDBase, UIDRange+3); err != nil || uid != 70000 {
		t.Errorf("an explicit user: %d %v", uid, err)
	}
}

func TestOwnerAndLiveness(t *testing.T) {
	for name, want := range map[string]int{"123-rules-456": 123, "bulkhead": 0, "x-1": 0, "0-a": 0} {
		if pid, ok := ownerPID(name); pid != want && ok {
			t.Errorf("%s: %d", name, pid)
		}
	}
	if !monitorAlive(os.Getpid()) {
		t.Error("this process is not alive")
	}
	if monitorAlive(1<<22 + 1) { // above pid_max's ceiling
		t.Error("a pid that cannot exist is alive")
	}
	if monitorAlive(1) {
		t.Error("pid 1, alive but no bulkhead, counts as a monitor")
	}
}

// A real process in a fake cgroup's cgroup.procs is killed, and the
// count says so; an empty group returns at once.
func TestGroupKillsItsTasks(t *testing.T) {
	fs := fakeCgroups(t, "0::/svc\n", "svc/cgroup.subtree_control")
	g, err := fs.newGroup(cgroupV2, "bulkhead-1-x-1", Config{MemoryMB: 32, Processes: 16, CPUPercent: 100})
	if err != nil {
		t.Fatal(err)
	}
	if n := g.kill(time.Second); n != 0 {
		t.Fatalf("an empty group: %d killed", n)
	}
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Skip(err)
	}
	done := make(chan struct{})
	go func() {
		sleeper.Wait()
		// The kernel would take it out of cgroup.procs: the fake tree does it here.
		os.WriteFile(filepath.Join(g.dirs[""], "cgroup.procs"), nil, 0o644)
		close(done)
	}()
	os.WriteFile(filepath.Join(g.dirs[""], "cgroup.procs"), []byte(strconv.Itoa(sleeper.Process.Pid)+"\n"), 0o644)
	if n := g.kill(5 * time.Second); n != 1 {
		t.Errorf("killed %d, want 1", n)
	}
	<-done
	if ws := sleeper.ProcessState.Sys().(syscall.WaitStatus); ws.Signal() != syscall.SIGKILL {
		t.Errorf("the task ended with %v", sleeper.ProcessState)
	}
	if _, err := os.Stat(filepath.Join(g.dirs[""], "cgroup.kill")); err == nil {
		t.Error("kill created cgroup.kill where there was none")
	}
}

// What a dead monitor left is removed; what a live one (this process)
// owns is not.
func TestCleanupRemovesOnlyTheDeads(t *testing.T) {
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Skip(err)
	}
	dead, live := gone.Process.Pid, os.Getpid()
	run := t.TempDir()
	for _, d := range []string{fmt.Sprintf("plugins/%d-rules-1", dead), fmt.Sprintf("plugins/%d-rules-2", live), "plugins/notapid"} {
		os.MkdirAll(filepath.Join(run, d), 0o700)
	}
	os.WriteFile(filepath.Join(run, "status.json"), []byte(fmt.Sprintf(`{"pid": %d, "detectors": []}`, dead)), 0o644)
	fs := fakeCgroups(t, "0::/svc\n", "svc/cgroup.subtree_control",
		fmt.Sprintf("svc/bulkhead-%d-rules-1/cgroup.procs", dead), fmt.Sprintf("svc/bulkhead-%d-rules-2/cgroup.procs", live))
	os.WriteFile(filepath.Join(fs.root, "svc/cgroup.subtree_control"), []byte("cpu memory pids\n"), 0o644)
	os.Remove(filepath.Join(fs.root, fmt.Sprintf("svc/bulkhead-%d-rules-1/cgroup.procs", dead))) // os.Remove of the dir needs it empty in a fake tree
	done := cleanup(run, fs)
	t.Logf("removed: %q", done)
	for _, p := range []string{fmt.Sprintf("plugins/%d-rules-1", dead), "status.json"} {
		if _, err := os.Stat(filepath.Join(run, p)); err == nil {
			t.Errorf("%s of dead monitor %d is still there", p, dead)
		}
	}
	if _, err := os.Stat(filepath.Join(fs.root, fmt.Sprintf("svc/bulkhead-%d-rules-1", dead))); err == nil {
		t.Errorf("the dead monitor's cgroup is still there")
	}
	for _, p := range []string{filepath.Join(run, fmt.Sprintf("plugins/%d-rules-2", live)), filepath.Join(run, "plugins/notapid"),
		filepath.Join(fs.root, fmt.Sprintf("svc/bulkhead-%d-rules-2", live))} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s, not a dead monitor's, was removed", p)
		}
	}
	if len(done) != 3 || !strings.Contains(done[2], fmt.Sprintf("of monitor %d", dead)) {
		t.Errorf("reported %q", done)
	}

	// A process of any name that holds a uid range is alive: its
	// directory stays.
	f, _, err := claimUIDs(filepath.Join(run, "uids"))
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(dead)), 0) // stands for a holder not named bulkhead
	os.MkdirAll(filepath.Join(run, fmt.Sprintf("plugins/%d-bench-3", dead)), 0o700)
	if holders := rangeHolders(filepath.Join(run, "uids")); !holders[dead] {
		t.Errorf("holders %v lack %d", holders, dead)
	}
	cleanup(run, fs)
	if _, err := os.Stat(filepath.Join(run, fmt.Sprintf("plugins/%d-bench-3", dead))); err != nil {
		t.Error("the directory of a range holder was removed")
	}
	f.Close()
	cleanup(run, fs)
	if _, err := os.Stat(filepath.Join(run, fmt.Sprintf("plugins/%d-bench-3", dead))); err == nil {
		t.Error("once the range is given back, the directory stays")
	}
}

// removeOf with this process's pid (Sweep) takes what is its own only.
func TestSweepTakesItsOwnOnly(t *testing.T) {
	self, other := os.Getpid(), os.Getppid()
	run := t.TempDir()
	for _, d := range []string{fmt.Sprintf("plugins/%d-a-1", self), fmt.Sprintf("plugins/%d-b-2", other)} {
		os.MkdirAll(filepath.Join(run, d), 0o700)
	}
	fs := fakeCgroups(t, "0::/svc\n", "svc/cgroup.subtree_control")
	os.WriteFile(filepath.Join(fs.root, "svc/cgroup.subtree_control"), []byte("cpu memory pids\n"), 0o644)
	os.MkdirAll(filepath.Join(fs.root, fmt.Sprintf("svc/bulkhead-%d-a-1", self)), 0o755)
	os.MkdirAll(filepath.Join(fs.root, fmt.Sprintf("svc/bulkhead-%d-b-2", other)), 0o755)
	done := removeOf(run, fs, func(pid int) bool { return pid == self })
	if len(done) != 2 {
		t.Errorf("removed %q", done)
	}
	for _, p := range []string{filepath.Join(run, fmt.Sprintf("plugins/%d-b-2", other)), filepath.Join(fs.root, fmt.Sprintf("svc/bulkhead-%d-b-2", other))} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed", p)
		}
	}
}
