//go:build !wasip1

package event

import (
	"time"

	"golang.org/x/sys/unix"
)

// Timebase turns kernel timestamps (CLOCK_BOOTTIME) into wall-clock time.
type Timebase struct {
	bootEpochNs int64 // wall-clock nanoseconds at boot
}

// NewTimebase samples both clocks now.
func NewTimebase() Timebase {
	var real, boot unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_REALTIME, &real)
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot)
	return Timebase{bootEpochNs: real.Nano() - boot.Nano()}
}

// TimebaseAt is the timebase of a host whose boot was at bootEpochNs
// (wall-clock nanoseconds), e.g. one saved with a recording.
func TimebaseAt(bootEpochNs int64) Timebase { return Timebase{bootEpochNs: bootEpochNs} }

// BootEpochNs is the wall-clock time of boot, in nanoseconds.
func (t Timebase) BootEpochNs() int64 { return t.bootEpochNs }

// Wall is the wall-clock time of a kernel timestamp.
func (t Timebase) Wall(kernelNs uint64) time.Time {
	return time.Unix(0, t.bootEpochNs+int64(kernelNs))
}

// KernelNow is the current CLOCK_BOOTTIME in nanoseconds, comparable with
// Header.KernelTimeNs.
func KernelNow() uint64 {
	var boot unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot)
	return uint64(boot.Nano())
}
