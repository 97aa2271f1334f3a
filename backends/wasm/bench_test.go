package wasm_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/backends/inproc"
	"github.com/bulkhead-sec/bulkhead/backends/wasm"
	"github.com/bulkhead-sec/bulkhead/backends/wasm/wasmtest"
	"github.com/bulkhead-sec/bulkhead/internal/procstat"
	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/dispatch"
	"github.com/bulkhead-sec/bulkhead/pipeline/event/eventtest"
	"github.com/bulkhead-sec/bulkhead/plugins/example"
	"go.uber.org/zap"
)

// BenchmarkDispatch is backends' BenchmarkDispatch (the dispatcher into
// the example detector, per batch size) for wasm beside inproc, in one
// run: events/s and the monitor's CPU per event (a module runs in the
// monitor's process: there is no plugin CPU).
func BenchmarkDispatch(b *testing.B) {
	stream := eventtest.Opens(4096)
	for _, mode := range []string{"inproc", "wasm"} {
		var run backends.Backend
		if mode == "wasm" {
			o := wasm.DefaultOptions(wasmtest.Build(b, "example"))
			o.Cache = wasmtest.Cache(b)
			w, err := wasm.New(context.Background(), o, zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			run = w
		}
		for _, size := range []int{16, 64, 256, 1024, 4096} {
			b.Run(fmt.Sprintf("%s/batch=%d", mode, size), func(b *testing.B) {
				r := run
				if mode == "inproc" {
					var err error
					if r, err = inproc.New(context.Background(), example.New(), nil, zap.NewNop()); err != nil {
						b.Fatal(err)
					}
				}
				before := r.Stats().Delivered
				d := dispatch.New(context.Background(), dispatch.Options{BatchSize: size, QueueBatches: 64, Block: true},
					[]dispatch.Detector{{Name: "example", Backend: mode, Run: keepOpen{r}}}, func(detection.Finding) {}, zap.NewNop())
				b.ReportAllocs()
				b.ResetTimer()
				start, monCPU := time.Now(), procstat.CPU(0)
				for i := 0; i < b.N; i++ {
					d.Add(stream[i%len(stream)])
				}
				d.Drain()
				elapsed := time.Since(start)
				monCPU = procstat.CPU(0) - monCPU
				b.StopTimer()
				if err := d.Close(context.Background()); err != nil {
					b.Fatal(err)
				}
				if got := r.Stats().Delivered - before; got != uint64(b.N) {
					b.Fatalf("delivered %d of %d", got, b.N)
				}
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
				b.ReportMetric(float64(monCPU.Nanoseconds())/float64(b.N), "monitor-cpu-ns/event")
			})
		}
		if run != nil {
			run.Close(context.Background())
		}
	}
}

// keepOpen is a backend the dispatcher's Close does not close: the wasm
// backend is made once for every batch size (instantiating it costs a
// compile from the cache).
type keepOpen struct{ backends.Backend }

func (keepOpen) Close(context.Context) error { return nil }
