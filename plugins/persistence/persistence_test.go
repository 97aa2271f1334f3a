package persistence_test

import (
	"testing"

	"github.com/bulkhead-sec/bulkhead/plugins/persistence"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
	"golang.org/x/sys/unix"
)

var (
	shell = sdktest.Proc{PID: 10, Exe: "/usr/bin/bash", Ancestors: []string{"/usr/sbin/sshd"}}
	echo  = shell.Child(11, "/usr/bin/tee", "tee", "-a")
	dpkg  = sdktest.Proc{PID: 20, Exe: "/usr/bin/dpkg", Ancestors: []string{"/usr/bin/apt-get"}}
)

func TestPlaces(t *testing.T) {
	const w = unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC
	for _, c := range []struct {
		name      string
		ev        *sdk.Event
		rule, tec string
	}{
		{"ld.so.preload", echo.Open("/etc/ld.so.preload", unix.O_WRONLY|unix.O_APPEND, 3), "ld-preload-write", "T1574.006"},
		{"cron.d", echo.Open("/etc/cron.d/update", w, 3), "cron-write", "T1053.003"},
		{"user crontab", echo.Open("/var/spool/cron/crontabs/root", w, 3), "cron-write", "T1053.003"},
		{"system unit", echo.Open("/etc/systemd/system/backdoor.service", w, 3), "systemd-unit-write", "T1543.002"},
		{"user unit", echo.Open("/home/ann/.config/systemd/user/x.service", w, 3), "systemd-unit-write", "T1543.002"},
		{"bashrc", echo.Open("/home/ann/.bashrc", unix.O_RDWR, 3), "shell-rc-write", "T1546.004"},
		{"profile.d", echo.Open("/etc/profile.d/zz.sh", w, 3), "shell-rc-write", "T1546.004"},
		{"reading is fine", echo.Open("/root/.bashrc", unix.O_RDONLY, 3), "", ""},
		{"refused write", echo.Open("/etc/crontab", w, -13), "", ""},
		{"elsewhere", echo.Open("/etc/hostname", w, 3), "", ""},
		{"dpkg installs units", dpkg.Open("/usr/lib/systemd/system/cron.service", w, 3), "", ""},
		{"maintainer scripts", dpkg.Child(21, "/usr/bin/perl", "deb-systemd-helper").Open("/etc/systemd/system/multi-user.target.wants/cron.service", w, 3), "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := sdktest.Run(t, persistence.New(), "", c.ev) // filtered as the monitor does
			if c.rule == "" {
				if len(fs) != 0 {
					t.Fatalf("want nothing, got %+v", fs)
				}
				return
			}
			if len(fs) != 1 || fs[0].Rule != c.rule || fs[0].Techniques[0] != c.tec {
				t.Fatalf("got %+v", fs)
			}
		})
	}
}

