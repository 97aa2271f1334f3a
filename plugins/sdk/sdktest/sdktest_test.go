package sdktest_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/bulkhead-sec/bulkhead/plugins/example"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
	"go.uber.org/zap"
)

func open(pid uint32, path string) *sdk.Event {
	ev := &sdk.Event{}
	ev.Kind, ev.PID, ev.Comm = sdk.KindOpen, pid, "cat"
	ev.Open.Path, ev.Open.Resolved, ev.Open.Syscall = path, path, "openat"
	ev.Process = &sdk.Process{PID: pid, Exe: "/usr/bin/cat", Ancestors: []sdk.Ancestor{{PID: 1, Exe: "/sbin/init", Comm: "init"}}}
	return ev
}

// The example detector, through the wire: its finding points at the event
// it was given, with the process context and the structured fields intact.
func TestExampleThroughTheWire(t *testing.T) {
	h, err := sdktest.Start(t, example.New(), `{"paths":["/etc/shadow"]}`)
	if err != nil {
		t.Fatal(err)
	}
	if d := h.Definition(); d.Name != "example" || len(d.Kinds) != 1 || d.Kinds[0] != sdk.KindOpen {
		t.Fatalf("definition %+v", d)
	}
	evs := []*sdk.Event{open(10, "/etc/hostname"), open(11, "/etc/shadow"), open(12, "/tmp/x")}
	exec := &sdk.Event{}
	exec.Kind = sdk.KindExec // not declared: never sent
	fs, err := h.Send(append(evs, exec)...)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 {
		t.Fatalf("%d findings, want 1: %+v", len(fs), fs)
	}
	f := fs[0]
	if f.Detector != "example" || f.Rule != "sensitive-file-open" || f.Severity != sdk.SeverityHigh || f.Events[0] != evs[1] {
		t.Errorf("finding %+v", f)
	}
	if f.Fields["path"] != "/etc/shadow" || f.Fields["exe"] != "/usr/bin/cat" || f.Fields["ret"] != float64(0) {
		t.Errorf("fields %v", f.Fields)
	}
	// A second batch on the same stream.
	if fs, err := h.Send(open(13, "/etc/shadow")); err != nil || len(fs) != 1 || fs[0].Events[0].PID != 13 {
		t.Errorf("second batch: %v %+v", err, fs)
	}
}

func TestBadConfigIsTheDetectorsError(t *testing.T) {
	_, err := sdktest.Start(t, example.New(), `{"paths":["relative"]}`)
	if err == nil || err.Error() != `init: path "relative": use an absolute path` {
		t.Fatalf("err %v", err)
	}
	_, err = sdktest.Start(t, example.New(), `{"pathz":[]}`)
	if err == nil || !strings.Contains(err.Error(), `unknown field "pathz"`) {
		t.Fatalf("err %v", err)
	}
}

// faulty returns an error on every event, and a finding whose fields do
// not encode as JSON.
type faulty struct{}

func (faulty) Definition() sdk.Definition {
	return sdk.Definition{Name: "faulty", Version: "0", Kinds: []sdk.Kind{sdk.KindOpen}}
}
func (faulty) Init(context.Context, sdk.Config, *zap.Logger) error { return nil }
func (faulty) Close(context.Context) error                         { return nil }
func (faulty) OnEvent(_ context.Context, ev *sdk.Event) ([]sdk.Finding, error) {
	f := sdk.NewFinding(ev, "bad-fields", sdk.SeverityLow, "x")
	f.Fields = map[string]any{"ch": make(chan int)}
	return []sdk.Finding{f}, errors.New("cannot parse " + ev.Open.Path)
}

func TestDetectorErrorsAreReported(t *testing.T) {
	h, err := sdktest.Start(t, faulty{}, "")
	if err != nil {
		t.Fatal(err)
	}
	fs, err := h.Send(open(1, "/a"), open(2, "/b"))
	if len(fs) != 0 {
		t.Errorf("a finding whose fields do not encode was delivered: %+v", fs)
	}
	if err == nil || !strings.Contains(err.Error(), "2 error(s)") || !strings.Contains(err.Error(), "fields do not encode as JSON") {
		t.Errorf("err %v", err)
	}
}

func TestInvalidDefinitionIsRefused(t *testing.T) {
	_, err := sdktest.Start(t, badName{}, "")
	if err == nil || !strings.Contains(err.Error(), `name "Bad Name": use lower-case letters`) {
		t.Fatalf("err %v", err)
	}
}

type badName struct{ faulty }

func (badName) Definition() sdk.Definition {
	return sdk.Definition{Name: "Bad Name", Kinds: []sdk.Kind{sdk.KindOpen}}
}

// flooder returns 1000 findings for every event.
type flooder struct{ faulty }

func (flooder) OnEvent(_ context.Context, ev *sdk.Event) ([]sdk.Finding, error) {
	out := make([]sdk.Finding, 1000)
	for i := range out {
		out[i] = sdk.NewFinding(ev, "flood", sdk.SeverityLow, "x")
	}
	return out, nil
}

// The SDK sends no more findings than the monitor takes for the batch, and
// says so as an error: the plugin is not killed for an oversized answer.
func TestFindingsOverTheBoundAreNotSent(t *testing.T) {
	h, err := sdktest.Start(t, flooder{}, "")
	if err != nil {
		t.Fatal(err)
	}
	fs, err := h.Send(open(1, "/a"), open(2, "/b"))
	if len(fs) != 64 || err == nil || !strings.Contains(err.Error(), "2 error(s)") || !strings.Contains(err.Error(), "findings over the limit of 64") {
		t.Errorf("%d findings, err %v", len(fs), err)
	}
}
