package rules_test

import (
	"slices"
	"testing"

	"github.com/bulkhead-sec/bulkhead/plugins/rules"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
	"golang.org/x/sys/unix"
)

// The rules added for the ATT&CK corpus (test/attack, which shows each one
// firing on real behaviour) stay quiet on the legitimate neighbours of what
// they look for: a package manager's own writes, Python's byte-code cache,
// the Go toolchain's build directories, a shell reading its own history,
// the cloud tools reading their credentials, a script from a non-writable
// directory, a relative ./script the interpreter names (caught).
func TestCorpusRulesNeighbours(t *testing.T) {
	w := uint64(unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC)
	app := uint64(unix.O_WRONLY | unix.O_APPEND | unix.O_CREAT)
	admin := sdktest.Proc{PID: 100, Exe: "/usr/bin/bash", Ancestors: []string{"/usr/sbin/sshd", "/usr/lib/systemd/systemd"}}
	apt := admin.Child(110, "/usr/bin/apt-get", "apt-get", "install", "-y", "bash")
	dpkg := apt.Child(111, "/usr/bin/dpkg", "dpkg", "--unpack")
	dpkgByHand := admin.Child(112, "/usr/bin/dpkg", "dpkg", "-i", "x.deb")
	postinst := dpkg.Child(113, "/usr/bin/dash", "/bin/sh", "/var/lib/dpkg/info/x.postinst", "configure")
	py := admin.Child(120, "/usr/bin/python3.11", "python3", "app.py")
	goBuild := admin.Child(130, "/usr/local/go/bin/go", "go", "test", "./...")
	testBin := goBuild.Child(131, "/tmp/go-build123/b001/x.test", "x.test")
	aws := admin.Child(140, "/usr/local/bin/aws", "aws", "s3", "ls")
	bash := admin.Child(150, "/usr/bin/bash", "bash")
	cat := admin.Child(160, "/usr/bin/cat", "cat")
	shScript := admin.Child(170, "/usr/bin/dash", "sh", "/tmp/x.sh")
	shebang := sdktest.Proc{PID: 171, PPID: 100, Exe: "/usr/bin/dash", Comm: "x.sh", Args: []string{"/bin/sh", "./x.sh"}}
	shSrv := admin.Child(172, "/usr/bin/dash", "sh", "/srv/x.sh")
	shHeredoc := admin.Child(173, "/usr/bin/bash", "bash", "-c", "cat <<EOF")
	ldso := admin.Child(180, "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2", "/tmp/x")
	link := goBuild.Child(190, "/usr/bin/ld", "ld", "-o", "/tmp/x.so")
	nix := admin.Child(200, "/nix/store/abc-bash-5.2/bin/bash", "bash")
	pyenv := sdktest.Proc{PID: 210, Exe: "/root/.pyenv/versions/3.12.1/bin/python3.12", Args: []string{"python3"}}
	dropped := sdktest.Proc{PID: 220, Exe: "/root/.x/agent", Args: []string{"agent"}}
	gdb := admin.Child(230, "/usr/bin/gdb", "gdb", "-p", "1")

	for _, c := range []struct {
		name string
		ev   *sdk.Event
		want []string
	}{
		{"apt's dpkg unpacks a profile.d conffile", dpkg.Open("/etc/profile.d/bash_completion.sh.dpkg-new", w, 3), nil},
		{"dpkg -i by hand writes /usr/bin", dpkgByHand.Open("/usr/bin/x.dpkg-new", w, 3), nil},
		{"dpkg -i by hand writes its status", dpkgByHand.Open("/var/lib/dpkg/status-new", w, 3), nil},
		{"a maintainer script writes /etc/pam.d", postinst.Open("/etc/pam.d/common-auth", w, 3), nil},
		{"apt-get writes its logs", apt.Open("/var/log/apt/eipp.log.xz", w, 3), nil},
		{"python writes a byte-code cache below /usr/lib", py.Open("/usr/lib/python3/dist-packages/x/__pycache__/y.cpython-311.pyc", w, 3), nil},
		{"python writes /usr/lib otherwise", py.Open("/usr/lib/python3/dist-packages/x/evil.py", w, 3), []string{"system_library_write"}},
		{"a Go test binary from /tmp/go-build runs", testBin.Exec(), nil},
		{"the linker writes a .so in /tmp", link.Open("/tmp/x.so", w, 3), nil},
		{"the aws CLI reads its credentials", aws.Open("/root/.aws/credentials", unix.O_RDONLY, 3), nil},
		{"cat reads AWS credentials", cat.Open("/root/.aws/credentials", unix.O_RDONLY, 3), []string{"cloud_credentials_read"}},
		{"bash reads its own history", bash.Open("/root/.bash_history", unix.O_RDONLY, 3), nil},
		{"bash saves history through a temporary file", bash.Open("/root/.bash_history-01234.tmp", w, 3), nil},
		{"cat reads the history", cat.Open("/root/.bash_history", unix.O_RDONLY, 3), []string{"shell_history_read"}},
		{"sh /tmp/x.sh", shScript.Open("/tmp/x.sh", unix.O_RDONLY, 3), []string{"script_from_writable_dir"}},
		{"./x.sh (named by the kernel after the script)", shebang.Open("/dev/shm/x.sh", unix.O_RDONLY, 3), []string{"script_from_writable_dir"}},
		{"sh /srv/x.sh", shSrv.Open("/srv/x.sh", unix.O_RDONLY, 3), nil},
		{"a shell reads a here-document's temporary file", shHeredoc.Open("/tmp/sh-thd.ABCDEF", unix.O_RDONLY, 3), nil},
		{"a script opens a /tmp file it writes", shScript.Open("/tmp/x.sh", app, 3), nil},
		{"ld.so runs /tmp/x", ldso.Open("/tmp/x", unix.O_RDONLY|unix.O_CLOEXEC, 3), []string{"script_from_writable_dir"}},
		{"bash from the Nix store", nix.Exec(), nil},
		{"a pyenv python", pyenv.Exec(), nil},
		{"a binary in a hidden directory of root's home", dropped.Exec(), []string{"exec_from_hidden_dir"}},
		{"gdb opens a process's memory", gdb.Open("/proc/1/mem", unix.O_RDWR, 3), nil},
		{"a process opens its own memory", cat.Open("/proc/self/mem", unix.O_RDONLY, 3), nil},
		{"useradd --help", admin.Child(240, "/usr/sbin/useradd", "useradd", "--help").Exec(), nil},
		{"useradd by apt's maintainer script", postinst.Child(241, "/usr/sbin/useradd", "useradd", "--system", "svc").Exec(), nil},
		{"useradd by an administrator", admin.Child(242, "/usr/sbin/useradd", "useradd", "eve").Exec(), []string{"user_account_tool"}},
		{"chmod 644 in /tmp", admin.Child(250, "/usr/bin/chmod", "chmod", "644", "/tmp/x").Exec(), nil},
		{"chmod 4755", admin.Child(251, "/usr/bin/chmod", "chmod", "4755", "/srv/x").Exec(), []string{"setuid_bit_command"}},
		{"chmod g+s on a directory", admin.Child(252, "/usr/bin/chmod", "chmod", "g+s", "/srv/shared").Exec(), []string{"setuid_bit_command"}},
		{"chmod u+rwx", admin.Child(253, "/usr/bin/chmod", "chmod", "u+rwx", "/srv/x").Exec(), nil},
		{"touch a file", admin.Child(260, "/usr/bin/touch", "touch", "/srv/stamp").Exec(), nil},
		{"rm an old log by logrotate", sdktest.Proc{PID: 270, Exe: "/usr/sbin/logrotate"}.Child(271, "/usr/bin/rm", "rm", "/var/log/x.log.9.gz").Exec(), nil},
		{"python to a private address on port 53", py.Connect("10.0.0.2", 53, 0), nil},
		{"python to loopback", py.Connect("127.0.0.1", 8080, 0), nil},
		{"ssh to port 22", admin.Child(280, "/usr/bin/ssh", "ssh", "host").Connect("192.0.2.1", 22, 0), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := sdktest.Rules(sdktest.Run(t, rules.New(), "", c.ev))
			if !slices.Equal(got, c.want) {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}
