package shm

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	goleak.VerifyTestMain(m)
}

// payloadSize is record seq's deterministic size, up to max bytes (≥ 8).
func payloadSize(seq uint64, max int) int {
	x := seq*0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019
	x ^= x >> 31
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 29
	return 8 + int(x%uint64(max-7))
}

// fill writes record seq's deterministic content.
func fill(b []byte, seq uint64) {
	binary.LittleEndian.PutUint64(b, seq)
	for i := 8; i < len(b); i++ {
		b[i] = byte(seq*131 + uint64(i)*7)
	}
}

// check reports whether b is record seq.
func check(b []byte, seq uint64, max int) bool {
	if len(b) != payloadSize(seq, max) || binary.LittleEndian.Uint64(b) != seq {
		return false
	}
	for i := 8; i < len(b); i++ {
		if b[i] != byte(seq*131+uint64(i)*7) {
			return false
		}
	}
	return true
}

func newRing(t testing.TB, size int) *Producer {
	t.Helper()
	p, err := New(size)
	if err != nil {
		t.Fatalf("New(%d): %v", size, err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func openRing(t testing.TB, p *Producer, opts ConsumerOptions) *Consumer {
	t.Helper()
	pf, cf := p.Files()
	c, err := Open(pf, cf, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// produce writes records first..first+n-1 (sizes up to max), spinning while
// the ring is full, and returns the FNV-64a of every payload.
func produce(t testing.TB, p *Producer, first, n uint64, max int, done <-chan struct{}) (sum uint64, full uint64) {
	h := fnv.New64a()
	for seq := first; seq < first+n; seq++ {
		size := payloadSize(seq, max)
		for {
			buf, ok, err := p.Reserve(size)
			if err != nil {
				t.Errorf("Reserve seq %d: %v", seq, err)
				return 0, full
			}
			if ok {
				fill(buf, seq)
				_, _ = h.Write(buf)
				if err := p.Commit(size); err != nil {
					t.Errorf("Commit: %v", err)
				}
				break
			}
			full++
			select {
			case <-done:
				t.Errorf("consumer gone at seq %d", seq)
				return 0, full
			default:
			}
			time.Sleep(10 * time.Microsecond)
		}
	}
	return h.Sum64(), full
}

func TestNewRefusesBadSizes(t *testing.T) {
	for _, size := range []int{-1, 0, 1000, 4096 + 8, 3 << 12, MaxDataSize * 2} {
		if p, err := New(size); !errors.Is(err, ErrLayout) {
			if p != nil {
				_ = p.Close()
			}
			t.Errorf("New(%d) = %v, want ErrLayout", size, err)
		}
	}
}

// Many records of random sizes, several times around a small ring, with
// acknowledgements at random points: everything comes out, in order, intact.
func TestRoundTripWrapAround(t *testing.T) {
	const size, max, n = 1 << 16, 9000, 20000
	p := newRing(t, size)
	c := openRing(t, p, ConsumerOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	done := make(chan struct{})
	var got atomic.Uint64
	errc := make(chan error, 1)
	go func() {
		defer close(done)
		rng := rand.New(rand.NewPCG(1, 2))
		for seq := uint64(0); seq < n; seq++ {
			rec, ok, err := c.TryNext()
			if !ok && err == nil {
				c.Ack() // about to wait: give back what was read
				rec, err = c.Next(ctx)
			}
			if err != nil {
				errc <- err
				return
			}
			if !check(rec, seq, max) {
				errc <- errors.New("record mismatch")
				return
			}
			got.Add(1)
			if rng.IntN(4) == 0 {
				c.Ack()
			}
		}
		c.Ack()
		errc <- nil
	}()
	_, full := produce(t, p, 0, n, max, done)
	if err := <-errc; err != nil {
		t.Fatalf("consumer after %d records: %v", got.Load(), err)
	}
	if laps := p.Produced() / size; laps < 10 {
		t.Fatalf("only %d laps of the ring: wrap-around not exercised", laps)
	}
	if pos, err := p.Consumed(); err != nil || pos != p.Produced() {
		t.Fatalf("Consumed = %d, %v; want %d", pos, err, p.Produced())
	}
	t.Logf("%d records, %d bytes (%d laps), producer found the ring full %d times, %d wakes, %d consumer sleeps",
		n, p.Produced(), p.Produced()/size, full, p.Wakes(), c.Sleeps())
}

// With no spinning and a producer that pauses, the consumer sleeps on the
// futex nearly every record. A lost wake-up would hold it for MaxSleep (a
// minute) and fail the deadline.
func TestWakeUpsNeverLost(t *testing.T) {
	const n, max = 3000, 512
	p := newRing(t, 1<<14)
	c := openRing(t, p, ConsumerOptions{Spin: -1, MaxSleep: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for seq := uint64(0); seq < n; seq++ {
			rec, err := c.Next(ctx)
			if err != nil {
				errc <- err
				return
			}
			if !check(rec, seq, max) {
				errc <- errors.New("record mismatch")
				return
			}
			c.Ack()
		}
		errc <- nil
	}()
	rng := rand.New(rand.NewPCG(3, 4))
	for seq := uint64(0); seq < n; seq++ {
		_, _ = produce(t, p, seq, 1, max, done)
		if d := rng.IntN(3); d > 0 {
			time.Sleep(time.Duration(d) * 20 * time.Microsecond)
		}
	}
	if err := <-errc; err != nil {
		t.Fatalf("consumer: %v", err)
	}
	if c.Sleeps() == 0 || p.Wakes() == 0 {
		t.Fatalf("sleeping path not exercised: %d sleeps, %d wakes", c.Sleeps(), p.Wakes())
	}
	if p.Wakes() > c.Sleeps() {
		t.Fatalf("%d wakes for %d sleeps: the producer woke a consumer that was not asleep", p.Wakes(), c.Sleeps())
	}
	t.Logf("%d records: %d consumer sleeps, %d producer wakes", n, c.Sleeps(), p.Wakes())
}

func TestNextHonoursContext(t *testing.T) {
	p := newRing(t, 1<<12)
	c := openRing(t, p, ConsumerOptions{MaxSleep: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	if _, err := c.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next = %v, want context.Canceled", err)
	}
	// Without the wake from context.AfterFunc this takes MaxSleep.
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Next returned %v after the cancel", d)
	}
}

// Every way a consumer position can break the protocol, written straight
// into the consumer page (the cross-process version is in process_test.go).
func TestConsumedValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		pos  func(acked, prod uint64) uint64
		ok   bool
	}{
		{"at producer", func(_, prod uint64) uint64 { return prod }, true},
		{"unchanged", func(acked, _ uint64) uint64 { return acked }, true},
		{"past producer", func(_, prod uint64) uint64 { return prod + 8 }, false},
		{"far past", func(_, _ uint64) uint64 { return 1 << 62 }, false},
		{"unaligned", func(acked, _ uint64) uint64 { return acked + 4 }, false},
		{"backwards", func(acked, _ uint64) uint64 { return acked - 8 }, false},
		{"zero", func(_, _ uint64) uint64 { return 0 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newRing(t, 1<<12)
			for range 10 {
				if ok, err := p.Write(make([]byte, 100)); !ok || err != nil {
					t.Fatalf("Write: %v %v", ok, err)
				}
			}
			acked := uint64(2 * align8(RecordHeaderSize+100))
			*p.consPtr = acked
			if got, err := p.Consumed(); err != nil || got != acked {
				t.Fatalf("Consumed = %d, %v", got, err)
			}
			*p.consPtr = tc.pos(acked, p.Produced())
			_, err := p.Consumed()
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrProtocol)) {
				t.Fatalf("Consumed after writing %d = %v, want ok=%v", *p.consPtr, err, tc.ok)
			}
			if tc.ok {
				return
			}
			// Sticky: every later call fails until ResetConsumer.
			*p.consPtr = p.Produced()
			if _, _, err := p.Reserve(8); !errors.Is(err, ErrProtocol) {
				t.Fatalf("Reserve after violation = %v", err)
			}
			if start, err := p.ResetConsumer(); err != nil || start != acked {
				t.Fatalf("ResetConsumer = %d, %v; want %d, nil (the violation was reported already)", start, err, acked)
			}
			if got := *p.consPtr; got != acked {
				t.Fatalf("ResetConsumer wrote %d, want the validated %d", got, acked)
			}
			if ok, err := p.Write([]byte("x")); !ok || err != nil {
				t.Fatalf("Write after reset: %v %v", ok, err)
			}
		})
	}
}

// A record may fill the whole ring, a larger one is refused, and the
// reservation can shrink at commit.
func TestRecordSizes(t *testing.T) {
	p := newRing(t, 1<<12)
	c := openRing(t, p, ConsumerOptions{})
	if _, _, err := p.Reserve(p.MaxPayload() + 1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Reserve(max+1) = %v", err)
	}
	for _, n := range []int{0, 1, 7, 8, p.MaxPayload()} {
		buf, ok, err := p.Reserve(p.MaxPayload())
		if !ok || err != nil {
			t.Fatalf("Reserve(max): %v %v", ok, err)
		}
		for i := range n {
			buf[i] = byte(i)
		}
		if err := p.Commit(n); err != nil {
			t.Fatal(err)
		}
		rec, err := c.Next(context.Background())
		if err != nil || len(rec) != n {
			t.Fatalf("n=%d: got %d bytes, %v", n, len(rec), err)
		}
		for i := range rec {
			if rec[i] != byte(i) {
				t.Fatalf("n=%d: byte %d", n, i)
			}
		}
		c.Ack()
	}
	if err := p.Commit(1); err == nil {
		t.Fatal("Commit without Reserve accepted")
	}
}

// A new consumer on the same descriptors starts at the acknowledged
// position: what was read but not acknowledged is read again.
func TestRestartRereadsUnacknowledged(t *testing.T) {
	const max = 300
	p := newRing(t, 1<<14)
	for seq := range uint64(20) {
		_, _ = produce(t, p, seq, 1, max, nil)
	}
	c1 := openRing(t, p, ConsumerOptions{})
	for seq := range uint64(12) {
		rec, err := c1.Next(context.Background())
		if err != nil || !check(rec, seq, max) {
			t.Fatalf("first consumer seq %d: %v", seq, err)
		}
		if seq == 6 {
			c1.Ack() // acknowledges 0..6
		}
	}
	_ = c1.Close() // dies with 7..11 read, not acknowledged
	if start, err := p.ResetConsumer(); err != nil || start != recordBytes(0, 7, max) {
		t.Fatalf("ResetConsumer = %d, %v", start, err)
	}
	c2 := openRing(t, p, ConsumerOptions{})
	for seq := uint64(7); seq < 20; seq++ {
		rec, err := c2.Next(context.Background())
		if err != nil || !check(rec, seq, max) {
			t.Fatalf("second consumer: seq %d: %v", seq, err)
		}
	}
}

// recordBytes is the ring space records first..first+n-1 take.
func recordBytes(first, n uint64, max int) uint64 {
	var b uint64
	for seq := first; seq < first+n; seq++ {
		b += align8(uint64(RecordHeaderSize + payloadSize(seq, max)))
	}
	return b
}

// The answered count a consumer publishes is validated like its position:
// it never goes back and never exceeds the records produced.
func TestAnsweredValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    func(last, records uint64) uint64
		ok   bool
	}{
		{"unchanged", func(last, _ uint64) uint64 { return last }, true},
		{"every record", func(_, records uint64) uint64 { return records }, true},
		{"more than produced", func(_, records uint64) uint64 { return records + 1 }, false},
		{"far past", func(_, _ uint64) uint64 { return 1 << 63 }, false},
		{"backwards", func(last, _ uint64) uint64 { return last - 1 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newRing(t, 1<<12)
			c := openRing(t, p, ConsumerOptions{})
			for range 5 {
				if ok, err := p.Write(make([]byte, 16)); !ok || err != nil {
					t.Fatalf("Write: %v %v", ok, err)
				}
			}
			// An honest consumer: answers two of three records read.
			for i := range 3 {
				if _, ok, err := c.TryNext(); !ok || err != nil {
					t.Fatalf("TryNext: %v %v", ok, err)
				}
				if i != 1 {
					c.Answered()
				}
			}
			c.Ack()
			if pos, err := p.Consumed(); err != nil || pos != 3*align8(RecordHeaderSize+16) {
				t.Fatalf("Consumed = %d, %v", pos, err)
			}
			if a, err := p.Answered(); err != nil || a != 2 {
				t.Fatalf("Answered = %d, %v; want 2", a, err)
			}
			*p.ansPtr = tc.n(2, 5)
			_, err := p.Answered()
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrProtocol)) {
				t.Fatalf("Answered after writing %d = %v, want ok=%v", *p.ansPtr, err, tc.ok)
			}
			if !tc.ok {
				if _, err := p.Consumed(); !errors.Is(err, ErrProtocol) {
					t.Fatalf("the violation is not sticky: Consumed = %v", err)
				}
			}
		})
	}
}

