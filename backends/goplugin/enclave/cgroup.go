package enclave

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type cgroupKind string

const (
	cgroupNone cgroupKind = ""
	cgroupV1   cgroupKind = "v1"
	cgroupV2   cgroupKind = "v2"
)

// cgroupFS is where the cgroup filesystems are and which cgroups the
// monitor is in; tests point it at a directory of their own.
type cgroupFS struct {
	root string // /sys/fs/cgroup
	self []byte // /proc/self/cgroup
}

var v1Controllers = []string{"memory", "pids", "cpu"}

func hostCgroupFS() cgroupFS {
	self, _ := os.ReadFile("/proc/self/cgroup")
	return cgroupFS{root: "/sys/fs/cgroup", self: self}
}

func probeCgroup() cgroupKind { return hostCgroupFS().kind() }

// kind is v1 when memory, pids and cpu each have a v1 hierarchy; v2 when
// the monitor's own cgroup already hands those controllers to children
// (a delegated subtree: the monitor cannot enable them itself while it
// lives in that cgroup).
func (fs cgroupFS) kind() cgroupKind {
	v1 := true
	for _, c := range v1Controllers {
		if _, ok := fs.ownPath(c); !ok || !exists(filepath.Join(fs.root, c, "cgroup.procs")) {
			v1 = false
		}
	}
	if v1 {
		return cgroupV1
	}
	if own, ok := fs.ownPath(""); ok {
		ctl, err := os.ReadFile(filepath.Join(fs.root, own, "cgroup.subtree_control"))
		if err == nil && hasAll(strings.Fields(string(ctl)), "memory", "pids", "cpu") {
			return cgroupV2
		}
	}
	return cgroupNone
}

// ownPath is the monitor's cgroup in the hierarchy of controller c ("" is
// the unified v2 hierarchy).
func (fs cgroupFS) ownPath(c string) (string, bool) {
	sc := bufio.NewScanner(bytes.NewReader(fs.self))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if c == "" && parts[0] == "0" && parts[1] == "" {
			return parts[2], true
		}
		if c != "" && hasAll(strings.Split(parts[1], ","), c) {
			return parts[2], true
		}
	}
	return "", false
}

// group is one plugin's cgroup (in v1, one directory per controller).
type group struct {
	kind cgroupKind
	dirs map[string]string // controller ("" for v2) -> directory
}

// newGroup creates the plugin's cgroup with its limits.
func (fs cgroupFS) newGroup(kind cgroupKind, name string, c Config) (*group, error) {
	g := &group{kind: kind, dirs: map[string]string{}}
	quota := strconv.Itoa(c.CPUPercent * 1000) // of a 100ms period
	mem := strconv.Itoa(c.MemoryMB << 20)
	var writes [][3]string // controller, file, value; a "?" file may be missing
	switch kind {
	case cgroupV1:
		for _, ctl := range v1Controllers {
			own, _ := fs.ownPath(ctl)
			g.dirs[ctl] = filepath.Join(fs.root, ctl, own, name)
		}
		writes = [][3]string{{"memory", "memory.limit_in_bytes", mem}, {"memory", "?memory.memsw.limit_in_bytes", mem},
			{"pids", "pids.max", strconv.Itoa(c.Processes)},
			{"cpu", "cpu.cfs_period_us", "100000"}, {"cpu", "cpu.cfs_quota_us", quota}}
	case cgroupV2:
		own, _ := fs.ownPath("")
		g.dirs[""] = filepath.Join(fs.root, own, name)
		writes = [][3]string{{"", "memory.max", mem}, {"", "?memory.swap.max", "0"},
			{"", "pids.max", strconv.Itoa(c.Processes)}, {"", "cpu.max", quota + " 100000"}}
	default:
		return nil, errors.New("no cgroup controllers for memory, pids and cpu")
	}
	for _, d := range g.dirs {
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			g.remove()
			return nil, fmt.Errorf("cgroup: %w", err)
		}
	}
	for _, w := range writes {
		file, optional := strings.CutPrefix(w[1], "?")
		path := filepath.Join(g.dirs[w[0]], file)
		if optional && !exists(path) {
			continue
		}
		if err := os.WriteFile(path, []byte(w[2]), 0o644); err != nil {
			g.remove()
			return nil, fmt.Errorf("cgroup: set %s: %w", path, err)
		}
	}
	return g, nil
}

// procs are the files a process writes its pid to, to join the group.
func (g *group) procs() []string {
	var out []string
	for _, d := range g.dirs {
		out = append(out, filepath.Join(d, "cgroup.procs"))
	}
	return out
}

// oomKills counts the processes the kernel killed at the memory limit.
func (g *group) oomKills() uint64 {
	path := filepath.Join(g.dirs[""], "memory.events")
	if g.kind == cgroupV1 {
		path = filepath.Join(g.dirs["memory"], "memory.oom_control")
	}
	raw, _ := os.ReadFile(path)
	for line := range strings.Lines(string(raw)) {
		if n, ok := strings.CutPrefix(strings.TrimSpace(line), "oom_kill "); ok {
			v, _ := strconv.ParseUint(n, 10, 64)
			return v
		}
	}
	return 0
}

// parents are the directories where this monitor makes its plugins'
// cgroups (one per v1 controller, or the v2 one).
func (fs cgroupFS) parents() []string {
	var out []string
	switch fs.kind() {
	case cgroupV1:
		for _, c := range v1Controllers {
			own, _ := fs.ownPath(c)
			out = append(out, filepath.Join(fs.root, c, own))
		}
	case cgroupV2:
		own, _ := fs.ownPath("")
		out = append(out, filepath.Join(fs.root, own))
	}
	return out
}

// kill SIGKILLs every task in the group until none is left (or timeout),
// and returns how many it killed. A plugin cannot make new processes (its
// seccomp filter kills it for a clone without CLONE_THREAD), so this
// ends; cgroup v2's cgroup.kill is used where it exists.
func (g *group) kill(timeout time.Duration) int {
	killed := map[int]bool{}
	deadline := time.Now().Add(timeout)
	for {
		var pids []int
		for _, d := range g.dirs {
			if f, err := os.OpenFile(filepath.Join(d, "cgroup.kill"), os.O_WRONLY, 0); err == nil { // v2 only
				f.WriteString("1")
				f.Close()
			}
			raw, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
			for _, f := range strings.Fields(string(raw)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
					pids = append(pids, pid)
				}
			}
		}
		if len(pids) == 0 || time.Now().After(deadline) {
			return len(killed)
		}
		for _, pid := range pids {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed[pid] = true
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// remove deletes the group once its processes are gone.
func (g *group) remove() {
	for _, d := range g.dirs {
		for i := 0; i < 20; i++ {
			if err := os.Remove(d); err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func hasAll(have []string, want ...string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}
