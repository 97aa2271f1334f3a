package test

import (
	"bufio"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/test/testenv"
)

// scrape reads a Prometheus text page into "name{labels}" → value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad metrics line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// The metrics endpoint's counters move while the monitor runs, and once
// the load stops its drop counters equal what the summary reports at exit.
// A detector that is too slow for its one-batch queue makes real drops to
// compare; capture is limited to python3, the load, so nothing else moves
// the counters after it.
func TestMetricsMatchSummary(t *testing.T) {
	testenv.RequireBPF(t)
	dir := t.TempDir()
	cfg := writeConfig(t, fmt.Sprintf(`
dispatch: {batch_size: 1, queue_batches: 1}
detectors:
  - name: slow
    backend: inproc
    builtin: chaos
    config: {fault: slow, delay: 20ms, report_on: "%s/m-"}
`, dir))
	m := startMonitor(t, "--config", cfg, "--comm", "python3", "--metrics-addr", "127.0.0.1:0")
	url := regexp.MustCompile(`http://127\.0\.0\.1:\d+/metrics`).FindString(m.stderr.String())
	if url == "" {
		t.Fatalf("no metrics URL in the log:\n%s", m.stderr.String())
	}
	const opens = `bulkhead_events_decoded_total{kind="open"}`
	const shed = `bulkhead_detector_dropped_events_total{backend="inproc",detector="slow",reason="shed"}`
	before := scrape(t, url)
	openMarkers(t, dir, "m", 200, 200*time.Millisecond)

	// Wait for the counters to settle: the same on two scrapes 300ms apart.
	var last map[string]float64
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		now := scrape(t, url)
		if last != nil && now[opens] == last[opens] && now[shed] == last[shed] &&
			now[`bulkhead_detector_delivered_events_total{backend="inproc",detector="slow"}`] == last[`bulkhead_detector_delivered_events_total{backend="inproc",detector="slow"}`] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the counters did not settle within 15s")
		}
		last = now
	}
	if last[opens] <= before[opens] || last[shed] == 0 {
		t.Fatalf("counters did not move: opens %v → %v, shed %v", before[opens], last[opens], last[shed])
	}
	m.stop(t)
	stderr := m.stderr.String()
	row := summaryRow(t, stderr, "slow")
	summaryValue := func(pattern string) float64 {
		t.Helper()
		match := regexp.MustCompile(pattern).FindStringSubmatch(stderr)
		if match == nil {
			t.Fatalf("no %q in the summary:\n%s", pattern, stderr)
		}
		v, _ := strconv.ParseFloat(match[1], 64)
		return v
	}
	for metric, want := range map[string]float64{
		shed: must(row["shed"]),
		`bulkhead_detector_dropped_events_total{backend="inproc",detector="slow",reason="unavailable"}`: must(row["unavail"]),
		`bulkhead_detector_dropped_events_total{backend="inproc",detector="slow",reason="failed"}`:      must(row["failed"]),
		`bulkhead_detector_delivered_events_total{backend="inproc",detector="slow"}`:                    must(row["delivered"]),
		`bulkhead_dropped_events_total{layer="kernel",reason="ring_full"}`:                              summaryValue(`ring buffer full\s+(\d+)`),
		`bulkhead_dropped_events_total{layer="kernel",reason="unpaired"}`:                               summaryValue(`enter/exit unpaired\s+(\d+)`),
		`bulkhead_dropped_events_total{layer="kernel",reason="recursion"}`:                              summaryValue(`program runs skipped\s+(\d+)`),
		`bulkhead_dropped_events_total{layer="decode",reason="malformed"}`:                              summaryValue(`malformed records\s+(\d+)`),
		`bulkhead_dropped_events_total{layer="sink",reason="write_error"}`:                              summaryValue(`events not written\s+(\d+)`),
		opens: summaryValue(`\n  open\s+\d+\s+\d+\s+(\d+)`),
	} {
		if got, ok := last[metric]; !ok || got != want {
			t.Errorf("%s = %v (present %v); the summary says %v", metric, got, ok, want)
		}
	}
	t.Logf("shed %v, delivered %v, opens %v", last[shed], last[`bulkhead_detector_delivered_events_total{backend="inproc",detector="slow"}`], last[opens])
}

func must(s string) float64 {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		panic(err)
	}
	return v
}
