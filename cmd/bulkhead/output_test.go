package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Writing to /dev/full fails with ENOSPC forever: every record is lost,
// counted, and the exit code says what was lost (5: findings, 4: events
// only).
func TestLostOutputExitCodes(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	rec := writeRecording(t, 100)
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfg, []byte("detectors: [{name: cred, backend: inproc, builtin: credaccess}]"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		code int
		says string
	}{
		{"findings", []string{"--config", cfg}, exitFindingsLost, "the output lost 100 findings and 0 events"},
		{"events", []string{"--events", "on"}, exitEventsLost, "the output lost 0 findings and 100 events"},
		{"both", []string{"--config", cfg, "--events", "on", "--format", "text"}, exitFindingsLost, "the output lost 100 findings and 100 events"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := replayArgs(t, append([]string{rec, "--output", "/dev/full", "--log-level", "error"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errs, tc.says) || !strings.Contains(errs, "no space left on device") {
				t.Fatalf("exit %d, want %d saying %q:\n%s", code, tc.code, tc.says, errs)
			}
		})
	}
}
