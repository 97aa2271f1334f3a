package enclave

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Subcommand is the bulkhead subcommand that launches a plugin in its
// enclave (Launch).
const Subcommand = "enclave-exec"

// specEnv carries the spec from the monitor to the launcher; the launcher
// removes it before the plugin starts.
const specEnv = "BULKHEAD_ENCLAVE"

// spec is everything the launcher applies, decided by the monitor.
type spec struct {
	Binary     string   `json:"binary"`
	SHA256     string   `json:"sha256,omitempty"`
	UID        int      `json:"uid"` // -1: keep the monitor's
	GID        int      `json:"gid"`
	Parent     int      `json:"parent"` // the monitor's pid
	Tmp        string   `json:"tmp"`
	Read       []string `json:"read,omitempty"`
	Procs      []string `json:"procs,omitempty"` // cgroup.procs files to join
	OpenFiles  uint64   `json:"open_files"`
	Processes  uint64   `json:"processes"`
	CPUSeconds uint64   `json:"cpu_seconds,omitempty"`
	AddressMB  uint64   `json:"address_mb,omitempty"` // RLIMIT_AS, when there is no memory cgroup
	FileMB     uint64   `json:"file_mb,omitempty"`    // RLIMIT_FSIZE: disk_mb, unless Landlock keeps it to its tmpfs
	Landlock   bool     `json:"landlock"`
	Seccomp    bool     `json:"seccomp"`
	// Ring: descriptors 3 and 4 are the plugin's shared-memory ring (two
	// sealed memfds) and survive into the plugin; nothing else does.
	Ring bool `json:"ring,omitempty"`
}

// addressRoomMB is the address space a Go plugin gets beyond memory_mb
// when only RLIMIT_AS can bound it.
const addressRoomMB = 4096

// Enclave is one plugin's enclave, on the monitor's side. It outlives the
// plugin's processes: each restart runs in the same one.
type Enclave struct {
	spec        spec
	cfg         Config
	host        *Host
	group       *group
	tmpfs       bool // spec.Tmp is a tmpfs of its own
	oomBase     uint64
	protections []string
	closeOnce   sync.Once
}

// Prepare sets up an enclave on a Host of its own (Open), given back
// when the enclave is closed. A monitor with several plugins opens one
// Host and calls its Prepare.
func Prepare(name string, slot int, c Config, s Support) (*Enclave, error) {
	h, _, err := Open(s)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return h.Prepare(name, slot, c)
}

