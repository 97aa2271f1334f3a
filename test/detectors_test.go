package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/test/testenv"
)

// writeConfig writes a monitor config file.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bulkhead.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// children lists the monitor's child processes (its plugins).
func children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(s); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// openMarkers opens dir/prefix-0 … -(n-1) from a child process, spread over
// about spread.
func openMarkers(t *testing.T, dir, prefix string, n int, spread time.Duration) {
	t.Helper()
	openMarkersFrom(t, dir, prefix, 0, n, spread)
}

// openMarkersFrom opens dir/prefix-from … -(from+n-1).
func openMarkersFrom(t *testing.T, dir, prefix string, from, n int, spread time.Duration) {
	t.Helper()
	script := fmt.Sprintf(`import time
for i in range(%d, %d):
    open("%s/%s-%%d" %% i, "w").close()
    time.sleep(%f)`, from, from+n, dir, prefix, spread.Seconds()/float64(n))
	if out, err := exec.Command("/usr/bin/python3", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("open markers: %v\n%s", err, out)
	}
}

// markersFound counts the distinct marker paths reported by detector.
func markersFound(events []map[string]any, detector, prefix string) map[string]int {
	seen := map[string]int{}
	for _, ev := range events {
		if ev["type"] != "finding" || ev["detector"] != detector {
			continue
		}
		evs := ev["events"].([]any)
		path := evs[0].(map[string]any)["open"].(map[string]any)["resolved"].(string)
		if strings.Contains(path, prefix) {
			seen[path]++
		}
	}
	return seen
}

// summaryRow is detector's row of the monitor's summary, by column name;
// "note" is what follows the columns.
func summaryRow(t *testing.T, stderr, detector string) map[string]string {
	t.Helper()
	var header []string
	for _, line := range strings.Split(stderr, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 2 && f[0] == "name" && f[1] == "backend":
			header = f
		case header != nil && len(f) >= len(header) && f[0] == detector:
			row := map[string]string{"note": strings.Join(f[len(header):], " ")} // e.g. "enclave killed: …"
			for i, h := range header {
				row[h] = f[i]
			}
			return row
		}
	}
	t.Fatalf("no summary row for %s:\n%s", detector, stderr)
	return nil
}

// The plugin is SIGKILLed twice in the middle of a stream of real events:
// the monitor restarts it, every event reaches it at least once, and the
// summary counts the crashes and restarts. Afterwards no plugin survives.
func TestPluginKilledMidStream(t *testing.T) {
	testenv.RequireBPF(t)
	dir := t.TempDir()
	cfg := writeConfig(t, fmt.Sprintf(`
detectors:
  - name: chaos
    backend: goplugin
    plugin: %s
    config: {report_on: "%s/mark-"}
`, testenv.Plugin(t, "chaos"), dir))
	m := startMonitor(t, "--config", cfg)
	done := make(chan []int)
	go func() {
		var killed []int
		for _, at := range []time.Duration{400 * time.Millisecond, 900 * time.Millisecond} {
			time.Sleep(at - 400*time.Millisecond*time.Duration(len(killed)))
			for _, pid := range children(m.cmd.Process.Pid) {
				syscall.Kill(pid, syscall.SIGKILL)
				killed = append(killed, pid)
			}
		}
		done <- killed
	}()
	const n = 300
	openMarkers(t, dir, "mark", n, 1500*time.Millisecond)
	killed := <-done
	plugins := children(m.cmd.Process.Pid)
	events := m.stop(t)

	if len(killed) < 2 {
		t.Fatalf("killed %v: the plugin was not found twice", killed)
	}
	seen := markersFound(events, "chaos", "/mark-")
	for i := 0; i < n; i++ {
		if seen[fmt.Sprintf("%s/mark-%d", dir, i)] == 0 {
			t.Errorf("marker %d never reached the detector", i)
		}
	}
	row := summaryRow(t, m.stderr.String(), "chaos")
	if crashes, _ := strconv.Atoi(row["crashes"]); crashes < 2 {
		t.Errorf("summary reports %s crashes, want ≥2: %v", row["crashes"], row)
	}
	if restarts, _ := strconv.Atoi(row["restarts"]); restarts < 2 {
		t.Errorf("summary reports %s restarts, want ≥2: %v", row["restarts"], row)
	}
	for _, pid := range append(plugins, killed...) {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("plugin pid %d outlived the monitor", pid)
		}
	}
}

