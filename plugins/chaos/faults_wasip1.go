//go:build wasip1

package chaos

// capAddressSpace does nothing in a wasm module: its memory is capped by
// the monitor (the backend's memory_pages), where the Go runtime's next
// grow fails and it dies of "out of memory".
func capAddressSpace(int) error { return nil }

// fatal is a fatal runtime error that no recover can stop. A module has
// one thread and no preemption: the other goroutines of concurrent map
// writes would never run, and the fault would be a hang. Blocking for
// ever is the runtime's fatal error here: "all goroutines are asleep -
// deadlock!" (the runtime then traps).
func fatal() { select {} }

// hang never returns: it spins, since blocking would be the fatal error
// above. The backend ends the instance at the batch deadline.
func hang() {
	for n := 0; ; n++ {
		spins = n
	}
}

// spins keeps hang's loop from being optimised away.
var spins int
