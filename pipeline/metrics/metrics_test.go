package metrics

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/pipeline/dispatch"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/export"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"
)

func snapshot() Snapshot {
	var s Snapshot
	s.Kernel.Emitted[event.KindOpen] = 100
	s.Kernel.Dropped[event.KindOpen] = 7
	s.Kernel.PairMissing = 2
	s.Decode.Decoded[event.KindOpen] = 93
	s.RingUsed, s.RingSize = 4096, 1<<24
	s.SinkErrors, s.FindingsLost = 11, 3
	lat := dispatch.Latency{Cumulative: make([]uint64, len(dispatch.LatencyBuckets)), Count: 3, Sum: 3 * time.Millisecond}
	for i := range lat.Cumulative {
		lat.Cumulative[i] = 3
	}
	s.Detectors = []dispatch.LaneStats{{Name: "cred", Backend: "goplugin", Queued: 90, Shed: 5, Latency: lat,
		Backends: backends.Stats{Delivered: 85, Findings: 1, Crashes: 1, Restarts: 1, BreakerOpen: true}}}
	s.Export = &export.Stats{FindingsExported: 9, EventsExported: 40, Acknowledged: 45, Dropped: 2, Reconnects: 1,
		Spool: export.SpoolStats{Pending: 2}}
	return s
}

// The names, types and help texts pass Prometheus's own linter.
func TestMetricsFollowConventions(t *testing.T) {
	problems, err := testutil.CollectAndLint(NewCollector(snapshot))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestValues(t *testing.T) {
	c := NewCollector(snapshot)
	want := `
# HELP bulkhead_dropped_events_total Events lost, by the layer that lost them: kernel (ring_full, unpaired, recursion), decode (malformed), sink (write_error). Detector losses are bulkhead_detector_dropped_events_total.
# TYPE bulkhead_dropped_events_total counter
bulkhead_dropped_events_total{layer="decode",reason="malformed"} 0
bulkhead_dropped_events_total{layer="kernel",reason="recursion"} 0
bulkhead_dropped_events_total{layer="kernel",reason="ring_full"} 7
bulkhead_dropped_events_total{layer="kernel",reason="unpaired"} 2
bulkhead_dropped_events_total{layer="sink",reason="write_error"} 11
# HELP bulkhead_dropped_findings_total Findings lost, by the layer that lost them: sink (write_error: the output could not write them).
# TYPE bulkhead_dropped_findings_total counter
bulkhead_dropped_findings_total{layer="sink",reason="write_error"} 3
# HELP bulkhead_detector_breaker_open 1 while the detector's circuit breaker is open.
# TYPE bulkhead_detector_breaker_open gauge
bulkhead_detector_breaker_open{backend="goplugin",detector="cred"} 1
# HELP bulkhead_export_records_total Records taken into the export spool, by what they are.
# TYPE bulkhead_export_records_total counter
bulkhead_export_records_total{type="event"} 40
bulkhead_export_records_total{type="finding"} 9
# HELP bulkhead_export_dropped_total Records the export lost: spool full or unwritable, or too large.
# TYPE bulkhead_export_dropped_total counter
bulkhead_export_dropped_total 2
# HELP bulkhead_export_spool_pending_records Records on disk not yet acknowledged.
# TYPE bulkhead_export_spool_pending_records gauge
bulkhead_export_spool_pending_records 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "bulkhead_dropped_events_total", "bulkhead_dropped_findings_total", "bulkhead_detector_breaker_open",
		"bulkhead_export_records_total", "bulkhead_export_dropped_total", "bulkhead_export_spool_pending_records"); err != nil {
		t.Fatal(err)
	}
}

func TestServe(t *testing.T) {
	srv, err := Serve("127.0.0.1:0", NewCollector(snapshot), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + srv.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`bulkhead_kernel_ring_full_events_total{kind="open"} 7`, `bulkhead_detector_batch_latency_seconds_count{backend="goplugin",detector="cred"} 3`, "go_goroutines"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("no %q in:\n%s", want, body)
		}
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := Serve("127.0.0.1:-1", NewCollector(snapshot), zaptest.NewLogger(t)); err == nil {
		t.Fatal("a bad address must fail")
	}
}
