package chaos

import (
	"context"
	"testing"

	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
	"go.uber.org/zap"
)

// TestOnceFiresEachMarkerOnceAcrossRestarts: a second detector (the
// plugin's next process) does not fire again on a marker the first fired
// on, but does on a new one.
func TestOnceFiresEachMarkerOnceAcrossRestarts(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	proc := sdktest.Proc{PID: 10, Exe: "/usr/bin/cat"}
	start := func() *Detector {
		d := New()
		if err := d.Init(context.Background(), sdk.Config(`{"fault": "panic", "on": "/boom/", "once": true}`), zap.NewNop()); err != nil {
			t.Fatal(err)
		}
		return d
	}
	panics := func(d *Detector, path string) (p bool) {
		defer func() { p = recover() != nil }()
		d.OnEvent(context.Background(), proc.Open(path, 0, 3))
		return false
	}
	first := start()
	if !panics(first, "/boom/1") {
		t.Fatal("the first sight of a marker did not fire")
	}
	second := start()
	if panics(second, "/boom/1") {
		t.Error("a marker fired again after a restart")
	}
	if panics(second, "/etc/hostname") || !panics(second, "/boom/2") {
		t.Error("a new marker should fire, a plain path not")
	}
}
