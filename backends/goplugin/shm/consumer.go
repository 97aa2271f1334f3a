package shm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ConsumerOptions tune the consumer's waiting.
type ConsumerOptions struct {
	// Spin is the longest Next polls an empty ring (yielding the
	// processor to any thread that wants it) before it sleeps on the
	// futex. A producer that commits more often than this never pays a
	// wake-up. Next adapts within it (see spinFor): records that keep
	// coming a little later than it spins make it spin less, not more.
	// Zero means DefaultSpin; negative means never spin.
	Spin time.Duration
	// MaxSleep bounds one futex wait, so Next notices a cancelled context
	// even if the wake that context.AfterFunc sends comes too early.
	// Zero means 100 ms.
	MaxSleep time.Duration
}

// DefaultSpin is the consumer's default polling time before it sleeps.
const DefaultSpin = 50 * time.Microsecond

// minSpin is the least Next spins once it has adapted: a record being
// committed right now.
const minSpin = 2 * time.Microsecond

// Consumer is the plugin's end of a ring. The data is mapped read-only;
// only the consumer page is writable. Not safe for concurrent use.
type Consumer struct {
	m    *mapping
	cons []byte

	size     uint64
	mask     uint64
	prodPtr  *uint64
	prodLow  *uint32
	consPtr  *uint64
	sleepPtr *uint32
	ansPtr   *uint64
	opts     ConsumerOptions

	read                   uint64        // next record to return
	prod                   uint64        // producer position last loaded: records up to it are published
	acked                  uint64        // last position published to the producer
	answered, ansPublished uint64        // records answered out of band; the count last published
	sleeps                 uint64        // futex waits
	spin                   time.Duration // how long the next wait spins (minSpin to opts.Spin)
}

// Open maps a ring from the descriptors Producer.Files gave (the plugin
// receives them at launch), checks its header and seals, and starts at the
// acknowledged consumer position. The files can be closed after Open.
func Open(producer, consumer *os.File, opts ConsumerOptions) (_ *Consumer, err error) {
	if opts.Spin == 0 {
		opts.Spin = DefaultSpin
	}
	if opts.MaxSleep <= 0 {
		opts.MaxSleep = 100 * time.Millisecond
	}
	page := pageSize()
	pfd, cfd := int(producer.Fd()), int(consumer.Fd())

	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return nil, fmt.Errorf("shm: stat ring: %w", err)
	}
	if s, err := seals(pfd); err != nil || s&producerSeals != producerSeals {
		return nil, fmt.Errorf("%w: ring seals %#x (%v), want %#x", ErrLayout, s, err, producerSeals)
	}
	if s, err := seals(cfd); err != nil || s&consumerSeals != consumerSeals {
		return nil, fmt.Errorf("%w: consumer page seals %#x (%v), want %#x", ErrLayout, s, err, consumerSeals)
	}
	// Sealed against shrinking: the sizes checked here stay true.
	if st.Size < int64(page) {
		return nil, fmt.Errorf("%w: ring of %d bytes", ErrLayout, st.Size)
	}
	hdr, err := unix.Mmap(pfd, 0, page, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shm: map ring header: %w", err)
	}
	magic := binary.LittleEndian.Uint32(hdr[offMagic:])
	version := binary.LittleEndian.Uint32(hdr[offVersion:])
	hsize := binary.LittleEndian.Uint32(hdr[offHeaderSize:])
	rhdr := binary.LittleEndian.Uint32(hdr[offRecordHdr:])
	dsize := binary.LittleEndian.Uint64(hdr[offDataSize:])
	_ = unix.Munmap(hdr)
	switch {
	case magic != Magic:
		return nil, fmt.Errorf("%w: magic %#x", ErrLayout, magic)
	case version != Version:
		return nil, fmt.Errorf("%w: layout version %d, this consumer reads %d", ErrLayout, version, Version)
	case hsize != uint32(page) || rhdr != RecordHeaderSize:
		return nil, fmt.Errorf("%w: header %d, record header %d", ErrLayout, hsize, rhdr)
	case !validDataSize(dsize, page):
		return nil, fmt.Errorf("%w: data size %d", ErrLayout, dsize)
	case uint64(st.Size) != uint64(page)+dsize:
		return nil, fmt.Errorf("%w: ring file %d bytes for %d of data", ErrLayout, st.Size, dsize)
	}
	var cst unix.Stat_t
	if err := unix.Fstat(cfd, &cst); err != nil || cst.Size != int64(page) {
		return nil, fmt.Errorf("%w: consumer page of %d bytes (%v)", ErrLayout, cst.Size, err)
	}

	c := &Consumer{size: dsize, mask: dsize - 1, opts: opts, spin: opts.Spin}
	defer func() {
		if err != nil {
			_ = c.Close()
		}
	}()
	if c.m, err = mapRing(pfd, uintptr(page), uintptr(dsize), unix.PROT_READ); err != nil {
		return nil, err
	}
	if c.cons, err = mapPage(cfd, uintptr(page), unix.PROT_READ|unix.PROT_WRITE); err != nil {
		return nil, err
	}
	c.prodPtr = u64at(c.m.header, offProducer)
	c.prodLow = (*uint32)(unsafe.Add(unsafe.Pointer(c.prodPtr), futexLowOffset()))
	c.consPtr = u64at(c.cons, offConsumer)
	c.sleepPtr = u32at(c.cons, offSleeping)
	c.ansPtr = u64at(c.cons, offAnswered)

	start := atomic.LoadUint64(c.consPtr)
	if prod := atomic.LoadUint64(c.prodPtr); start&7 != 0 || start > prod || prod-start > dsize {
		return nil, fmt.Errorf("%w: consumer position %d, producer %d", ErrLayout, start, prod)
	}
	c.read, c.acked, c.prod = start, start, start
	c.answered = atomic.LoadUint64(c.ansPtr)
	c.ansPublished = c.answered
	atomic.StoreUint32(c.sleepPtr, 0)
	return c, nil
}

