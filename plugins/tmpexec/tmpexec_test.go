package tmpexec_test

import (
	"context"
	"testing"

	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
	"github.com/bulkhead-sec/bulkhead/plugins/tmpexec"
	"go.uber.org/zap/zaptest"
)

func rules(t *testing.T, config string, ev *sdk.Event) []string {
	t.Helper()
	return sdktest.Rules(sdktest.Run(t, tmpexec.New(), config, ev))
}

var (
	shell  = sdktest.Proc{PID: 10, Exe: "/usr/bin/bash", Ancestors: []string{"/usr/sbin/sshd"}}
	gotool = sdktest.Proc{PID: 20, Exe: "/usr/local/go/bin/go", Ancestors: []string{"/usr/bin/bash"}}
)

func TestExecLocations(t *testing.T) {
	memfd := shell.Child(11, "memfd:payload", "x").Exec()
	memfd.Exec.ExeNlink = 0
	deleted := shell.Child(11, "/opt/app/bin/tool (deleted)", "tool").Exec()
	deleted.Exec.ExeNlink = 0
	for _, c := range []struct {
		name string
		ev   *sdk.Event
		want string
	}{
		{"dropper in /tmp", shell.Child(11, "/tmp/.x/kworker", "kworker").Exec(), "exec-from-writable-dir"},
		{"/dev/shm", shell.Child(11, "/dev/shm/a", "a").Exec(), "exec-from-writable-dir"},
		{"/var/tmp", shell.Child(11, "/var/tmp/b", "b").Exec(), "exec-from-writable-dir"},
		{"memfd", memfd, "fileless-exec"},
		{"deleted binary", deleted, "deleted-binary-exec"},
		{"/usr/bin is fine", shell.Child(11, "/usr/bin/ls", "ls").Exec(), ""},
		{"/tmpfoo is not /tmp", shell.Child(11, "/tmpfoo/x", "x").Exec(), ""},
		{"go test binary", gotool.Child(21, "/tmp/go-build123/b001/pkg.test", "pkg.test").Exec(), ""},
		{"go-build without go", shell.Child(11, "/tmp/go-build123/b001/pkg.test", "pkg.test").Exec(), "exec-from-writable-dir"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := rules(t, "", c.ev)
			if (c.want == "" && len(got) != 0) || (c.want != "" && (len(got) != 1 || got[0] != c.want)) {
				t.Fatalf("got %v, want %q", got, c.want)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	ev := shell.Child(11, "/srv/uploads/x", "x").Exec()
	if got := rules(t, `{"dirs": ["/srv/uploads"]}`, ev); len(got) != 1 {
		t.Fatalf("configured dir: %v", got)
	}
	if got := rules(t, `{"no_default_allow": true}`, gotool.Child(21, "/tmp/go-build1/x.test", "x").Exec()); len(got) != 1 {
		t.Fatalf("no_default_allow: %v", got)
	}
	if err := tmpexec.New().Init(context.Background(), sdk.Config(`{"dirs": ["srv"]}`), zaptest.NewLogger(t)); err == nil {
		t.Fatal("a relative dir must be refused")
	}
}

func TestOverTheWire(t *testing.T) {
	h, err := sdktest.Start(t, tmpexec.New(), "")
	if err != nil {
		t.Fatal(err)
	}
	fs, err := h.Send(shell.Child(11, "/tmp/x", "x", "-v").Exec())
	if err != nil || len(fs) != 1 || fs[0].Fields["exe"] != "/tmp/x" || fs[0].Fields["parent"] != "/usr/bin/bash" {
		t.Fatalf("%+v %v", fs, err)
	}
}
