package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Producer is the monitor's end of a ring. It is not safe for concurrent
// use: one goroutine writes (single producer).
type Producer struct {
	prodFile, consFile *os.File
	m                  *mapping
	cons               []byte // the consumer page, read-write (plugin-writable)

	size     uint64
	mask     uint64
	prodPtr  *uint64 // in the sealed header page
	prodLow  *uint32 // its low 32 bits: the futex word
	consPtr  *uint64 // plugin-writable: read, validated, never trusted
	sleepPtr *uint32 // plugin-writable
	ansPtr   *uint64 // plugin-writable

	prod     uint64 // authoritative producer position
	records  uint64 // records committed
	consumed uint64 // last validated consumer position
	answered uint64 // last validated answered count
	hold     uint64 // no data from here on is reused (holding)
	holding  bool
	reserved int   // payload bytes of the open reservation, -1 if none
	err      error // sticky protocol error

	wakes atomic.Uint64
}

// New creates a ring whose data area holds dataSize bytes (a power of two,
// a multiple of the page size, MinDataSize to MaxDataSize). It maps it,
// writes the header and seals the producer memfd: from then on the memory
// can only be mapped read-only by anyone else.
func New(dataSize int) (_ *Producer, err error) {
	page := pageSize()
	if dataSize < 0 || !validDataSize(uint64(dataSize), page) {
		return nil, fmt.Errorf("%w: data size %d (want a power of two, multiple of %d, %d..%d)",
			ErrLayout, dataSize, page, MinDataSize, MaxDataSize)
	}
	p := &Producer{size: uint64(dataSize), mask: uint64(dataSize) - 1, reserved: -1}
	defer func() {
		if err != nil {
			_ = p.Close()
		}
	}()

	pfd, err := memfd("bulkhead-ring")
	if err != nil {
		return nil, err
	}
	p.prodFile = os.NewFile(uintptr(pfd), "bulkhead-ring")
	if err := unix.Ftruncate(pfd, int64(page+dataSize)); err != nil {
		return nil, fmt.Errorf("shm: size ring: %w", err)
	}
	if p.m, err = mapRing(pfd, uintptr(page), uintptr(dataSize), unix.PROT_READ|unix.PROT_WRITE); err != nil {
		return nil, err
	}
	h := p.m.header
	binary.LittleEndian.PutUint32(h[offMagic:], Magic)
	binary.LittleEndian.PutUint32(h[offVersion:], Version)
	binary.LittleEndian.PutUint32(h[offHeaderSize:], uint32(page))
	binary.LittleEndian.PutUint32(h[offRecordHdr:], RecordHeaderSize)
	binary.LittleEndian.PutUint64(h[offDataSize:], uint64(dataSize))
	p.prodPtr = u64at(h, offProducer)
	p.prodLow = (*uint32)(unsafe.Add(unsafe.Pointer(p.prodPtr), futexLowOffset()))
	// The mapping above stays writable; every later mapping of this
	// memfd is read-only, and its size is fixed.
	if _, err := unix.FcntlInt(uintptr(pfd), unix.F_ADD_SEALS, producerSeals); err != nil {
		return nil, fmt.Errorf("shm: seal ring: %w", err)
	}

	cfd, err := memfd("bulkhead-ring-consumer")
	if err != nil {
		return nil, err
	}
	p.consFile = os.NewFile(uintptr(cfd), "bulkhead-ring-consumer")
	if err := unix.Ftruncate(cfd, int64(page)); err != nil {
		return nil, fmt.Errorf("shm: size consumer page: %w", err)
	}
	if p.cons, err = mapPage(cfd, uintptr(page), unix.PROT_READ|unix.PROT_WRITE); err != nil {
		return nil, err
	}
	// The plugin writes this page, but cannot shrink it under the
	// monitor's mapping (a SIGBUS in the monitor) nor seal it further.
	if _, err := unix.FcntlInt(uintptr(cfd), unix.F_ADD_SEALS, consumerSeals); err != nil {
		return nil, fmt.Errorf("shm: seal consumer page: %w", err)
	}
	p.consPtr = u64at(p.cons, offConsumer)
	p.sleepPtr = u32at(p.cons, offSleeping)
	p.ansPtr = u64at(p.cons, offAnswered)
	return p, nil
}

// Files returns the two descriptors to hand to the plugin, in the order
// Open takes them. They stay owned by the Producer.
func (p *Producer) Files() (producer, consumer *os.File) { return p.prodFile, p.consFile }