// Size is the data area's size in bytes.
func (c *Consumer) Size() int { return int(c.size) }

// Sleeps is how many times the consumer waited on the futex.
func (c *Consumer) Sleeps() uint64 { return c.sleeps }

// Position is the position of the next record Next returns.
func (c *Consumer) Position() uint64 { return c.read }

// TryNext returns the next record's payload if one is published, without
// waiting. The slice views the read-only mapping and stays valid until
// Ack; copy it to keep it.
func (c *Consumer) TryNext() ([]byte, bool, error) {
	if c.m == nil {
		return nil, false, ErrClosed
	}
	if c.read == c.prod {
		// Only load the shared producer position once the records seen
		// published are used up: one cache-line transfer per catch-up,
		// not per record.
		c.prod = atomic.LoadUint64(c.prodPtr)
		if c.read == c.prod {
			return nil, false, nil
		}
	}
	avail := c.prod - c.read
	if avail > c.size || avail < RecordHeaderSize {
		return nil, false, fmt.Errorf("%w: %d bytes published at %d", ErrCorrupt, avail, c.read)
	}
	off := c.read & c.mask
	n := uint64(binary.LittleEndian.Uint32(c.m.data[off:]))
	flags := binary.LittleEndian.Uint32(c.m.data[off+4:])
	total := align8(RecordHeaderSize + n)
	if flags != 0 || total > avail {
		return nil, false, fmt.Errorf("%w: length %d flags %#x at %d with %d published", ErrCorrupt, n, flags, c.read, avail)
	}
	c.read += total
	start := off + RecordHeaderSize
	return c.m.data[start : start+n : start+n], true, nil
}

