package enclave

import (
	"fmt"
	"os/user"
	"path/filepath"
	"strconv"
)

// Config is what an operator sets for one plugin's enclave. Zero fields
// take the defaults (Defaults).
type Config struct {
	// User is the uid (or user name) the plugin runs as; empty gives each
	// plugin a uid of its own, UIDBase plus its place in the configuration.
	User string `yaml:"user" json:"user,omitempty"`
	// Read lists files and directories the plugin may read (its binary and
	// the system's shared libraries are always readable).
	Read []string `yaml:"read" json:"read,omitempty"`
	// MemoryMB bounds the plugin's memory; past it the plugin is killed
	// and restarted.
	MemoryMB int `yaml:"memory_mb" json:"memory_mb,omitempty"`
	// CPUPercent bounds its CPU rate, in percent of one core.
	CPUPercent int `yaml:"cpu_percent" json:"cpu_percent,omitempty"`
	// CPUSeconds, if set, kills a plugin process that has used this much
	// CPU time in all (it is restarted with a fresh budget).
	CPUSeconds int `yaml:"cpu_seconds" json:"cpu_seconds,omitempty"`
	// OpenFiles bounds its file descriptors.
	OpenFiles int `yaml:"open_files" json:"open_files,omitempty"`
	// Processes bounds its processes and threads (the Go runtime needs a
	// few dozen threads).
	Processes int `yaml:"processes" json:"processes,omitempty"`
	// DiskMB bounds its private directory, a tmpfs of this size mounted
	// noexec: past it a write fails with ENOSPC. The files go when the
	// plugin stops.
	DiskMB int `yaml:"disk_mb" json:"disk_mb,omitempty"`
}

// UIDBase is the first uid given to plugins that have no User. Each
// monitor claims a range of UIDRange uids of its own (Host): plugin N of
// its configuration (from 0) runs as the range's first uid plus N, group
// the same, so the plugins of two monitors on one host never share a uid.
// These uids need no entry in /etc/passwd; a uid that has one is refused,
// so a plugin never shares a real user's files or processes.
const UIDBase = 64000

// UIDRange is how many plugin uids one monitor claims (its configuration
// can hold that many plugins without user:), and UIDRanges how many
// ranges there are: UIDBase to UIDBase+UIDRange*UIDRanges-1, short of
// nobody (65534).
const (
	UIDRange  = 64
	UIDRanges = 23
)

// Defaults are the limits of a plugin whose Config leaves them out.
var Defaults = Config{MemoryMB: 512, CPUPercent: 100, OpenFiles: 256, Processes: 128, DiskMB: 64}

// WithDefaults fills the zero fields of c from Defaults.
func (c Config) WithDefaults() Config {
	if c.MemoryMB == 0 {
		c.MemoryMB = Defaults.MemoryMB
	}
	if c.CPUPercent == 0 {
		c.CPUPercent = Defaults.CPUPercent
	}
	if c.OpenFiles == 0 {
		c.OpenFiles = Defaults.OpenFiles
	}
	if c.Processes == 0 {
		c.Processes = Defaults.Processes
	}
	if c.DiskMB == 0 {
		c.DiskMB = Defaults.DiskMB
	}
	return c
}

// Check reports what is wrong with c, in words an operator can act on.
func (c Config) Check() error {
	switch {
	case c.MemoryMB < 0 || c.CPUPercent < 0 || c.CPUSeconds < 0 || c.OpenFiles < 0 || c.Processes < 0 || c.DiskMB < 0:
		return fmt.Errorf("enclave: memory_mb, cpu_percent, cpu_seconds, open_files, processes and disk_mb cannot be negative")
	case c.DiskMB > maxDiskMB:
		return fmt.Errorf("enclave: disk_mb %d is more than %d; a plugin's private directory is memory (tmpfs)", c.DiskMB, maxDiskMB)
	case c.MemoryMB != 0 && c.MemoryMB < 32:
		return fmt.Errorf("enclave: memory_mb %d is too small for a Go plugin; give it at least 32", c.MemoryMB)
	case c.OpenFiles != 0 && c.OpenFiles < 16:
		return fmt.Errorf("enclave: open_files %d is too few for a gRPC plugin; give it at least 16", c.OpenFiles)
	case c.Processes != 0 && c.Processes < 16:
		return fmt.Errorf("enclave: processes %d is too few for the Go runtime's threads; give it at least 16", c.Processes)
	}
	for _, p := range c.Read {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("enclave: read path %q must be absolute", p)
		}
	}
	return nil
}

// maxDiskMB bounds disk_mb: the tmpfs is memory.
const maxDiskMB = 16384

// ids resolves the plugin's uid and gid: User if set (a number, or a name
// from the user database), else base+slot, base the first uid of the
// monitor's range.
func (c Config) ids(base, slot int) (uid, gid int, err error) {
	if c.User == "" {
		if slot < 0 || slot >= UIDRange {
			return 0, 0, fmt.Errorf("enclave: plugin #%d: a monitor has %d plugin uids of its own; give the plugins from #%d on a user (enclave user: UID)", slot+1, UIDRange, UIDRange+1)
		}
		uid = base + slot
		if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
			return 0, 0, fmt.Errorf("enclave: uid %d, meant for a plugin alone, belongs to user %q on this host; set enclave user: to a uid nothing else uses", uid, u.Username)
		}
		return uid, uid, nil
	}
	if n, err := strconv.Atoi(c.User); err == nil {
		if n <= 0 {
			return 0, 0, fmt.Errorf("enclave: user %d: a plugin cannot run as root", n)
		}
		return n, n, nil
	}
	u, err := user.Lookup(c.User)
	if err != nil {
		return 0, 0, fmt.Errorf("enclave: user %q: %w", c.User, err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	if uid == 0 {
		return 0, 0, fmt.Errorf("enclave: user %q is root; a plugin cannot run as root", c.User)
	}
	return uid, gid, nil
}
