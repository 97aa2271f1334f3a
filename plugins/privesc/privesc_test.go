package privesc_test

import (
	"context"
	"slices"
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

// on is ev as thread tid of its process did it.
func on(tid uint32, ev *sdk.Event) *sdk.Event { ev.TID = tid; return ev }

// setgid is p's setgid call: Old and New are gids, its uids stay.
func setgid(p sdktest.Proc, old, new event.IDs) *sdk.Event {
	ev := p.SetID("setgid", old, new)
	ev.UID, ev.EUID = p.UID, p.EUID
	return ev
}

func as(p sdktest.Proc, uid, euid uint32) sdktest.Proc { p.UID, p.EUID = uid, euid; return p }

// Credentials are per thread: what one thread does with its own is not
// another's, and a thread not seen before is judged by its process.
func TestPerThreadCredentials(t *testing.T) {
	daemon := sdktest.Proc{PID: 100, Exe: "/usr/sbin/smbd"} // started as root
	nobody := as(daemon, 65534, 65534)
	exploit := user.Child(200, "/home/u/exploit", "exploit")
	exploitRoot := as(exploit, 0, 0)
	for _, c := range []struct {
		name string
		evs  []*sdk.Event
		want []string
	}{
		{"one thread dropped to nobody, another still root", []*sdk.Event{daemon.Exec(),
			on(101, daemon.SetID("setresuid", event.IDs{}, event.IDs{Real: 65534, Effective: 65534, Saved: 65534})),
			on(101, nobody.Connect("10.0.0.1", 80, 0)), on(100, daemon.Connect("10.0.0.1", 80, 0)), on(100, daemon.Fork(150)),
			on(102, daemon.Connect("10.0.0.1", 80, 0)), on(102, daemon.Exit())}, nil},
		{"impersonation on one thread and back", []*sdk.Event{daemon.Exec(),
			on(101, daemon.SetID("setresuid", event.IDs{}, event.IDs{Effective: 65534})),
			on(101, as(daemon, 0, 65534).Connect("10.0.0.1", 80, 0)), on(100, daemon.Connect("10.0.0.1", 80, 0)),
			on(101, as(daemon, 0, 65534).SetID("setresuid", event.IDs{Effective: 65534}, event.IDs{})),
			on(101, daemon.Connect("10.0.0.1", 80, 0))}, nil},
		{"a group change is not a user change", []*sdk.Event{daemon.Exec(),
			setgid(daemon, event.IDs{}, event.IDs{Real: 65534, Effective: 65534, Saved: 65534}),
			daemon.Connect("10.0.0.1", 80, 0),
			setgid(daemon, event.IDs{Real: 65534, Effective: 65534, Saved: 65534}, event.IDs{}),
			daemon.Connect("10.0.0.1", 80, 0)}, nil},
		{"a thread of a dropped daemon turns root", []*sdk.Event{daemon.Exec(),
			on(100, daemon.SetID("setresuid", event.IDs{}, event.IDs{Real: 65534, Effective: 65534, Saved: 65534})),
			on(101, daemon.SetID("setresuid", event.IDs{}, event.IDs{Real: 65534, Effective: 65534, Saved: 65534})),
			on(101, nobody.Connect("10.0.0.1", 80, 0)), on(101, daemon.Connect("10.0.0.1", 80, 0))},
			[]string{"creds-changed-without-syscall"}},
		{"a new thread of a process that never held root is root", []*sdk.Event{exploit.Exec(),
			on(200, exploit.Connect("10.0.0.1", 80, 0)), on(201, exploitRoot.Event(sdk.KindMemfd))},
			[]string{"creds-changed-without-syscall"}},
		{"exec with real uid 0 in a process that never held root", []*sdk.Event{exploit.Exec(),
			as(exploit.Child(200, "/bin/sh", "sh"), 0, 0).Exec()}, []string{"creds-changed-without-syscall"}},
		{"a setid call made as root by a thread seen as non-root", []*sdk.Event{exploit.Exec(),
			exploitRoot.SetID("setresuid", event.IDs{}, event.IDs{})}, []string{"creds-changed-without-syscall"}},
		{"a new thread of a process of unknown start", []*sdk.Event{on(301, sdktest.Proc{PID: 300, Exe: "/usr/bin/x", UID: 1000, EUID: 1000}.Connect("10.0.0.1", 80, 0)),
			on(302, sdktest.Proc{PID: 300, Exe: "/usr/bin/x"}.Connect("10.0.0.1", 80, 0))}, nil},
		{"a pid reused after exit", []*sdk.Event{exploit.Exec(), on(201, exploit.Connect("10.0.0.1", 80, 0)), exploit.Exit(),
			sdktest.Proc{PID: 1, Exe: "/usr/lib/systemd/systemd"}.Fork(200),
			on(201, sdktest.Proc{PID: 200, Exe: "/usr/lib/systemd/systemd"}.Connect("10.0.0.1", 80, 0))}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := run(t, "", c.evs...); !slices.Equal(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

// A thread id seen non-root, then reused by a root thread of the same
// process once the pid allocator has wrapped, is not the same thread.
func TestReusedThreadID(t *testing.T) {
	daemon := sdktest.Proc{PID: 5000, Exe: "/usr/sbin/smbd"}
	init := sdktest.Proc{PID: 1, Exe: "/usr/lib/systemd/systemd"}
	evs := []*sdk.Event{init.Fork(5000), daemon.Exec(), init.Fork(5002),
		on(5001, daemon.SetID("setresuid", event.IDs{}, event.IDs{Real: 65534, Effective: 65534, Saved: 65534})),
		on(5001, as(daemon, 65534, 65534).Connect("10.0.0.1", 80, 0))}
	same := append(slices.Clone(evs), on(5001, daemon.Connect("10.0.0.1", 80, 0)))
	if got := run(t, "", same...); !slices.Equal(got, []string{"creds-changed-without-syscall"}) {
		t.Fatalf("the same thread turning root: %v", got)
	}
	// The allocator goes round: up to 30000, wraps to 400, passes 5001.
	wrapped := append(evs, init.Fork(30000), init.Fork(400), init.Fork(5100), on(5001, daemon.Connect("10.0.0.1", 80, 0)))
	if got := run(t, "", wrapped...); len(got) != 0 {
		t.Fatalf("a reused thread id: %v", got)
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
	for _, cfg := range []string{`{"max_processes": 0}`, `{"max_threads": 0}`} {
		if err := d.Init(context.Background(), sdk.Config(cfg), zaptest.NewLogger(t)); err == nil {
			t.Fatalf("%s must be refused", cfg)
		}
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