// Size is the data area's size in bytes.
func (p *Producer) Size() int { return int(p.size) }

// MaxPayload is the largest payload a record can carry (an empty ring).
func (p *Producer) MaxPayload() int { return int(p.size) - RecordHeaderSize }

// Produced is the producer position: bytes published so far.
func (p *Producer) Produced() uint64 { return p.prod }

// Wakes is how many times the producer woke a sleeping consumer.
func (p *Producer) Wakes() uint64 { return p.wakes.Load() }

// Consumed reads the consumer position from the plugin-writable page and
// validates it. A violation is ErrProtocol, and stays so until
// ResetConsumer.
func (p *Producer) Consumed() (uint64, error) {
	if p.err != nil {
		return p.consumed, p.err
	}
	if p.m == nil {
		return 0, ErrClosed
	}
	c := atomic.LoadUint64(p.consPtr) // read once: the plugin may change it any time
	switch {
	case c&7 != 0:
		p.err = fmt.Errorf("%w: consumer position %d not 8-byte aligned", ErrProtocol, c)
	case c < p.consumed:
		p.err = fmt.Errorf("%w: consumer position went back from %d to %d", ErrProtocol, p.consumed, c)
	case c > p.prod:
		p.err = fmt.Errorf("%w: consumer position %d past producer position %d", ErrProtocol, c, p.prod)
	default:
		p.consumed = c
		return c, nil
	}
	return p.consumed, p.err
}

// Answered reads how many records the consumer says it answered out of
// band (the caller's own channel: results on a stream), and validates it:
// it never goes back and never exceeds the records committed. Read it
// after Consumed: the consumer publishes it before its position, so it
// covers at least every record the position passed. A violation is
// ErrProtocol, sticky like Consumed's.
func (p *Producer) Answered() (uint64, error) {
	if p.err != nil {
		return p.answered, p.err
	}
	if p.m == nil {
		return 0, ErrClosed
	}
	a := atomic.LoadUint64(p.ansPtr)
	switch {
	case a < p.answered:
		p.err = fmt.Errorf("%w: answered count went back from %d to %d", ErrProtocol, p.answered, a)
	case a > p.records:
		p.err = fmt.Errorf("%w: answered count %d, more than the %d records produced", ErrProtocol, a, p.records)
	default:
		p.answered = a
		return a, nil
	}
	return p.answered, p.err
}

// Pending is how many bytes were produced and not yet acknowledged, as of
// the last validated consumer position.
func (p *Producer) Pending() uint64 { return p.prod - p.consumed }

// Reserve opens a record of n payload bytes and returns them to fill.
// ok is false, with no error, when the ring lacks room now: the caller
// sheds the record and counts it. Nothing blocks. A protocol violation
// by the consumer is ErrProtocol.
func (p *Producer) Reserve(n int) (buf []byte, ok bool, err error) {
	if p.m == nil {
		return nil, false, ErrClosed
	}
	if p.err != nil {
		return nil, false, p.err
	}
	if p.reserved >= 0 {
		return nil, false, errors.New("shm: Reserve with a reservation open")
	}
	if n < 0 || n > p.MaxPayload() {
		return nil, false, fmt.Errorf("%w: %d bytes, ring %d", ErrTooLarge, n, p.size)
	}
	total := align8(uint64(RecordHeaderSize + n))
	if p.size-(p.prod-p.tail()) < total {
		// Only now look at the consumer's page: while there is room
		// the producer does not touch the consumer's cache line.
		if _, err := p.Consumed(); err != nil {
			return nil, false, err
		}
		if p.size-(p.prod-p.tail()) < total {
			return nil, false, nil
		}
	}
	off := p.prod & p.mask
	p.reserved = n
	start := off + RecordHeaderSize
	return p.m.data[start : start+uint64(n) : start+uint64(n)], true, nil
}

// Hold keeps the data from position pos on (pos ≤ Produced) from being
// reused, even once the consumer has passed it: records the caller still
// reads from its own mapping (Reserve's slices stay valid until the space
// is reused). Unhold lets go.
func (p *Producer) Hold(pos uint64) {
	p.hold, p.holding = min(pos, p.prod), true
}

// Unhold ends Hold.
func (p *Producer) Unhold() { p.holding = false }

// tail is the oldest position whose data must stay: the consumer's, or
// what is held.
func (p *Producer) tail() uint64 {
	if p.holding && p.hold < p.consumed {
		return p.hold
	}
	return p.consumed
}

