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

// Scripts from writable or hidden places, by the kernel's Script or by the
// interpreter's argument, and programs deleting their own binary.
func TestScriptsAndSelfDeletion(t *testing.T) {
	shebang := func(p sdktest.Proc, script string) *sdk.Event { return p.ExecWith(script) }
	dash := func(pid uint32, argv ...string) sdktest.Proc { return shell.Child(pid, "/usr/bin/dash", argv...) }
	payload := shell.Child(40, "/tmp/x/payload", "payload")
	pyDrop := shell.Child(41, "/var/tmp/python3", "python3", "-c", "import os")
	rmByDrop := pyDrop.Child(42, "/usr/bin/rm", "rm", "-f", "/var/tmp/python3")
	for _, c := range []struct {
		name string
		ev   *sdk.Event
		want []string
	}{
		{"./x.sh in /dev/shm", shebang(dash(30, "/bin/sh", "./x.sh"), "/dev/shm/x.sh"), []string{"script-from-writable-dir"}},
		{"sh /tmp/x.sh", dash(31, "sh", "/tmp/x.sh").Exec(), []string{"script-from-writable-dir"}},
		{"bash -x /var/tmp/x.sh", shell.Child(32, "/usr/bin/bash", "bash", "-x", "/var/tmp/x.sh").Exec(), []string{"script-from-writable-dir"}},
		{"bash -e /tmp/x.sh (errexit, not a command)", shell.Child(32, "/usr/bin/bash", "bash", "-e", "/tmp/x.sh").Exec(), []string{"script-from-writable-dir"}},
		{"python3 /tmp/x.py", shell.Child(33, "/usr/bin/python3.12", "python3", "/tmp/x.py").Exec(), []string{"script-from-writable-dir"}},
		{"ld.so /tmp/x", shell.Child(34, "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2", "/tmp/x").Exec(), []string{"script-from-writable-dir"}},
		{"sh -c naming a /tmp path", dash(35, "sh", "-c", "/tmp/x.sh").Exec(), nil},
		{"bash -xc naming a /tmp path", shell.Child(35, "/usr/bin/bash", "bash", "-xc", "cat /tmp/x").Exec(), nil},
		{"python3 -c with a /tmp argument", shell.Child(36, "/usr/bin/python3.12", "python3", "-c", "pass", "/tmp/x").Exec(), nil},
		{"python3 -m module /tmp/x", shell.Child(36, "/usr/bin/python3.12", "python3", "-m", "json.tool", "/tmp/x").Exec(), nil},
		{"sh /srv/x.sh", dash(37, "sh", "/srv/x.sh").Exec(), nil},
		{"cat /tmp/x is no interpreter", shell.Child(38, "/usr/bin/cat", "cat", "/tmp/x").Exec(), nil},
		{"a script in a hidden directory", shebang(dash(39, "/bin/sh", "/var/lib/.x/run"), "/var/lib/.x/run"), []string{"script-from-hidden-dir"}},
		{"a user's tool in ~/.local/bin", shebang(dash(39, "/bin/sh", "/home/u/.local/bin/tool"), "/home/u/.local/bin/tool"), nil},
		{"a program deletes its own binary", payload.File("unlink", "/tmp/x/payload", 0), []string{"self-deleting-binary"}},
		{"its child deletes it", rmByDrop.File("unlink", "/var/tmp/python3", 0), []string{"self-deleting-binary"}},
		{"a failed unlink of it", payload.File("unlink", "/tmp/x/payload", -13), nil},
		{"rm deletes another file", rmByDrop.File("unlink", "/var/tmp/other", 0), nil},
		{"a program renames its binary (an update)", payload.FileTo("rename", "/tmp/x/payload", "/tmp/x/payload.old", 0), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := sdktest.Rules(sdktest.Run(t, tmpexec.New(), "", c.ev))
			if len(got) != len(c.want) || len(got) > 0 && got[0] != c.want[0] {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}
