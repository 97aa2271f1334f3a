package privesc_test

import (
	"testing"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/privesc"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
)

// setuid bits set by chmod, userfaultfd from unprivileged users, and
// namespace calls from inside containers.
func TestRareKinds(t *testing.T) {
	admin := sdktest.Proc{PID: 10, Exe: "/usr/bin/bash", Ancestors: []string{"/usr/sbin/sshd"}}
	py := admin.Child(11, "/usr/bin/python3.12", "python3")
	dpkg := sdktest.Proc{PID: 20, Exe: "/usr/bin/dpkg", Ancestors: []string{"/usr/bin/apt-get"}}
	tmpfiles := sdktest.Proc{PID: 21, Exe: "/usr/bin/systemd-tmpfiles"}
	nobody := sdktest.Proc{PID: 30, Exe: "/usr/bin/python3.12", UID: 65534, EUID: 65534}
	qemu := sdktest.Proc{PID: 31, Exe: "/usr/bin/qemu-system-x86_64", UID: 64055, EUID: 64055}
	inContainer := func(p sdktest.Proc, ev *sdk.Event) *sdk.Event {
		ev.Process.ContainerID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
		return ev
	}
	unshare := admin.Child(40, "/usr/bin/unshare", "unshare", "-m")
	runc := sdktest.Proc{PID: 50, Exe: "/usr/bin/runc", Comm: "runc:[2:INIT]"}
	setgidDir := py.FileFd("chmod", "fchmod", "/srv/shared", 0)
	setgidDir.File.Mode, setgidDir.File.FileMode = 0o2775, 0o040775
	for _, c := range []struct {
		name string
		ev   *sdk.Event
		want string
		sev  sdk.Severity
	}{
		{"chmod 4755", py.FileMode("chmod", "/tmp/sh", 0o4755, 0), "setuid-bit-set", sdk.SeverityHigh},
		{"chmod 2755 on a file", py.FileMode("chmod", "/tmp/sh", 0o2755, 0), "setuid-bit-set", sdk.SeverityMedium},
		{"chmod 755", py.FileMode("chmod", "/tmp/sh", 0o755, 0), "", 0},
		{"a refused chmod 4755", py.FileMode("chmod", "/usr/bin/x", 0o4755, -1), "", 0},
		{"mkdir with setgid", py.FileMode("mkdir", "/srv/d", 0o2775, 0), "", 0},
		{"a setgid directory by fchmod", setgidDir, "", 0},
		{"dpkg installs sudo", dpkg.FileMode("chmod", "/usr/bin/sudo", 0o4755, 0), "", 0},
		{"systemd-tmpfiles", tmpfiles.FileMode("chmod", "/var/log/journal", 0o2755, 0), "", 0},
		{"userfaultfd by nobody", nobody.Sys("userfaultfd", 0, [3]uint64{0x80800}, "", 3), "userfaultfd-unprivileged", sdk.SeverityHigh},
		{"userfaultfd by nobody, refused", nobody.Sys("userfaultfd", 0, [3]uint64{0}, "", -1), "userfaultfd-unprivileged", sdk.SeverityMedium},
		{"userfaultfd user-mode only", nobody.Sys("userfaultfd", 0, [3]uint64{1}, "", 3), "", 0},
		{"userfaultfd by root", py.Sys("userfaultfd", 0, [3]uint64{0}, "", 3), "", 0},
		{"qemu's postcopy migration", qemu.Sys("userfaultfd", 0, [3]uint64{0}, "", 3), "", 0},
		{"setns from a container", inContainer(py, py.Setns("mnt:[4026531841]", 0, 0)), "container-escape", sdk.SeverityCritical},
		{"unshare from a container", inContainer(unshare, unshare.Namespace("unshare", 0x20000, 0)), "container-escape", sdk.SeverityHigh},
		{"a disk mounted from a container", inContainer(py, py.Mount("/dev/sda1", "/mnt", "ext4", 0, 0)), "container-escape", sdk.SeverityCritical},
		{"cgroup mounted from a container", inContainer(py, py.Mount("none", "/tmp/cg", "cgroup", 0, 0)), "container-escape", sdk.SeverityCritical},
		{"tmpfs mounted from a container", inContainer(py, py.Mount("none", "/tmp/m", "tmpfs", 0, 0)), "container-escape", sdk.SeverityHigh},
		{"a refused mount from a container", inContainer(py, py.Mount("/dev/sda1", "/mnt", "ext4", 0, -1)), "container-escape", sdk.SeverityMedium},
		{"umount from a container", inContainer(py, py.Namespace("umount2", 0, 0)), "", 0},
		{"runc sets the container up", inContainer(runc, runc.Mount("proc", "/proc", "proc", 0, 0)), "", 0},
		{"unshare on the host", unshare.Namespace("unshare", 0x20000, 0), "", 0},
		{"mount on the host", py.Mount("/dev/sdb1", "/mnt", "ext4", 0, 0), "", 0},
		{"a new file is not setuid", py.File(event.FileUnlink, "/tmp/x", 0), "", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := sdktest.Run(t, privesc.New(), "", c.ev)
			if c.want == "" {
				if len(fs) != 0 {
					t.Fatalf("want nothing, got %+v", fs)
				}
				return
			}
			if len(fs) != 1 || fs[0].Rule != c.want || fs[0].Severity != c.sev {
				t.Fatalf("got %+v, want %s (%v)", fs, c.want, c.sev)
			}
			t.Log(fs[0].Summary)
		})
	}
}
