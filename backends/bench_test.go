package backends_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/enclave"
	"github.com/bulkhead-sec/bulkhead/backends/inproc"
	"github.com/bulkhead-sec/bulkhead/internal/procstat"
	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/dispatch"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/event/eventtest"
	"github.com/bulkhead-sec/bulkhead/plugins/example"
	"github.com/bulkhead-sec/bulkhead/test/testenv"
	"go.uber.org/zap"
)

// BenchmarkDeliver measures events/s through each backend per batch size;
// ns/op and allocs/op are per event.
func BenchmarkDeliver(b *testing.B) {
	bin := testenv.Plugin(b, "example")
	for _, mode := range []string{"inproc", "goplugin", "goplugin-unary"} {
		run := newBackend(b, mode, bin)
		for _, size := range []int{1, 16, 64, 256, 1024} {
			events := eventtest.Opens(size)
			b.Run(fmt.Sprintf("%s/batch=%d", mode, size), func(b *testing.B) {
				b.ReportAllocs()
				n := 0
				for b.Loop() {
					if n%size == 0 {
						if _, err := backends.Deliver(context.Background(), run, events); err != nil {
							b.Fatal(err)
						}
					}
					n++
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
			})
		}
		run.Close(context.Background())
	}
}

// BenchmarkDispatch measures the whole dispatch path, pre-decoded events
// in: the dispatcher's copy into shared batches, the detector's queue, and
// the backend (for goplugin, Window batches in flight). ns/op and allocs/op
// are per event; events/s counts until every event has been answered.
func BenchmarkDispatch(b *testing.B) {
	bin := testenv.Plugin(b, "example")
	stream := eventtest.Opens(4096)
	for _, mode := range []string{"inproc", "goplugin", "goplugin-mtls", "goplugin-enclave", "goplugin-enclave-mtls",
		"goplugin-grpc", "goplugin-grpc-enclave-mtls", "goplugin-unary"} {
		for _, size := range []int{16, 64, 256, 1024, 4096} {
			b.Run(fmt.Sprintf("%s/batch=%d", mode, size), func(b *testing.B) {
				run := newBackendFor(b, mode, bin, size)
				d := dispatch.New(context.Background(), dispatch.Options{BatchSize: size, QueueBatches: 64, Block: true},
					[]dispatch.Detector{{Name: "example", Backend: mode, Run: run}}, func(detection.Finding) {}, zap.NewNop())
				pid := run.Stats().PID
				b.ReportAllocs()
				b.ResetTimer()
				start, monCPU, plugCPU := time.Now(), procstat.CPU(0), procstat.CPU(pid)
				for i := 0; i < b.N; i++ {
					d.Add(stream[i%len(stream)])
				}
				d.Drain()
				elapsed := time.Since(start)
				monCPU, plugCPU = procstat.CPU(0)-monCPU, procstat.CPU(pid)-plugCPU
				b.StopTimer()
				if err := d.Close(context.Background()); err != nil {
					b.Fatal(err)
				}
				if s := d.Stats()[0]; s.Backends.Delivered != uint64(b.N) {
					b.Fatalf("delivered %d of %d", s.Backends.Delivered, b.N)
				}
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
				b.ReportMetric(float64(monCPU.Nanoseconds())/float64(b.N), "monitor-cpu-ns/event")
				if pid != 0 {
					b.ReportMetric(float64(plugCPU.Nanoseconds())/float64(b.N), "plugin-cpu-ns/event")
				}
			})
		}
	}
}

// BenchmarkDispatchDetectors is BenchmarkDispatch at batch 256 with 1, 4
// and 16 detectors, each on its own backend (for goplugin, its own
// process): what every detector costs when the host has fewer cores than
// plugins. ns/op is per event; events/s counts until every detector has
// answered every event.
func BenchmarkDispatchDetectors(b *testing.B) {
	bin := testenv.Plugin(b, "example")
	stream := eventtest.Opens(4096)
	for _, mode := range []string{"inproc", "goplugin", "goplugin-enclave-mtls"} {
		for _, n := range []int{1, 4, 16} {
			b.Run(fmt.Sprintf("%s/detectors=%d", mode, n), func(b *testing.B) {
				dets := make([]dispatch.Detector, n)
				var pids []int
				for i := range dets {
					run := newBackendFor(b, mode, bin, 256)
					dets[i] = dispatch.Detector{Name: fmt.Sprintf("example-%d", i), Backend: mode, Run: run}
					if pid := run.Stats().PID; pid != 0 {
						pids = append(pids, pid)
					}
				}
				d := dispatch.New(context.Background(), dispatch.Options{BatchSize: 256, QueueBatches: 64, Block: true},
					dets, func(detection.Finding) {}, zap.NewNop())
				pluginCPU := func() (t time.Duration) {
					for _, pid := range pids {
						t += procstat.CPU(pid)
					}
					return t
				}
				b.ReportAllocs()
				b.ResetTimer()
				start, monCPU, plugCPU := time.Now(), procstat.CPU(0), pluginCPU()
				for i := 0; i < b.N; i++ {
					d.Add(stream[i%len(stream)])
				}
				d.Drain()
				elapsed := time.Since(start)
				monCPU, plugCPU = procstat.CPU(0)-monCPU, pluginCPU()-plugCPU
				b.StopTimer()
				if err := d.Close(context.Background()); err != nil {
					b.Fatal(err)
				}
				for _, s := range d.Stats() {
					if s.Backends.Delivered != uint64(b.N) {
						b.Fatalf("%s delivered %d of %d", s.Name, s.Backends.Delivered, b.N)
					}
				}
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
				b.ReportMetric(float64(monCPU.Nanoseconds())/float64(b.N), "monitor-cpu-ns/event")
				if len(pids) > 0 {
					b.ReportMetric(float64(plugCPU.Nanoseconds())/float64(b.N), "plugin-cpu-ns/event")
				}
			})
		}
	}
}

// BenchmarkFindingLatency measures, on a quiet pipeline, how long a batch
// with a finding takes from the dispatcher to its finding: a batch of 64
// events, one of which the example detector reports, every 2 ms (the
// plugin sleeps between batches, as on a quiet host). It reports the
// percentiles of that time; b.N is the number of batches.
func BenchmarkFindingLatency(b *testing.B) {
	bin := testenv.Plugin(b, "example")
	for _, mode := range []string{"inproc", "goplugin", "goplugin-enclave-mtls", "goplugin-grpc-enclave-mtls"} {
		b.Run(mode, func(b *testing.B) {
			run := newBackendFor(b, mode, bin, 64)
			found := make(chan time.Time, 1)
			d := dispatch.New(context.Background(), dispatch.Options{BatchSize: 64, QueueBatches: 64},
				[]dispatch.Detector{{Name: "example", Backend: mode, Run: run}}, func(detection.Finding) { found <- time.Now() }, zap.NewNop())
			events := eventtest.Opens(64)
			hit := *events[31]
			hit.Open = event.Open{Syscall: "openat", Path: "/etc/shadow", Resolved: "/etc/shadow", Ret: 3}
			events[31] = &hit
			var lat []time.Duration
			b.ResetTimer()
			for range b.N {
				time.Sleep(2 * time.Millisecond)
				start := time.Now()
				for _, ev := range events {
					d.Add(ev)
				}
				d.Flush()
				lat = append(lat, (<-found).Sub(start))
			}
			b.StopTimer()
			d.Drain()
			if err := d.Close(context.Background()); err != nil {
				b.Fatal(err)
			}
			slices.Sort(lat)
			at := func(q float64) float64 { return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) }
			b.ReportMetric(at(0.5), "p50-µs")
			b.ReportMetric(at(0.99), "p99-µs")
			b.ReportMetric(at(0.999), "p99.9-µs")
		})
	}
}

