package wire

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// The shared-memory transport (backends/goplugin/shm) carries each batch
// as one ring record: a fixed RingHeaderSize-byte header, then the batch
// in the flat layout (FlatEncoder.Finish, FlatDecoder.Decode).
//
//	u32 RingBatchVersion
//	u32 count   events in the batch
//	u64 seq     the batch's sequence number; the Result on the stream names it
//
// Little endian. A plugin refuses any other version.
const (
	RingBatchVersion = 2
	RingHeaderSize   = 16
)

// ShmEnv names the environment variable that tells a plugin its batches
// come through a ring: "3,4;batch=1", the ring's producer and consumer
// descriptors and the batch record version. The ring's own layout version
// is in its header (shm.Version), checked when the plugin opens it.
const ShmEnv = "BULKHEAD_SHM"

// ShmFDs are the descriptors a plugin gets the ring on.
const (
	ShmProducerFD = 3
	ShmConsumerFD = 4
)

// ShmEnvValue is ShmEnv's value for the descriptors ShmFDs.
func ShmEnvValue() string {
	return fmt.Sprintf("%d,%d;batch=%d", ShmProducerFD, ShmConsumerFD, RingBatchVersion)
}

// ParseShmEnv reads ShmEnv's value: the producer and consumer descriptors.
func ParseShmEnv(v string) (producer, consumer int, err error) {
	fds, version, ok := strings.Cut(v, ";batch=")
	if !ok {
		return 0, 0, fmt.Errorf("%s=%q: want P,C;batch=N", ShmEnv, v)
	}
	if n, err := strconv.Atoi(version); err != nil || n != RingBatchVersion {
		return 0, 0, fmt.Errorf("%s: batch record version %s, this plugin reads %d; build it against the same bulkhead release as the monitor", ShmEnv, version, RingBatchVersion)
	}
	p, c, ok := strings.Cut(fds, ",")
	if !ok {
		return 0, 0, fmt.Errorf("%s=%q: want P,C;batch=N", ShmEnv, v)
	}
	if producer, err = strconv.Atoi(p); err != nil || producer < 3 {
		return 0, 0, fmt.Errorf("%s=%q: bad producer descriptor", ShmEnv, v)
	}
	if consumer, err = strconv.Atoi(c); err != nil || consumer < 3 || consumer == producer {
		return 0, 0, fmt.Errorf("%s=%q: bad consumer descriptor", ShmEnv, v)
	}
	return producer, consumer, nil
}

// PutRingHeader writes a batch record's header into b[:RingHeaderSize].
func PutRingHeader(b []byte, seq uint64, count int) {
	binary.LittleEndian.PutUint32(b[0:], RingBatchVersion)
	binary.LittleEndian.PutUint32(b[4:], uint32(count))
	binary.LittleEndian.PutUint64(b[8:], seq)
}

// ParseRingRecord splits a ring record into its header's fields and the
// encoded batch (a view of rec).
func ParseRingRecord(rec []byte) (seq uint64, count uint32, batch []byte, err error) {
	if len(rec) < RingHeaderSize {
		return 0, 0, nil, fmt.Errorf("%w: ring record of %d bytes, shorter than its header", ErrCorrupt, len(rec))
	}
	if v := binary.LittleEndian.Uint32(rec); v != RingBatchVersion {
		return 0, 0, nil, fmt.Errorf("%w: ring batch record version %d, this side reads %d", ErrCorrupt, v, RingBatchVersion)
	}
	return binary.LittleEndian.Uint64(rec[8:]), binary.LittleEndian.Uint32(rec[4:]), rec[RingHeaderSize:], nil
}