// Held data is not reused even once the consumer has passed it, and
// ReserveUpTo takes what room there is.
func TestHoldAndReserveUpTo(t *testing.T) {
	p := newRing(t, 1<<12) // 4096 bytes of data
	c := openRing(t, p, ConsumerOptions{})
	buf, ok, err := p.ReserveUpTo(64, 1<<20)
	if err != nil || !ok || len(buf) != 4096-RecordHeaderSize {
		t.Fatalf("ReserveUpTo on an empty ring = %d bytes, %v, %v", len(buf), ok, err)
	}
	copy(buf, "held")
	if err := p.Commit(1000); err != nil {
		t.Fatal(err)
	}
	held := buf[:4]
	p.Hold(0)
	if _, ok, err := c.TryNext(); !ok || err != nil {
		t.Fatal(ok, err)
	}
	c.Ack()
	// The consumer is past the record, but it is held: 3088 bytes free.
	if _, ok, _ := p.ReserveUpTo(3100, 4000); ok {
		t.Fatal("reserved over held data")
	}
	buf, ok, err = p.ReserveUpTo(64, 4000)
	if err != nil || !ok || len(buf) != 4096-1008-RecordHeaderSize {
		t.Fatalf("ReserveUpTo beside held data = %d bytes, %v, %v", len(buf), ok, err)
	}
	for i := range buf {
		buf[i] = 'x'
	}
	p.Abort()
	if string(held) != "held" {
		t.Fatalf("held data overwritten: %q", held)
	}
	p.Unhold()
	if _, ok, err := p.ReserveUpTo(3100, 4000); !ok || err != nil {
		t.Fatalf("after Unhold: %v %v", ok, err)
	}
	p.Abort()
}

