// Package monitor is the assembled monitor: the capture pipeline
// kernel → source → decode → enrich → sinks, with the detectors behind a
// dispatcher, wired explicitly, and what a command needs around it.
//
//   - Start loads and attaches the BPF programs, seeds the process table
//     and starts reading; Stop drains it and returns the Summary of what
//     was seen and lost, layer by layer.
//   - StartDispatch starts a configuration's detectors (config.File) on
//     their backends behind a dispatcher; Builtins are those the inproc
//     backend can run.
//   - Monitor.Reload replaces the detectors from the configuration file
//     (SIGHUP) without stopping capture; counts carry over.
//   - Findings, WatchOutput, StartExport/CloseExport and ServeMetrics wire
//     the outputs: the sink, the exporter and the Prometheus endpoint.
//
// cmd/bulkhead's run, record, replay and the bench use it; nothing here
// parses flags or keeps package-level state.
package monitor
