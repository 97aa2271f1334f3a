// Package detection is the contract between bulkhead and a detector: what
// a detector declares (Definition, with its Filter and the Matcher it
// compiles to), what it implements (Detector), what it is configured with
// (Config) and what it reports (Finding, Severity), and whether the events
// it is handling were sent before (Redelivered).
//
// It is the core every layer shares, kept low in the import graph: the
// dispatcher, the sinks, the exporter and every backend (inproc, goplugin
// and its wire format, wasm) use it, and none of them imports plugins/.
// Plugin authors do not import it: package plugins/sdk/detect re-exports
// each of its names unchanged (type aliases, forwarding functions), and
// package plugins/sdk re-exports the ones a detector needs, so a detector
// written against the SDK and the monitor that runs it share these types.
// A name added here that a plugin author needs is added to
// plugins/sdk/detect too; internal/archtest keeps pipeline/ and backends/
// from importing plugins/.
package detection
