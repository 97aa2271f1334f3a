package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/bulkhead-sec/bulkhead/bpf"
	"github.com/bulkhead-sec/bulkhead/pipeline/decode"
	"github.com/bulkhead-sec/bulkhead/pipeline/dispatch"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/export"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Snapshot is everything the endpoint reports, taken at scrape time.
type Snapshot struct {
	Kernel     bpf.Counters
	Decode     decode.Stats
	Written    [event.KindCount]uint64
	SinkErrors uint64 // events the output could not write
	// FindingsLost are findings the output could not write.
	FindingsLost uint64
	Processes    int
	RingUsed     int // bytes waiting in the ring
	RingSize     int
	Detectors    []dispatch.LaneStats
	// Export is the NATS export's state (nil: no export configured).
	Export *export.Stats
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("bulkhead_"+name, help, labels, nil)
}

var (
	kernelEvents  = desc("kernel_events_total", "Events the kernel programs emitted into the ring buffer.", "kind")
	ringFullKind  = desc("kernel_ring_full_events_total", "Events the kernel dropped because the ring buffer was full.", "kind")
	decodedEvents = desc("events_decoded_total", "Events decoded in user space.", "kind")
	writtenEvents = desc("events_written_total", "Events written to the output.", "kind")
	dropped       = desc("dropped_events_total", "Events lost, by the layer that lost them: kernel (ring_full, unpaired, recursion), decode (malformed), sink (write_error). Detector losses are bulkhead_detector_dropped_events_total.", "layer", "reason")
	droppedFinds  = desc("dropped_findings_total", "Findings lost, by the layer that lost them: sink (write_error: the output could not write them).", "layer", "reason")
	ringUsed      = desc("ring_buffer_used_bytes", "Bytes waiting in the kernel ring buffer.")
	ringSize      = desc("ring_buffer_size_bytes", "Size of the kernel ring buffer.")
	processes     = desc("processes_tracked", "Processes in the enrichment table.")

	detQueued    = desc("detector_queued_events_total", "Events put on the detector's queue.", "detector", "backend")
	detFiltered  = desc("detector_filtered_events_total", "Queued events the detector's filter turned away.", "detector", "backend")
	detDelivered = desc("detector_delivered_events_total", "Queued events in batches the detector answered.", "detector", "backend")
	detFindings  = desc("detector_findings_total", "Findings the detector reported.", "detector", "backend")
	detErrors    = desc("detector_errors_total", "OnEvent calls that returned an error.", "detector", "backend")
	detDropped   = desc("detector_dropped_events_total", "Events the detector wanted and did not get: shed (its queue was full), unavailable (breaker open), failed, abandoned (queued or in flight when it was abandoned at stop).", "detector", "backend", "reason")
	detLatency   = desc("detector_batch_latency_seconds", "Time from handing a batch to the detector's backend to its answer.", "detector", "backend")
	detBreaker   = desc("detector_breaker_open", "1 while the detector's circuit breaker is open.", "detector", "backend")
	plugCrashes  = desc("plugin_crashes_total", "Times the detector's plugin process died.", "detector", "backend")
	plugHangs    = desc("plugin_hangs_total", "Times the plugin missed its batch deadline and was killed.", "detector", "backend")
	plugRestarts = desc("plugin_restarts_total", "Times the plugin was started again.", "detector", "backend")
	plugRedeliv  = desc("plugin_redelivered_events_total", "Events sent again after a plugin failure.", "detector", "backend")
	plugQuarant  = desc("plugin_quarantined_events_total", "Events set aside because they kept killing the plugin.", "detector", "backend")
	plugKilled   = desc("plugin_enclave_kills_total", "Plugin processes killed by their enclave: a forbidden system call (seccomp), or the memory or CPU limit (limit).", "detector", "backend", "reason")
	plugViolate  = desc("plugin_protocol_violations_total", "Breaches of the plugin protocol: each kind of bound a result broke, each unreadable or oversized answer (the plugin is killed), each flood of its log.", "detector", "backend")
	plugRefused  = desc("plugin_findings_refused_total", "Findings the monitor dropped because they broke the protocol (over the per-batch limit, bad severity, fabricated evidence, unreadable).", "detector", "backend")
	plugLogDrop  = desc("plugin_log_lines_dropped_total", "Lines of the plugin's stderr dropped over its rate limit.", "detector", "backend")
	plugRingFull = desc("plugin_ring_full_total", "Batches the plugin's shared-memory ring had no room for when they came (they waited for the plugin to make room).", "detector", "backend")

	expRecords   = desc("export_records_total", "Records taken into the export spool, by what they are.", "type")
	expAcked     = desc("export_acknowledged_total", "Spooled records JetStream acknowledged (each once; duplicates included).")
	expDropped   = desc("export_dropped_total", "Records the export lost: spool full or unwritable, or too large.")
	expPending   = desc("export_spool_pending_records", "Records on disk not yet acknowledged.")
	expReconnect = desc("export_reconnects_total", "Reconnections to the NATS server.")
	expConnected = desc("export_connected", "1 while connected to the NATS server.")
)