// Prepare sets up the enclave of the plugin named name, the slot-th
// plugin of the configuration: its private temporary directory and its
// cgroup. The binary is given by the backend (Command).
func (h *Host) Prepare(name string, slot int, c Config) (*Enclave, error) {
	s := h.support
	if err := c.Check(); err != nil {
		return nil, err
	}
	c = c.WithDefaults()
	e := &Enclave{cfg: c, host: h, spec: spec{UID: -1, GID: -1, Parent: os.Getpid(),
		OpenFiles: uint64(c.OpenFiles), Processes: uint64(c.Processes), CPUSeconds: uint64(c.CPUSeconds),
		Landlock: s.LandlockABI > 0, Seccomp: s.Seccomp}}
	for _, p := range c.Read {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("enclave: read path: %w; remove it from read: or create it", err)
		}
		e.spec.Read = append(e.spec.Read, p)
	}
	if s.Root {
		uid, gid, err := c.ids(h.base, slot)
		if err != nil {
			return nil, err
		}
		e.spec.UID, e.spec.GID = uid, gid
		e.protections = append(e.protections, fmt.Sprintf("uid %d gid %d, no supplementary groups", uid, gid),
			"no capabilities (bounding, ambient, permitted and effective sets empty)")
	} else {
		e.protections = append(e.protections, "runs as the monitor's user (the monitor is not root)")
	}
	e.protections = append(e.protections, "no_new_privs",
		"no terminal: a session of its own (no controlling terminal), stdin /dev/null")
	tmp, tmpfs, err := privateDir(name, e.spec.UID, e.spec.GID, c.DiskMB, s.Root)
	if err != nil {
		return nil, err
	}
	e.spec.Tmp, e.tmpfs = tmp, tmpfs
	h.hold()
	if tmpfs {
		e.protections = append(e.protections, fmt.Sprintf("private directory %s: tmpfs of %d MiB and %d inodes, noexec, nosuid, nodev; emptied at each start, removed at stop", tmp, c.DiskMB, tmpfsInodes))
	} else {
		e.protections = append(e.protections, fmt.Sprintf("private directory %s: a plain directory (the monitor is not root: no tmpfs)", tmp))
	}
	// Each file the plugin writes, anywhere, is at most disk_mb, unless
	// it can write only in its tmpfs (Landlock), which bounds it already
	// (there ENOSPC tells the plugin what is full). Without Landlock
	// nothing else stops it from writing wherever its uid may, /tmp say.
	// RLIMIT_FSIZE bounds a file, not how many there are.
	if !tmpfs || !e.spec.Landlock {
		e.spec.FileMB = uint64(c.DiskMB)
		what := fmt.Sprintf("each file it writes at most %d MiB (RLIMIT_FSIZE)", c.DiskMB)
		if !e.spec.Landlock {
			what += "; NO Landlock: it can write (and, outside its tmpfs, execute) files wherever its uid may, /tmp say: each bounded, not their number"
		}
		e.protections = append(e.protections, what)
	}
	if s.Seccomp {
		e.protections = append(e.protections, fmt.Sprintf("seccomp: %d system calls allowed (sockets AF_UNIX only, clone for threads only, "+
			"prctl only to name threads and memory or read; ioctl TIOCSTI, TIOCLINUX, TIOCSCTTY, TIOCCONS, TIOCSETD refused), any other kills the plugin", len(allowedSyscalls)+len(argRules)))
	}
	if e.spec.Landlock {
		read := append([]string{"its binary", "system libraries"}, e.spec.Read...)
		e.protections = append(e.protections, fmt.Sprintf("Landlock ABI %d: read-only %s; writable only %s, nothing executable there; no TCP; no signals or abstract sockets outside the plugin",
			s.LandlockABI, strings.Join(read, ", "), tmp))
	}
	limits := fmt.Sprintf("rlimits: %d open files, %d processes and threads", c.OpenFiles, c.Processes)
	if c.CPUSeconds > 0 {
		limits += fmt.Sprintf(", %d s of CPU time", c.CPUSeconds)
	}
	if s.Cgroup != cgroupNone {
		fs := hostCgroupFS()
		g, err := fs.newGroup(s.Cgroup, cgroupPrefix+filepath.Base(tmp), c)
		if err != nil {
			e.Close()
			return nil, err
		}
		e.group, e.spec.Procs = g, g.procs()
		e.protections = append(e.protections, fmt.Sprintf("cgroup %s: memory %d MiB, %d tasks, CPU %d%% of a core; every task in it killed at stop", s.Cgroup, c.MemoryMB, c.Processes, c.CPUPercent))
	} else {
		// Without a memory cgroup, cap the address space: a loose bound,
		// since a Go plugin at rest already reserves about 1.7 GB of it
		// (measured; with 1 GiB of room its threads failed to start).
		e.spec.AddressMB = uint64(c.MemoryMB) + addressRoomMB
		limits += fmt.Sprintf(", %d MiB of address space (no memory cgroup: a loose bound)", e.spec.AddressMB)
	}
	e.protections = append(e.protections, limits)
	return e, nil
}

// Protections says what is in force, one protection per line.
func (e *Enclave) Protections() []string { return e.protections }

// Dir is the plugin's private directory: its TMPDIR and HOME, where its
// socket is.
func (e *Enclave) Dir() string { return e.spec.Tmp }

// UID is the plugin's uid (-1: the monitor's own).
func (e *Enclave) UID() int { return e.spec.UID }

// Command is the launcher command that starts binary in the enclave;
// sha256 (hex, or "") is checked on the very file executed. The
// environment is the enclave's alone: nothing of the monitor's leaks.
// Call it for each start: it notes the cgroup's kills so far, for Cause.
func (e *Enclave) Command(launcher, binary, sha256 string, ring bool) (*exec.Cmd, error) {
	s := e.spec
	s.Binary, s.SHA256, s.Ring = binary, sha256, ring
	raw, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	if e.group != nil {
		// Nothing of a previous process may run beside the new one.
		e.group.kill(time.Second)
		e.oomBase = e.group.oomKills()
	}
	// Nor stay in its directory: what a process wrote goes when it stops.
	if err := emptyDir(e.spec.Tmp); err != nil {
		return nil, fmt.Errorf("enclave: empty %s: %w", e.spec.Tmp, err)
	}
	cmd := exec.Command(launcher, Subcommand)
	cmd.Env = []string{specEnv + "=" + string(raw), "TMPDIR=" + e.spec.Tmp, "HOME=" + e.spec.Tmp, "PATH=/usr/bin:/bin"}
	// If the monitor dies, the kernel kills the plugin; the launcher sets
	// this again after changing uid, which clears it, and the plugin
	// cannot clear it (seccomp). A session of its own: the plugin never
	// has the operator's terminal as its controlling terminal. (go-plugin
	// sets Stdin to the monitor's; the launcher replaces it with
	// /dev/null before the plugin runs.)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setsid: true}
	return cmd, nil
}

