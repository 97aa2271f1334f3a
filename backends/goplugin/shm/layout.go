package shm

import (
	"encoding/binary"
	"errors"
	"os"
)

// Layout of the producer memfd's header page (little endian; the producer
// position is written with atomics in native byte order, which is little
// endian on every architecture bulkhead runs on: amd64, arm64).
const (
	offMagic      = 0  // u32 Magic
	offVersion    = 4  // u32 Version
	offHeaderSize = 8  // u32 bytes before the data area (one page)
	offRecordHdr  = 12 // u32 record header size (8)
	offDataSize   = 16 // u64 data area size, a power of two
	offProducer   = 64 // u64 producer position, on its own cache line
)

// Layout of the consumer memfd (one page, plugin-writable).
const (
	offConsumer = 0   // u64 consumer position
	offSleeping = 64  // u32 1 while the consumer waits or is about to
	offAnswered = 128 // u64 records the consumer answered out of band, published before the position
)

const (
	// Magic identifies a bulkhead ring ("BHRG").
	Magic uint32 = 0x47524842
	// Version is the layout version; a consumer refuses any other.
	// Version 2 added the answered count to the consumer page.
	Version uint32 = 2
	// RecordHeaderSize is the size of a record's header: length u32, flags u32.
	RecordHeaderSize = 8
	// MinDataSize and MaxDataSize bound the data area. Below 4 GiB a
	// 32-bit futex word (the producer position's low half) cannot see
	// the same value again while a consumer waits.
	MinDataSize = 1 << 12
	MaxDataSize = 1 << 30
	// Required seals on each memfd.
	producerSeals = 0x10 /* F_SEAL_FUTURE_WRITE */ | 0x2 /* F_SEAL_SHRINK */ | 0x4 /* F_SEAL_GROW */ | 0x1 /* F_SEAL_SEAL */
	consumerSeals = 0x2 | 0x4 | 0x1
)

var (
	// ErrProtocol reports a consumer position or answered count that
	// breaks the protocol (not aligned, going backwards, past the
	// producer, more answers than records). The caller kills
	// the plugin and counts a protocol violation.
	ErrProtocol = errors.New("shm: consumer protocol violation")
	// ErrTooLarge reports a payload that cannot fit in the ring at all.
	ErrTooLarge = errors.New("shm: record larger than the ring")
	// ErrLayout reports descriptors that are not a ring this package
	// understands (magic, version, sizes, seals).
	ErrLayout = errors.New("shm: bad ring layout")
	// ErrCorrupt reports a record header that does not fit what the
	// producer published.
	ErrCorrupt = errors.New("shm: corrupt record")
	// ErrClosed reports use after Close.
	ErrClosed = errors.New("shm: ring closed")
)

func align8(n uint64) uint64 { return (n + 7) &^ 7 }

func pageSize() int { return os.Getpagesize() }

// validDataSize reports whether n is a usable data area size.
func validDataSize(n uint64, page int) bool {
	return n >= MinDataSize && n <= MaxDataSize && n&(n-1) == 0 && n%uint64(page) == 0
}

// futexLowOffset is where the low 32 bits of the u64 producer position are.
func futexLowOffset() uintptr {
	var probe [2]byte
	binary.NativeEndian.PutUint16(probe[:], 1)
	if probe[0] == 1 {
		return 0
	}
	return 4
}
