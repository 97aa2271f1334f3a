package chaos

import (
	"context"
	"testing"

	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
	"go.uber.org/zap"
)

// TestOnceFiresOnlyOnFirstDelivery: a marker sent again (to the plugin's
// next process) does not fire; a new one does.
func TestOnceFiresOnlyOnFirstDelivery(t *testing.T) {
	proc := sdktest.Proc{PID: 10, Exe: "/usr/bin/cat"}
	d := New()
	if err := d.Init(context.Background(), sdk.Config(`{"fault": "panic", "on": "/boom/", "once": true}`), zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	panics := func(ctx context.Context, path string) (p bool) {
		defer func() { p = recover() != nil }()
		d.OnEvent(ctx, proc.Open(path, 0, 3))
		return false
	}
	again := detect.WithRedelivered(context.Background())
	if !panics(context.Background(), "/boom/1") {
		t.Fatal("the first delivery of a marker did not fire")
	}
	if panics(again, "/boom/1") {
		t.Error("a marker fired again when it was redelivered")
	}
	if panics(context.Background(), "/etc/hostname") || !panics(context.Background(), "/boom/2") {
		t.Error("a new marker should fire, a plain path not")
	}
}
