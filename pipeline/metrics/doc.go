// Package metrics serves the monitor's counters in the Prometheus text
// format: events per kind, every drop by layer, per-detector deliveries,
// findings, losses and batch latency, plugin restarts and breaker state,
// and the ring buffer's fill. Values are read when Prometheus scrapes (a
// snapshot function), so the hot path pays nothing for them.
package metrics
