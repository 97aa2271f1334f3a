//go:build wasip1

package event

import (
	"time"
	_ "unsafe" // go:linkname
)

// Under wasip1 (a detector compiled to WebAssembly, backends/wasm) there is
// no CLOCK_BOOTTIME of its own: the monitor's wasm backend gives the module
// the host's CLOCK_BOOTTIME as its monotonic clock, which KernelNow reads.

// Timebase turns kernel timestamps (CLOCK_BOOTTIME) into wall-clock time.
type Timebase struct {
	bootEpochNs int64 // wall-clock nanoseconds at boot
}

// NewTimebase is the timebase of a host that booted now (no boot clock here).
func NewTimebase() Timebase { return Timebase{bootEpochNs: time.Now().UnixNano()} }

// TimebaseAt is the timebase of a host whose boot was at bootEpochNs.
func TimebaseAt(bootEpochNs int64) Timebase { return Timebase{bootEpochNs: bootEpochNs} }

// BootEpochNs is the wall-clock time of boot, in nanoseconds.
func (t Timebase) BootEpochNs() int64 { return t.bootEpochNs }

// Wall is the wall-clock time of a kernel timestamp.
func (t Timebase) Wall(kernelNs uint64) time.Time {
	return time.Unix(0, t.bootEpochNs+int64(kernelNs))
}

// KernelNow is the module's monotonic clock: the host's CLOCK_BOOTTIME in
// the monitor's wasm backend, comparable with Header.KernelTimeNs.
func KernelNow() uint64 { return uint64(nanotime()) }

//go:linkname nanotime runtime.nanotime
func nanotime() int64
