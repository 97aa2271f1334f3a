package enclave

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Host is one monitor's share of the host: the range of plugin uids it
// claimed, which no other monitor can claim while this one lives (a lock
// the kernel drops when the monitor dies, however it dies). The range is
// given back when the Host is closed and its last enclave is.
type Host struct {
	support Support
	base    int      // first uid of the range; -1 without one
	lock    *os.File // held open: the flock on it is the claim

	mu     sync.Mutex
	open   int // enclaves not yet closed
	closed bool
}

// Open cleans what dead monitors left (Cleanup) and, when the monitor is
// root, claims a range of plugin uids: the first free one of UIDRanges,
// so two monitors on one host never give their plugins the same uid.
// cleaned says what was removed, for the log.
func Open(s Support) (h *Host, cleaned []string, err error) {
	h = &Host{support: s, base: -1}
	if s.Root {
		cleaned = Cleanup()
		var base string
		if base, err = EnsureRuntimeDir(); err != nil {
			return nil, cleaned, err
		}
		uids := filepath.Join(base, "uids")
		if err = ensureOwnDir(uids, 0o700); err != nil {
			return nil, cleaned, err
		}
		if h.lock, h.base, err = claimUIDs(uids); err != nil {
			return nil, cleaned, err
		}
	}
	return h, cleaned, nil
}

// UIDs is the range of plugin uids this monitor claimed (first, last);
// -1, -1 when the plugins keep the monitor's uid.
func (h *Host) UIDs() (int, int) {
	if h.base < 0 {
		return -1, -1
	}
	return h.base, h.base + UIDRange - 1
}

// Close says no more enclaves will be prepared; the uid range is given
// back once the open ones are closed.
func (h *Host) Close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.release(0)
}

// hold counts an enclave in; release(1) counts one out, and gives the
// range back when none is left on a closed Host.
func (h *Host) hold() {
	h.mu.Lock()
	h.open++
	h.mu.Unlock()
}

func (h *Host) release(n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.open -= n
	if h.closed && h.open <= 0 && h.lock != nil {
		h.lock.Close()
		h.lock = nil
	}
}

// claimUIDs takes the first free range: an exclusive flock on
// dir/range-K.lock, held for as long as the file stays open.
func claimUIDs(dir string) (*os.File, int, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, 0, fmt.Errorf("enclave: plugin uid ranges: %w", err)
	}
	for k := 0; k < UIDRanges; k++ {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("range-%d.lock", k)), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, 0, fmt.Errorf("enclave: plugin uid ranges: %w", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				continue
			}
			return nil, 0, fmt.Errorf("enclave: plugin uid ranges: lock %s: %w", f.Name(), err)
		}
		// For an operator who looks: which monitor holds it.
		f.Truncate(0)
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		return f, UIDBase + k*UIDRange, nil
	}
	return nil, 0, fmt.Errorf("enclave: all %d ranges of plugin uids (%d to %d) are held by other monitors running on this host (see %s); stop one, or give the plugins an enclave user: of their own",
		UIDRanges, UIDBase, UIDBase+UIDRanges*UIDRange-1, dir)
}

// Cleanup removes what monitors that are gone left behind, when one was
// SIGKILLed or crashed before it could stop its plugins: it kills any
// task still in their plugins' cgroups and removes the cgroups, unmounts
// and removes their plugins' private directories, and removes their
// status file. A monitor is gone when its pid holds no plugin uid range
// and is no longer a bulkhead process; what a running monitor owns is
// never touched.
func Cleanup() []string {
	// Only in a run-time directory that is really this user's: in one
	// another user planted, the names could point anywhere.
	if CheckOwnDir(RuntimeDir(), runtimeMode()) != nil {
		return nil
	}
	return cleanup(RuntimeDir(), hostCgroupFS())
}

