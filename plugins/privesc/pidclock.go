package privesc

// A thread's id is reused once the thread is gone and the kernel's pid
// allocator, which hands out ids upwards and wraps at pid_max, comes back
// to it; the monitor reports the end of a process, not of a thread. So
// what was recorded of a TID is trusted only while the allocator cannot
// have handed that TID out again since: the detector follows the allocator
// through the pids of the processes it sees forked.

// pidTime is a point of the allocator: the wraps seen, and the highest pid
// seen allocated since the last one.
type pidTime struct{ wraps, cursor uint32 }

type pidClock struct{ t pidTime }

func (c *pidClock) now() pidTime { return c.t }

// observe notes pid, just allocated to a new process. Forks reported from
// different CPUs may arrive a little out of order; a pid below half the
// cursor can only come from a wrap.
func (c *pidClock) observe(pid uint32) {
	switch {
	case pid < c.t.cursor/2:
		c.t.wraps++
		c.t.cursor = pid
	case pid > c.t.cursor:
		c.t.cursor = pid
	}
}

// mayReuse reports whether tid may belong to another thread than the one
// seen at then: the allocator has passed tid since (or tid was older than
// then's cursor's round and the allocator reached it again in the round).
func (c *pidClock) mayReuse(tid uint32, then pidTime) bool {
	switch c.t.wraps - then.wraps {
	case 0:
		return tid > then.cursor && c.t.cursor >= tid
	case 1:
		return tid > then.cursor || c.t.cursor >= tid
	}
	return true
}