// Collector turns snapshots into metrics.
type Collector struct{ snap func() Snapshot }

// NewCollector reports what snap returns at each scrape.
func NewCollector(snap func() Snapshot) *Collector { return &Collector{snap: snap} }

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{kernelEvents, ringFullKind, decodedEvents, writtenEvents, dropped, droppedFinds, ringUsed, ringSize, processes,
		detQueued, detFiltered, detDelivered, detFindings, detErrors, detDropped, detLatency, detBreaker,
		plugCrashes, plugHangs, plugRestarts, plugRedeliv, plugQuarant, plugKilled, plugViolate, plugRefused, plugLogDrop, plugRingFull,
		expRecords, expAcked, expDropped, expPending, expReconnect, expConnected} {
		ch <- d
	}
}

// Collect takes a snapshot and sends its metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.snap()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, k := range event.AllKinds() {
		counter(kernelEvents, s.Kernel.Emitted[k], k.String())
		counter(ringFullKind, s.Kernel.Dropped[k], k.String())
		counter(decodedEvents, s.Decode.Decoded[k], k.String())
		counter(writtenEvents, s.Written[k], k.String())
	}
	counter(dropped, s.Kernel.RingFull(), "kernel", "ring_full")
	counter(dropped, s.Kernel.PairMissing+s.Kernel.PairFull, "kernel", "unpaired")
	counter(dropped, s.Kernel.RecursionMisses, "kernel", "recursion")
	counter(dropped, s.Decode.Errors(), "decode", "malformed")
	counter(dropped, s.SinkErrors, "sink", "write_error")
	counter(droppedFinds, s.FindingsLost, "sink", "write_error")
	gauge(ringUsed, float64(s.RingUsed))
	gauge(ringSize, float64(s.RingSize))
	gauge(processes, float64(s.Processes))
	if e := s.Export; e != nil {
		counter(expRecords, e.FindingsExported, "finding")
		counter(expRecords, e.EventsExported, "event")
		counter(expAcked, e.Acknowledged)
		counter(expDropped, e.Dropped)
		gauge(expPending, float64(e.Spool.Pending))
		counter(expReconnect, e.Reconnects)
		connected := 0.0
		if e.Connected {
			connected = 1
		}
		gauge(expConnected, connected)
	}
	for _, d := range s.Detectors {
		l := []string{d.Name, d.Backend}
		b := d.Backends
		counter(detQueued, d.Queued, l...)
		counter(detFiltered, d.Filtered, l...)
		counter(detDelivered, d.Delivered, l...)
		counter(detFindings, b.Findings, l...)
		counter(detErrors, b.Errors, l...)
		counter(detDropped, d.Shed, d.Name, d.Backend, "shed")
		counter(detDropped, d.Unavailable, d.Name, d.Backend, "unavailable")
		counter(detDropped, d.Failed, d.Name, d.Backend, "failed")
		counter(detDropped, d.Abandoned, d.Name, d.Backend, "abandoned")
		open := 0.0
		if b.BreakerOpen {
			open = 1
		}
		gauge(detBreaker, open, l...)
		counter(plugCrashes, b.Crashes, l...)
		counter(plugHangs, b.Hangs, l...)
		counter(plugRestarts, b.Restarts, l...)
		counter(plugRedeliv, b.Redelivered, l...)
		counter(plugQuarant, b.Quarantined, l...)
		counter(plugKilled, b.Violations, append(l, "seccomp")...)
		counter(plugKilled, b.LimitKills, append(l, "limit")...)
		counter(plugViolate, b.ProtocolViolations, l...)
		counter(plugRefused, b.FindingsRefused, l...)
		counter(plugLogDrop, b.LogLinesDropped, l...)
		counter(plugRingFull, b.RingFull, l...)
		buckets := make(map[float64]uint64, len(dispatch.LatencyBuckets))
		for i, ub := range dispatch.LatencyBuckets {
			buckets[ub.Seconds()] = d.Latency.Cumulative[i]
		}
		ch <- prometheus.MustNewConstHistogram(detLatency, d.Latency.Count, d.Latency.Sum.Seconds(), buckets, l...)
	}
}

// Server is a running metrics endpoint.
type Server struct {
	srv  *http.Server
	addr net.Addr
	done chan error
}

// Serve listens on addr and serves /metrics (the collector, plus the Go
// runtime's and the process's own metrics) until Shutdown.
func Serve(addr string, c *Collector, log *zap.Logger) (*Server, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: zap.NewStdLog(log)}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, addr: ln.Addr(), done: make(chan error, 1)}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr is where it listens (with the port chosen, for ":0").
func (s *Server) Addr() net.Addr { return s.addr }

// Shutdown stops serving, letting a scrape in progress finish.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if serveErr := <-s.done; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return err
}