func cleanup(runtimeDir string, fs cgroupFS) []string {
	holders := rangeHolders(filepath.Join(runtimeDir, "uids"))
	gone := func(pid int) bool { return !holders[pid] && !monitorAlive(pid) }
	done := removeOf(runtimeDir, fs, gone)
	status := filepath.Join(runtimeDir, "status.json")
	if raw, err := os.ReadFile(status); err == nil {
		var s struct {
			PID int `json:"pid"`
		}
		if json.Unmarshal(raw, &s) == nil && s.PID > 0 && gone(s.PID) {
			os.Remove(status)
			os.Remove(status + ".tmp")
			done = append(done, fmt.Sprintf("status file %s of monitor %d", status, s.PID))
		}
	}
	return done
}

// Sweep kills every task left in this monitor's plugin cgroups, removes
// them, and unmounts and removes its plugins' private directories. It is
// for the very end of a monitor's stop, after its detectors are closed
// or abandoned: a plugin abandoned at stop (still busy when the drain
// timed out) is never closed, so its enclave is not either. Nothing
// without root.
func Sweep() []string {
	if os.Geteuid() != 0 || CheckOwnDir(RuntimeDir(), runtimeMode()) != nil {
		return nil
	}
	self := os.Getpid()
	return removeOf(RuntimeDir(), hostCgroupFS(), func(pid int) bool { return pid == self })
}

// removeOf kills the tasks of, and removes, the plugin cgroups and
// private directories of the monitors whose pid matches.
func removeOf(runtimeDir string, fs cgroupFS, match func(pid int) bool) []string {
	var done []string
	base := filepath.Join(runtimeDir, "plugins")
	entries, _ := os.ReadDir(base)
	for _, e := range entries {
		pid, ok := ownerPID(e.Name())
		if !ok || !match(pid) {
			continue
		}
		dir := filepath.Join(base, e.Name())
		unix.Unmount(dir, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		if err := os.RemoveAll(dir); err == nil {
			done = append(done, "private directory "+dir)
		}
	}
	for _, parent := range fs.parents() {
		entries, _ := os.ReadDir(parent)
		for _, e := range entries {
			rest, ok := strings.CutPrefix(e.Name(), cgroupPrefix)
			if !ok || !e.IsDir() {
				continue
			}
			pid, ok := ownerPID(rest)
			if !ok || !match(pid) {
				continue
			}
			dir := filepath.Join(parent, e.Name())
			g := &group{kind: cgroupV1, dirs: map[string]string{"": dir}}
			killed := g.kill(2 * time.Second)
			g.remove()
			what := "cgroup " + dir
			if killed > 0 {
				what += fmt.Sprintf(" (killed %d task(s) left in it)", killed)
			}
			done = append(done, what)
		}
	}
	return done
}

// rangeHolders are the pids that hold a plugin uid range now: processes
// with enclaves open, whatever their name (a test binary, say).
func rangeHolders(dir string) map[int]bool {
	out := map[int]bool{}
	files, _ := filepath.Glob(filepath.Join(dir, "range-*.lock"))
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		raw, _ := io.ReadAll(io.LimitReader(f, 32))
		pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
		// A shared lock is refused while the holder has its exclusive one.
		if err == nil && errors.Is(unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB), unix.EWOULDBLOCK) {
			out[pid] = true
		}
		f.Close() // drops the shared lock, if it was taken
	}
	return out
}

// cgroupPrefix starts the name of every plugin cgroup:
// bulkhead-MONITORPID-NAME-XXXX.
const cgroupPrefix = "bulkhead-"

// ownerPID reads the monitor pid that starts a name: PID-….
func ownerPID(name string) (int, bool) {
	p, _, ok := strings.Cut(name, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(p)
	return pid, err == nil && pid > 0
}

// monitorAlive reports whether pid is this process or another bulkhead
// monitor (a process whose name is bulkhead…, not one of its plugins).
// A pid reused by another program counts as gone, unless it holds a uid
// range (rangeHolders).
func monitorAlive(pid int) bool {
	if pid == os.Getpid() {
		return true
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if i := strings.LastIndexByte(string(stat), ')'); err != nil || i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X' {
		return false // gone, or dead and not yet reaped
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return false
	}
	name := strings.TrimSpace(string(comm))
	return strings.HasPrefix(name, "bulkhead") && !strings.HasPrefix(name, "bulkhead-plugin")
}
