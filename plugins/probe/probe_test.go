package probe

import (
	"strconv"
	"testing"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
)

func TestReportsEveryNthWithTheTimeItReceivedIt(t *testing.T) {
	proc := sdktest.Proc{PID: 10, Exe: "/usr/bin/cat"}
	var events []*event.Event
	for i := 0; i < 10; i++ {
		ev := proc.Open("/etc/hostname", 0, 3)
		ev.KernelTimeNs = event.KernelNow()
		events = append(events, ev)
	}
	fs := sdktest.Run(t, New(), `{"every": 4}`, events...)
	if len(fs) != 2 {
		t.Fatalf("every 4th of 10: got %d findings", len(fs))
	}
	for _, f := range fs {
		got, err := strconv.ParseUint(f.Fields[ReceivedField].(string), 10, 64)
		if err != nil || f.Rule != Rule || got < f.Events[0].KernelTimeNs || got > event.KernelNow() {
			t.Errorf("finding %+v: received %d (%v) is not between the event and now", f, got, err)
		}
	}
	if fs := sdktest.Run(t, New(), `{}`, events...); len(fs) != 0 {
		t.Errorf("every 0 reports nothing, got %d", len(fs))
	}
	if _, err := sdktest.Start(t, New(), `{"every": -1}`); err == nil {
		t.Error("a negative every was accepted")
	}
}
