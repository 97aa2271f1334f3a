package test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/test/testenv"
	"golang.org/x/sys/unix"
)

// These tests are the attacks of issue 14 on the plugin enclave, each
// performed for real by the hostile plugin next to a healthy detector.

// liveMonitor is a `bulkhead run` whose output the test reads while it
// runs.
type liveMonitor struct {
	cmd    *exec.Cmd
	stdout syncBuffer
	stderr syncBuffer
	exited chan error
}

// startLive starts `bulkhead run` (setup may change the command first)
// and waits until it captures; it is SIGKILLed when the test ends.
func startLive(t *testing.T, setup func(*exec.Cmd), args ...string) *liveMonitor {
	t.Helper()
	m := &liveMonitor{exited: make(chan error, 1)}
	m.cmd = exec.Command(testenv.Binary(t), append([]string{"run", "--flush-interval", "2ms"}, args...)...)
	m.cmd.Stdout, m.cmd.Stderr = &m.stdout, &m.stderr
	if setup != nil {
		setup(m.cmd)
	}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { m.exited <- m.cmd.Wait() }()
	t.Cleanup(func() { m.cmd.Process.Kill() })
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(m.stderr.String(), `"msg":"capturing"`) {
		select {
		case err := <-m.exited:
			t.Fatalf("monitor exited at start: %v\n%s", err, m.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("monitor did not start within 30s; stderr:\n%s", m.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return m
}

// waitFor waits until the monitor's stdout has n lines containing each of
// want, and returns false if that did not happen within d.
func (m *liveMonitor) waitFor(d time.Duration, n int, want ...string) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		found := 0
		for _, line := range strings.Split(m.stdout.String(), "\n") {
			all := true
			for _, w := range want {
				all = all && strings.Contains(line, w)
			}
			if all {
				found++
			}
		}
		if found >= n {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// stop sends SIGINT, waits, and returns the events.
func (m *liveMonitor) stop(t *testing.T) []map[string]any {
	t.Helper()
	time.Sleep(100 * time.Millisecond) // the last events cross the ring
	m.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-m.exited:
		if err != nil {
			t.Fatalf("monitor exited with %v; stderr:\n%s", err, tail(m.stderr.String(), 40))
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("monitor did not stop within 30s:\n%s", tail(m.stderr.String(), 40))
	}
	return parseLines(t, m.stdout.String())
}

// attempts maps each hostile detector's attack to "outcome: error".
func attempts(events []map[string]any) map[string]string {
	out := map[string]string{}
	for _, ev := range events {
		if ev["type"] == "finding" && ev["rule"] == "hostile-attempt" {
			f := ev["fields"].(map[string]any)
			out[ev["detector"].(string)] = f["outcome"].(string) + ": " + f["error"].(string)
		}
	}
	return out
}

// healthyLine is the config line of a healthy plugin reporting opens of
// dir/ok-*.
func healthyLine(t *testing.T, name, dir string) string {
	return fmt.Sprintf("  - {name: %s, backend: goplugin, plugin: %s, config: {report_on: %q}}\n", name, testenv.Plugin(t, "chaos"), dir+"/ok-")
}

// hostileLine is the config line of a hostile plugin that attacks when
// dir/attack is opened.
func hostileLine(t *testing.T, name, attack, dir, extra string) string {
	return fmt.Sprintf("  - {name: %s, backend: goplugin, plugin: %s, batch_deadline: 5s, config: {attack: %s, on: %q%s}}\n",
		name, testenv.Plugin(t, "hostile"), attack, dir+"/attack", extra)
}

// pluginDirs are the private directories of monitor pid's plugins.
func pluginDirs(pid int) []string {
	dirs, _ := filepath.Glob(fmt.Sprintf("/run/bulkhead/plugins/%d-*", pid))
	return dirs
}

// pluginCgroups are the cgroups of monitor pid's plugins, in every
// hierarchy: next to the cgroup of the monitor, which is the test's.
func pluginCgroups(pid int) []string {
	self, _ := os.ReadFile("/proc/self/cgroup")
	var out []string
	for line := range strings.Lines(string(self)) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" || c == "pids" || c == "cpu" || (c == "" && parts[0] == "0") {
				found, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", c, parts[2], fmt.Sprintf("bulkhead-%d-*", pid)))
				out = append(out, found...)
			}
		}
	}
	return out
}

// mounts are the mount points of mountinfo under prefix, with their
// options (per-mount and superblock).
func mounts(t *testing.T, prefix string) map[string]string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || !strings.HasPrefix(fields[4], prefix) {
			continue
		}
		sep := 6
		for fields[sep] != "-" {
			sep++
		}
		out[fields[4]] = fields[5] + " " + fields[sep+1] + " " + fields[sep+3]
	}
	return out
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] != 'Z'
}

