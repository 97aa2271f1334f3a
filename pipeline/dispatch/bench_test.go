package dispatch

import (
	"context"
	"testing"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"go.uber.org/zap"
)

// nop takes batches and answers at once, finding nothing: what is
// measured is the dispatcher (the copy into batches or the flat encoding,
// the queue, the lane).
type nop struct{ def detection.Definition }

func (n *nop) Definition() detection.Definition { return n.def }
func (n *nop) Stats() backends.Stats            { return backends.Stats{} }
func (n *nop) Close(context.Context) error      { return nil }
func (n *nop) Submit(_ context.Context, _ []*event.Event, done backends.Done) {
	done(nil, nil)
}

type nopFlat struct{ nop }

func (n *nopFlat) SubmitFlat(_ context.Context, _ []byte, _ int, done backends.Done) { done(nil, nil) }

// BenchmarkAdd is the dispatcher's cost per event for a detector that
// takes events (copied into the batch) and one that takes flat batches
// (encoded into it).
func BenchmarkAdd(b *testing.B) {
	proc := &event.Process{PID: 4242, Exe: "/usr/bin/cat", Comm: "cat", Args: "cat\x00/etc/hostname\x00",
		Ancestors: []event.Ancestor{{PID: 1, Exe: "/sbin/init", Comm: "init"}}}
	stream := make([]*event.Event, 4096)
	for i := range stream {
		ev := &event.Event{Header: event.Header{Kind: event.KindOpen, PID: 4242, TID: 4242, PPID: 1, Comm: "cat", KernelTimeNs: uint64(i)}}
		ev.Open = event.Open{Syscall: "openat", Dfd: -100, Path: "/etc/hostname", Resolved: "/etc/hostname", Ret: 3}
		ev.Process = proc
		stream[i] = ev
	}
	def := detection.Definition{Name: "nop", Kinds: []event.Kind{event.KindOpen}}
	for _, c := range []struct {
		name string
		run  backends.Backend
	}{{"events", &nop{def}}, {"flat", &nopFlat{nop{def}}}} {
		b.Run(c.name, func(b *testing.B) {
			d := New(context.Background(), Options{BatchSize: 256, QueueBatches: 64, Block: true}, []Detector{{Name: "nop", Run: c.run}},
				func(detection.Finding) {}, zap.NewNop())
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				d.Add(stream[i%len(stream)])
				i++
			}
			d.Drain()
			b.StopTimer()
			d.Close(context.Background())
		})
	}
}
