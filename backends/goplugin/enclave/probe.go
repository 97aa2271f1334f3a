package enclave

import (
	"fmt"
	"os"
	"strings"

	seccomp "github.com/elastic/go-seccomp-bpf"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
)

// Support is what this kernel and this monitor can enforce.
type Support struct {
	Root        bool // the monitor is root: it can change the plugin's uid, caps and cgroup
	LandlockABI int  // 0: no Landlock
	Seccomp     bool
	Cgroup      cgroupKind // where memory, pids and CPU limits can be set
}

// Probe finds out what the kernel supports.
func Probe() Support {
	s := Support{Root: os.Geteuid() == 0, Seccomp: seccomp.Supported()}
	if abi, err := ll.LandlockGetABIVersion(); err == nil {
		s.LandlockABI = abi
	}
	if s.Root {
		s.Cgroup = probeCgroup()
	}
	return s
}

// String says which protections are available and which are not, and why.
func (s Support) String() string {
	var parts []string
	if s.Root {
		parts = append(parts, "uid/gid drop and empty capability sets")
	} else {
		parts = append(parts, "NO uid drop (the monitor is not root)")
	}
	if s.Seccomp {
		parts = append(parts, "seccomp")
	} else {
		parts = append(parts, "NO seccomp (kernel)")
	}
	if s.LandlockABI > 0 {
		parts = append(parts, fmt.Sprintf("Landlock ABI %d", s.LandlockABI))
	} else {
		parts = append(parts, "NO Landlock (kernel: not built, or not in the lsm= list)")
	}
	switch s.Cgroup {
	case cgroupV1, cgroupV2:
		parts = append(parts, "memory, pids and CPU limits in cgroup "+string(s.Cgroup))
	default:
		parts = append(parts, "NO cgroup limits (resource limits fall back to rlimits)")
	}
	return strings.Join(parts, ", ")
}
