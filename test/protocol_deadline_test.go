package test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/test/testenv"
)

// Issue 14, class 9, under the real monitor: a plugin that takes 1.5 s per
// batch, with a 2 s batch deadline and 16 batches queued for it (24 s of
// work, twelve deadlines), is never killed as hung (its deadline runs from
// when it could start a batch, not from when the batch was sent); a plugin
// that really hangs still is. The 0.5 s between a batch's cost and its
// deadline is what a busy host's scheduling may take (with 0.1 s, two busy
// loops on the cores got the slow plugin killed).
func TestSlowPluginIsNotKilledButHangIs(t *testing.T) {
	testenv.RequireBPF(t)
	if testing.Short() {
		t.Skip("35 s")
	}
	dir := t.TempDir()
	rogue := testenv.Plugin(t, "rogue")
	// Every batch costs the slow plugin 1.5 s, so the stop gives it time to
	// finish what it has.
	cfg := writeConfig(t, fmt.Sprintf(`
dispatch: {drain_timeout: 60s}
detectors:
  - {name: slow, backend: goplugin, plugin: %[1]s, batch_deadline: 2s, config: {attack: slow, delay: 1.5s, report_on: "%[2]s/ok-", path_prefix: "%[2]s/"}}
  - {name: hangs, backend: goplugin, plugin: %[1]s, batch_deadline: 2s, config: {attack: hang, on: "%[2]s/ok-3", report_on: "%[2]s/ok-", path_prefix: "%[2]s/"}}
  - {name: healthy, backend: goplugin, plugin: %[3]s, config: {report_on: "%[2]s/ok-"}}
`, rogue, dir, testenv.Plugin(t, "chaos")))
	// Capture only the markers' opener: other tests on this host may be storming.
	m := startMonitor(t, "--config", cfg, "--comm", "python3")
	// 16 markers 50 ms apart: 16 batches, queued for the slow plugin at once.
	openMarkers(t, dir, "ok", 16, 800*time.Millisecond)
	deadline := time.Now().Add(45 * time.Second)
	answered := func() int { // complete lines only: the monitor is still writing
		n := 0
		for _, line := range strings.SplitAfter(m.stdout.String(), "\n") {
			if strings.HasSuffix(line, "\n") && strings.Contains(line, `"detector":"slow"`) && strings.Contains(line, `"rule":"rogue-report"`) {
				n++
			}
		}
		return n
	}
	for answered() < 16 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	events := m.stop(t)
	stderr := m.stderr.String()

	slow, hangs := summaryRow(t, stderr, "slow"), summaryRow(t, stderr, "hangs")
	t.Logf("slow: %v", slow)
	t.Logf("hangs: %v", hangs)
	// Besides the markers, the plugin may get python3's opens of files with
	// several names (a hard link passes any path filter).
	if got := len(markersFound(events, "slow", dir+"/ok-")); got != 16 || slow["hangs"] != "0" || slow["crashes"] != "0" || must(slow["delivered"]) < 16 || slow["abandoned"] != "0" {
		t.Errorf("the slow plugin: %d of 16 markers, hangs %s, crashes %s, delivered %s, abandoned %s: want all, none killed", got, slow["hangs"], slow["crashes"], slow["delivered"], slow["abandoned"])
	}
	if hangs["hangs"] == "0" || hangs["quarantine"] != "1" {
		t.Errorf("the hanging plugin: hangs %s, quarantined %s: want it killed and its trigger quarantined", hangs["hangs"], hangs["quarantine"])
	}
	if got := len(markersFound(events, "hangs", dir+"/ok-")); got != 15 {
		t.Errorf("the hanging plugin reported %d of the 15 markers that do not hang it", got)
	}
	if got := len(markersFound(events, "healthy", dir+"/ok-")); got != 16 {
		t.Errorf("the healthy detector got %d of 16 markers", got)
	}
	if strings.Contains(stderr, `"detector":"slow"`) && logged(stderr, "slow", "no answer within the batch deadline") {
		t.Error("the slow plugin was killed as hung")
	}
}
