package shm

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"testing"
)

// BenchmarkRing moves records of a realistic batch size from a producer
// to a consumer in another goroutine (and, with /process, in another
// process). ns/op is per record; wakes/rec is the producer's futex wakes
// per record, sleeps/rec the consumer's futex waits (the two system calls
// of the data plane); full/rec how often the producer found no room.
func BenchmarkRing(b *testing.B) {
	for _, payload := range []int{256, 64 << 10} {
		b.Run(fmt.Sprintf("goroutine/payload=%d", payload), func(b *testing.B) {
			p := newRing(b, 16<<20)
			c := openRing(b, p, ConsumerOptions{})
			done := make(chan error, 1)
			n := b.N
			var sink byte
			go func() {
				for range n {
					rec, err := c.Next(context.Background())
					if err != nil {
						done <- err
						return
					}
					sink ^= touch(rec)
					c.Ack()
				}
				done <- nil
			}()
			full := benchProduce(b, p, payload)
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			_ = sink
			b.ReportMetric(float64(p.Wakes())/float64(b.N), "wakes/rec")
			b.ReportMetric(float64(c.Sleeps())/float64(b.N), "sleeps/rec")
			b.ReportMetric(float64(full)/float64(b.N), "full/rec")
		})
		b.Run(fmt.Sprintf("process/payload=%d", payload), func(b *testing.B) {
			p := newRing(b, 16<<20)
			ch := startChild(b, p, "bench", strconv.Itoa(b.N))
			full := benchProduce(b, p, payload)
			var sleeps uint64
			if _, err := fmt.Sscanf(ch.line(b), "sleeps=%d", &sleeps); err != nil {
				b.Fatal(err)
			}
			ch.wait(b)
			b.ReportMetric(float64(p.Wakes())/float64(b.N), "wakes/rec")
			b.ReportMetric(float64(sleeps)/float64(b.N), "sleeps/rec")
			b.ReportMetric(float64(full)/float64(b.N), "full/rec")
		})
	}
}

// touch reads one byte per cache line, as a decoder would read them all.
func touch(rec []byte) (x byte) {
	for i := 0; i < len(rec); i += 64 {
		x ^= rec[i]
	}
	return x
}

// benchProduce writes b.N records of payload bytes each (a full copy, as
// the codec would), retrying while the ring is full.
func benchProduce(b *testing.B, p *Producer, payload int) (full uint64) {
	src := make([]byte, payload)
	for i := range src {
		src[i] = byte(i)
	}
	b.ReportAllocs()
	b.SetBytes(int64(payload))
	b.ResetTimer()
	for i := range b.N {
		for {
			src[0] = byte(i)
			ok, err := p.Write(src)
			if err != nil {
				b.Fatal(err)
			}
			if ok {
				break
			}
			full++
			runtime.Gosched()
		}
	}
	return full
}
