package main

import (
	"bytes"
	"strings"
	"testing"
)

// Every command and subcommand answers -h and --help with its usage and
// exit 0, and nothing that reads as an error.
func TestEveryCommandHasHelp(t *testing.T) {
	commands := [][]string{
		{"run"}, {"record"}, {"replay"}, {"rules"}, {"rules", "check"}, {"rules", "fields"},
		{"plugins"}, {"fleet"}, {"fleet", "tail"}, {"fleet", "status"},
		{"bench"}, {"bench", "all"}, {"bench", "capture"}, {"bench", "throughput"}, {"bench", "resilience"}, {"bench", "compare"},
		{"version"},
	}
	for _, c := range commands {
		for _, h := range []string{"-h", "--help"} {
			args := append(append([]string(nil), c...), h)
			var stdout, stderr bytes.Buffer
			code := realMain(args, &stdout, &stderr)
			out := stdout.String() + stderr.String()
			if code != 0 {
				t.Errorf("%s: exit %d\n%s", strings.Join(args, " "), code, out)
			}
			if !strings.Contains(out, "Usage") || !strings.Contains(out, c[len(c)-1]) {
				t.Errorf("%s: no usage naming the command:\n%s", strings.Join(args, " "), out)
			}
			for _, bad := range []string{"help requested", "unknown", "unexpected"} {
				if strings.Contains(out, bad) {
					t.Errorf("%s: says %q:\n%s", strings.Join(args, " "), bad, out)
				}
			}
		}
	}
	for _, h := range []string{"help", "-h", "--help"} {
		var stdout, stderr bytes.Buffer
		if code := realMain([]string{h}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "Usage:") {
			t.Errorf("bulkhead %s: exit %d\n%s", h, code, stdout.String())
		}
	}
}
