package monitor

import (
	"fmt"
	"net"

	"github.com/bulkhead-sec/bulkhead/pipeline/export"
	"github.com/bulkhead-sec/bulkhead/pipeline/metrics"
	"go.uber.org/zap"
)

// ServeMetrics starts the Prometheus endpoint on the monitor's counters.
func ServeMetrics(addr string, m *Monitor, exp *export.Exporter, log *zap.Logger) (*metrics.Server, error) {
	c := metrics.NewCollector(func() metrics.Snapshot {
		s := m.liveSummary()
		used, size := m.reader.Fill()
		snap := metrics.Snapshot{Kernel: s.Kernel, Decode: s.Decode, Written: s.Written, SinkErrors: s.SinkErrors, FindingsLost: s.Output.FindingsLost,
			Processes: s.Table.Processes, RingUsed: used, RingSize: size, Detectors: s.Detectors}
		if exp != nil {
			es := exp.Stats()
			snap.Export = &es
		}
		return snap
	})
	srv, err := metrics.Serve(addr, c, log.Named("metrics"))
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	a := srv.Addr().(*net.TCPAddr)
	log.Info("serving metrics", zap.String("url", fmt.Sprintf("http://%s/metrics", a)))
	if !a.IP.IsLoopback() {
		log.Warn("the metrics endpoint is reachable from other hosts; it has no authentication", zap.String("addr", a.String()))
	}
	return srv, nil
}
