package test

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/test/testenv"
)

// mountTmpfs mounts a tmpfs of size at a new directory, unmounted when the
// test ends.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0755", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root and mount(8)): %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file in dir until the file system is full.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err = f.Write(chunk); err != nil {
			break
		}
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling %s: %v, want ENOSPC", dir, err)
	}
	return path
}

// outputRecords reads the monitor's JSON output file: the findings' pids,
// and how many events and findings it holds. A last line without its end
// (a record the monitor is finishing) is left out; a middle line that is
// not JSON fails the test.
func outputRecords(t *testing.T, path string, whole bool) (findingPIDs map[int]int, events, findings int) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	if i := strings.LastIndexByte(text, '\n'); i+1 != len(text) {
		if whole {
			t.Fatalf("the output ends in the middle of a line: %q", text[max(0, len(text)-200):])
		}
		text = text[:i+1]
	}
	findingPIDs = map[int]int{}
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("the output has a line that is not one JSON object (%v): %q", err, line[:min(len(line), 300)])
		}
		if rec["type"] != "finding" {
			events++
			continue
		}
		findings++
		findingPIDs[pidOf(rec)]++
	}
	return findingPIDs, events, findings
}

// catShadow reads /etc/shadow from a new cat process, which credaccess
// reports; it returns the pid.
func catShadow(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("/bin/cat", "/etc/shadow")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cat /etc/shadow: %v %s", err, out)
	}
	return cmd.Process.Pid
}

// waitFor polls until cond holds or 15s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// The --output file system fills up while the monitor writes events and
// credaccess findings (cat /etc/shadow), then space is freed. The output
// writes again (a finding made after it recovered is in the file), every
// line of the file is one JSON object (no cut record), the summary and the
// metrics count every event and finding that was not written — written +
// lost equals what was decoded and what the detector found — and the exit
// code, 5, says findings were lost.
func TestOutputSurvivesAFullDisk(t *testing.T) {
	testenv.RequireBPF(t)
	small := mountTmpfs(t, "1m")
	out := filepath.Join(small, "bulkhead.json")
	load := t.TempDir()
	cfg := writeConfig(t, `
detectors:
  - {name: cred, backend: inproc, builtin: credaccess}
`)
	m := startMonitor(t, "--config", cfg, "--events", "on", "--output", out, "--output-backlog-kib", "16",
		"--comm", "cat,python3", "--metrics-addr", "127.0.0.1:0")
	url := regexp.MustCompile(`http://127\.0\.0\.1:\d+/metrics`).FindString(m.stderr.String())
	if url == "" {
		t.Fatalf("no metrics URL in the log:\n%s", m.stderr.String())
	}

	before := catShadow(t)
	waitFor(t, "the first finding in the output", func() bool { p, _, _ := outputRecords(t, out, false); return p[before] == 1 })

	filler := fill(t, small)
	var during []int
	for i := 0; i < 40; i++ {
		during = append(during, catShadow(t))
	}
	openMarkers(t, load, "m", 3000, 500*time.Millisecond)
	waitFor(t, "the monitor to log that the output fails", func() bool {
		return strings.Contains(m.stderr.String(), "the output cannot be written")
	})
	const lostEvents = `bulkhead_dropped_events_total{layer="sink",reason="write_error"}`
	waitFor(t, lostEvents+" to count the events dropped while the disk is full", func() bool { return scrape(t, url)[lostEvents] > 0 })

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the monitor to log that the output works again", func() bool {
		return strings.Contains(m.stderr.String(), "the output is written again")
	})
	after := catShadow(t)
	waitFor(t, "a finding made after space was freed", func() bool { p, _, _ := outputRecords(t, out, false); return p[after] == 1 })
	time.Sleep(300 * time.Millisecond) // the metrics' reader counts are published every 100ms
	recovered := scrape(t, url)

	code := m.stopRaw(t)
	stderr := m.stderr.String()
	if code != 5 {
		t.Fatalf("exit code %d, want 5 (findings lost); stderr:\n%s", code, tail(stderr, 40))
	}
	if !regexp.MustCompile(`the output lost [1-9]\d* findings and [1-9]\d* events`).MatchString(stderr) {
		t.Errorf("the exit message does not say what was lost:\n%s", tail(stderr, 5))
	}
	pids, events, findings := outputRecords(t, out, true)
	value := func(pattern string) uint64 {
		t.Helper()
		match := regexp.MustCompile(pattern).FindStringSubmatch(stderr)
		if match == nil {
			t.Fatalf("no %q in the summary:\n%s", pattern, stderr)
		}
		v, _ := strconv.ParseUint(match[1], 10, 64)
		return v
	}
	eventsLost := value(`events not written\s+(\d+)`)
	findingsLost := value(`findings not written\s+(\d+)`)
	findingsWritten := value(`findings not written\s+\d+ \((\d+) written\)`)
	failedWrites := value(`failed writes\s+(\d+)`)
	recoveries := value(`writing worked again (\d+) times`)
	var written, decoded uint64
	// The per-kind table: kind, kernel sent, ring full, decoded, written.
	for _, row := range regexp.MustCompile(`(?m)^  [a-z_]+ +\d+ +\d+ +(\d+) +(\d+)$`).FindAllStringSubmatch(stderr, -1) {
		d, _ := strconv.ParseUint(row[1], 10, 64)
		w, _ := strconv.ParseUint(row[2], 10, 64)
		decoded, written = decoded+d, written+w
	}
	found := must(summaryRow(t, stderr, "cred")["findings"])

	if pids[before] != 1 || pids[after] != 1 {
		t.Errorf("findings before the disk filled (%d) and after it was freed (%d) must be written once each", pids[before], pids[after])
	}
	if eventsLost == 0 || findingsLost == 0 || failedWrites == 0 || recoveries == 0 {
		t.Errorf("not counted: events lost %d, findings lost %d, failed writes %d, recoveries %d", eventsLost, findingsLost, failedWrites, recoveries)
	}
	if uint64(findings) != findingsWritten || float64(findingsWritten+findingsLost) != found {
		t.Errorf("findings: %d in the file, summary %d written + %d lost; the detector found %v", findings, findingsWritten, findingsLost, found)
	}
	if uint64(events) != written || written+eventsLost != decoded {
		t.Errorf("events: %d in the file, summary %d written + %d lost, %d decoded", events, written, eventsLost, decoded)
	}
	// The metrics were read before the stop: on a busy host the 1 MiB
	// output can fill again after it recovered, so the final counts may
	// be higher, never lower (TestMetricsMatchSummary checks equality).
	if v := recovered[lostEvents]; v == 0 || v > float64(eventsLost) {
		t.Errorf("%s = %v after recovering; the summary says %d", lostEvents, v, eventsLost)
	}
	const lostFindings = `bulkhead_dropped_findings_total{layer="sink",reason="write_error"}`
	if v := recovered[lostFindings]; v == 0 || v > float64(findingsLost) {
		t.Errorf("%s = %v after recovering; the summary says %d", lostFindings, v, findingsLost)
	}
	during0 := 0
	for _, pid := range during {
		during0 += pids[pid]
	}
	t.Logf("full disk: %d of %d findings written, %d lost; events %d written, %d lost of %d decoded; %d failed writes, %d recoveries; exit %d",
		during0, len(during), findingsLost, written, eventsLost, decoded, failedWrites, recoveries, code)
}
