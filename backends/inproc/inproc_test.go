package inproc

import (
	"context"
	"strings"
	"testing"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"go.uber.org/zap"
)

// panicky panics on pid 666 and reports every other event.
type panicky struct{}

func (panicky) Definition() detection.Definition {
	return detection.Definition{Name: "panicky", Version: "1.0.0", Kinds: []event.Kind{event.KindOpen}}
}
func (panicky) Init(context.Context, detection.Config, *zap.Logger) error { return nil }
func (panicky) Close(context.Context) error                               { return nil }
func (panicky) OnEvent(_ context.Context, ev *event.Event) ([]detection.Finding, error) {
	if ev.PID == 666 {
		panic("boom")
	}
	return []detection.Finding{detection.NewFinding(ev, "seen", detection.SeverityInfo, "seen")}, nil
}

func TestRecoverCountsAPanicAndGoesOn(t *testing.T) {
	b, err := NewWith(context.Background(), panicky{}, nil, Options{Recover: true}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	open := func(pid uint32) *event.Event {
		return &event.Event{Header: event.Header{Kind: event.KindOpen, PID: pid}}
	}
	fs, err := backends.Deliver(context.Background(), b, []*event.Event{open(1), open(666), open(2)})
	if err != nil || len(fs) != 2 {
		t.Fatalf("got %d findings, %v; want the 2 around the panic", len(fs), err)
	}
	if s := b.Stats(); s.Errors != 1 || s.Delivered != 3 {
		t.Errorf("stats %+v: want the panic counted as 1 error, 3 delivered", s)
	}
	without, _ := New(context.Background(), panicky{}, nil, zap.NewNop())
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "boom") {
			t.Errorf("without Recover the panic must reach the caller, got %v", r)
		}
	}()
	backends.Deliver(context.Background(), without, []*event.Event{open(666)})
}
