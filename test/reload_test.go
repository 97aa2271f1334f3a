package test

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/test/testenv"
)

// SIGHUP applies the configuration file again without stopping capture; a
// bad file leaves the running detectors in place and says why.
func TestReloadOnSIGHUP(t *testing.T) {
	testenv.RequireBPF(t)
	dir := t.TempDir()
	cfg := writeConfig(t, "")
	write := func(marker string) {
		yaml := fmt.Sprintf("detectors:\n  - {name: watch, backend: goplugin, plugin: %s, config: {report_on: %q}}\n", testenv.Plugin(t, "chaos"), dir+"/"+marker)
		if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a-")
	m := startMonitor(t, "--config", cfg)
	waitLog := func(msg string, n int) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); strings.Count(m.stderr.String(), msg) < n; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log:\n%s", msg, m.stderr.String())
			}
		}
	}
	openMarkers(t, dir, "a", 20, 100*time.Millisecond)

	write("b-")
	m.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(`"msg":"configuration reloaded"`, 1)
	openMarkers(t, dir, "b", 20, 100*time.Millisecond)

	os.WriteFile(cfg, []byte("detectors: [{name: watch, backend: nope}]"), 0o644)
	m.cmd.Process.Signal(syscall.SIGHUP)
	waitLog("the configuration was not reloaded; the running detectors keep running", 1)
	openMarkersFrom(t, dir, "b", 20, 20, 100*time.Millisecond)

	events := m.stop(t)
	if n := len(markersFound(events, "watch", dir+"/a-")); n != 20 {
		t.Errorf("%d of 20 markers before the reload", n)
	}
	if n := len(markersFound(events, "watch", dir+"/b-")); n != 40 {
		t.Errorf("%d of 40 markers after the reload (the bad file must not have stopped them)", n)
	}
	row := summaryRow(t, m.stderr.String(), "watch")
	if row["findings"] != "60" {
		t.Errorf("the summary counts %s findings across the reload, want 60", row["findings"])
	}
}
