// Package wasm runs a detector compiled to WebAssembly (GOOS=wasip1
// GOARCH=wasm, served by plugins/sdk/wasm) inside the monitor's process, in
// wazero: a memory-safe sandbox that traps instead of crashing the monitor,
// cannot touch the monitor's memory, and has bounded memory (pages) and
// time (a per-batch deadline, enforced by closing the module when the
// call's context ends). No filesystem, network, environment or arguments
// reach it, unless the configuration grants one directory, read-only.
//
// The module is compiled ahead of time when the backend is made (through a
// compilation cache, in memory or on disk, shared by the backends given the
// same one). A trap, an exit (a Go panic or fatal error ends in one) or a
// deadline ends the instance; the next is instantiated from the compiled
// module, and the supervision is goplugin's: the batch is redelivered
// (flagged, at least once), a batch that fails twice is split so that only
// a poison event is quarantined, and a crash loop opens the breaker. The
// counters are backends.Stats'.
//
// Everything the module returns is hostile input: pointers and lengths are
// checked against its memory, a result is read within wire.Limits exactly
// like a plugin's, and its stderr reaches the monitor's log rate-limited,
// cut and escaped.
package wasm
