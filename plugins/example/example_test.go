package example_test

import (
	"context"
	"fmt"

	"github.com/bulkhead-sec/bulkhead/plugins/example"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"go.uber.org/zap"
)

// A detector is driven with events; what it returns is what the monitor
// reports.
func Example() {
	d := example.New()
	if err := d.Init(context.Background(), sdk.Config(`{"paths": ["/etc/shadow"]}`), zap.NewNop()); err != nil {
		panic(err)
	}
	ev := &sdk.Event{}
	ev.Kind, ev.PID, ev.Comm = sdk.KindOpen, 4242, "cat"
	ev.Open.Resolved, ev.Open.Ret = "/etc/shadow", 3
	found, _ := d.OnEvent(context.Background(), ev)
	for _, f := range found {
		fmt.Println(f.Rule, f.Severity, f.Summary)
	}
	// Output: sensitive-file-open high cat (pid 4242, uid 0) opened /etc/shadow
}
