package webshell_test

import (
	"context"
	"testing"

	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
	"github.com/bulkhead-sec/bulkhead/plugins/webshell"
	"go.uber.org/zap/zaptest"
)

func rules(t *testing.T, config string, evs ...*sdk.Event) []string {
	t.Helper()
	return sdktest.Rules(sdktest.Run(t, webshell.New(), config, evs...))
}

var (
	nginx    = sdktest.Proc{PID: 100, PPID: 1, Exe: "/usr/sbin/nginx", UID: 33, EUID: 33, Ancestors: []string{"/usr/lib/systemd/systemd"}}
	gunicorn = sdktest.Proc{PID: 200, PPID: 1, Exe: "/usr/bin/python3.11", Comm: "gunicorn", Ancestors: []string{"/usr/lib/systemd/systemd"}}
	login    = sdktest.Proc{PID: 300, PPID: 1, Exe: "/usr/sbin/sshd", Ancestors: []string{"/usr/lib/systemd/systemd"}}
)

func TestShellUnderServiceIsReported(t *testing.T) {
	for name, c := range map[string]struct {
		ev   *sdk.Event
		want int
	}{
		"sh under nginx":              {nginx.Child(101, "/bin/sh", "sh", "-c", "id").Exec(), 1},
		"bash two levels down":        {nginx.Child(101, "/usr/bin/python3", "python3").Child(102, "/bin/bash", "bash", "-i").Exec(), 1},
		"shell under a shell is once": {nginx.Child(101, "/bin/sh", "sh").Child(102, "/bin/bash", "bash").Exec(), 0},
		"gunicorn by its comm":        {gunicorn.Child(201, "/bin/dash", "sh", "-c", "whoami").Exec(), 1},
		"not a shell":                 {nginx.Child(101, "/usr/bin/id", "id").Exec(), 0},
		"ssh login shell":             {login.Child(301, "/bin/bash", "-bash").Exec(), 0},
	} {
		t.Run(name, func(t *testing.T) {
			if got := rules(t, "", c.ev); len(got) != c.want {
				t.Fatalf("got %v, want %d findings", got, c.want)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	ev := nginx.Child(101, "/bin/sh", "sh", "-c", "/usr/local/bin/rotate-logs").Exec()
	if got := rules(t, `{"allow": [{"ancestor": "nginx", "args": "sh -c /usr/local/bin/rotate-logs"}]}`, ev); len(got) != 0 {
		t.Fatalf("allowlisted: %v", got)
	}
	java := sdktest.Proc{PID: 400, Exe: "/usr/lib/jvm/bin/java"}
	if got := rules(t, `{"services": ["java"]}`, java.Child(401, "/bin/sh", "sh").Exec()); len(got) != 1 {
		t.Fatalf("added service: %v", got)
	}
	d := webshell.New()
	for _, bad := range []string{`{"services": ["usr/bin/x"]}`, `{"allow": [{}]}`, `{"servces": []}`} {
		if err := d.Init(context.Background(), sdk.Config(bad), zaptest.NewLogger(t)); err == nil {
			t.Errorf("config %s: want an error", bad)
		}
	}
}

// Through the real plugin path: the finding and its fields survive the wire.
func TestOverTheWire(t *testing.T) {
	h, err := sdktest.Start(t, webshell.New(), "")
	if err != nil {
		t.Fatal(err)
	}
	fs, err := h.Send(nginx.Child(101, "/bin/sh", "sh", "-c", "id").Exec())
	if err != nil || len(fs) != 1 {
		t.Fatalf("%v %v", fs, err)
	}
	if f := fs[0]; f.Rule != "shell-from-service" || f.Techniques[0] != "T1059.004" || f.Fields["service"] != "/usr/sbin/nginx" {
		t.Fatalf("%+v", f)
	}
}
