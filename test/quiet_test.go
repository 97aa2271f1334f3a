package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/bulkhead-sec/bulkhead/test/testenv"
)

// The shipped configuration (configs/detectors.yaml: every library
// detector and the rules detector with its default rules, default
// allowlists) stays quiet on an administrator's everyday work: a shell
// script that asks apt and dpkg about a package, builds, tests and runs a
// Go program, asks git, and runs test/progs/threadcreds (credentials
// changed per thread and per group). The script's last command reads
// /etc/shadow on purpose: the monitor saw the work, and that read is all
// it reports of it.
func TestShippedConfigQuietOnEverydayWork(t *testing.T) {
	testenv.RequireBPF(t)
	shipped, err := os.ReadFile("../configs/detectors.yaml")
	if err != nil {
		t.Fatal(err)
	}
	plugin := regexp.MustCompile(`(?m)^(\s*plugin:\s*)\.\./bin/bulkhead-plugin-([a-z]+)\s*$`)
	n := 0
	cfg := plugin.ReplaceAllStringFunc(string(shipped), func(line string) string {
		m := plugin.FindStringSubmatch(line)
		n++
		return m[1] + testenv.Plugin(t, m[2])
	})
	if n < 9 || !strings.Contains(cfg, "bulkhead-plugin-rules") {
		t.Fatalf("configs/detectors.yaml names %d plugins, rules among them? %v", n, strings.Contains(cfg, "rules"))
	}
	threadcreds := testenv.Build(t, testenv.Module+"/test/progs/threadcreds")

	// Where an administrator keeps tools: not in /tmp or a hidden or
	// world-writable directory (a program run from one is what tmpexec
	// and the rules report, on purpose), wherever the repository is (CI
	// may clone it under /tmp).
	dir, err := os.MkdirTemp("/var/lib", "bulkhead-quiet-")
	if err != nil {
		t.Skipf("a directory for the workload outside /tmp: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	built := threadcreds
	threadcreds = filepath.Join(dir, "threadcreds")
	if raw, err := os.ReadFile(built); err != nil || os.WriteFile(threadcreds, raw, 0o755) != nil {
		t.Fatalf("copy %s: %v", built, err)
	}
	for name, body := range map[string]string{
		"go.mod":       "module quiet\n\ngo 1.22\n",
		"main.go":      "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n",
		"main_test.go": "package main\n\nimport \"testing\"\n\nfunc TestMain(t *testing.T) { main() }\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := filepath.Join(dir, "maintenance.sh")
	os.WriteFile(script, []byte(fmt.Sprintf(`#!/bin/sh
cd %q || exit 1
apt-get -s install --reinstall less >/dev/null 2>&1
dpkg-query -W less >/dev/null 2>&1
go build -o hello . && ./hello >/dev/null || exit 1
go vet . && go test -count=1 . >/dev/null || exit 1
git -C %q log -1 --oneline >/dev/null 2>&1
%q >/dev/null || exit 1
id >/dev/null; uname -a >/dev/null; ls /etc >/dev/null
cat /etc/shadow >/dev/null
`, dir, repo, threadcreds)), 0o755)

	m := startMonitor(t, "--config", writeConfig(t, cfg))
	cmd := exec.Command(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	pid := float64(cmd.Process.Pid)
	events := m.stop(t)

	var got []string
	for _, ev := range events {
		if ev["type"] != "finding" {
			continue
		}
		e := firstEvent(ev)
		if e == nil {
			continue
		}
		ours := e["pid"] == pid
		proc, _ := e["process"].(map[string]any)
		ancestors, _ := proc["ancestors"].([]any)
		for _, a := range ancestors {
			if a, _ := a.(map[string]any); a["pid"] == pid {
				ours = true
			}
		}
		if ours {
			got = append(got, fmt.Sprintf("%s/%s by %v: %v", ev["detector"], ev["rule"], proc["exe"], ev["summary"]))
		}
	}
	sort.Strings(got)
	want := []string{"credaccess/password-hash-access by /usr/bin/cat", "rules/credential_file_read by /usr/bin/cat"}
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = strings.HasPrefix(got[i], want[i]+":")
	}
	if !ok {
		t.Errorf("findings from the script:\n  %s\nwant only:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