// openPTY opens a pseudo-terminal pair.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// pending reads what f has without waiting.
func pending(t *testing.T, f *os.File) string {
	t.Helper()
	fd := int(f.Fd())
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	defer unix.SetNonblock(fd, false)
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, buf)
		if n <= 0 || err != nil {
			return string(out)
		}
		out = append(out, buf[:n]...)
	}
}

// inject types text into the terminal as the test (root may push input
// into any terminal): the control that shows the test sees an injection.
func inject(t *testing.T, tty *os.File, text string) {
	t.Helper()
	for i := range len(text) {
		b := text[i]
		if err := unix.IoctlSetPointerInt(int(tty.Fd()), unix.TIOCSTI, int(b)); err != nil {
			// TIOCSTI takes a char*: IoctlSetPointerInt passes a pointer to
			// an int, whose first byte is b on little-endian machines.
			t.Fatalf("control TIOCSTI: %v", err)
		}
	}
}

// Class 1: the monitor runs with a real pseudo-terminal as its
// controlling terminal and stdin, as under `make run` in a shell. The
// hostile plugin tries TIOCSTI on stdin, stdout, stderr and /dev/tty, and
// TIOCLINUX. Nothing reaches the terminal: the test's own TIOCSTI (the
// control) shows up on both ends of the pty, the plugin's does not; from
// outside, each plugin has no controlling terminal, a session of its own
// and /dev/null as stdin. The monitor and a healthy detector lose nothing.
func TestPluginCannotTypeIntoTerminal(t *testing.T) {
	testenv.RequireBPF(t) // amd64 too: the control's TIOCSTI passes a char as the first byte of an int
	master, slave := openPTY(t)
	inject(t, slave, "echo CONTROL\n")
	time.Sleep(50 * time.Millisecond)
	echoed, queued := pending(t, master), pending(t, slave)
	if !strings.Contains(echoed, "echo CONTROL") || !strings.Contains(queued, "echo CONTROL") {
		t.Fatalf("the control injection was not seen: terminal output %q, input %q", echoed, queued)
	}

	dir := t.TempDir()
	marker := fmt.Sprintf("INJECTED-%d", time.Now().UnixNano())
	cfg := "detectors:\n" + healthyLine(t, "healthy", dir) +
		hostileLine(t, "tiocsti", "tiocsti", dir, fmt.Sprintf(", text: %q", "echo "+marker+"\n"))
	m := startLive(t, func(c *exec.Cmd) {
		c.Stdin = slave
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	}, "--config", writeConfig(t, cfg), "--status", "")
	monitorTTY := ttyNr(t, m.cmd.Process.Pid)
	if monitorTTY == 0 {
		t.Fatal("the monitor has no controlling terminal: the test does not set up what it means to")
	}
	for _, pid := range children(m.cmd.Process.Pid) {
		if tty := ttyNr(t, pid); tty != 0 {
			t.Errorf("plugin %d has controlling terminal %#x", pid, tty)
		}
		if sid, _ := unix.Getsid(pid); sid != pid {
			t.Errorf("plugin %d is in session %d, not one of its own", pid, sid)
		}
		if in, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/0", pid)); in != "/dev/null" {
			t.Errorf("plugin %d has stdin %q, want /dev/null", pid, in)
		}
	}
	openMarkersFrom(t, dir, "ok", 0, 10, 200*time.Millisecond)
	openMarkersFrom(t, dir, "attack", 0, 1, 0)
	if !m.waitFor(30*time.Second, 1, `"hostile-attempt"`) {
		t.Error("the hostile plugin did not report its attempt within 30s")
	}
	time.Sleep(200 * time.Millisecond)
	echoed, queued = pending(t, master), pending(t, slave)
	openMarkersFrom(t, dir, "ok", 10, 10, 200*time.Millisecond)
	m.waitFor(30*time.Second, 20, `"healthy"`, dir+"/ok-")
	events := m.stop(t)

	if strings.Contains(echoed, marker) || strings.Contains(queued, marker) {
		t.Errorf("the plugin typed into the terminal: output %q, input %q", echoed, queued)
	}
	got := attempts(events)["tiocsti"]
	t.Logf("tiocsti: %s; terminal output %q, input %q", got, echoed, queued)
	if !strings.HasPrefix(got, "blocked: ") || strings.Count(got, "TIOCSTI on") != 3 || !strings.Contains(got, "TIOCLINUX on fd 0: operation not permitted") {
		t.Errorf("attempt %q: want each TIOCSTI and TIOCLINUX refused", got)
	}
	if n := len(markersFound(events, "healthy", dir+"/ok-")); n != 20 {
		t.Errorf("the healthy detector got %d of 20 markers", n)
	}
	if row := summaryRow(t, m.stderr.String(), "tiocsti"); row["crashes"] != "0" {
		t.Errorf("tiocsti crashed %s times", row["crashes"])
	}
}

