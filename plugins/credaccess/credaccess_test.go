package credaccess_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/bulkhead-sec/bulkhead/plugins/credaccess"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"
)

// findings runs ev through the plugin path, which drops what the
// detector's filter does not want, as the monitor does.
func findings(t *testing.T, config string, ev *sdk.Event) []sdk.Finding {
	t.Helper()
	return sdktest.Run(t, credaccess.New(), config, ev)
}

var (
	bash = sdktest.Proc{PID: 10, Exe: "/usr/bin/bash", Ancestors: []string{"/usr/sbin/sshd"}}
	cat  = bash.Child(11, "/usr/bin/cat", "cat")
	sshd = sdktest.Proc{PID: 20, Exe: "/usr/sbin/sshd", Ancestors: []string{"/usr/lib/systemd/systemd"}}
)

func TestCredentialFiles(t *testing.T) {
	for _, c := range []struct {
		name      string
		ev        *sdk.Event
		rule      string
		technique string
		sev       sdk.Severity
	}{
		{"cat /etc/shadow", cat.Open("/etc/shadow", unix.O_RDONLY, 3), "password-hash-access", "T1003.008", sdk.SeverityHigh},
		{"refused gshadow", cat.Open("/etc/gshadow", unix.O_RDONLY, -13), "password-hash-access", "T1003.008", sdk.SeverityMedium},
		{"sudoers.d", cat.Open("/etc/sudoers.d/90-users", unix.O_RDONLY, 3), "sudoers-access", "T1003.008", sdk.SeverityHigh},
		{"user key", cat.Open("/home/ann/.ssh/id_ed25519", unix.O_RDONLY, 3), "ssh-private-key-access", "T1552.004", sdk.SeverityHigh},
		{"host key", cat.Open("/etc/ssh/ssh_host_ed25519_key", unix.O_RDONLY, 3), "ssh-private-key-access", "T1552.004", sdk.SeverityHigh},
		{"public key", cat.Open("/home/ann/.ssh/id_ed25519.pub", unix.O_RDONLY, 3), "", "", 0},
		{"passwd is public", cat.Open("/etc/passwd", unix.O_RDONLY, 3), "", "", 0},
		{"sshd reads host keys", sshd.Open("/etc/ssh/ssh_host_ed25519_key", unix.O_RDONLY, 3), "", "", 0},
		{"apt's debconf", sdktest.Proc{PID: 31, Exe: "/usr/bin/perl", Args: []string{"/usr/bin/perl", "-w", "/usr/sbin/dpkg-preconfigure", "--apt"},
			Ancestors: []string{"/usr/bin/dash", "/usr/bin/apt-get"}}.Open("/etc/shadow", unix.O_RDONLY, 3), "", "", 0},
		{"dpkg's scripts", sdktest.Proc{PID: 30, Exe: "/usr/bin/perl", Ancestors: []string{"/usr/bin/dpkg"}}.Open("/etc/shadow", unix.O_RDWR, 3), "", "", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := findings(t, "", c.ev)
			if c.rule == "" {
				if len(fs) != 0 {
					t.Fatalf("want nothing, got %+v", fs)
				}
				return
			}
			if len(fs) != 1 || fs[0].Rule != c.rule || fs[0].Techniques[0] != c.technique || fs[0].Severity != c.sev {
				t.Fatalf("got %+v", fs)
			}
		})
	}
	fs := findings(t, "", cat.Open("/etc/sudoers", unix.O_WRONLY|unix.O_APPEND, 3))
	if len(fs) != 1 || !slices.Contains(fs[0].Techniques, "T1548.003") || !strings.Contains(fs[0].Summary, "for writing") {
		t.Fatalf("sudoers write: %+v", fs)
	}
}

func TestConfiguredFilesWidenTheFilter(t *testing.T) {
	const config = `{"files": ["/srv/vault/*.key"], "allow": [{"exe": "/usr/local/bin/backup"}]}`
	if fs := findings(t, config, cat.Open("/srv/vault/a.key", unix.O_RDONLY, 3)); len(fs) != 1 || fs[0].Rule != "credential-file-access" {
		t.Fatalf("configured file: %+v", fs)
	}
	backup := sdktest.Proc{PID: 40, Exe: "/usr/local/bin/backup"}
	if fs := findings(t, config, backup.Open("/etc/shadow", unix.O_RDONLY, 3)); len(fs) != 0 {
		t.Fatalf("allowlisted: %+v", fs)
	}
	if err := credaccess.New().Init(context.Background(), sdk.Config(`{"files": ["srv/x"]}`), zaptest.NewLogger(t)); err == nil {
		t.Fatal("a relative pattern must be refused")
	}
}

func TestOverTheWire(t *testing.T) {
	h, err := sdktest.Start(t, credaccess.New(), "")
	if err != nil {
		t.Fatal(err)
	}
	fs, err := h.Send(cat.Open("/etc/passwd", 0, 3), cat.Open("/etc/shadow", 0, 3))
	if err != nil || len(fs) != 1 || fs[0].Fields["path"] != "/etc/shadow" || fs[0].Events[0].Open.Resolved != "/etc/shadow" {
		t.Fatalf("%+v %v", fs, err)
	}
}
