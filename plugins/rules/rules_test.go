package rules_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/rules"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"
)

const recording = "../../testdata/recordings/library.bhrec"

// The default rules find the recorded techniques, and nothing else in
// those ten seconds of a real host.
func TestDefaultRulesOnRecordedTechniques(t *testing.T) {
	got := sdktest.Rules(sdktest.Replay(t, rules.New(), "", recording))
	slices.Sort(got)
	want := []string{"credential_file_read", "crypto_miner_args", "exec_from_writable_dir", "exec_from_writable_dir",
		"exec_from_writable_dir", "exec_from_writable_dir", "fileless_exec", "masquerading_process", "persistence_file_write", "ptrace_attach",
		"setid_to_root", "shell_under_network_service", "unexpected_bpf_load"}
	if !slices.Equal(got, want) {
		t.Fatalf("findings %q\nwant %q", got, want)
	}
}

// The same recorded stream gives the same findings in-process (OnEvent
// called directly, as the inproc backend does) and through the plugin path.
func TestSameFindingsBothPaths(t *testing.T) {
	viaPlugin := sdktest.Rules(sdktest.Replay(t, rules.New(), "", recording))
	d := rules.New()
	if err := d.Init(context.Background(), nil, zaptest.NewLogger(t)); err != nil {
		t.Fatal(err)
	}
	var direct []string
	for _, ev := range sdktest.Events(t, recording) {
		if !slices.Contains(d.Definition().Kinds, ev.Kind) {
			continue
		}
		fs, err := d.OnEvent(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		direct = append(direct, sdktest.Rules(fs)...)
	}
	if !slices.Equal(viaPlugin, direct) {
		t.Fatalf("plugin path %q\ndirect %q", viaPlugin, direct)
	}
}

var cat = sdktest.Proc{PID: 20, Exe: "/usr/bin/cat", Ancestors: []string{"/usr/bin/bash"}}

// A changed rule file replaces the rule set; a bad one leaves it running.
func TestHotReload(t *testing.T) {
	file := filepath.Join(t.TempDir(), "mine.yaml")
	write := func(body string) {
		os.WriteFile(file, []byte(body), 0o644)
		// mtimes have a coarse grain on some file systems: make the change visible.
		later := time.Now().Add(time.Duration(time.Now().UnixNano()%1000+1) * time.Millisecond)
		os.Chtimes(file, later, later)
	}
	write("- rule: mine_a\n  condition: kind == \"open\" && path == \"/srv/a\"\n")
	d := rules.New()
	if err := d.Init(context.Background(), sdk.Config(`{"files": ["`+file+`"], "no_default_rules": true, "reload_interval": "20ms"}`), zaptest.NewLogger(t)); err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	matches := func(path string) bool {
		fs, _ := d.OnEvent(context.Background(), cat.Open(path, unix.O_RDONLY, 3))
		return len(fs) > 0
	}
	if !matches("/srv/a") || matches("/srv/b") {
		t.Fatal("rule a")
	}
	write("- rule: mine_b\n  condition: kind == \"open\" && path == \"/srv/b\"\n")
	eventually(t, func() bool { return matches("/srv/b") && !matches("/srv/a") })
	write("- rule: broken\n  condition: kind == \"open\" && nope\n")
	time.Sleep(200 * time.Millisecond)
	if !matches("/srv/b") {
		t.Fatal("a bad file must leave the running rules in place")
	}
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not within 5s")
		}
	}
}

// A bad rule fails Init, naming it, unless skip_bad_rules runs the others.
func TestBadRuleAtInit(t *testing.T) {
	file := filepath.Join(t.TempDir(), "mine.yaml")
	os.WriteFile(file, []byte("- rule: typo\n  condition: kind == \"open\" && pth == \"/a\"\n"), 0o644)
	err := rules.New().Init(context.Background(), sdk.Config(`{"files": ["`+file+`"]}`), zaptest.NewLogger(t))
	if err == nil || !strings.Contains(err.Error(), file+`:2: rule "typo": ERROR: <input>:1:19: undeclared reference to 'pth'`) {
		t.Fatalf("got %v", err)
	}
	d := rules.New()
	if err := d.Init(context.Background(), sdk.Config(`{"files": ["`+file+`"], "skip_bad_rules": true}`), zaptest.NewLogger(t)); err != nil {
		t.Fatalf("skip_bad_rules: %v", err)
	}
	d.Close(context.Background())
}

func TestBadConfig(t *testing.T) {
	for cfg, want := range map[string]string{
		`{"files": ["/no/such/file.yaml"]}`: "no such file",
		`{"reload_interval": "often"}`:      "reload_interval",
		`{"no_default_rules": true}`:        "no rule loaded",
		`{"fils": []}`:                      "unknown field",
	} {
		err := rules.New().Init(context.Background(), sdk.Config(cfg), zaptest.NewLogger(t))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error with %q", cfg, err, want)
		}
	}
}

// An administrator's shell script that runs apt-get is not a service
// running a package manager; a web application doing so still is.
func TestPackageManagerParents(t *testing.T) {
	script := sdktest.Proc{PID: 30, Exe: "/usr/bin/bash", Comm: "upgrade.sh", Ancestors: []string{"/usr/lib/systemd/systemd"}}
	app := sdktest.Proc{PID: 40, Exe: "/usr/bin/python3", Comm: "gunicorn", Ancestors: []string{"/usr/lib/systemd/systemd"}}
	for _, c := range []struct {
		name string
		p    sdktest.Proc
		want []string
	}{
		{"a shell script", script.Child(31, "/usr/bin/apt-get", "apt-get", "install", "-y", "less"), nil},
		{"a web application", app.Child(41, "/usr/bin/apt-get", "apt-get", "install", "-y", "nmap"),
			[]string{"package_manager_unexpected_parent"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := sdktest.Rules(sdktest.Run(t, rules.New(), "", c.p.Exec()))
			if !slices.Equal(got, c.want) {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

// The setid fields are uids: a gid call (whose before and after are gids)
// leaves them as the thread's uids were, so root moving its groups is not a
// non-root user becoming root.
func TestGroupCallsAreNotUserCalls(t *testing.T) {
	root := sdktest.Proc{PID: 50, Exe: "/usr/local/bin/agent"}
	back := root.SetID("setgid", event.IDs{Real: 65534, Effective: 65534, Saved: 65534}, event.IDs{})
	back.UID, back.EUID = 0, 0
	user := sdktest.Proc{PID: 60, Exe: "/var/tmp/python3", UID: 1000, EUID: 0}
	up := user.SetID("setuid", event.IDs{Real: 1000}, event.IDs{})
	got := sdktest.Rules(sdktest.Run(t, rules.New(), "", back, up))
	if !slices.Equal(got, []string{"setid_to_root"}) || len(sdktest.Run(t, rules.New(), "", back)) != 0 {
		t.Fatalf("got %q, want only the setuid call's setid_to_root", got)
	}
}
