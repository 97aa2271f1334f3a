package enclave

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPolicyAssemblesWithConditionsLast(t *testing.T) {
	f := policy()
	if _, err := f.Policy.Assemble(); err != nil {
		t.Fatal(err)
	}
	groups := f.Policy.Syscalls
	for i, g := range groups[:len(groups)-1] {
		if len(g.NamesWithCondtions) > 0 {
			t.Errorf("group %d has argument conditions but is not last: the groups after it would test the argument as a syscall number", i)
		}
	}
	for _, name := range allowedSyscalls {
		for _, forbidden := range []string{"ptrace", "bpf", "init_module", "finit_module", "kexec_load", "mount", "reboot", "setuid", "unshare", "process_vm_writev"} {
			if name == forbidden {
				t.Errorf("%s is allowed", name)
			}
		}
	}
}

func TestCheckSHA256(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "plugin")
	os.WriteFile(bin, []byte("hello\n"), 0o755)
	const sum = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03" // sha256sum of "hello\n"
	if err := CheckSHA256(bin, sum); err != nil {
		t.Errorf("matching sum: %v", err)
	}
	if err := CheckSHA256(bin, strings.Repeat("ab", 32)); err == nil || !strings.Contains(err.Error(), "SHA-256 is "+sum+", the configuration expects") {
		t.Errorf("other sum: %v", err)
	}
	if err := CheckSHA256(bin, "xyz"); err == nil || !strings.Contains(err.Error(), "not a SHA-256 in hex") {
		t.Errorf("bad sum: %v", err)
	}
}

func TestConfigCheck(t *testing.T) {
	for _, c := range []Config{{MemoryMB: 8}, {OpenFiles: 3}, {Processes: 2}, {CPUSeconds: -1}, {Read: []string{"relative"}}} {
		if c.Check() == nil {
			t.Errorf("%+v passed", c)
		}
	}
	if err := (Config{}).Check(); err != nil {
		t.Error(err)
	}
	if d := (Config{MemoryMB: 64}).WithDefaults(); d.MemoryMB != 64 || d.OpenFiles != Defaults.OpenFiles {
		t.Errorf("defaults: %+v", d)
	}
}

// fakeCgroups lays out a cgroup filesystem in a directory.
func fakeCgroups(t *testing.T, self string, files ...string) cgroupFS {
	root := t.TempDir()
	for _, f := range files {
		os.MkdirAll(filepath.Join(root, filepath.Dir(f)), 0o755)
		os.WriteFile(filepath.Join(root, f), nil, 0o644)
	}
	return cgroupFS{root: root, self: []byte(self)}
}

func TestCgroupV1(t *testing.T) {
	fs := fakeCgroups(t, "8:pids:/\n4:memory:/svc\n2:cpu,cpuacct:/\n0::/\n",
		"memory/cgroup.procs", "memory/svc/cgroup.procs", "pids/cgroup.procs", "cpu/cgroup.procs")
	if k := fs.kind(); k != cgroupV1 {
		t.Fatalf("kind %q", k)
	}
	g, err := fs.newGroup(cgroupV1, "bulkhead-1-x", Config{MemoryMB: 64, Processes: 32, CPUPercent: 50})
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{"memory/svc/bulkhead-1-x/memory.limit_in_bytes": "67108864",
		"pids/bulkhead-1-x/pids.max": "32", "cpu/bulkhead-1-x/cpu.cfs_quota_us": "50000"} {
		if got, _ := os.ReadFile(filepath.Join(fs.root, file)); string(got) != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	os.WriteFile(filepath.Join(g.dirs["memory"], "memory.oom_control"), []byte("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"), 0o644)
	if n := g.oomKills(); n != 3 {
		t.Errorf("oom kills %d", n)
	}
	if len(g.procs()) != 3 {
		t.Errorf("procs %v", g.procs())
	}
}

func TestCgroupV2NeedsDelegatedControllers(t *testing.T) {
	fs := fakeCgroups(t, "0::/bulkhead.service\n", "bulkhead.service/cgroup.subtree_control")
	if k := fs.kind(); k != cgroupNone {
		t.Fatalf("kind %q without delegated controllers", k)
	}
	os.WriteFile(filepath.Join(fs.root, "bulkhead.service/cgroup.subtree_control"), []byte("cpu memory pids\n"), 0o644)
	if k := fs.kind(); k != cgroupV2 {
		t.Fatalf("kind %q", k)
	}
	g, err := fs.newGroup(cgroupV2, "p", Config{MemoryMB: 32, Processes: 16, CPUPercent: 100})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(g.dirs[""], "cpu.max")); string(got) != "100000 100000" {
		t.Errorf("cpu.max %q", got)
	}
	os.WriteFile(filepath.Join(g.dirs[""], "memory.events"), []byte("low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\n"), 0o644)
	if n := g.oomKills(); n != 2 {
		t.Errorf("oom kills %d", n)
	}
}
