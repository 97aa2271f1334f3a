package sinks

import (
	"io"
	"strconv"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

// Text writes one line per event for people: time, kind, process, and the
// kind's essentials. Values a process or a plugin controls are escaped
// (appendTextValue, appendTextEscaped): one record is one line, and no
// control character reaches the terminal.
type Text struct {
	out *Output
	tb  event.Timebase
}

// NewText writes to w through an Output with the default backlog.
func NewText(w io.Writer, tb event.Timebase) *Text {
	return NewTextTo(NewOutput(w, 0, DefaultRetry), tb)
}

// NewTextTo writes to out.
func NewTextTo(out *Output, tb event.Timebase) *Text { return &Text{out: out, tb: tb} }

// Output is where t writes.
func (t *Text) Output() *Output { return t.out }

// Write formats ev. It returns an error only when ev was dropped (ErrLost).
func (t *Text) Write(ev *event.Event) error {
	if t.out.dropping() {
		return t.out.lose(false)
	}
	start := t.out.begin()
	t.out.buf = t.appendEvent(t.out.buf, ev)
	return t.out.event(start, ev.Kind)
}

func (t *Text) appendEvent(b []byte, ev *event.Event) []byte {
	b = t.tb.Wall(ev.KernelTimeNs).AppendFormat(b, "15:04:05.000000 ")
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
	b = appendTextValue(b, ev.Comm)
	b = append(b, ' ')
	switch ev.Kind {
	case event.KindExec:
		b = append(b, "exe="...)
		b = appendTextValue(b, ev.Exec.Exe)
		b = append(b, " args="...)
		b = appendTextArgs(b, ev.Exec.Args)
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
			b = appendTextValue(b, ev.Open.Resolved)
		} else {
			b = appendTextValue(b, ev.Open.Path)
		}
		if kp := ev.Open.FilePath; kp != "" && kp != ev.Open.Resolved {
			b = append(b, " file="...)
			b = appendTextValue(b, kp)
		}
		if ev.Open.Nlink > 1 {
			b = append(b, " links="...)
			b = strconv.AppendUint(b, uint64(ev.Open.Nlink), 10)
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
		b = appendTextValue(b, ev.Module.Path)
		b = appendTextRet(b, ev.Module.Ret)
	case event.KindBPFProg:
		b = append(b, "name="...)
		b = appendTextValue(b, ev.BPFProg.Name)
		b = append(b, " type="...)
		b = strconv.AppendUint(b, uint64(ev.BPFProg.ProgType), 10)
		b = appendTextRet(b, ev.BPFProg.Ret)
	case event.KindMemfd:
		b = append(b, "name="...)
		b = appendTextValue(b, ev.Memfd.Name)
		b = appendTextRet(b, ev.Memfd.Ret)
	}
	if p := ev.Process; p != nil && len(p.Ancestors) > 0 {
		b = append(b, " parent="...)
		b = appendTextValue(b, p.Ancestors[0].Exe)
	}
	return append(b, '\n')
}

// Flush pushes buffered lines out.
func (t *Text) Flush() error { return t.out.Flush() }

// appendTextArgs writes NUL-separated argv as ["a","b"], each argument
// Go-quoted.
func appendTextArgs(b []byte, args string) []byte {
	b = append(b, '[')
	for i, a := range splitArgs(args) {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, a)
	}
	return append(b, ']')
}

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
