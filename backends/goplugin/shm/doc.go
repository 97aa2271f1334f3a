// Package shm is the shared-memory data plane between the monitor and one
// plugin: a single-producer, single-consumer ring in memfd-backed memory,
// laid out like the kernel's BPF ring buffer (kernel/bpf/ringbuf.c).
//
// Two memfds make one ring. The producer memfd holds a header page (magic,
// layout version, sizes, the producer position) followed by the data area;
// the monitor maps it read-write and then seals it (F_SEAL_FUTURE_WRITE,
// F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_SEAL), so the plugin can only ever map
// it read-only and can neither truncate, grow, punch nor write it. The
// consumer memfd is one page, the only memory the plugin can write: the
// consumer position and a "sleeping" flag. It is sealed against shrinking
// and growing, so the plugin cannot make the monitor's mapping fault.
// Both sides map the data area twice back to back, so a record never wraps.
//
// A record is an 8-byte header (payload length u32, flags u32) and the
// payload padded to 8 bytes. Positions are byte counters that only grow;
// the offset in the data area is the position modulo its size (a power of
// two). The payload is opaque bytes. Unlike the kernel's ring (many
// producers reserve concurrently, hence its busy and discard bits), the one
// producer here publishes the producer position only after a record is
// complete, so flags are always zero in layout version 1 and a consumer
// refuses any other value; a reservation that is not committed is simply
// never published.
//
// Memory: one header page, one consumer page and the data area, resident as
// they are touched and charged to the monitor that created them; the double
// mapping costs address space (twice the data area per side), not memory.
//
// Trust: the producer never takes an offset from plugin-writable memory.
// Each read of the consumer position is validated (aligned, monotonic, not
// past what was produced); a violation is ErrProtocol, sticky until
// ResetConsumer, and the caller kills the plugin and counts it. The
// producer reads the consumer position only when it lacks room or when
// asked (Consumed), so the caller should call Consumed on its own clock too
// (each flush or health check) to catch a violation on a ring that is
// never full. The producer's only writes to the plugin's page are clearing
// the sleeping flag before a wake and ResetConsumer; a plugin that keeps
// setting the flag costs the monitor at most one futex wake per Commit.
//
// Wake-ups: the consumer sets sleeping=1, re-checks the producer position
// and only then waits (futex on the producer position's low word, which is
// in the shared, read-only page); the producer, after publishing a record,
// wakes it only if the flag is set. While records keep coming neither side
// makes a system call. A futex and not an eventfd: no extra descriptor to
// hand over and no extra system call to allow in the plugin's seccomp
// policy (the Go runtime already needs futex), and the wait word is the
// producer position itself, so there is no second shared state to keep
// consistent.
//
// At-least-once: the consumer position lives in the consumer page, so a new
// consumer that opens the same descriptors starts at the last acknowledged
// position and reads again what its predecessor had not acknowledged
// (ResetConsumer first rewrites it with the last value the producer
// validated, in case the dead plugin scribbled on it).
package shm