// The consumer spins less after records that came late (it slept), down
// to minSpin, and more after records that came soon, up to Spin.
func TestConsumerSpinAdapts(t *testing.T) {
	c := &Consumer{opts: ConsumerOptions{Spin: 50 * time.Microsecond}, spin: 50 * time.Microsecond}
	for range 10 {
		c.adapt(80*time.Microsecond, true) // late: slept
	}
	if c.spin != minSpin {
		t.Fatalf("after late records: spin %s, want %s", c.spin, minSpin)
	}
	c.adapt(10*time.Microsecond, true) // came soon after the sleep began
	if c.spin != 20*time.Microsecond {
		t.Fatalf("after a record 10µs late: spin %s, want 20µs", c.spin)
	}
	c.adapt(15*time.Microsecond, false) // caught spinning
	if c.spin != 30*time.Microsecond {
		t.Fatalf("after a record caught at 15µs: spin %s, want 30µs", c.spin)
	}
	c.adapt(40*time.Microsecond, false)
	if c.spin != 50*time.Microsecond {
		t.Fatalf("spin %s, want at most Spin", c.spin)
	}
	never := &Consumer{opts: ConsumerOptions{Spin: -1}, spin: -1}
	never.adapt(time.Microsecond, false)
	if never.spin != -1 {
		t.Fatalf("a consumer that never spins adapted to %s", never.spin)
	}
}