// ReserveUpTo opens the largest record that fits now, of lo to hi
// payload bytes: the caller fills what it needs and commits that (Commit
// takes any n up to the reservation). ok is false, with no error, when
// fewer than lo bytes fit now.
func (p *Producer) ReserveUpTo(lo, hi int) (buf []byte, ok bool, err error) {
	if p.m == nil {
		return nil, false, ErrClosed
	}
	if p.err != nil {
		return nil, false, p.err
	}
	hi = min(hi, p.MaxPayload())
	if lo > hi {
		return nil, false, fmt.Errorf("%w: %d bytes, ring %d", ErrTooLarge, lo, p.size)
	}
	room := func() int { return int(int64(p.size)-int64(p.prod-p.tail())) - RecordHeaderSize }
	if room() < hi {
		if _, err := p.Consumed(); err != nil {
			return nil, false, err
		}
	}
	n := min(hi, room()&^7)
	if n < lo {
		return nil, false, nil
	}
	return p.Reserve(n)
}

// Commit publishes the open reservation with n ≤ reserved payload bytes
// (a caller may reserve an upper bound, encode, and commit what it used),
// and wakes the consumer if, and only if, it sleeps.
func (p *Producer) Commit(n int) error {
	if p.reserved < 0 {
		return errors.New("shm: Commit without Reserve")
	}
	if n < 0 || n > p.reserved {
		return fmt.Errorf("shm: Commit(%d) of a %d-byte reservation", n, p.reserved)
	}
	p.reserved = -1
	off := p.prod & p.mask
	binary.LittleEndian.PutUint32(p.m.data[off:], uint32(n))
	binary.LittleEndian.PutUint32(p.m.data[off+4:], 0)
	p.prod += align8(uint64(RecordHeaderSize + n))
	p.records++
	atomic.StoreUint64(p.prodPtr, p.prod) // publishes header and payload
	// Dekker with the consumer: it stores sleeping=1 then loads the
	// producer position; we store the position then load sleeping. Go's
	// atomics are sequentially consistent, so one of us sees the other.
	if atomic.LoadUint32(p.sleepPtr) != 0 && atomic.SwapUint32(p.sleepPtr, 0) != 0 {
		futexWakeAll(p.prodLow)
		p.wakes.Add(1)
	}
	return nil
}

// Abort drops the open reservation without publishing anything.
func (p *Producer) Abort() { p.reserved = -1 }

// Write copies payload into one record. ok is false when the ring lacks
// room (the caller sheds and counts); err is ErrProtocol or ErrTooLarge.
func (p *Producer) Write(payload []byte) (ok bool, err error) {
	buf, ok, err := p.Reserve(len(payload))
	if !ok || err != nil {
		return false, err
	}
	copy(buf, payload)
	return true, p.Commit(len(payload))
}

// ResetConsumer prepares the ring for a new consumer after the previous
// one died or was killed. It takes the dead consumer's last position if it
// is valid, else the last one the producer validated, and writes it back
// (so the new consumer re-reads everything not acknowledged, whatever the
// dead one left in its page); it clears the sleeping flag and the sticky
// protocol error. It returns the position the new consumer starts at, and
// ErrProtocol if it found a violation that no earlier call had reported
// (the caller counts it). Call it only while no consumer process holds
// the ring.
func (p *Producer) ResetConsumer() (start uint64, err error) {
	if p.m == nil {
		return 0, ErrClosed
	}
	if p.err == nil {
		_, err = p.Consumed()
	}
	if p.err == nil {
		_, err = p.Answered()
	}
	atomic.StoreUint64(p.ansPtr, p.answered)
	atomic.StoreUint64(p.consPtr, p.consumed)
	atomic.StoreUint32(p.sleepPtr, 0)
	p.err = nil
	return p.consumed, err
}

// Close unmaps the ring and closes both descriptors. A consumer keeps its
// own mappings (the memory lives until the last one goes).
func (p *Producer) Close() error {
	var errs []error
	if p.m != nil {
		errs = append(errs, p.m.unmap())
		p.m = nil
	}
	if p.cons != nil {
		errs = append(errs, unmapPage(p.cons))
		p.cons = nil
	}
	for _, f := range []*os.File{p.prodFile, p.consFile} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	p.prodFile, p.consFile = nil, nil
	return errors.Join(errs...)
}