// ttyNr is field 7 of /proc/PID/stat: the controlling terminal (0: none).
func ttyNr(t *testing.T, pid int) int {
	t.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	n, _ := strconv.Atoi(f[4]) // state ppid pgrp session tty_nr
	return n
}

// Class 2: one plugin tries to clear its parent-death signal (on the main
// thread, where it is set), become a subreaper and dumpable; another
// clears it and forks into a new session. The first is refused, the
// second killed by seccomp and counted. Then the monitor is SIGKILLed: no
// plugin process survives it, each killed by the kernel (not by its own
// choice). What it left (cgroups, tmpfs directories
// under /run/bulkhead, its status file, and a task planted in one of its
// cgroups by the test, standing for a survivor) is removed by the next
// monitor's start, and that monitor removes its own at stop, killing a
// task the test puts in its plugin's cgroup.
func TestNoPluginOutlivesMonitor(t *testing.T) {
	testenv.RequireBPF(t)
	dir := t.TempDir()
	cfg := "detectors:\n" + healthyLine(t, "healthy", dir) +
		hostileLine(t, "escape", "escape-pdeathsig", dir, "") +
		hostileLine(t, "outlive", "outlive", dir, "")
	// Orphans come to this process, which can then see how they die.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	// The default status file: the one a SIGKILLed monitor leaves behind.
	m := startLive(t, nil, "--config", writeConfig(t, cfg))
	pid := m.cmd.Process.Pid
	openMarkersFrom(t, dir, "ok", 0, 10, 200*time.Millisecond)
	openMarkersFrom(t, dir, "attack", 0, 1, 0)
	if !m.waitFor(30*time.Second, 1, `"hostile-attempt"`, `"escape"`) {
		t.Fatalf("the escape attempt was not reported:\n%s", tail(m.stderr.String(), 30))
	}
	if !m.waitFor(30*time.Second, 10, `"healthy"`, dir+"/ok-") {
		t.Errorf("the healthy detector reported %d of its 10 markers before the kill", len(markersFound(parseLines(t, m.stdout.String()), "healthy", dir+"/ok-")))
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(m.stderr.String(), `"detector":"outlive","enclave_kill":"seccomp"`); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Error("the outlive plugin's fork was not killed and counted as a seccomp kill")
			break
		}
	}
	time.Sleep(1100 * time.Millisecond) // a status file is written
	plugins := children(pid)
	for deadline := time.Now().Add(5 * time.Second); len(plugins) != 3 && time.Now().Before(deadline); plugins = children(pid) {
		time.Sleep(50 * time.Millisecond) // outlive is being restarted
	}
	if len(plugins) != 3 {
		t.Fatalf("%d plugin processes, want 3", len(plugins))
	}
	escape := attempts(parseLines(t, m.stdout.String()))["escape"]
	t.Logf("escape-pdeathsig: %s", escape)
	if !strings.HasPrefix(escape, "blocked: parent-death signal still 9") || !strings.Contains(escape, "PR_SET_PDEATHSIG 0: operation not permitted") {
		t.Errorf("escape attempt %q: want the parent-death signal kept and the prctl refused", escape)
	}
	status, _ := os.ReadFile("/run/bulkhead/status.json")
	leftStatus := strings.Contains(string(status), fmt.Sprintf(`"pid": %d,`, pid))

	killedAt := time.Now()
	m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.exited
	reaped := time.Now() // its BPF programs take a while to go
	// The plugins are now this process's children (a subreaper): how each
	// ended tells whether the kernel killed it (SIGKILL, its parent-death
	// signal) or it left by itself (the SDK's watch on its parent exits
	// with status 3, a quarter of a second later: a hostile plugin need
	// not use the SDK).
	for _, p := range plugins {
		var ws syscall.WaitStatus
		for {
			got, err := syscall.Wait4(p, &ws, syscall.WNOHANG, nil)
			if got == p || err != nil || time.Since(killedAt) > 5*time.Second {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		switch {
		case alive(p):
			t.Errorf("plugin %d is still running %v after the monitor was SIGKILLed", p, time.Since(killedAt).Round(time.Millisecond))
			syscall.Kill(p, syscall.SIGKILL)
		case !ws.Signaled() || ws.Signal() != syscall.SIGKILL:
			t.Errorf("plugin %d ended with %v, not by its parent-death signal", p, ws)
		}
	}
	t.Logf("%d plugin processes ended; the monitor was gone %v after its SIGKILL, they %v after it",
		len(plugins), reaped.Sub(killedAt).Round(time.Millisecond), time.Since(reaped).Round(time.Millisecond))

	groups, dirs := pluginCgroups(pid), pluginDirs(pid)
	if len(groups) == 0 || len(dirs) != 3 {
		t.Fatalf("the SIGKILLed monitor left %d cgroups and %d directories; the test expects some of both to clean", len(groups), len(dirs))
	}
	// A survivor, planted: a process in one of the dead monitor's cgroups.
	survivor := exec.Command("sleep", "600")
	if err := survivor.Start(); err != nil {
		t.Fatal(err)
	}
	defer survivor.Process.Kill()
	if err := os.WriteFile(filepath.Join(groups[0], "cgroup.procs"), []byte(strconv.Itoa(survivor.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}
	survived := make(chan error, 1)
	go func() { survived <- survivor.Wait() }()

	dir2 := t.TempDir()
	next := startLive(t, nil, "--config", writeConfig(t, "detectors:\n"+healthyLine(t, "healthy", dir2)), "--status", dir2+"/status.json")
	select {
	case err := <-survived:
		if ws, ok := survivor.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Errorf("the planted process ended with %v, not SIGKILL", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the next monitor did not kill the task left in the dead monitor's cgroup")
	}
	// What the next start logged. (A monitor another test started on this
	// host meanwhile may have cleaned some of it first: the outcome below
	// is what the test requires.)
	removed := 0
	for _, line := range strings.Split(next.stderr.String(), "\n") {
		if strings.Contains(line, "removed what a monitor that is gone left behind") && strings.Contains(line, fmt.Sprintf("%d-", pid)) {
			removed++
		}
	}
	t.Logf("the dead monitor left %d cgroups and %d directories; the next start logged %d removals, killing the planted task: %v",
		len(groups), len(dirs), removed, strings.Contains(next.stderr.String(), "(killed 1 task(s) left in it)"))
	// (Another monitor on this host may have replaced it meanwhile: the
	// outcome is what counts.)
	if status, _ := os.ReadFile("/run/bulkhead/status.json"); strings.Contains(string(status), fmt.Sprintf(`"pid": %d,`, pid)) {
		t.Error("the dead monitor's status file is still there")
	}
	t.Logf("the dead monitor left a status file: %v; the next start removed it: %v", leftStatus, strings.Contains(next.stderr.String(), fmt.Sprintf("of monitor %d", pid)))
	if g, d, mnt := pluginCgroups(pid), pluginDirs(pid), mounts(t, fmt.Sprintf("/run/bulkhead/plugins/%d-", pid)); len(g)+len(d)+len(mnt) > 0 {
		t.Errorf("left after the next start: cgroups %v, directories %v, mounts %v", g, d, mnt)
	}
	nextPID := next.cmd.Process.Pid
	if len(pluginCgroups(nextPID)) == 0 || len(pluginDirs(nextPID)) != 1 {
		t.Errorf("the next monitor has cgroups %v and directories %v", pluginCgroups(nextPID), pluginDirs(nextPID))
	}
	// A task left in the next monitor's plugin cgroup is killed at its stop.
	stray := exec.Command("sleep", "600")
	if err := stray.Start(); err != nil {
		t.Fatal(err)
	}
	defer stray.Process.Kill()
	if err := os.WriteFile(filepath.Join(pluginCgroups(nextPID)[0], "cgroup.procs"), []byte(strconv.Itoa(stray.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}
	strayDone := make(chan struct{})
	go func() { stray.Wait(); close(strayDone) }()
	openMarkersFrom(t, dir2, "ok", 0, 10, 100*time.Millisecond)
	next.waitFor(30*time.Second, 10, `"healthy"`, dir2+"/ok-")
	events := next.stop(t)
	select {
	case <-strayDone:
		if ws := stray.ProcessState.Sys().(syscall.WaitStatus); ws.Signal() != syscall.SIGKILL {
			t.Errorf("the task in the plugin's cgroup ended with %v at stop, not SIGKILL", stray.ProcessState)
		}
	case <-time.After(5 * time.Second):
		t.Error("a task in the plugin's cgroup survived the monitor's stop")
	}
	if n := len(markersFound(events, "healthy", dir2+"/ok-")); n != 10 {
		t.Errorf("the next monitor's healthy detector got %d of 10 markers", n)
	}
	if g, d, mnt := pluginCgroups(nextPID), pluginDirs(nextPID), mounts(t, fmt.Sprintf("/run/bulkhead/plugins/%d-", nextPID)); len(g)+len(d)+len(mnt) > 0 {
		t.Errorf("left after the next monitor's stop: cgroups %v, directories %v, mounts %v", g, d, mnt)
	}
}

// Class 3: one plugin copies its binary and a script into its private
// directory and executes them (and maps the copy executable); another
// writes there until refused. The directory is a tmpfs of disk_mb,
// noexec: nothing runs, the writer stops at the bound (the root
// filesystem does not fill), and the files are gone at stop.
func TestPluginCannotExecOrFillItsDirectory(t *testing.T) {
	testenv.RequireBPF(t)
	dir := t.TempDir()
	cfg := "detectors:\n" + healthyLine(t, "healthy", dir) +
		hostileLine(t, "exec", "exec-private", dir, "") +
		strings.TrimSuffix(hostileLine(t, "fill", "fill-disk", dir, ""), "}\n") + ", enclave: {disk_mb: 16}}\n"
	m := startLive(t, nil, "--config", writeConfig(t, cfg), "--status", "")
	pid := m.cmd.Process.Pid
	mnt := mounts(t, fmt.Sprintf("/run/bulkhead/plugins/%d-", pid))
	if len(mnt) != 3 {
		t.Fatalf("plugin directory mounts %v, want 3", mnt)
	}
	for p, opts := range mnt {
		for _, want := range []string{"noexec", "nosuid", "nodev", "tmpfs", "mode=700", "nr_inodes=4096"} {
			if !strings.Contains(opts, want) {
				t.Errorf("%s: %q lacks %s", p, opts, want)
			}
		}
		size := "size=65536k"
		if strings.Contains(p, "-fill-") {
			size = "size=16384k"
		}
		if !strings.Contains(opts, size) {
			t.Errorf("%s: %q lacks %s", p, opts, size)
		}
	}
	var root unix.Statfs_t
	unix.Statfs("/", &root)
	freeBefore := root.Bavail * uint64(root.Bsize)
	openMarkersFrom(t, dir, "ok", 0, 10, 200*time.Millisecond)
	openMarkersFrom(t, dir, "attack", 0, 1, 0)
	if !m.waitFor(30*time.Second, 2, `"hostile-attempt"`) {
		t.Errorf("the attempts were not reported within 30s:\n%s", tail(m.stderr.String(), 30))
	}
	unix.Statfs("/", &root)
	freeAfter := root.Bavail * uint64(root.Bsize)
	var fillDir string
	for p := range mnt {
		if strings.Contains(p, "-fill-") {
			fillDir = p
		}
	}
	var st unix.Statfs_t
	unix.Statfs(fillDir, &st)
	used := (st.Blocks - st.Bfree) * uint64(st.Bsize)
	openMarkersFrom(t, dir, "ok", 10, 10, 200*time.Millisecond)
	m.waitFor(30*time.Second, 20, `"healthy"`, dir+"/ok-")
	events := m.stop(t)

	got := attempts(events)
	t.Logf("exec-private: %s", got["exec"])
	t.Logf("fill-disk: %s; its directory holds %d MiB; root filesystem free space %d -> %d MiB", got["fill"], used>>20, freeBefore>>20, freeAfter>>20)
	for _, want := range []string{"blocked: ", "mmap PROT_EXEC: operation not permitted", "execve hostile-copy: permission denied", "execve hostile-script: permission denied"} {
		if !strings.Contains(got["exec"], want) {
			t.Errorf("exec-private attempt %q lacks %q", got["exec"], want)
		}
	}
	if !strings.HasPrefix(got["fill"], "blocked: wrote 1") || !strings.Contains(got["fill"], "no space left on device") {
		t.Errorf("fill-disk attempt %q: want it stopped at its 16 MiB", got["fill"])
	}
	if used > 16<<20 || used < 15<<20 {
		t.Errorf("the fill plugin's directory holds %d bytes, want its 16 MiB", used)
	}
	if freeBefore > freeAfter && freeBefore-freeAfter > 8<<20 {
		t.Errorf("the root filesystem lost %d MiB during the attack", (freeBefore-freeAfter)>>20)
	}
	if n := len(markersFound(events, "healthy", dir+"/ok-")); n != 20 {
		t.Errorf("the healthy detector got %d of 20 markers", n)
	}
	for _, name := range []string{"exec", "fill"} {
		if row := summaryRow(t, m.stderr.String(), name); row["crashes"] != "0" {
			t.Errorf("%s crashed %s times", name, row["crashes"])
		}
	}
	if d, left := pluginDirs(pid), mounts(t, fmt.Sprintf("/run/bulkhead/plugins/%d-", pid)); len(d)+len(left) > 0 {
		t.Errorf("after stop: directories %v, mounts %v", d, left)
	}
}

// Class 11: two monitors run on one host. The second one's plugin, in
// slot 0 like the first one's healthy plugin, connects to that plugin's
// go-plugin socket: refused, since each monitor claimed a uid range of
// its own. The control: a plugin of the second monitor configured with
// the first one's plugin uid (user:) does connect, so the test sees a
// shared uid when there is one.
func TestMonitorsDoNotSharePluginUIDs(t *testing.T) {
	testenv.RequireBPF(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	a := startLive(t, nil, "--config", writeConfig(t, "detectors:\n"+healthyLine(t, "healthy", dirA)), "--status", "")
	dirs := pluginDirs(a.cmd.Process.Pid)
	if len(dirs) != 1 {
		t.Fatalf("monitor A has plugin directories %v", dirs)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dirs[0], &st); err != nil {
		t.Fatal(err)
	}
	socks, _ := filepath.Glob(filepath.Join(dirs[0], "plugin*"))
	if len(socks) != 1 {
		t.Fatalf("monitor A's plugin sockets: %v", socks)
	}
	target := fmt.Sprintf(", target: %q", socks[0])
	cfgB := "detectors:\n" + hostileLine(t, "other", "connect-other", dirB, target) +
		strings.TrimSuffix(hostileLine(t, "same-uid", "connect-other", dirB, target), "}\n") + fmt.Sprintf(", enclave: {user: \"%d\"}}\n", st.Uid) +
		healthyLine(t, "healthy", dirB)
	b := startLive(t, nil, "--config", writeConfig(t, cfgB), "--status", "")
	rangeOf := func(m *liveMonitor) string {
		for _, line := range strings.Split(m.stderr.String(), "\n") {
			if strings.Contains(line, "plugin uids claimed for this monitor") {
				var l struct{ First, Last int }
				json.Unmarshal([]byte(line), &l)
				return fmt.Sprintf("%d-%d", l.First, l.Last)
			}
		}
		return ""
	}
	ra, rb := rangeOf(a), rangeOf(b)
	t.Logf("monitor A: plugin uids %s (healthy is uid %d); monitor B: %s", ra, st.Uid, rb)
	if ra == "" || rb == "" || ra == rb {
		t.Errorf("plugin uid ranges A %q, B %q: want two distinct ones", ra, rb)
	}
	openMarkersFrom(t, dirA, "ok", 0, 10, 100*time.Millisecond)
	openMarkersFrom(t, dirB, "ok", 0, 10, 100*time.Millisecond)
	openMarkersFrom(t, dirB, "attack", 0, 1, 0)
	if !b.waitFor(30*time.Second, 2, `"hostile-attempt"`) {
		t.Error("the attempts were not reported within 30s")
	}
	openMarkersFrom(t, dirA, "ok", 10, 10, 100*time.Millisecond)
	openMarkersFrom(t, dirB, "ok", 10, 10, 100*time.Millisecond)
	a.waitFor(30*time.Second, 20, `"healthy"`, dirA+"/ok-") // (a loaded machine is slow)
	b.waitFor(30*time.Second, 20, `"healthy"`, dirB+"/ok-")
	eventsB := b.stop(t)
	eventsA := a.stop(t)

	got := attempts(eventsB)
	t.Logf("connect-other from its own uid: %s; with monitor A's plugin uid (control): %s", got["other"], got["same-uid"])
	if !strings.HasPrefix(got["other"], "blocked: ") || !strings.Contains(got["other"], "permission denied") {
		t.Errorf("connect to the other monitor's plugin: %q, want permission denied", got["other"])
	}
	if !strings.HasPrefix(got["same-uid"], "succeeded") {
		t.Errorf("control: a plugin with the other's uid did not connect (%q): the test cannot see a shared uid", got["same-uid"])
	}
	if n := len(markersFound(eventsA, "healthy", dirA+"/ok-")); n != 20 {
		t.Errorf("monitor A's healthy detector got %d of 20 markers", n)
	}
	if n := len(markersFound(eventsB, "healthy", dirB+"/ok-")); n != 20 {
		t.Errorf("monitor B's healthy detector got %d of 20 markers", n)
	}
	if t.Failed() {
		t.Logf("monitor A:\n%s\nmonitor B:\n%s", tail(a.stderr.String(), 25), tail(b.stderr.String(), 25))
	}
}

// Class 2, the stop of a monitor whose plugin crash-loops: at stop its
// breaker is open and no plugin process runs, and still its cgroup and
// tmpfs directory go with the others.
func TestBreakerOpenPluginLeavesNothingAtStop(t *testing.T) {
	testenv.RequireBPF(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf("dispatch: {drain_timeout: 60s}\ndetectors:\n  - {name: chaos, backend: goplugin, plugin: %s, breaker_cooldown: 1m, config: {fault: exit, on: %q}}\n",
		testenv.Plugin(t, "chaos"), dir+"/x-") + healthyLine(t, "healthy", dir)
	m := startLive(t, nil, "--config", writeConfig(t, cfg), "--status", "")
	pid := m.cmd.Process.Pid
	if len(pluginDirs(pid)) != 2 || len(pluginCgroups(pid)) == 0 {
		t.Fatalf("directories %v, cgroups %v", pluginDirs(pid), pluginCgroups(pid))
	}
	openMarkers(t, dir, "x", 40, 2*time.Second)
	openMarkersFrom(t, dir, "ok", 0, 10, 100*time.Millisecond)
	m.waitFor(30*time.Second, 10, `"healthy"`, dir+"/ok-")
	events := m.stop(t)
	row := summaryRow(t, m.stderr.String(), "chaos")
	if row["breaker"] != "OPEN" {
		t.Errorf("the chaos plugin's breaker is %s at stop, want OPEN: %v", row["breaker"], row)
	}
	if n := len(markersFound(events, "healthy", dir+"/ok-")); n != 10 {
		t.Errorf("the healthy detector got %d of 10 markers", n)
	}
	if d, g, mnt := pluginDirs(pid), pluginCgroups(pid), mounts(t, fmt.Sprintf("/run/bulkhead/plugins/%d-", pid)); len(d)+len(g)+len(mnt) > 0 {
		t.Errorf("left after stop: directories %v, cgroups %v, mounts %v", d, g, mnt)
	}
}
