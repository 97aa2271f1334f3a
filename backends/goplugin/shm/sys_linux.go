package shm

import (
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	futexWait = 0 // FUTEX_WAIT, shared (no FUTEX_PRIVATE_FLAG): two processes
	futexWake = 1 // FUTEX_WAKE
)

// futexWaitOn sleeps while *addr == val, at most d. Spurious returns
// (EAGAIN, EINTR, ETIMEDOUT) are the caller's to re-check.
func futexWaitOn(addr *uint32, val uint32, d time.Duration) {
	ts := unix.NsecToTimespec(d.Nanoseconds())
	_, _, _ = unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWait, uintptr(val),
		uintptr(unsafe.Pointer(&ts)), 0, 0)
}

// osYield gives the processor to another runnable thread, of any process.
func osYield() { _, _, _ = unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }

// futexWakeAll wakes every waiter on addr.
func futexWakeAll(addr *uint32) {
	_, _, _ = unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWake, uintptr(1<<31-1), 0, 0, 0)
}

// mapping is one ring mapping: header (and producer) page, then the data
// area twice, back to back, so a record at any offset is contiguous.
type mapping struct {
	base   unsafe.Pointer
	length uintptr
	header []byte // the header page
	data   []byte // 2 × data size
}

func mapRing(fd int, header, size uintptr, prot int) (*mapping, error) {
	total := header + 2*size
	base, err := unix.MmapPtr(-1, 0, nil, total, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("shm: reserve %d bytes: %w", total, err)
	}
	if _, err := unix.MmapPtr(fd, 0, base, header+size, prot, unix.MAP_SHARED|unix.MAP_FIXED); err != nil {
		_ = unix.MunmapPtr(base, total)
		return nil, fmt.Errorf("shm: map ring: %w", err)
	}
	if _, err := unix.MmapPtr(fd, int64(header), unsafe.Add(base, header+size), size, prot, unix.MAP_SHARED|unix.MAP_FIXED); err != nil {
		_ = unix.MunmapPtr(base, total)
		return nil, fmt.Errorf("shm: map ring mirror: %w", err)
	}
	return &mapping{
		base:   base,
		length: total,
		header: unsafe.Slice((*byte)(base), header),
		data:   unsafe.Slice((*byte)(unsafe.Add(base, header)), 2*size),
	}, nil
}

func (m *mapping) unmap() error {
	if m == nil || m.base == nil {
		return nil
	}
	err := unix.MunmapPtr(m.base, m.length)
	m.base, m.header, m.data = nil, nil, nil
	return err
}

func mapPage(fd int, size uintptr, prot int) ([]byte, error) {
	p, err := unix.MmapPtr(fd, 0, nil, size, prot, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shm: map consumer page: %w", err)
	}
	return unsafe.Slice((*byte)(p), size), nil
}

func unmapPage(b []byte) error {
	if b == nil {
		return nil
	}
	return unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(b)), uintptr(len(b)))
}

func memfd(name string) (int, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_NOEXEC_SEAL)
	if err == unix.EINVAL { // kernels before 6.3 do not know MFD_NOEXEC_SEAL
		fd, err = unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return -1, fmt.Errorf("shm: memfd_create: %w", err)
	}
	return fd, nil
}

func seals(fd int) (int, error) {
	return unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
}

func u64at(b []byte, off int) *uint64 { return (*uint64)(unsafe.Pointer(&b[off])) }
func u32at(b []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }
