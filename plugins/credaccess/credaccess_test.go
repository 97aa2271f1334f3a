package credaccess_test

import (
	"context"
	"os"
	"path/filepath"
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

// opened sets what the kernel reports of the file an open returned.
func opened(ev *sdk.Event, kernelPath string, st *unix.Stat_t) *sdk.Event {
	ev.Open.FilePath = kernelPath
	if st != nil {
		ev.Open.Dev, ev.Open.Ino, ev.Open.Nlink, ev.Open.FileMode = st.Dev, st.Ino, uint32(st.Nlink), st.Mode
	}
	return ev
}

// Whatever string was passed, the file the kernel opened decides: its
// kernel path, or its identity for a name outside every watched path.
func TestOpenedFileDecides(t *testing.T) {
	dir := t.TempDir()
	secret, other := filepath.Join(dir, "vault", "secret.key"), filepath.Join(dir, "elsewhere")
	for _, d := range []string{filepath.Dir(secret), other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(secret, []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	hard := filepath.Join(other, "innocent")
	if err := os.Link(secret, hard); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(secret, &st); err != nil {
		t.Fatal(err)
	}
	config := `{"files": ["` + filepath.Dir(secret) + `/*.key"]}`
	const reg = unix.S_IFREG | 0o640
	regular := &unix.Stat_t{Dev: 1, Ino: 99, Nlink: 1, Mode: reg}
	for _, c := range []struct {
		name, path, by string
		ev             *sdk.Event
	}{
		{"symlink to /etc", "/etc/shadow", "kernel_path", opened(cat.Open("/tmp/etc-link/shadow", 0, 3), "/etc/shadow", regular)},
		{"dot-dot", "/etc/shadow", "kernel_path", opened(cat.Open("/etc/../etc/shadow", 0, 3), "/etc/shadow", regular)},
		{"symlink to the file", "/etc/shadow", "kernel_path", opened(cat.Open("/tmp/s", 0, 3), "/etc/shadow", regular)},
		{"hard link elsewhere", secret, "file_identity", opened(cat.Open(hard, 0, 3), hard, &st)},
		{"failed: the name passed, made absolute", "/etc/shadow", "path", func() *sdk.Event {
			ev := cat.Open("/etc/shadow", 0, -13)
			ev.Open.Path = "/etc//shadow" // the decoder cleans Resolved lexically
			return ev
		}()},
		{"unrelated file", "", "", opened(cat.Open("/tmp/x", 0, 3), "/tmp/x", regular)},
		{"same inode, other device", "", "", opened(cat.Open(hard, 0, 3), hard, &unix.Stat_t{Dev: st.Dev + 1, Ino: st.Ino, Nlink: 2, Mode: reg})},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := findings(t, config, c.ev)
			if c.path == "" {
				if len(fs) != 0 {
					t.Fatalf("want nothing, got %+v", fs)
				}
				return
			}
			if len(fs) != 1 || fs[0].Fields["path"] != c.path || fs[0].Fields["matched_by"] != c.by {
				t.Fatalf("want one finding on %s by %s, got %+v", c.path, c.by, fs)
			}
		})
	}
}

// A watched file replaced by rename (as passwd rewrites /etc/shadow) has a
// new inode: the detector learns it from the next open by name, and
// forgets the old one, whose number the filesystem may give to any file.
func TestReplacedFileIsLearnt(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.key")
	mustWrite := func(p string) unix.Stat_t {
		t.Helper()
		if err := os.WriteFile(p, []byte("k"), 0o600); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	before := mustWrite(secret)
	h, err := sdktest.Start(t, credaccess.New(), `{"files": ["`+secret+`"]}`)
	if err != nil {
		t.Fatal(err)
	}
	after := mustWrite(secret + ".new")
	if err := os.Rename(secret+".new", secret); err != nil {
		t.Fatal(err)
	}
	before.Nlink, after.Nlink = 2, 2 // as seen through a hard link
	hardOld := opened(cat.Open("/tmp/old-link", 0, 3), "/tmp/old-link", &before)
	hardNew := opened(cat.Open("/tmp/new-link", 0, 3), "/tmp/new-link", &after)
	byName := opened(cat.Open(secret, 0, 3), secret, &after)

	for _, step := range []struct {
		ev   *sdk.Event
		want string // matched_by, "" for no finding
	}{
		{hardNew, ""},              // not known yet: stat'ed before the rename
		{hardOld, "file_identity"}, // the file stat'ed at Init
		{byName, "kernel_path"},    // the new file, opened by name: learnt
		{hardNew, "file_identity"}, // now known under any name
		{hardOld, ""},              // forgotten
	} {
		fs, err := h.Send(step.ev)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if len(fs) == 1 {
			got, _ = fs[0].Fields["matched_by"].(string)
		}
		if got != step.want || len(fs) > 1 {
			t.Fatalf("%s: matched by %q (%d findings), want %q", step.ev.Open.Path, got, len(fs), step.want)
		}
	}
}

// Links to credential files and files put over them.
func TestLinks(t *testing.T) {
	admin := sdktest.Proc{PID: 10, Exe: "/usr/bin/bash", Ancestors: []string{"/usr/sbin/sshd"}}
	ln := admin.Child(11, "/usr/bin/ln", "ln", "/etc/shadow", "/tmp/s")
	py := admin.Child(12, "/usr/bin/python3.12", "python3")
	passwd := admin.Child(13, "/usr/bin/passwd", "passwd")
	for _, c := range []struct {
		name string
		ev   *sdk.Event
		want []string
	}{
		{"hard link to /etc/shadow", ln.FileTo("link", "/etc/shadow", "/tmp/s", 0), []string{"credential-file-link"}},
		{"symlink to a private key", py.FileTo("symlink", "/root/.ssh/id_ed25519", "/var/www/k", 0), []string{"credential-file-link"}},
		{"relative symlink to sudoers", py.FileTo("symlink", "../sudoers", "/etc/x/s", 0), []string{"credential-file-link"}},
		{"a file renamed over sudoers", py.FileTo("rename", "/tmp/s", "/etc/sudoers", 0), []string{"credential-file-replaced"}},
		{"a symlink over a user's key", py.FileTo("symlink", "/tmp/k", "/home/u/.ssh/id_rsa", 0), []string{"credential-file-replaced"}},
		{"passwd replaces /etc/shadow", passwd.FileTo("rename", "/etc/shadow+", "/etc/shadow", 0), nil},
		{"a public key linked", py.FileTo("link", "/root/.ssh/id_rsa.pub", "/tmp/k.pub", 0), nil},
		{"shadow renamed away is not a link", py.FileTo("rename", "/etc/shadow", "/tmp/s", 0), nil},
		{"a refused link", ln.FileTo("link", "/etc/shadow", "/tmp/s", -1), nil},
		{"an unlink", py.File("unlink", "/etc/shadow", 0), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := sdktest.Rules(sdktest.Run(t, credaccess.New(), "", c.ev))
			if len(got) != len(c.want) || len(got) > 0 && got[0] != c.want[0] {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}
