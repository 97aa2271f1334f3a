package wasm

import (
	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

// mmapAllocator backs each module's linear memory with its own mapping,
// reserved at the module's limit and committed by the kernel as pages are
// touched: growing it copies nothing (wazero's default reallocates a Go
// slice and copies the whole memory at each grow: filling 128 MiB took
// the memory fault 2 s), and it is outside the monitor's Go heap, so it
// does not move the garbage collector's pacing. Freed with the instance.
type mmapAllocator struct{ limit uint64 }

func (a mmapAllocator) Allocate(_, max uint64) experimental.LinearMemory {
	max = min(max, a.limit)
	if max == 0 {
		return &goMemory{}
	}
	b, err := unix.Mmap(-1, 0, int(max), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return &goMemory{max: max} // no room to reserve: a Go slice, as wazero does
	}
	return &mmapMemory{buf: b}
}

type mmapMemory struct{ buf []byte }

func (m *mmapMemory) Reallocate(size uint64) []byte {
	if m.buf == nil || size > uint64(len(m.buf)) {
		return nil // the Go runtime in the module dies of "out of memory"
	}
	return m.buf[:size]
}

func (m *mmapMemory) Free() {
	if m.buf != nil {
		_ = unix.Munmap(m.buf)
		m.buf = nil
	}
}

// goMemory is wazero's way: a slice grown by copying.
type goMemory struct {
	buf []byte
	max uint64
}

func (m *goMemory) Reallocate(size uint64) []byte {
	if size > m.max {
		return nil
	}
	if uint64(cap(m.buf)) < size {
		b := make([]byte, size, min(max(size, 2*uint64(cap(m.buf))), m.max))
		copy(b, m.buf)
		m.buf = b
	}
	m.buf = m.buf[:size]
	return m.buf
}

func (m *goMemory) Free() { m.buf = nil }
