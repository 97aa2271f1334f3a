package sinks

import (
	"bufio"
	"io"
	"strconv"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

// Text writes one line per event for people: time, kind, process, and the
// kind's essentials.
type Text struct {
	w   *bufio.Writer
	tb  event.Timebase
	buf []byte
}

// NewText writes to w.
func NewText(w io.Writer, tb event.Timebase) *Text {
	return &Text{w: bufio.NewWriterSize(w, 64<<10), tb: tb, buf: make([]byte, 0, 1024)}
}

// Write formats ev.
func (t *Text) Write(ev *event.Event) error {
	b := t.tb.Wall(ev.KernelTimeNs).AppendFormat(t.buf[:0], "15:04:05.000000 ")
	b = append(b, ev.Kind.String()...)
	for n := len(ev.Kind.String()); n < 9; n++ {
		b = append(b, ' ')
	}
	b = append(b, "pid="...)
	b = strconv.AppendUint(b, uint64(ev.PID), 10)
	b = append(b, " ppid="...)
	b = strconv.AppendUint(b, uint64(ev.PPID), 10)
	b = append(b, " uid="...)
	b = strconv.AppendUint(b, uint64(ev.UID), 10)
	b = append(b, " comm="...)
	b = append(b, ev.Comm...)
	b = append(b, ' ')
	switch ev.Kind {
	case event.KindExec:
		b = append(b, "exe="...)
		b = append(b, ev.Exec.Exe...)
		b = append(b, " args="...)
		b = appendArgs(b, ev.Exec.Args)
	case event.KindFork:
		b = append(b, "child="...)
		b = strconv.AppendUint(b, uint64(ev.Fork.ChildPID), 10)
	case event.KindExit:
		b = append(b, "code="...)
		b = strconv.AppendUint(b, uint64(ev.Exit.Code), 10)
		if ev.Exit.Signal != 0 {
			b = append(b, " signal="...)
			b = strconv.AppendUint(b, uint64(ev.Exit.Signal), 10)
		}
	case event.KindOpen:
		b = append(b, "path="...)
		if ev.Open.Resolved != "" {
			b = append(b, ev.Open.Resolved...)
		} else {
			b = append(b, ev.Open.Path...)
		}
		b = append(b, " flags="...)
		b = AppendOpenFlags(b, ev.Open.Flags)
		b = appendTextRet(b, ev.Open.Ret)
	case event.KindConnect:
		b = append(b, "dest="...)
		b = ev.Connect.Addr.AppendTo(b)
		b = append(b, ':')
		b = strconv.AppendUint(b, uint64(ev.Connect.Port), 10)
		b = appendTextRet(b, ev.Connect.Ret)
	case event.KindSetID:
		b = append(b, ev.SetID.Syscall...)
		b = append(b, " euid "...)
		b = strconv.AppendUint(b, uint64(ev.SetID.Old.Effective), 10)
		b = append(b, "->"...)
		b = strconv.AppendUint(b, uint64(ev.SetID.New.Effective), 10)
		b = appendTextRet(b, ev.SetID.Ret)
	case event.KindPtrace:
		b = append(b, PtraceRequestName(ev.Ptrace.Request)...)
		b = append(b, " target="...)
		b = strconv.AppendUint(b, uint64(ev.Ptrace.TargetPID), 10)
		b = appendTextRet(b, ev.Ptrace.Ret)
	case event.KindModule:
		b = append(b, ev.Module.Syscall...)
		b = append(b, " path="...)
		b = append(b, ev.Module.Path...)
		b = appendTextRet(b, ev.Module.Ret)
	case event.KindBPFProg:
		b = append(b, "name="...)
		b = append(b, ev.BPFProg.Name...)
		b = append(b, " type="...)
		b = strconv.AppendUint(b, uint64(ev.BPFProg.ProgType), 10)
		b = appendTextRet(b, ev.BPFProg.Ret)
	case event.KindMemfd:
		b = append(b, "name="...)
		b = append(b, ev.Memfd.Name...)
		b = appendTextRet(b, ev.Memfd.Ret)
	}
	if p := ev.Process; p != nil && len(p.Ancestors) > 0 {
		b = append(b, " parent="...)
		b = append(b, p.Ancestors[0].Exe...)
	}
	b = append(b, '\n')
	t.buf = b
	_, err := t.w.Write(b)
	return err
}

// Flush pushes buffered lines out.
func (t *Text) Flush() error { return t.w.Flush() }

func appendTextRet(b []byte, ret int64) []byte {
	b = append(b, " ret="...)
	b = strconv.AppendInt(b, ret, 10)
	if ret < 0 && ret > -4096 {
		b = append(b, ' ', '(')
		b = append(b, ErrnoName(-ret)...)
		b = append(b, ')')
	}
	return b
}