func TestOverTheWire(t *testing.T) {
	h, err := sdktest.Start(t, persistence.New(), `{"allow": [{"exe": "/usr/local/bin/config-mgmt"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	mgmt := sdktest.Proc{PID: 30, Exe: "/usr/local/bin/config-mgmt"}
	fs, err := h.Send(mgmt.Open("/etc/crontab", unix.O_WRONLY, 3), echo.Open("/etc/crontab", unix.O_WRONLY, 3))
	if err != nil || len(fs) != 1 || fs[0].Fields["path"] != "/etc/crontab" || fs[0].Events[0].PID != 11 {
		t.Fatalf("%+v %v", fs, err)
	}
}

// The file the kernel opened decides, whatever string was passed: a write
// through a symlinked directory, a "..", or a hard link's other name.
func TestOpenedFileDecides(t *testing.T) {
	const w = unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC
	const reg = unix.S_IFREG | 0o644
	opened := func(ev *sdk.Event, kernelPath string, st unix.Stat_t) *sdk.Event {
		ev.Open.FilePath = kernelPath
		ev.Open.Dev, ev.Open.Ino, ev.Open.Nlink, ev.Open.FileMode = st.Dev, st.Ino, uint32(st.Nlink), st.Mode
		return ev
	}
	fresh := unix.Stat_t{Dev: 1, Ino: 12345, Nlink: 1, Mode: reg}
	cases := []struct {
		name, path, by string
		ev             *sdk.Event
	}{
		{"symlink to cron.d", "/etc/cron.d/evil", "kernel_path", opened(echo.Open("/tmp/cron-link/evil", w, 3), "/etc/cron.d/evil", fresh)},
		{"dot-dot", "/etc/cron.d/evil", "kernel_path", opened(echo.Open("/etc/cron.d/../cron.d/evil", w, 3), "/etc/cron.d/evil", fresh)},
		{"unwatched", "", "", opened(echo.Open("/tmp/x", w, 3), "/tmp/x", fresh)},
	}
	// A hard link to a watched file that exists here.
	for _, f := range []string{"/etc/crontab", "/etc/cron.d/e2scrub_all", "/etc/profile", "/etc/bash.bashrc"} {
		var st unix.Stat_t
		if unix.Stat(f, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
			st.Nlink = 2
			cases = append(cases, struct {
				name, path, by string
				ev             *sdk.Event
			}{"hard link to " + f, f, "file_identity", opened(echo.Open("/tmp/hl", unix.O_WRONLY|unix.O_APPEND, 3), "/tmp/hl", st)})
			break
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := sdktest.Run(t, persistence.New(), "", c.ev)
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

// Files put into watched places by rename, link and symlink.
func TestMovedIntoPlace(t *testing.T) {
	admin := sdktest.Proc{PID: 10, Exe: "/usr/bin/bash", Ancestors: []string{"/usr/sbin/sshd"}}
	py := admin.Child(11, "/usr/bin/python3.12", "python3", "x.py")
	mv := admin.Child(12, "/usr/bin/mv", "mv", "u.service", "/etc/systemd/system/")
	ln := admin.Child(13, "/usr/bin/ln", "ln", "-s", "/tmp/x", "/usr/local/bin/ls")
	dpkg := sdktest.Proc{PID: 20, Exe: "/usr/bin/dpkg", Ancestors: []string{"/usr/bin/apt-get"}}
	ldconfig := sdktest.Proc{PID: 30, Exe: "/usr/sbin/ldconfig.real"}
	systemctl := admin.Child(14, "/usr/bin/systemctl", "systemctl", "enable", "x")
	for _, c := range []struct {
		name string
		ev   *sdk.Event
		want []string
	}{
		{"a program renames a unit into place", py.FileTo("rename", "/etc/x.tmp", "/etc/systemd/system/x.service", 0), []string{"systemd-unit-write"}},
		{"mv a unit into place", mv.FileTo("rename", "/root/u.service", "/etc/systemd/system/u.service", 0), []string{"systemd-unit-write"}},
		{"a cron file linked into place", py.FileTo("link", "/tmp/c", "/etc/cron.d/x", 0), []string{"cron-write"}},
		{"ld.so.preload as a symlink", py.FileTo("symlink", "/tmp/p", "/etc/ld.so.preload", 0), []string{"ld-preload-write"}},
		{"a binary replaced in /usr/bin", py.FileTo("rename", "/usr/bin/.ls.new", "/usr/bin/ls", 0), []string{"system-binary-write"}},
		{"ln -s into /usr/local/bin", ln.FileTo("symlink", "/tmp/x", "/usr/local/bin/ls", 0), []string{"system-binary-write"}},
		{"a library renamed into /usr/lib", py.FileTo("rename", "/tmp/l.so", "/usr/lib/x86_64-linux-gnu/libz.so.1", 0), []string{"system-library-write"}},
		{"a sudoers drop-in renamed into place", py.FileTo("rename", "/tmp/s", "/etc/sudoers.d/x", 0), []string{"sudoers-write"}},
		{"authorized_keys replaced", py.FileTo("rename", "/home/u/.ssh/k", "/home/u/.ssh/authorized_keys", 0), []string{"authorized-keys-write"}},
		{"a failed rename", py.FileTo("rename", "/tmp/s", "/etc/sudoers.d/x", -13), nil},
		{"a rename elsewhere", py.FileTo("rename", "/tmp/s", "/srv/x", 0), nil},
		{"renamed out of a watched place", py.FileTo("rename", "/etc/cron.d/x", "/tmp/x", 0), nil},
		{"a unit deleted (not a move)", py.File("unlink", "/etc/systemd/system/x.service", 0), nil},
		{"dpkg renames a binary into place", dpkg.FileTo("rename", "/usr/bin/ls.dpkg-new", "/usr/bin/ls", 0), nil},
		{"ldconfig links a library", ldconfig.FileTo("symlink", "libz.so.1.3", "/usr/lib/x86_64-linux-gnu/libz.so.1", 0), nil},
		{"systemctl enable links a unit", systemctl.FileTo("symlink", "/usr/lib/systemd/system/x.service", "/etc/systemd/system/multi-user.target.wants/x.service", 0), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := sdktest.Rules(sdktest.Run(t, persistence.New(), "", c.ev))
			if len(got) != len(c.want) || len(got) > 0 && got[0] != c.want[0] {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}
