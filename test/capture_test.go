package test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/test/testenv"
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// monitorRun is a `bulkhead run` process the test drives.
type monitorRun struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr syncBuffer
	copied chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startMonitor starts `bulkhead run` with args and waits until it captures.
func startMonitor(t *testing.T, args ...string) *monitorRun {
	t.Helper()
	m := launchMonitor(t, args...)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(m.stderr.String(), `"msg":"capturing"`) {
		if time.Now().After(deadline) {
			t.Fatalf("monitor did not start within 20s; stderr:\n%s", m.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return m
}

// launchMonitor starts `bulkhead run` without waiting for it; it is killed
// when the test ends.
func launchMonitor(t *testing.T, args ...string) *monitorRun {
	t.Helper()
	m := &monitorRun{copied: make(chan struct{})}
	m.cmd = exec.Command(testenv.Binary(t), append([]string{"run", "--flush-interval", "2ms"}, args...)...)
	m.cmd.Stderr = &m.stderr
	out, err := m.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		io.Copy(&m.stdout, out)
		close(m.copied)
	}()
	t.Cleanup(func() { m.cmd.Process.Kill() })
	return m
}

// stop sends SIGINT and returns the events it wrote, parsed.
func (m *monitorRun) stop(t *testing.T) []map[string]any {
	t.Helper()
	time.Sleep(100 * time.Millisecond) // let the last events cross the ring
	m.cmd.Process.Signal(os.Interrupt)
	<-m.copied
	if err := m.cmd.Wait(); err != nil {
		t.Fatalf("monitor exited with %v; stderr:\n%s", err, m.stderr.String())
	}
	return parseLines(t, m.stdout.String())
}

// parseLines parses the monitor's JSON lines.
func parseLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var events []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("monitor wrote invalid JSON %q: %v", sc.Text(), err)
		}
		events = append(events, ev)
	}
	return events
}

// find returns the events of kind for pid that satisfy match.
func find(events []map[string]any, kind string, pid int, match func(payload map[string]any) bool) []map[string]any {
	var out []map[string]any
	for _, ev := range events {
		if ev["kind"] != kind || (pid != 0 && int(ev["pid"].(float64)) != pid) {
			continue
		}
		if p, _ := ev[kind].(map[string]any); match == nil || match(p) {
			out = append(out, ev)
		}
	}
	return out
}

