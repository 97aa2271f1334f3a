//go:build !wasip1

package chaos

import (
	"github.com/bulkhead-sec/bulkhead/internal/procstat"
	"golang.org/x/sys/unix"
)

// fatal is a fatal runtime error that no recover can stop.
func fatal() { concurrentMapWrites() }

// hang never returns.
func hang() { select {} }

// capAddressSpace limits the process's address space to its current size
// plus mb, so the memory fault ends in the Go runtime's out-of-memory
// death rather than in the host's OOM killer.
func capAddressSpace(mb int) error {
	size := procstat.Status("VmSize")
	if size == 0 {
		// /proc is out of reach in a plugin enclave, whose own memory
		// limit then ends the fault.
		return nil
	}
	limit := size + uint64(mb)<<20
	return unix.Setrlimit(unix.RLIMIT_AS, &unix.Rlimit{Cur: limit, Max: limit})
}
