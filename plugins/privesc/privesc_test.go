package privesc_test

import (
	"context"
	"testing"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/privesc"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
	"go.uber.org/zap/zaptest"
)

func run(t *testing.T, config string, evs ...*sdk.Event) []string {
	t.Helper()
	return sdktest.Rules(sdktest.Run(t, privesc.New(), config, evs...))
}

var user = sdktest.Proc{PID: 10, Exe: "/usr/bin/bash", UID: 1000, EUID: 1000}

func setuidExec(p sdktest.Proc) sdktest.Proc { p.EUID = 0; return p }

func TestRoutesToRoot(t *testing.T) {
	sudo := setuidExec(user.Child(11, "/usr/bin/sudo", "sudo", "id"))
	copied := setuidExec(user.Child(11, "/tmp/python3", "python3"))
	for _, c := range []struct {
		name string
		evs  []*sdk.Event
		want []string
	}{
		{"sudo is trusted", []*sdk.Event{sudo.Exec(), sudo.SetID("setresuid", event.IDs{Real: 1000}, event.IDs{})}, nil},
		{"a setuid copy of python", []*sdk.Event{copied.Exec(), copied.SetID("setuid", event.IDs{Real: 1000}, event.IDs{})},
			[]string{"setuid-root-exec", "setid-to-root"}},
		{"root dropping to a user is fine", []*sdk.Event{sdktest.Proc{PID: 20, Exe: "/usr/sbin/sshd"}.SetID("setresuid", event.IDs{}, event.IDs{Real: 1000, Effective: 1000})}, nil},
		{"kernel exploit", []*sdk.Event{user.Exec(), user.Connect("10.0.0.1", 80, 0), func() *sdk.Event {
			root := user
			root.UID, root.EUID = 0, 0
			return root.Fork(12)
		}()}, []string{"creds-changed-without-syscall"}},
		{"unknown process seen as root first", []*sdk.Event{sdktest.Proc{PID: 30, Exe: "/usr/bin/x"}.Fork(31)}, nil},
		{"exit forgets", []*sdk.Event{user.Exec(), user.Exit(), sdktest.Proc{PID: 10, Exe: "/usr/sbin/cron"}.Fork(40)}, nil},
		{"the child inherits what the parent was", []*sdk.Event{user.Fork(50), func() *sdk.Event {
			child := sdktest.Proc{PID: 50, Exe: "/usr/bin/bash"}
			return child.Connect("10.0.0.1", 80, 0)
		}()}, []string{"creds-changed-without-syscall"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := run(t, "", c.evs...)
			if len(got) != len(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("got %v, want %v", got, c.want)
				}
			}
		})
	}
}

func TestMemoryIsBounded(t *testing.T) {
	d := privesc.New()
	if err := d.Init(context.Background(), sdk.Config(`{"max_processes": 100}`), zaptest.NewLogger(t)); err != nil {
		t.Fatal(err)
	}
	for pid := uint32(1); pid < 10000; pid++ {
		d.OnEvent(context.Background(), user.Fork(pid))
	}
	if err := d.Init(context.Background(), sdk.Config(`{"max_processes": 0}`), zaptest.NewLogger(t)); err == nil {
		t.Fatal("max_processes 0 must be refused")
	}
}

func TestOverTheWire(t *testing.T) {
	h, err := sdktest.Start(t, privesc.New(), "")
	if err != nil {
		t.Fatal(err)
	}
	p := setuidExec(user.Child(11, "/tmp/python3", "python3"))
	fs, err := h.Send(p.Exec(), p.SetID("setuid", event.IDs{Real: 1000, Effective: 0}, event.IDs{}))
	if err != nil || len(fs) != 2 || fs[1].Fields["new"] == nil {
		t.Fatalf("%+v %v", fs, err)
	}
}
