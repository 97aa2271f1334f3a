package rules_test

import (
	"slices"
	"testing"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/rules"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
	"golang.org/x/sys/unix"
)

// The default rules on issue 16's kinds (file, signal, socket, sys and
// exec's environment) fire on what they describe and stay quiet on its
// everyday neighbours: log rotation, a shell saving its history, the
// system's libraries preloaded, DHCP's packet socket, systemd stopping a
// service, a thread naming itself.
func TestKindRules(t *testing.T) {
	admin := sdktest.Proc{PID: 100, Exe: "/usr/bin/bash", Ancestors: []string{"/usr/sbin/sshd", "/usr/lib/systemd/systemd"}}
	py := admin.Child(110, "/usr/bin/python3.12", "python3", "x.py")
	rm := admin.Child(111, "/usr/bin/rm", "rm", "/var/log/auth.log")
	trunc := admin.Child(112, "/usr/bin/truncate", "truncate", "-s", "0", "/var/log/syslog")
	logrotate := sdktest.Proc{PID: 120, Exe: "/usr/sbin/logrotate", Args: []string{"logrotate", "/etc/logrotate.conf"}}
	journald := sdktest.Proc{PID: 121, Exe: "/usr/lib/systemd/systemd-journald", Comm: "systemd-journal"}
	bash := admin.Child(130, "/usr/bin/bash", "bash")
	zsh := admin.Child(131, "/usr/bin/zsh", "zsh")
	ln := admin.Child(132, "/usr/bin/ln", "ln", "-sf", "/dev/null", "/root/.bash_history")
	systemd := sdktest.Proc{PID: 1, Exe: "/usr/lib/systemd/systemd", Comm: "systemd"}
	dhclient := sdktest.Proc{PID: 140, Exe: "/usr/sbin/dhclient", Args: []string{"dhclient", "eth0"}}
	java := admin.Child(150, "/usr/lib/jvm/bin/java", "java", "-jar", "app.jar")
	goTest := admin.Child(160, "/usr/local/go/bin/go", "go", "test").Child(161, "/tmp/go-build1/b001/test.test", "test.test")
	sh := func(argv ...string) sdktest.Proc { return admin.Child(170, "/usr/bin/dash", argv...) }

	tmpfsFd := trunc.FileFd(event.FileTruncate, "ftruncate", "/var/log/syslog", 0)
	for _, c := range []struct {
		name string
		ev   *sdk.Event
		want []string
	}{
		// log files
		{"rm a log", rm.File(event.FileUnlink, "/var/log/auth.log", 0), []string{"log_file_removed"}},
		{"a program deletes a log", py.File(event.FileUnlink, "/var/log/app/x.log", 0), []string{"log_file_removed"}},
		{"a log moved out of /var/log", py.FileTo(event.FileRename, "/var/log/auth.log", "/tmp/a", 0), []string{"log_file_removed"}},
		{"a log replaced by a symlink to /dev/null", py.FileTo(event.FileSymlink, "/dev/null", "/var/log/wtmp", 0), []string{"log_file_removed"}},
		{"a refused unlink of a log", py.File(event.FileUnlink, "/var/log/auth.log", -13), nil},
		{"logrotate deletes an old log", logrotate.File(event.FileUnlink, "/var/log/syslog.7.gz", 0), nil},
		{"an application rotates its log within /var/log", java.FileTo(event.FileRename, "/var/log/app/app.log", "/var/log/app/app.log.1", 0), nil},
		{"journald deletes an archived journal", journald.File(event.FileUnlink, "/var/log/journal/x/system@1.journal", 0), nil},
		{"truncate(2) of a log to 0", py.File(event.FileTruncate, "/var/log/syslog", 0), []string{"log_file_cleared"}},
		{"ftruncate of a log (truncate -s 0)", tmpfsFd, []string{"log_file_cleared"}},
		{"a log cut to a length", func() *sdk.Event {
			e := py.File(event.FileTruncate, "/var/log/syslog", 0)
			e.File.Length = 10
			return e
		}(), nil},
		// history
		{"a program deletes the history", py.File(event.FileUnlink, "/root/.bash_history", 0), []string{"shell_history_removed"}},
		{"history made a symlink", py.FileTo(event.FileSymlink, "/dev/null", "/home/u/.zsh_history", 0), []string{"shell_history_removed"}},
		{"ln -sf renames its link over the history", ln.FileTo(event.FileRename, "/root/.bash_history.tmp", "/root/.bash_history", 0), []string{"shell_history_removed"}},
		{"bash saves its history through a temporary file", bash.FileTo(event.FileRename, "/root/.bash_history-01234.tmp", "/root/.bash_history", 0), nil},
		{"zsh saves its history by copy", zsh.FileTo(event.FileRename, "/home/u/.zsh_history.new", "/home/u/.zsh_history", 0), nil},
		{"a project's .history directory file", py.File(event.FileUnlink, "/home/u/src/.history/x", 0), nil},
		{"HISTFILE=/dev/null bash", bash.ExecWith("", "HISTFILE=/dev/null"), []string{"history_disabled_env"}},
		{"HISTSIZE=0 sh", sh("sh", "-c", "true").ExecWith("", "HISTSIZE=0"), []string{"history_disabled_env"}},
		{"HISTSIZE=1000", bash.ExecWith("", "HISTSIZE=1000"), nil},
		{"HISTFILE=/dev/null on a program that is no shell", py.ExecWith("", "HISTFILE=/dev/null"), nil},
		// loader and proxies
		{"LD_PRELOAD from /tmp", py.ExecWith("", "LD_PRELOAD=/tmp/x/libhook.so"), []string{"loader_env_hijack"}},
		{"LD_AUDIT from /dev/shm", py.ExecWith("", "LD_AUDIT=/dev/shm/a.so"), []string{"loader_env_hijack"}},
		{"LD_PRELOAD from a hidden directory", py.ExecWith("", "LD_PRELOAD=/root/.x/l.so"), []string{"loader_env_hijack"}},
		{"LD_PRELOAD from a home", py.ExecWith("", "LD_PRELOAD=/home/u/l.so"), []string{"loader_env_hijack"}},
		{"LD_LIBRARY_PATH=/var/tmp/x first", py.ExecWith("", "LD_LIBRARY_PATH=/var/tmp/x:/opt/app/lib"), []string{"loader_env_hijack"}},
		{"LD_LIBRARY_PATH ending in /tmp", py.ExecWith("", "LD_LIBRARY_PATH=/opt/app/lib:/tmp"), []string{"loader_env_hijack"}},
		{"LD_LIBRARY_PATH=/dev/shm", py.ExecWith("", "LD_LIBRARY_PATH=/dev/shm"), []string{"loader_env_hijack"}},
		{"jemalloc preloaded from /usr/lib", py.ExecWith("", "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"), nil},
		{"fakeroot's bare library names", py.ExecWith("", "LD_PRELOAD=libfakeroot-sysv.so", "LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/libfakeroot"), nil},
		{"eatmydata, two libraries", py.ExecWith("", "LD_PRELOAD=libeatmydata.so /usr/lib/libfoo.so"), nil},
		{"a /tmp library second", py.ExecWith("", "LD_PRELOAD=libc.so.6 /tmp/x.so"), []string{"loader_env_hijack"}},
		{"a /dev/shm directory in the middle", py.ExecWith("", "LD_LIBRARY_PATH=/opt/a:/dev/shm/l:/usr/lib"), []string{"loader_env_hijack"}},
		{"out of /usr/lib by ..", py.ExecWith("", "LD_PRELOAD=/usr/lib/../../home/u/x.so"), []string{"loader_env_hijack"}},
		{"an application's own LD_LIBRARY_PATH", java.ExecWith("", "LD_LIBRARY_PATH=/opt/app/lib:/usr/lib/jvm/lib"), nil},
		{"https_proxy injected", py.ExecWith("", "https_proxy=http://10.213.0.1:3128"), []string{"proxy_env_injected"}},
		{"ALL_PROXY injected", py.ExecWith("", "ALL_PROXY=socks5://203.0.113.9:1080"), []string{"proxy_env_injected"}},
		{"an empty proxy", py.ExecWith("", "http_proxy="), nil},
		{"no_proxy alone", py.ExecWith("", "no_proxy=localhost"), nil},
		// prctl
		{"renamed kworker/0:1", py.Sys("prctl", 15, [3]uint64{}, "kworker/0:1", 0), []string{"masquerading_rename"}},
		{"renamed sshd", py.Sys("prctl", 15, [3]uint64{}, "sshd", 0), []string{"masquerading_rename"}},
		{"renamed [kthreadd]", py.Sys("prctl", 15, [3]uint64{}, "[kthreadd]", 0), []string{"masquerading_rename"}},
		{"a thread named worker-1", java.Sys("prctl", 15, [3]uint64{}, "worker-1", 0), nil},
		{"systemd names its helper (sd-pam)", systemd.Sys("prctl", 15, [3]uint64{}, "(sd-pam)", 0), nil},
		{"journald names itself", journald.Sys("prctl", 15, [3]uint64{}, "systemd-journal", 0), nil},
		{"sshd names itself sshd", sdktest.Proc{PID: 180, Exe: "/usr/sbin/sshd"}.Sys("prctl", 15, [3]uint64{}, "sshd", 0), nil},
		// sockets
		{"a packet socket", py.SocketNew(unix.AF_PACKET, unix.SOCK_RAW, 0x300, 3), []string{"raw_socket_opened"}},
		{"a raw IP socket", py.SocketNew(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP, 3), []string{"raw_socket_opened"}},
		{"ip's netlink socket (SOCK_RAW)", admin.Child(141, "/usr/sbin/ip", "ip", "link").SocketNew(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0, 3), nil},
		{"useradd's audit netlink socket", admin.Child(142, "/usr/sbin/useradd", "useradd", "x").SocketNew(unix.AF_NETLINK, unix.SOCK_RAW, 9, 3), nil},
		{"a raw IPv6 socket", py.SocketNew(unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_ICMPV6, 3), []string{"raw_socket_opened"}},
		{"dhclient's packet socket", dhclient.SocketNew(unix.AF_PACKET, unix.SOCK_RAW, 0x300, 3), nil},
		{"a refused raw socket", py.SocketNew(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP, -1), nil},
		{"a bind", py.Bind("bind", "0.0.0.0", 8000, 0), nil},
		// signals
		{"kill -TERM falco", admin.Child(190, "/usr/bin/kill", "kill").Signal(500, "falco", 15, 0), []string{"security_agent_killed"}},
		{"SIGSTOP to auditd", py.Signal(501, "auditd", 19, 0), []string{"security_agent_killed"}},
		{"SIGKILL to bulkhead", py.Signal(502, "bulkhead", 9, 0), []string{"security_agent_killed"}},
		{"SIGHUP to rsyslogd (reopen logs)", logrotate.Signal(503, "rsyslogd", 1, 0), nil},
		{"systemd stops auditd", systemd.Signal(501, "auditd", 15, 0), nil},
		{"a test stops the monitor it started", goTest.Signal(504, "bulkhead", 9, 0), nil},
		{"SIGTERM to nginx", py.Signal(505, "nginx", 15, 0), nil},
		{"SIGINT to a monitor run by hand", bash.Signal(506, "bulkhead", 2, 0), nil},
		{"apt-key makes its /tmp directory private (chmod 700) under apt-get",
			sdktest.Proc{PID: 200, Exe: "/usr/bin/apt-get"}.Child(201, "/usr/bin/dash", "sh", "/usr/bin/apt-key").Child(202, "/usr/bin/chmod", "chmod", "700", "/tmp/apt-key-gpghome.X").Exec(), nil},
		// ptrace
		{"PTRACE_TRACEME is not an attach", py.Ptrace(unix.PTRACE_TRACEME, 0, 0), nil},
		{"PTRACE_ATTACH", py.Ptrace(unix.PTRACE_ATTACH, 42, 0), []string{"ptrace_attach"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := sdktest.Rules(sdktest.Run(t, rules.New(), "", c.ev))
			if !slices.Equal(got, c.want) {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}
