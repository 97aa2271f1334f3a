package bpf_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-sec/bulkhead/bpf"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

// An exec reports the selected variables of the new program's environment
// (the default names and configured ones, values as is) and, for a #!
// script, the script's path resolved against the working directory. An
// environment padded past the search's bound, or a value too long, is
// flagged.
func TestCaptureExecEnvScript(t *testing.T) {
	d := tempDir(t)
	script := "s" + hostile + ".sh"
	if err := os.WriteFile(filepath.Join(d, script), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	names := append(append([]string(nil), bpf.DefaultEnvNames...), "BULKHEAD_EXTRA")
	long := strings.Repeat("x", 3000)
	padding := make([]string, 0, 20000)
	for i := 0; i < 20000; i++ {
		padding = append(padding, fmt.Sprintf("P%d=", i))
	}
	run := func(path, marker string, env []string) {
		cmd := exec.Command(path, marker)
		cmd.Dir = d
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", path, err, out)
		}
	}
	evs := capture(t, bpf.Options{EnvNames: names}, []uint16{bpf.RecordExec}, func() {
		run("./"+script, "plain", []string{"PATH=/usr/bin:/bin", "HISTFILE=/dev/null" + hostile, "BULKHEAD_EXTRA=1", "https_proxy=http://10.0.0.1:3128", "NOT_SELECTED=1"})
		run("/bin/true", "long", []string{"BASH_ENV=" + long, "ENV=/e"})
		run("/bin/true", "padded", append(padding, "LD_PRELOAD=/tmp/evil.so"))
	})
	byMarker := func(m string) *event.Exec {
		t.Helper()
		return &one(t, evs, event.KindExec, m, func(e *event.Event) bool {
			l := e.Exec.ArgList()
			return len(l) >= 2 && l[len(l)-1] == m
		}).Exec
	}
	p := byMarker("plain")
	if p.Script != d+"/"+script || p.Filename != "./"+script || !strings.HasSuffix(p.Exe, "sh") {
		t.Errorf("script: %q filename %q exe %q, want script %q", p.Script, p.Filename, p.Exe, d+"/"+script)
	}
	want := []string{"HISTFILE=/dev/null" + hostile, "BULKHEAD_EXTRA=1", "https_proxy=http://10.0.0.1:3128"}
	if got := p.EnvList(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("env %q, want %q", got, want)
	}
	plainEv := one(t, evs, event.KindExec, "plain flags", func(e *event.Event) bool { return e.Exec.Script == p.Script })
	if plainEv.Flags&event.FlagTruncEnv != 0 {
		t.Errorf("a small environment flagged trunc_env")
	}

	l := one(t, evs, event.KindExec, "long", func(e *event.Event) bool { l := e.Exec.ArgList(); return len(l) == 2 && l[1] == "long" })
	if l.Exec.Script != "" {
		t.Errorf("a binary has script %q", l.Exec.Script)
	}
	env := l.Exec.EnvList()
	if len(env) != 2 || !strings.HasPrefix(env[0], "BASH_ENV=xxx") || len(env[0]) >= len("BASH_ENV=")+len(long) || env[1] != "ENV=/e" {
		t.Errorf("long value: %d entries %q", len(env), env)
	}
	if l.Flags&event.FlagTruncEnv == 0 {
		t.Error("a cut value is not flagged trunc_env")
	}

	pad := one(t, evs, event.KindExec, "padded", func(e *event.Event) bool { l := e.Exec.ArgList(); return len(l) == 2 && l[1] == "padded" })
	found := envHas(pad.Exec.EnvList(), "LD_PRELOAD=/tmp/evil.so")
	if !found && pad.Flags&event.FlagTruncEnv == 0 {
		t.Errorf("LD_PRELOAD behind %d padding variables neither found nor flagged", len(padding))
	}
	t.Logf("padded environment: LD_PRELOAD found %v, trunc_env %v", found, pad.Flags&event.FlagTruncEnv != 0)
}
