package event

import "unsafe"

// CopyTo copies e into dst with every string moved into arena, and returns
// the grown arena. dst stays valid as long as the arena's memory does: a
// batch that owns the arena owns the events. (When arena has to grow, the
// strings already copied keep the old memory alive.)
//
// dst may hold an earlier event: only the header, the process and the
// payload of e's kind are written, after the payload dst held is cleared.
// That is about a third of the 544 bytes a whole-struct copy moves.
func (e *Event) CopyTo(dst *Event, arena []byte) []byte {
	dst.Reset()
	dst.Header, dst.Process = e.Header, e.Process
	arena = moveString(&dst.Comm, arena)
	switch e.Kind {
	case KindExec:
		dst.Exec = e.Exec
		arena = moveString(&dst.Exec.Filename, arena)
		arena = moveString(&dst.Exec.Exe, arena)
		arena = moveString(&dst.Exec.Args, arena)
		arena = moveString(&dst.Exec.Script, arena)
		arena = moveString(&dst.Exec.Env, arena)
	case KindFork:
		dst.Fork = e.Fork
	case KindExit:
		dst.Exit = e.Exit
	case KindOpen:
		dst.Open = e.Open
		arena = moveString(&dst.Open.Path, arena)
		arena = moveString(&dst.Open.Dir, arena)
		arena = moveString(&dst.Open.Resolved, arena)
		arena = moveString(&dst.Open.FilePath, arena)
	case KindConnect:
		dst.Connect = e.Connect
	case KindSetID:
		dst.SetID = e.SetID
	case KindPtrace:
		dst.Ptrace = e.Ptrace
	case KindModule:
		dst.Module = e.Module
		arena = moveString(&dst.Module.Params, arena)
		arena = moveString(&dst.Module.Path, arena)
	case KindBPFProg:
		dst.BPFProg = e.BPFProg
		arena = moveString(&dst.BPFProg.Name, arena)
	case KindMemfd:
		dst.Memfd = e.Memfd
		arena = moveString(&dst.Memfd.Name, arena)
	case KindFile:
		dst.File = e.File
		f := &dst.File
		for _, s := range []*string{&f.Path, &f.Dir, &f.Resolved, &f.NewPath, &f.NewDir, &f.NewResolved, &f.FilePath} {
			arena = moveString(s, arena)
		}
	case KindNamespace:
		dst.Namespace = e.Namespace
		n := &dst.Namespace
		for _, s := range []*string{&n.NsFile, &n.Source, &n.Target, &n.FSType, &n.Dir} {
			arena = moveString(s, arena)
		}
	case KindSignal:
		dst.Signal = e.Signal
		arena = moveString(&dst.Signal.TargetComm, arena)
	case KindSocket:
		dst.Socket = e.Socket
	case KindSys:
		dst.Sys = e.Sys
		arena = moveString(&dst.Sys.Name, arena)
	}
	return arena
}

// Reset makes e a zero Event. Only the payload of e's kind can be set (see
// Event), so only that one is cleared: reusing a slot costs the size of
// one payload, not of all fifteen.
func (e *Event) Reset() {
	switch e.Kind {
	case KindExec:
		e.Exec = Exec{}
	case KindFork:
		e.Fork = Fork{}
	case KindExit:
		e.Exit = Exit{}
	case KindOpen:
		e.Open = Open{}
	case KindConnect:
		e.Connect = Connect{}
	case KindSetID:
		e.SetID = SetID{}
	case KindPtrace:
		e.Ptrace = Ptrace{}
	case KindModule:
		e.Module = Module{}
	case KindBPFProg:
		e.BPFProg = BPFProg{}
	case KindMemfd:
		e.Memfd = Memfd{}
	case KindFile:
		e.File = File{}
	case KindNamespace:
		e.Namespace = Namespace{}
	case KindSignal:
		e.Signal = Signal{}
	case KindSocket:
		e.Socket = Socket{}
	case KindSys:
		e.Sys = Sys{}
	}
	e.Header = Header{}
	e.Process = nil
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