// Kill says how the enclave killed a plugin process.
type Kill struct {
	Kind   string // "seccomp", "memory" or "cpu"
	Reason string // for a person
}

// Cause tells whether the enclave killed the process that ended with ps,
// and how; nil if it did not (an ordinary crash, or still running).
func (e *Enclave) Cause(ps *os.ProcessState) *Kill {
	if ps == nil {
		return nil
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return nil
	}
	switch {
	case ws.Signal() == syscall.SIGSYS:
		return &Kill{"seccomp", "killed by its seccomp filter: the plugin made a system call the enclave forbids"}
	case e.group != nil && e.group.oomKills() > e.oomBase:
		return &Kill{"memory", fmt.Sprintf("killed at its memory limit of %d MiB", e.cfg.MemoryMB)}
	case e.cfg.CPUSeconds > 0 && (ws.Signal() == syscall.SIGXCPU || ws.Signal() == syscall.SIGKILL) &&
		ps.UserTime()+ps.SystemTime() >= time.Duration(e.cfg.CPUSeconds)*time.Second*9/10:
		return &Kill{"cpu", fmt.Sprintf("killed at its CPU-time limit of %d s", e.cfg.CPUSeconds)}
	}
	return nil
}

// Close kills every task left in the enclave's cgroup, removes the
// cgroup, unmounts and removes the private directory. It can be called
// more than once.
func (e *Enclave) Close() {
	e.closeOnce.Do(func() {
		if e.group != nil {
			e.group.kill(2 * time.Second)
			e.group.remove()
		}
		if e.tmpfs {
			unix.Unmount(e.spec.Tmp, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		}
		os.RemoveAll(e.spec.Tmp)
		e.host.release(1)
	})
}

// CheckSHA256 compares the binary's SHA-256 with want (hex; "" skips).
func CheckSHA256(binary, want string) error {
	if want == "" {
		return nil
	}
	f, err := os.Open(binary)
	if err != nil {
		return fmt.Errorf("plugin binary %s: %w", binary, err)
	}
	defer f.Close()
	return checkSHA256(f, binary, want)
}

func checkSHA256(f io.Reader, binary, want string) error {
	w, err := hex.DecodeString(want)
	if err != nil || len(w) != sha256.Size {
		return fmt.Errorf("sha256 %q is not a SHA-256 in hex (64 hex digits, as sha256sum prints)", want)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("plugin binary %s: %w", binary, err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, w) {
		return fmt.Errorf("plugin binary %s: SHA-256 is %x, the configuration expects %s: refusing to start it "+
			"(if you installed a new build on purpose, put its sum, from sha256sum %s, in the detector's sha256)", binary, got, want, binary)
	}
	return nil
}

// RuntimeDir is where a monitor keeps its run-time state: the plugins'
// private directories, and the status file `bulkhead plugins` reads.
// It is only a name: EnsureRuntimeDir creates it and checks that no one
// else planted it.
func RuntimeDir() string {
	if os.Geteuid() == 0 {
		return "/run/bulkhead"
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("bulkhead-%d", os.Geteuid()))
}

// runtimeMode is the mode of RuntimeDir and of its plugins/: only the
// monitor's user may list or change them. A root monitor's plugins run as
// uids of their own and must pass through both to reach their private
// directories (search, not read): 0711. A non-root monitor's plugins run
// as its user: 0700.
func runtimeMode() os.FileMode {
	if os.Geteuid() == 0 {
		return 0o711
	}
	return 0o700
}

// EnsureRuntimeDir creates RuntimeDir and then each of sub below it (one
// level each), and checks every one of them (CheckOwnDir): a monitor that
// is not root keeps them in a shared temporary directory, where another
// local user could have made them first, or put a symbolic link there, to
// have this monitor write or remove files of its user elsewhere. It
// returns the last directory.
func EnsureRuntimeDir(sub ...string) (string, error) {
	dir := RuntimeDir()
	if err := ensureOwnDir(dir, runtimeMode()); err != nil {
		return "", err
	}
	for _, s := range sub {
		dir = filepath.Join(dir, s)
		if err := ensureOwnDir(dir, runtimeMode()); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// CheckRuntimeDir checks RuntimeDir as EnsureRuntimeDir would, without
// making it: for a reader of what a monitor keeps there (`bulkhead
// plugins`).
func CheckRuntimeDir() error { return CheckOwnDir(RuntimeDir(), runtimeMode()) }

// ensureOwnDir makes dir with mode (not following a symbolic link there),
// or checks the one that is there.
func ensureOwnDir(dir string, mode os.FileMode) error {
	err := os.Mkdir(dir, mode)
	if err == nil {
		// The umask may have taken bits away; set exactly mode.
		if err := os.Chmod(dir, mode); err != nil {
			return fmt.Errorf("enclave: %w", err)
		}
	} else if !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("enclave: run-time directory: %w", err)
	}
	return CheckOwnDir(dir, mode)
}

// CheckOwnDir checks, without following a symbolic link, that dir is a
// directory of this process's effective user with mode mode. A directory
// of this user that no one else can write (say 0755, made by an older
// bulkhead) is given mode; anything else is refused with what is wrong
// and what to do.
func CheckOwnDir(dir string, mode os.FileMode) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("enclave: run-time directory: %w", err)
	}
	euid := os.Geteuid()
	st, ok := fi.Sys().(*syscall.Stat_t)
	const planted = "another local user may have made it, to have this monitor write or remove files elsewhere"
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("enclave: run-time directory %s is a symbolic link, not a directory: %s; "+
			"remove the link (rm %s) and start again, or set TMPDIR to a directory of your own", dir, planted, dir)
	case !fi.IsDir():
		return fmt.Errorf("enclave: run-time directory %s is not a directory (%s): %s; "+
			"remove it and start again, or set TMPDIR to a directory of your own", dir, fi.Mode().Type(), planted)
	case !ok || int(st.Uid) != euid:
		owner := -1
		if ok {
			owner = int(st.Uid)
		}
		return fmt.Errorf("enclave: run-time directory %s belongs to uid %d, not to this monitor's user (uid %d): %s; "+
			"have it removed (by root or its owner) and start again, or set TMPDIR to a directory of your own", dir, owner, euid, planted)
	}
	got := fi.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
	if got == mode {
		return nil
	}
	if got&0o022 != 0 {
		return fmt.Errorf("enclave: run-time directory %s has mode %04o: others can write in it, so what is in it may be "+
			"another user's (%s); remove it (rm -r %s) and start again", dir, uint32(got.Perm()), planted, dir)
	}
	// Ours, and no one else could write in it: what is in it is ours.
	if err := os.Chmod(dir, mode); err != nil {
		return fmt.Errorf("enclave: run-time directory %s: %w", dir, err)
	}
	return nil
}