func run(t *testing.T, dir string, name string, args ...string) int {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, exit := err.(*exec.ExitError); !exit {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	return cmd.Process.Pid
}

// TestRunCapturesRealActivity runs the real monitor, does real things, and
// checks each shows up with the right fields.
func TestRunCapturesRealActivity(t *testing.T) {
	testenv.RequireBPF(t)
	m := startMonitor(t, "--format", "json")

	truePid := run(t, "", "/bin/true")
	catPid := run(t, "", "cat", "/etc/hostname")
	relPid := run(t, "/etc", "cat", "hostname")
	exitPid := run(t, "", "sh", "-c", "exit 3")
	pyPid := run(t, "", "/usr/bin/python3", "-c", "import os; os.setuid(65534)")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	// A blocking connect, so the result is 0 (Go's own dialer connects
	// non-blocking and the kernel answers EINPROGRESS).
	connPid := run(t, "", "/usr/bin/python3", "-c", fmt.Sprintf("import socket; socket.create_connection(('127.0.0.1', %d)).close()", port))

	fd, err := unix.MemfdCreate("bulkhead-e2e", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)

	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "bh_e2e_probe", Type: ebpf.SocketFilter, License: "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	prog.Close()

	tracee := exec.Command("sleep", "10")
	if err := tracee.Start(); err != nil {
		t.Fatal(err)
	}
	ptraceErr := ptraceAttachDetach(tracee.Process.Pid)
	tracee.Process.Kill()
	tracee.Wait()
	if ptraceErr != nil {
		t.Fatalf("ptrace attach: %v", ptraceErr)
	}

	// A path well past NAME_MAX and the walk's depth, still under PATH_MAX.
	long := t.TempDir()
	for len(long) < 3000 {
		long = filepath.Join(long, strings.Repeat("d", 60))
	}
	if err := os.MkdirAll(long, 0o755); err != nil {
		t.Fatal(err)
	}
	longFile := filepath.Join(long, "f")
	if f, err := os.Create(longFile); err == nil {
		f.Close()
	} else {
		t.Fatal(err)
	}

	events := m.stop(t)
	stderr := m.stderr.String()
	me := os.Getpid()

	t.Run("exec of /bin/true", func(t *testing.T) {
		evs := find(events, "exec", truePid, nil)
		if len(evs) != 1 {
			t.Fatalf("%d exec events for pid %d", len(evs), truePid)
		}
		p := evs[0]["exec"].(map[string]any)
		if p["filename"] != "/bin/true" || !strings.HasSuffix(p["exe"].(string), "/true") || fmt.Sprint(p["args"]) != "[/bin/true]" {
			t.Errorf("exec payload %v", p)
		}
		if int(evs[0]["ppid"].(float64)) != me {
			t.Errorf("ppid %v, want the test's pid %d", evs[0]["ppid"], me)
		}
		anc := evs[0]["process"].(map[string]any)["ancestors"].([]any)
		if len(anc) == 0 || int(anc[0].(map[string]any)["pid"].(float64)) != me {
			t.Errorf("ancestors %v do not start with the test process %d", anc, me)
		}
	})
	t.Run("fork and exit code", func(t *testing.T) {
		if len(find(events, "fork", me, func(p map[string]any) bool { return int(p["child_pid"].(float64)) == exitPid })) != 1 {
			t.Errorf("no fork event from %d with child %d", me, exitPid)
		}
		evs := find(events, "exit", exitPid, nil)
		if len(evs) != 1 || evs[0]["exit"].(map[string]any)["code"].(float64) != 3 {
			t.Errorf("exit events for %d: %v", exitPid, evs)
		}
	})
	t.Run("open of /etc/hostname", func(t *testing.T) {
		evs := find(events, "open", catPid, func(p map[string]any) bool { return p["path"] == "/etc/hostname" })
		if len(evs) != 1 {
			t.Fatalf("%d open events of /etc/hostname by %d", len(evs), catPid)
		}
		p := evs[0]["open"].(map[string]any)
		if p["ret"].(float64) < 0 || p["resolved"] != "/etc/hostname" || p["flags_text"] != "O_RDONLY" {
			t.Errorf("open payload %v", p)
		}
	})
	t.Run("relative open resolved against cwd", func(t *testing.T) {
		evs := find(events, "open", relPid, func(p map[string]any) bool { return p["path"] == "hostname" })
		if len(evs) != 1 {
			t.Fatalf("%d relative opens by %d", len(evs), relPid)
		}
		if p := evs[0]["open"].(map[string]any); p["dir"] != "/etc" || p["resolved"] != "/etc/hostname" {
			t.Errorf("open payload %v", p)
		}
	})
	t.Run("long path captured whole", func(t *testing.T) {
		evs := find(events, "open", me, func(p map[string]any) bool { return p["path"] == longFile })
		if len(evs) != 1 {
			t.Fatalf("%d opens of the %d-byte path", len(evs), len(longFile))
		}
		// The path as passed fits; the kernel's walk of the opened file
		// stops at 48 components (this path has more) and says so.
		if f := fmt.Sprint(evs[0]["flags"]); f != "[file_trunc_walk]" {
			t.Errorf("flags %v on a path that fits in %d components: want only file_trunc_walk", evs[0]["flags"], strings.Count(longFile, "/"))
		}
	})
	t.Run("loopback connect", func(t *testing.T) {
		evs := find(events, "connect", connPid, func(p map[string]any) bool { return int(p["port"].(float64)) == port })
		if len(evs) != 1 {
			t.Fatalf("%d connects to port %d", len(evs), port)
		}
		if p := evs[0]["connect"].(map[string]any); p["addr"] != "127.0.0.1" || p["family"] != "ipv4" || p["ret"].(float64) != 0 {
			t.Errorf("connect payload %v", p)
		}
	})
	t.Run("python setuid", func(t *testing.T) {
		evs := find(events, "setid", pyPid, func(p map[string]any) bool { return p["syscall"] == "setuid" })
		if len(evs) != 1 {
			t.Fatalf("%d setuid events from python (pid %d)", len(evs), pyPid)
		}
		p := evs[0]["setid"].(map[string]any)
		old, new := p["old"].(map[string]any), p["new"].(map[string]any)
		if p["ret"].(float64) != 0 || old["effective"].(float64) != 0 || new["effective"].(float64) != 65534 || new["real"].(float64) != 65534 {
			t.Errorf("setid payload %v", p)
		}
	})
	t.Run("memfd, bpf load, ptrace", func(t *testing.T) {
		if len(find(events, "memfd", me, func(p map[string]any) bool { return p["name"] == "bulkhead-e2e" && p["ret"].(float64) >= 0 })) != 1 {
			t.Error("no memfd event")
		}
		if len(find(events, "bpf_prog", me, func(p map[string]any) bool { return p["name"] == "bh_e2e_probe" && p["ret"].(float64) >= 0 })) != 1 {
			t.Error("no bpf_prog event")
		}
		if len(find(events, "ptrace", me, func(p map[string]any) bool {
			return p["request_name"] == "PTRACE_ATTACH" && int(p["target_pid"].(float64)) == tracee.Process.Pid && p["ret"].(float64) == 0
		})) != 1 {
			t.Error("no ptrace attach event")
		}
	})
	t.Run("never traces itself", func(t *testing.T) {
		if evs := find(events, "open", m.cmd.Process.Pid, nil); len(evs) != 0 {
			t.Errorf("%d events from the monitor itself", len(evs))
		}
	})
	t.Run("summary reports no loss", func(t *testing.T) {
		for _, want := range []string{"bulkhead summary", "ring buffer full       0", "malformed records      0"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("summary lacks %q:\n%s", want, stderr)
			}
		}
	})
}