// newBackend runs the example detector on a backend: inproc, goplugin
// (batches through the shared-memory ring), goplugin-mtls (with
// go-plugin's AutoMTLS), goplugin-enclave (in the plugin enclave),
// goplugin-enclave-mtls (both: what `bulkhead run` gives a plugin by
// default) or goplugin-unary (one RPC per batch); goplugin-grpc* are the
// same with batches as messages on the gRPC stream.
func newBackend(b *testing.B, mode, bin string) backends.Backend {
	return newBackendFor(b, mode, bin, 256)
}

// newBackendFor is newBackend for batches of up to batch events (the
// ring is sized for them).
func newBackendFor(b *testing.B, mode, bin string, batch int) backends.Backend {
	if mode == "inproc" {
		r, err := inproc.New(context.Background(), example.New(), nil, zap.NewNop())
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	o := goplugin.DefaultOptions(bin)
	o.Unary = mode == "goplugin-unary"
	o.MTLS = strings.HasSuffix(mode, "-mtls")
	if strings.HasPrefix(mode, "goplugin-grpc") {
		o.Transport = goplugin.TransportGRPC
	} else if !o.Unary {
		o.Transport, o.BatchEvents = goplugin.TransportShm, batch
		o.RingBytes = goplugin.DefaultRingBytes
		for int64(o.RingBytes) < int64(batch)*goplugin.RingEventBytes {
			o.RingBytes *= 2
		}
	}
	if strings.Contains(mode, "-enclave") {
		e, err := enclave.Prepare("bench", 0, enclave.Config{}, enclave.Probe())
		if err != nil {
			b.Fatal(err)
		}
		o.Enclave, o.Launcher = e, testenv.Binary(b)
	}
	r, err := goplugin.New(o, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	return r
}
