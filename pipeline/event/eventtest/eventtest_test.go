package eventtest

import (
	"testing"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

// EveryKind has one event of every kind, in kernel order, with every
// payload field set: a kind or a field added to package event fails here
// until the fixture has it, and then the tests that walk it (layouts,
// codecs, sinks) fail until they carry it.
func TestEveryKind(t *testing.T) {
	evs := EveryKind()
	kinds := event.AllKinds()
	if len(evs) != len(kinds) {
		t.Fatalf("%d events for %d kinds", len(evs), len(kinds))
	}
	for i, ev := range evs {
		if ev.Kind != kinds[i] {
			t.Errorf("event %d is a %s, want a %s", i, ev.Kind, kinds[i])
			continue
		}
		if z := ZeroFields(ev); len(z) > 0 {
			t.Errorf("%s: fields left zero: %v", ev.Kind, z)
		}
		if ev.Process == nil {
			t.Errorf("%s: no process", ev.Kind)
		}
	}
}

func TestSetStrings(t *testing.T) {
	ev := Of(event.KindFile)
	SetStrings(ev, "\x1b")
	n := 0
	StringFields(ev, func(name string, s *string) {
		n++
		if *s != "\x1b" {
			t.Errorf("%s = %q", name, *s)
		}
	})
	if n != 9 || ev.Comm != "\x1b" || ev.File.Op != "\x1b" || ev.File.NewResolved != "\x1b" {
		t.Errorf("%d string fields set: %+v", n, ev.File)
	}
}

func TestPayloadUnknownKindPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic for an unknown kind")
		}
	}()
	Payload(&event.Event{Header: event.Header{Kind: event.KindCount}})
}
