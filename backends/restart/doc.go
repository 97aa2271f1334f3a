// Package restart is the restart policy the backends that run a detector
// apart from the monitor (goplugin's processes, wasm's instances) share:
// exponential backoff with jitter between restarts, and a circuit breaker
// that stops restarting a detector that keeps failing with no batch
// answered in between.
package restart
