package event

import "unsafe"

// CopyTo copies e into dst with every string moved into arena, and returns
// the grown arena. dst stays valid as long as the arena's memory does: a
// batch that owns the arena owns the events. (When arena has to grow, the
// strings already copied keep the old memory alive.)
func (e *Event) CopyTo(dst *Event, arena []byte) []byte {
	*dst = *e
	arena = moveString(&dst.Comm, arena)
	switch e.Kind {
	case KindExec:
		arena = moveString(&dst.Exec.Filename, arena)
		arena = moveString(&dst.Exec.Exe, arena)
		arena = moveString(&dst.Exec.Args, arena)
	case KindOpen:
		arena = moveString(&dst.Open.Path, arena)
		arena = moveString(&dst.Open.Dir, arena)
		arena = moveString(&dst.Open.Resolved, arena)
	case KindModule:
		arena = moveString(&dst.Module.Params, arena)
		arena = moveString(&dst.Module.Path, arena)
	case KindBPFProg:
		arena = moveString(&dst.BPFProg.Name, arena)
	case KindMemfd:
		arena = moveString(&dst.Memfd.Name, arena)
	}
	return arena
}

func moveString(s *string, arena []byte) []byte {
	if len(*s) == 0 {
		return arena
	}
	if cap(arena)-len(arena) < len(*s) {
		// A fresh block: strings already in the old one must not move.
		arena = make([]byte, 0, max(2*cap(arena), len(*s), 4096))
	}
	start := len(arena)
	arena = append(arena, *s...)
	*s = unsafe.String(&arena[start], len(*s))
	return arena
}
