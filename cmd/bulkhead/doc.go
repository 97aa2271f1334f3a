// Command bulkhead is the monitor's one binary. Each file is a command,
// and each command is wiring: it parses its flags and calls the packages
// that do the work, passing them what they need explicitly.
//
//	run.go       bulkhead run: config.Load → monitor.StartDispatch (detectors)
//	             → monitor.Start (kernel → source → decode → enrich → sinks),
//	             the output, export, metrics, status file, SIGHUP reload
//	record.go    bulkhead record: monitor.Start into a recording
//	replay.go    bulkhead replay: a recording through monitor.Replay
//	bench.go     bulkhead bench: internal/bench/suite (and its child
//	             processes, bench storm and bench fault-cell)
//	plugins.go   bulkhead plugins: the status files (internal/monitor/status)
//	fleet.go     bulkhead fleet: the exporters' spools and the findings on NATS
//	rules.go     bulkhead rules: check rule files, list their fields
//	version.go   bulkhead version
//	main.go      the command table, exit codes, the logger
//	flags.go     the capture flags run, record and bench share
//
// Run `bulkhead <command> -h` for a command's flags.
package main
