package match

import (
	"strings"
	"testing"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

func TestGlob(t *testing.T) {
	for _, c := range []struct {
		pattern, s string
		want       bool
	}{
		{"/etc/shadow", "/etc/shadow", true},
		{"/etc/shadow", "/etc/shadow-", false},
		{"/etc/shadow*", "/etc/shadow-", true},
		{"/etc/sudoers*", "/etc/sudoers.d/90-cloud", true},
		{"/home/*/.ssh/id_*", "/home/ann/.ssh/id_ed25519", true},
		{"/home/*/.ssh/id_*", "/home/ann/.ssh/known_hosts", false},
		{"*.pub", "/root/.ssh/id_rsa.pub", true},
		{"php-fpm*", "php-fpm8.2", true},
		{"?sh", "zsh", true},
		{"?sh", "bash", false},
		{"", "", true},
		{"*", "", true},
		{"a*b*c", "aXXbYYbZc", true},
		{"a*b*c", "aXXbYYbZ", false},
	} {
		if got := Glob(c.pattern, c.s); got != c.want {
			t.Errorf("Glob(%q, %q) = %v, want %v", c.pattern, c.s, got, c.want)
		}
	}
	if !Path("sshd", "/usr/sbin/sshd") || Path("sshd", "/usr/sbin/sshd-session") || !Path("/usr/*/sshd", "/usr/sbin/sshd") {
		t.Error("Path: a bare name matches the last element only")
	}
}

func TestGlobNeverBlowsUp(t *testing.T) {
	s := strings.Repeat("a", 4096)
	if Glob(strings.Repeat("*a", 30)+"b", s) {
		t.Fatal("matched")
	}
}

func TestAllowlist(t *testing.T) {
	ev := &event.Event{Header: event.Header{Kind: event.KindOpen, Comm: "go-test"}, Process: &event.Process{
		Exe: "/tmp/go-build123/b001/pkg.test", Args: "pkg.test\x00-test.v\x00",
		Ancestors: []event.Ancestor{{Exe: "/usr/local/go/bin/go", Comm: "go"}, {Exe: "/usr/bin/bash", Comm: "bash"}},
	}}
	if !(Allowlist{GoToolchain}).Allows(ev) {
		t.Error("GoToolchain should allow a go test binary")
	}
	ev.Process.Ancestors = ev.Process.Ancestors[1:]
	if (Allowlist{GoToolchain}).Allows(ev) {
		t.Error("GoToolchain must not allow a /tmp/go-build binary that go did not start")
	}
	if !(Allowlist{{Args: "pkg.test -test.v"}}).Allows(ev) || !(Allowlist{{Comm: "go-*"}}).Allows(ev) {
		t.Error("args and comm rules")
	}
	exec := &event.Event{Header: event.Header{Kind: event.KindExec}, Exec: event.Exec{Exe: "/usr/bin/sudo", Args: "sudo\x00id\x00"}}
	if !(Allowlist{{Exe: "sudo", Args: "sudo *"}}).Allows(exec) {
		t.Error("exec events match on the new binary and argv")
	}
}

func TestAllowConfig(t *testing.T) {
	defaults := Allowlist{{Exe: "sshd"}}
	l, err := AllowConfig{Allow: []Rule{{Comm: "backup"}}}.Build(defaults)
	if err != nil || len(l) != 2 {
		t.Fatalf("%v %v", l, err)
	}
	l, _ = AllowConfig{Allow: []Rule{{Comm: "backup"}}, NoDefaultAllow: true}.Build(defaults)
	if len(l) != 1 || l[0].Comm != "backup" {
		t.Fatalf("no_default_allow: %v", l)
	}
	for _, bad := range []Rule{{}, {Exe: "usr/bin/x"}} {
		if _, err := (AllowConfig{Allow: []Rule{bad}}).Build(nil); err == nil || !strings.Contains(err.Error(), "allow[0]") {
			t.Errorf("rule %+v: want an error naming allow[0], got %v", bad, err)
		}
	}
}