func ptraceAttachDetach(pid int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := syscall.PtraceAttach(pid); err != nil {
		return err
	}
	var ws syscall.WaitStatus
	syscall.Wait4(pid, &ws, syscall.WALL, nil)
	return syscall.PtraceDetach(pid)
}

// Kernel-side filters: an include list lets only that process through.
func TestRunFiltersInKernel(t *testing.T) {
	testenv.RequireBPF(t)
	m := startMonitor(t, "--kinds", "open", "--comm", "bh-filter-yes")
	yes := filepath.Join(t.TempDir(), "bh-filter-yes")
	no := filepath.Join(t.TempDir(), "bh-filter-no")
	for _, p := range []string{yes, no} {
		if err := os.Symlink("/usr/bin/cat", p); err != nil {
			t.Fatal(err)
		}
	}
	yesPid := run(t, "", yes, "/etc/hostname")
	noPid := run(t, "", no, "/etc/hostname")
	events := m.stop(t)
	if len(find(events, "open", yesPid, nil)) == 0 {
		t.Error("no opens from the included comm")
	}
	if n := len(find(events, "open", noPid, nil)); n != 0 {
		t.Errorf("%d opens from a comm not included", n)
	}
	for _, ev := range events {
		if ev["kind"] != "open" {
			t.Fatalf("--kinds open let through a %v event", ev["kind"])
		}
	}
}

// Without privileges the monitor says what is missing and exits non-zero.
func TestRunWithoutPrivilegesExplains(t *testing.T) {
	testenv.RequireBPF(t) // root is needed to drop to another user
	cmd := exec.Command(testenv.Binary(t), "run", "--duration", "1s")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	exit, ok := err.(*exec.ExitError)
	if !ok || exit.ExitCode() != 1 {
		t.Fatalf("unprivileged run: %v, want exit code 1\n%s", err, out)
	}
	if !strings.Contains(string(out), "needs root, or CAP_BPF with CAP_PERFMON") {
		t.Errorf("message does not say what is missing:\n%s", out)
	}
}
