// Package suite runs the measurements of `bulkhead bench`: capture
// overhead (syscall storms with the monitor off and on), throughput and
// latency per backend (replayed events and, as root, kernel events), and
// the resilience matrix (every chaos fault on every backend, each cell in
// its own process). Run lays out the plan of a run, runs its steps with a
// progress bar and writes the report that internal/bench models and
// internal/bench/report draws.
//
// Two measurements re-execute the running binary: the capture storm
// (`bulkhead bench storm`) and each fault cell (`bulkhead bench
// fault-cell --plan JSON`). The binary must answer those subcommands by
// calling Storm and FaultCell.
package suite