// A plugin that hangs on one event is killed at the batch deadline and
// restarted; the hanging event is quarantined, every other event delivered.
func TestPluginHangIsKilled(t *testing.T) {
	testenv.RequireBPF(t)
	dir := t.TempDir()
	cfg := writeConfig(t, fmt.Sprintf(`
detectors:
  - name: chaos
    backend: goplugin
    plugin: %s
    batch_deadline: 300ms
    config: {report_on: "%s/ok-", fault: hang, on: "%s/hang"}
`, testenv.Plugin(t, "chaos"), dir, dir))
	// Capture only the markers' opener: a storm elsewhere on the host
	// would shed the markers, not show the hang.
	m := startMonitor(t, "--config", cfg, "--comm", "python3")
	openMarkers(t, dir, "ok", 50, 200*time.Millisecond)
	openMarkers(t, dir, "hang", 1, 0)
	openMarkers(t, dir, "ok-late", 50, 200*time.Millisecond)
	time.Sleep(2 * time.Second) // four deadlines and restarts
	events := m.stop(t)
	seen := markersFound(events, "chaos", "/ok-")
	if len(seen) != 100 {
		t.Errorf("%d of 100 events delivered around the hang", len(seen))
	}
	row := summaryRow(t, m.stderr.String(), "chaos")
	if row["hangs"] == "0" || row["quarantine"] != "1" {
		t.Errorf("summary: hangs %s, quarantined %s; want hangs and 1 quarantined: %v", row["hangs"], row["quarantine"], row)
	}
}

// A plugin that dies on every event crash-loops: the breaker opens and its
// events are shed and counted, while another detector keeps working.
func TestCrashLoopOpensBreakerOthersUnaffected(t *testing.T) {
	testenv.RequireBPF(t)
	dir := t.TempDir()
	cfg := writeConfig(t, fmt.Sprintf(`
detectors:
  - name: chaos
    backend: goplugin
    plugin: %s
    config: {fault: exit, on: "%s/x-"}
  - name: watcher
    backend: inproc
    builtin: example
    config: {prefixes: ["%s/y-"]}
`, testenv.Plugin(t, "chaos"), dir, dir))
	// Only the markers' opener: the chaos detector has no filter, and
	// other processes' events it answers between crashes would reset the
	// breaker's count.
	m := startMonitor(t, "--config", cfg, "--comm", "python3")
	openMarkers(t, dir, "x", 40, 2*time.Second)
	openMarkers(t, dir, "y", 20, 200*time.Millisecond)
	events := m.stop(t)
	if got := len(markersFound(events, "watcher", "/y-")); got != 20 {
		t.Errorf("the other detector reported %d of 20 events", got)
	}
	row := summaryRow(t, m.stderr.String(), "chaos")
	if row["breaker"] != "OPEN" || row["unavail"] == "0" {
		t.Errorf("summary: breaker %s, unavailable %s; want OPEN and shed events counted: %v", row["breaker"], row["unavail"], row)
	}
	if !strings.Contains(m.stderr.String(), "circuit breaker open") {
		t.Error("the breaker opening was not logged")
	}
}

// The contrast the project exists to show: the same fault in-process takes
// the whole monitor down.
func TestInprocCrashKillsMonitor(t *testing.T) {
	testenv.RequireBPF(t)
	dir := t.TempDir()
	cfg := writeConfig(t, fmt.Sprintf(`
detectors:
  - name: chaos
    backend: inproc
    builtin: chaos
    config: {fault: panic, on: "%s/boom"}
`, dir))
	m := startMonitor(t, "--config", cfg)
	openMarkers(t, dir, "boom", 1, 0)
	err := m.cmd.Wait()
	<-m.copied
	exit, ok := err.(*exec.ExitError)
	if !ok || exit.ExitCode() == 0 {
		t.Fatalf("monitor: %v, want it dead with a non-zero exit", err)
	}
	if !strings.Contains(m.stderr.String(), "panic: chaos: panic on") {
		t.Errorf("stderr does not show the detector's panic:\n%s", m.stderr.String())
	}
}
