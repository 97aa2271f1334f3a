// Package goplugin runs a detector in its own process through
// hashicorp/go-plugin (handshake, gRPC) and supervises it.
//
// Events travel in batches on one long-lived gRPC stream per plugin, packed
// by package wire. One goroutine owns the process: it notices a death as soon
// as the stream breaks (or a batch outlives BatchDeadline, which is taken as
// a hang and ends in a kill), restarts with exponential backoff and jitter,
// and opens a circuit breaker when the plugin crash-loops. A batch that was
// sent but not answered is sent again to the new process (at-least-once); a
// batch that keeps killing the plugin is split, and an event that kills it
// alone PoisonAttempts times is quarantined and reported. Plugin processes
// die with the monitor (PR_SET_PDEATHSIG, and the SDK watches its parent).
package goplugin
