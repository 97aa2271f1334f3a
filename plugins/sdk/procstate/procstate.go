// Package procstate keeps what a detector remembers about processes — the
// credentials it last saw, its last outbound connection — in bounded
// memory: past the bound, arbitrary entries are forgotten, so a fork bomb
// costs the detector a missed correlation, never its memory.
package procstate

// Map is per-process state, keyed by process id. Not safe for concurrent
// use; OnEvent is called from one goroutine at a time.
type Map[V any] struct {
	m   map[uint32]V
	max int
}

// New returns a map that holds at most bound processes (at least 1).
func New[V any](bound int) *Map[V] {
	return &Map[V]{m: map[uint32]V{}, max: max(1, bound)}
}

// Get returns pid's state.
func (s *Map[V]) Get(pid uint32) (V, bool) {
	v, ok := s.m[pid]
	return v, ok
}

// Put sets pid's state. When the map is full, a sixteenth of it (at least
// one entry) is forgotten first, in map order.
func (s *Map[V]) Put(pid uint32, v V) {
	if _, ok := s.m[pid]; !ok && len(s.m) >= s.max {
		drop := max(1, s.max/16)
		for k := range s.m {
			delete(s.m, k)
			if drop--; drop == 0 {
				break
			}
		}
	}
	s.m[pid] = v
}

// Delete forgets pid (at its exit).
func (s *Map[V]) Delete(pid uint32) { delete(s.m, pid) }

// Len is how many processes are remembered.
func (s *Map[V]) Len() int { return len(s.m) }
