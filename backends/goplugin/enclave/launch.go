package enclave

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Launch is `bulkhead enclave-exec`: it applies the enclave the monitor
// described in the environment and executes the plugin in it. It returns
// only when something failed, saying which step.
func Launch() error {
	raw := os.Getenv(specEnv)
	if raw == "" {
		return errNoSpec
	}
	var s spec
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return fmt.Errorf("%s: %w", specEnv, err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, specEnv+"=") {
			env = append(env, kv)
		}
	}
	// Everything below applies to this thread, the one that executes the
	// plugin (and, where the kernel allows, to all of them).
	runtime.LockOSThread()
	if err := detachTerminal(s.Ring); err != nil {
		return err
	}
	for _, p := range s.Procs {
		if err := os.WriteFile(p, []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
			return fmt.Errorf("join cgroup: %w", err)
		}
	}
	// The file is executed through this descriptor (execveat), so the sum
	// is that of the very file that runs: replacing the path after this
	// changes nothing. It must stay open, not collected, until then.
	bin, err := os.Open(s.Binary)
	if err != nil {
		return fmt.Errorf("open plugin binary: %w", err)
	}
	defer bin.Close()
	if s.SHA256 != "" {
		if err := checkSHA256(bin, s.Binary, s.SHA256); err != nil {
			return err
		}
	}
	if err := setLimits(s); err != nil {
		return err
	}
	if s.Landlock {
		if err := restrictFilesystem(s); err != nil {
			return fmt.Errorf("landlock: %w", err)
		}
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	if s.UID >= 0 {
		if err := dropPrivileges(s); err != nil {
			return err
		}
	}
	if s.Seccomp {
		if err := loadSeccomp(); err != nil {
			return fmt.Errorf("seccomp: %w", err)
		}
	}
	argv, err := syscall.SlicePtrFromStrings([]string{s.Binary})
	if err != nil {
		return err
	}
	envv, err := syscall.SlicePtrFromStrings(env)
	if err != nil {
		return err
	}
	empty, _ := syscall.BytePtrFromString("")
	_, _, errno := syscall.Syscall6(unix.SYS_EXECVEAT, bin.Fd(), uintptr(unsafe.Pointer(empty)),
		uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envv[0])), unix.AT_EMPTY_PATH, 0)
	return fmt.Errorf("execute plugin %s: %w", s.Binary, errno)
}

// detachTerminal leaves the operator's terminal behind: the plugin gets
// a session of its own, hence no controlling terminal (/dev/tty fails,
// and TIOCSTI on a terminal that is not its controlling one needs
// CAP_SYS_ADMIN), and /dev/null as its standard input, whatever
// go-plugin passed (it sets the monitor's own stdin). No descriptor but
// 0, 1 and 2 survives the exec; with ring, 3 and 4 too, once checked to
// be sealed memfds (the shared-memory ring the monitor passes).
func detachTerminal(ring bool) error {
	if sid, _ := unix.Getsid(0); sid != os.Getpid() {
		if _, err := unix.Setsid(); err != nil {
			return fmt.Errorf("setsid: %w", err)
		}
	}
	null, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev/null: %w", err)
	}
	defer unix.Close(null)
	if err := unix.Dup3(null, 0, 0); err != nil {
		return fmt.Errorf("stdin from /dev/null: %w", err)
	}
	first := uint(3)
	if ring {
		for _, fd := range []int{ringProducerFD, ringConsumerFD} {
			if err := checkRingFD(fd); err != nil {
				return err
			}
		}
		first = ringConsumerFD + 1
	}
	if err := unix.CloseRange(first, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil && err != unix.ENOSYS && err != unix.EINVAL {
		return fmt.Errorf("close_range: %w", err)
	}
	return nil
}

type rlimit struct {
	what     string
	resource int
	value    uint64
}

func setLimits(s spec) error {
	limits := []rlimit{{"open files", unix.RLIMIT_NOFILE, s.OpenFiles}, {"core dumps", unix.RLIMIT_CORE, 0}}
	if s.UID >= 0 {
		// Counted per user: with a uid of its own, per plugin.
		limits = append(limits, rlimit{"processes", unix.RLIMIT_NPROC, s.Processes})
	}
	if s.CPUSeconds > 0 {
		limits = append(limits, rlimit{"CPU time", unix.RLIMIT_CPU, s.CPUSeconds})
	}
	if s.FileMB > 0 {
		// A Go program ignores SIGXFSZ: the write fails with EFBIG.
		limits = append(limits, rlimit{"file size", unix.RLIMIT_FSIZE, s.FileMB << 20})
	}
	if s.AddressMB > 0 {
		limits = append(limits, rlimit{"address space", unix.RLIMIT_AS, s.AddressMB << 20})
	}
	for _, l := range limits {
		if err := unix.Setrlimit(l.resource, &unix.Rlimit{Cur: l.value, Max: l.value}); err != nil {
			return fmt.Errorf("limit %s to %d: %w", l.what, l.value, err)
		}
	}
	return nil
}

// dropPrivileges empties the capability bounding and ambient sets, then
// becomes the plugin's user, which empties the others.
func dropPrivileges(s spec) error {
	last := 63
	if raw, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		last, _ = strconv.Atoi(strings.TrimSpace(string(raw)))
	}
	for c := 0; c <= last; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setresgid(s.GID, s.GID, s.GID); err != nil {
		return fmt.Errorf("setgid %d: %w", s.GID, err)
	}
	if err := syscall.Setresuid(s.UID, s.UID, s.UID); err != nil {
		return fmt.Errorf("setuid %d: %w", s.UID, err)
	}
	// A change of credentials clears the parent-death signal: set it again,
	// and make sure the monitor did not die in between.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("parent-death signal: %w", err)
	}
	if os.Getppid() != s.Parent {
		return fmt.Errorf("the monitor (pid %d) is gone", s.Parent)
	}
	return nil
}

// The descriptors of the shared-memory ring (wire.ShmProducerFD and
// wire.ShmConsumerFD; the enclave package does not import wire).
const (
	ringProducerFD = 3
	ringConsumerFD = 4
)

// checkRingFD makes sure fd is a sealed memfd that survives the exec:
// nothing else is kept open for the plugin.
func checkRingFD(fd int) error {
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil || seals&(unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL) != unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL {
		return fmt.Errorf("ring descriptor %d is not a sealed memfd (seals %#x: %v)", fd, seals, err)
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil {
		return fmt.Errorf("ring descriptor %d: %w", fd, err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, flags&^unix.FD_CLOEXEC); err != nil {
		return fmt.Errorf("ring descriptor %d: %w", fd, err)
	}
	return nil
}
