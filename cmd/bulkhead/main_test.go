package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// Bad invocations exit with code 2 and say what was wrong and what to use,
// before anything touches the kernel.
func TestBadFlagsExplain(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--ring-mib", "3"}, "power of two"},
		{[]string{"run", "--wakeup-kib", "0"}, "--wakeup-kib 0"},
		{[]string{"run", "--flush-interval", "1us"}, "use 1ms to 10s"},
		{[]string{"run", "--kinds", "open,nope"}, `unknown event kind "nope"; known kinds: exec, fork`},
		{[]string{"run", "--pid", "1", "--exclude-pid", "2"}, "use one or the other"},
		{[]string{"run", "--pid", "abc"}, `--pid "abc"`},
		{[]string{"run", "--comm", "a-name-longer-than-15"}, "longer than 15 bytes"},
		{[]string{"run", "--cgroup", "/no/such/cgroup"}, "not a cgroup id, and not a directory"},
		{[]string{"run", "--format", "xml"}, "use json or text"},
		{[]string{"run", "--log-level", "loud"}, "use debug, info, warn or error"},
		{[]string{"run", "extra"}, `unexpected argument "extra"`},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"bench"}, "bench needs a subcommand"},
		{[]string{"bench", "capture", "--rounds", "0"}, "--rounds at least 1"},
		{[]string{"run", "--no-such-flag"}, "flag provided but not defined: -no-such-flag"},
		{[]string{"record"}, "--output FILE is required"},
		{[]string{"replay"}, "name one recording file (got 0"},
		{[]string{"replay", "a", "b"}, `name one recording file (got 2: ["a" "b"])`},
		{[]string{"replay", "a", "--speed", "-1"}, "--speed -1: use 0"},
		{[]string{"rules"}, "rules needs a subcommand"},
		{[]string{"rules", "lint"}, `unknown rules subcommand "lint"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := realMain(tc.args, &stdout, &stderr); code != 2 {
				t.Errorf("exit code %d, want 2; stderr:\n%s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, stderr.String())
			}
		})
	}
}

func TestVersionAndHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := realMain([]string{"version"}, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "bulkhead ") {
		t.Errorf("version: code %d, output %q", code, stdout.String())
	}
	stdout.Reset()
	if code := realMain([]string{"help"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "bulkhead run") {
		t.Errorf("help: code %d, output %q", code, stdout.String())
	}
	if code := realMain([]string{"run", "-h"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "-ring-mib") {
		t.Errorf("run -h: code %d, stderr %q", code, stderr.String())
	}
}

// rules check: exit 0 on good files, 1 listing every problem on bad ones.
func TestRulesCheck(t *testing.T) {
	var out, errs bytes.Buffer
	if code := realMain([]string{"rules", "check"}, &out, &errs); code != 0 || !strings.Contains(out.String(), "rules loaded, 0 disabled, 0 rejected (default.yaml)") {
		t.Fatalf("default rules: exit %d\n%s%s", code, out.String(), errs.String())
	}
	file := t.TempDir() + "/bad.yaml"
	os.WriteFile(file, []byte("- rule: typo\n  condition: kind == \"open\" && pth == \"/a\"\n- rule: ptrace_attach\n  enabled: false\n"), 0o644)
	out.Reset()
	errs.Reset()
	code := realMain([]string{"rules", "check", file}, &out, &errs)
	if code != 1 || !strings.Contains(out.String(), file+`:2: rule "typo": ERROR: <input>:1:19: undeclared reference to 'pth'`) ||
		!strings.Contains(out.String(), "1 disabled, 1 rejected") || !strings.Contains(errs.String(), "1 problem(s) in the rule files") {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errs.String())
	}
	out.Reset()
	if code := realMain([]string{"rules", "fields"}, &out, &errs); code != 0 || !strings.Contains(out.String(), "parent_exe") {
		t.Fatalf("rules fields: %d %s", code, out.String())
	}
}
