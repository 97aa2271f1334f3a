package detect

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

// The SDK's names are the monitor's: a type here is the type there (not a
// copy a detector's values would have to be converted from), and what a
// function here returns is what the monitor's returns.
func TestSameContractAsTheMonitor(t *testing.T) {
	for _, c := range []struct{ sdk, core any }{
		{(*Detector)(nil), (*detection.Detector)(nil)},
		{Definition{}, detection.Definition{}},
		{Filter{}, detection.Filter{}},
		{(*Matcher)(nil), (*detection.Matcher)(nil)},
		{Config{}, detection.Config{}},
		{Severity(0), detection.Severity(0)},
		{SeverityCritical, detection.SeverityCritical},
		{Finding{}, detection.Finding{}},
	} {
		if s, m := reflect.TypeOf(c.sdk), reflect.TypeOf(c.core); s != m {
			t.Errorf("SDK type %v is not the monitor's %v", s, m)
		}
	}
	if MaxFilterEntries != detection.MaxFilterEntries || MaxFilterEntry != detection.MaxFilterEntry || MaxFilterBytes != detection.MaxFilterBytes {
		t.Error("the SDK's filter bounds are not the monitor's")
	}
	for i, s := range []Severity{SeverityInfo, SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical} {
		if s != detection.Severity(i) {
			t.Errorf("severity %v is %d, the monitor's is %d", s, s, i)
		}
		if p, err := ParseSeverity(s.String()); p != s || err != nil {
			t.Errorf("ParseSeverity(%q) = %v, %v", s.String(), p, err)
		}
	}
	if _, err := ParseSeverity("urgent"); err == nil {
		t.Error("ParseSeverity(urgent) is not refused")
	}

	// A filter the SDK's bounds refuse is refused with the monitor's error.
	big := make([]string, MaxFilterEntries+1)
	err := Definition{Name: "d", Kinds: []event.Kind{event.KindOpen}, Filter: Filter{Comms: big}}.Validate()
	if !errors.Is(err, ErrFilterBounds) || !errors.Is(err, detection.ErrFilterBounds) {
		t.Errorf("over the bounds: %v, want ErrFilterBounds", err)
	}

	// Redelivery marked by either package is seen by both: the SDK marks
	// it, a detector may test it through either.
	ctx := context.Background()
	if Redelivered(ctx) || detection.Redelivered(ctx) {
		t.Error("a fresh context is marked redelivered")
	}
	if !detection.Redelivered(WithRedelivered(ctx)) || !Redelivered(detection.WithRedelivered(ctx)) {
		t.Error("redelivery marked through one package is not seen through the other")
	}

	ev := &event.Event{Header: event.Header{Kind: event.KindExec}}
	f := NewFinding(ev, "r", SeverityHigh, "s", "T1059")
	if want := detection.NewFinding(ev, "r", SeverityHigh, "s", "T1059"); !reflect.DeepEqual(f, want) {
		t.Errorf("NewFinding = %+v, the monitor's %+v", f, want)
	}
}
