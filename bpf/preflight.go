package bpf

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"
)

const (
	capPerfmon = 38
	capBPF     = 39
	btfPath    = "/sys/kernel/btf/vmlinux"
	tracefsDir = "/sys/kernel/tracing"
)

// Preflight checks what loading and attaching needs, mounting tracefs if it
// is missing, and returns one error naming everything that is not there and
// how to get it. A nil error means Load and Attach can proceed.
func Preflight() error {
	var missing []error
	if err := checkCapabilities(); err != nil {
		missing = append(missing, err)
		// Without privileges the remaining probes fail for that reason alone.
		return errors.Join(missing...)
	}
	if _, err := os.Stat(btfPath); err != nil {
		missing = append(missing, fmt.Errorf("kernel BTF: %s is missing (%v); bulkhead's CO-RE programs need a kernel built with CONFIG_DEBUG_INFO_BTF=y", btfPath, err))
	}
	if err := features.HaveMapType(ebpf.RingBuf); err != nil {
		missing = append(missing, fmt.Errorf("BPF ring buffer: not supported by this kernel (%v); Linux 5.8 or newer is needed", err))
	}
	if err := EnsureTracefs(); err != nil {
		missing = append(missing, err)
	}
	return errors.Join(missing...)
}

func checkCapabilities() error {
	if os.Geteuid() == 0 {
		return nil
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capabilities: cannot read them (%v); run bulkhead as root", err)
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	if has(unix.CAP_SYS_ADMIN) || (has(capBPF) && has(capPerfmon)) {
		return nil
	}
	return fmt.Errorf("privileges: bulkhead loads BPF programs and needs root, or CAP_BPF with CAP_PERFMON (and CAP_SYS_ADMIN to mount tracefs); run it with sudo")
}

// TracefsDir is where tracefs is mounted (after EnsureTracefs).
func TracefsDir() string {
	for _, dir := range []string{tracefsDir, "/sys/kernel/debug/tracing"} {
		if _, err := os.Stat(dir + "/events/syscalls"); err == nil {
			return dir
		}
	}
	return tracefsDir
}

// EnsureTracefs makes sure tracefs is mounted, which syscall tracepoints
// need to be found by name. It mounts it at /sys/kernel/tracing when neither
// that nor the debugfs location has it.
func EnsureTracefs() error {
	for _, dir := range []string{tracefsDir, "/sys/kernel/debug/tracing"} {
		if _, err := os.Stat(dir + "/events/syscalls"); err == nil {
			return nil
		}
	}
	if err := unix.Mount("tracefs", tracefsDir, "tracefs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("tracefs: not mounted, and mounting it at %s failed (%v); mount it with `mount -t tracefs tracefs %s` or run bulkhead as root", tracefsDir, err, tracefsDir)
	}
	if _, err := os.Stat(tracefsDir + "/events/syscalls"); err != nil {
		return fmt.Errorf("tracefs: mounted at %s but it has no syscall tracepoints (%v); the kernel needs CONFIG_FTRACE_SYSCALLS=y", tracefsDir, err)
	}
	return nil
}