// tmpfsInodes bounds the files a plugin can make in its directory.
const tmpfsInodes = 4096

// privateDir makes the plugin's private directory, writable by it alone:
// PID-NAME-XXXX under RuntimeDir()/plugins (unique, so a reload's new
// plugin never shares the old one's). When root, it is a tmpfs of diskMB
// MiB, noexec, nosuid, nodev, owned by the plugin's uid.
func privateDir(name string, uid, gid, diskMB int, root bool) (dir string, tmpfs bool, err error) {
	base, err := EnsureRuntimeDir("plugins")
	if err != nil {
		return "", false, err
	}
	if dir, err = os.MkdirTemp(base, fmt.Sprintf("%d-%s-", os.Getpid(), safeName(name))); err != nil {
		return "", false, fmt.Errorf("enclave: %w", err)
	}
	if root {
		opts := fmt.Sprintf("size=%dm,nr_inodes=%d,mode=0700", diskMB, tmpfsInodes)
		if uid >= 0 {
			opts += fmt.Sprintf(",uid=%d,gid=%d", uid, gid)
		}
		if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOEXEC|unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
			os.Remove(dir)
			return "", false, fmt.Errorf("enclave: mount the private tmpfs on %s: %w", dir, err)
		}
		return dir, true, nil
	}
	if uid >= 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			os.Remove(dir)
			return "", false, fmt.Errorf("enclave: %w", err)
		}
	}
	return dir, false, nil
}

// emptyDir removes what is in dir, not dir. It refuses a dir that is not
// a directory (a symbolic link put in its place), and removes through a
// handle on the directory it checked: nothing it removes can be outside
// dir. (os.RemoveAll, used elsewhere on a private directory, does not
// follow a symbolic link in its last element either: it removes the
// link.)
func emptyDir(dir string) error {
	before, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !before.IsDir() {
		return fmt.Errorf("%s is no longer a directory (%s): refusing to empty it", dir, before.Mode().Type())
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer r.Close()
	now, err := r.Stat(".")
	if err != nil {
		return err
	}
	if !os.SameFile(before, now) {
		return fmt.Errorf("%s was replaced while it was being emptied: refusing to empty it", dir)
	}
	d, err := r.Open(".")
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := r.RemoveAll(name); err != nil {
			return err
		}
	}
	return nil
}

// safeName keeps a name usable in a path.
func safeName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '/' || r == 0 || r == ' ' {
			return '_'
		}
		return r
	}, s)
	if s == "" || s == "." || s == ".." {
		return "plugin"
	}
	return s
}

var errNoSpec = errors.New(specEnv + " is not set: enclave-exec is started by the monitor, not by hand")
