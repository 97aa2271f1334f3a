package dispatch

import (
	"sync/atomic"
	"time"
)

// LatencyBuckets are the upper bounds of the batch-latency histogram: from
// 50µs, doubling, to about 13s.
var LatencyBuckets = func() []time.Duration {
	var b []time.Duration
	for d := 50 * time.Microsecond; d < 20*time.Second; d *= 2 {
		b = append(b, d)
	}
	return b
}()

// latency is a lock-free histogram of how long a detector took to answer a
// batch (submit to done).
type latency struct {
	counts [32]atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sumNs  atomic.Uint64
	n      atomic.Uint64
}

func (h *latency) observe(d time.Duration) {
	i := 0
	for i < len(LatencyBuckets) && d > LatencyBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(uint64(d))
	h.n.Add(1)
}

// Latency is a snapshot of a detector's batch-latency histogram.
type Latency struct {
	// Cumulative[i] batches took at most LatencyBuckets[i].
	Cumulative []uint64
	Count      uint64
	Sum        time.Duration
}

func (h *latency) snapshot() Latency {
	out := Latency{Cumulative: make([]uint64, len(LatencyBuckets))}
	var c uint64
	for i := range LatencyBuckets {
		c += h.counts[i].Load()
		out.Cumulative[i] = c
	}
	out.Count = c + h.counts[len(LatencyBuckets)].Load()
	out.Sum = time.Duration(h.sumNs.Load())
	return out
}

func (l Latency) plus(o Latency) Latency {
	out := Latency{Cumulative: make([]uint64, len(LatencyBuckets)), Count: l.Count + o.Count, Sum: l.Sum + o.Sum}
	for i := range out.Cumulative {
		if i < len(l.Cumulative) {
			out.Cumulative[i] += l.Cumulative[i]
		}
		if i < len(o.Cumulative) {
			out.Cumulative[i] += o.Cumulative[i]
		}
	}
	return out
}