// Next returns the next record's payload, waiting for one until ctx ends.
// The slice views the read-only mapping and stays valid until Ack. Records
// returned and not acknowledged hold their space: a consumer that waits in
// Next with a full ring of them waits for ever. Ack what is done with
// before waiting (TryNext says when a wait is coming).
func (c *Consumer) Next(ctx context.Context) ([]byte, error) {
	var spinStart time.Time
	spun, slept := c.opts.Spin < 0, false
	for {
		rec, ok, err := c.TryNext()
		if ok || err != nil {
			if !spinStart.IsZero() && err == nil {
				c.adapt(time.Since(spinStart), slept)
			}
			return rec, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !spun {
			if spinStart.IsZero() {
				spinStart = time.Now()
			} else if time.Since(spinStart) >= c.spin {
				spun = true
			}
			// Yield the processor: to this process's goroutines first (the
			// one that sends the answer to the last record may be waiting
			// for this P), then to any thread: on a host with few cores the
			// producer may be waiting for it.
			runtime.Gosched()
			osYield()
			continue
		}
		slept = true
		c.sleep(ctx)
	}
}

// adapt sets how long the next wait spins from how long this one took
// (waited) and whether it slept. Spinning pays when records come soon:
// then it spins up to twice as long as this wait took (within Spin). A
// record that came late, after a sleep, halves it (down to minSpin): a
// consumer faster than its producer, which would otherwise burn Spin of
// CPU before every sleep (a core the producer may need), pays a wake-up
// per record instead, a few µs of both sides' CPU. Latency is the same:
// a sleeping consumer is woken at once.
func (c *Consumer) adapt(waited time.Duration, slept bool) {
	switch {
	case c.opts.Spin < 0:
	case !slept:
		c.spin = min(c.opts.Spin, max(c.spin, 2*waited))
	case waited <= c.opts.Spin/2:
		c.spin = max(minSpin, min(c.opts.Spin, 2*waited))
	default:
		c.spin = max(minSpin, c.spin/2)
	}
}

// sleep announces it sleeps, re-checks, and waits on the producer
// position's low word until the producer wakes it (or MaxSleep passes, or
// ctx ends).
func (c *Consumer) sleep(ctx context.Context) {
	// The futex wait holds this goroutine's P until sysmon takes it back
	// (on a quiet host, up to 10 ms later): let what is runnable here run
	// first.
	runtime.Gosched()
	atomic.StoreUint32(c.sleepPtr, 1)
	prod := atomic.LoadUint64(c.prodPtr)
	if prod == c.read {
		stop := context.AfterFunc(ctx, func() { futexWakeAll(c.prodLow) })
		d := c.opts.MaxSleep
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
			d = max(time.Until(dl), time.Microsecond)
		}
		c.sleeps++
		futexWaitOn(c.prodLow, uint32(prod), d)
		stop()
	}
	atomic.StoreUint32(c.sleepPtr, 0)
}

// Answered counts a record answered out of band (on the caller's own
// channel, before Ack): the producer learns a record was consumed from
// the position, and from this count whether an answer is on its way.
// Records consumed without one need no message at all.
func (c *Consumer) Answered() { c.answered++ }

// Ack tells the producer every record Next returned is done with: their
// space may be reused, and a restarted consumer will not see them again.
// The answered count is published first. Views returned before Ack are
// invalid after it.
func (c *Consumer) Ack() {
	if c.m == nil {
		return
	}
	if c.answered != c.ansPublished {
		c.ansPublished = c.answered
		atomic.StoreUint64(c.ansPtr, c.answered)
	}
	if c.acked != c.read {
		c.acked = c.read
		atomic.StoreUint64(c.consPtr, c.read)
	}
}

// Close unmaps the ring (without acknowledging).
func (c *Consumer) Close() error {
	var errs []error
	if c.m != nil {
		errs = append(errs, c.m.unmap())
		c.m = nil
	}
	if c.cons != nil {
		errs = append(errs, unmapPage(c.cons))
		c.cons = nil
	}
	return errors.Join(errs...)
}
