package sinks

import (
	"io"
	"net/netip"
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
	if len(ev.Kind.String()) >= 9 { // namespace
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
		if ev.Exec.Script != "" {
			b = append(b, " script="...)
			b = appendTextValue(b, ev.Exec.Script)
		}
		if ev.Exec.Env != "" {
			b = append(b, " env="...)
			b = appendTextArgs(b, ev.Exec.Env)
		}
		if ev.Flags&event.FlagTruncEnv != 0 {
			b = append(b, " env_truncated"...)
		}
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
		b = appendTextValue(b, string(ev.SetID.Syscall))
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
		b = appendTextValue(b, string(ev.Module.Syscall))
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
	case event.KindFile:
		b = appendTextFile(b, &ev.File)
	case event.KindNamespace:
		b = appendTextNamespace(b, &ev.Namespace)
	case event.KindSignal:
		s := &ev.Signal
		b = appendTextValue(b, string(s.Syscall))
		b = append(b, " sig="...)
		b = append(b, SignalName(s.Signal)...)
		b = append(b, " target="...)
		b = strconv.AppendInt(b, int64(s.TargetPID), 10)
		if s.TargetTID != 0 {
			b = append(b, " tid="...)
			b = strconv.AppendInt(b, int64(s.TargetTID), 10)
		}
		if s.TargetComm != "" {
			b = append(b, " target_comm="...)
			b = appendTextValue(b, s.TargetComm)
		}
		b = appendTextRet(b, s.Ret)
	case event.KindSocket:
		b = appendTextSocket(b, &ev.Socket)
	case event.KindSys:
		b = appendTextSys(b, &ev.Sys)
	}
	if p := ev.Process; p != nil && len(p.Ancestors) > 0 {
		b = append(b, " parent="...)
		b = appendTextValue(b, p.Ancestors[0].Exe)
	}
	return append(b, '\n')
}

func appendTextFile(b []byte, f *event.File) []byte {
	b = appendTextValue(b, string(f.Op))
	if string(f.Syscall) != string(f.Op) {
		b = append(b, '(')
		b = appendTextValue(b, string(f.Syscall))
		b = append(b, ')')
	}
	switch {
	case f.Op == event.FileSymlink:
		b = append(b, " target="...) // the link's contents, as passed
		b = appendTextValue(b, f.Path)
	case f.Resolved != "":
		b = append(b, " path="...)
		b = appendTextValue(b, f.Resolved)
	case f.Path != "":
		b = append(b, " path="...)
		b = appendTextValue(b, f.Path)
	}
	if f.FilePath != "" && f.FilePath != f.Resolved {
		b = append(b, " file="...)
		b = appendTextValue(b, f.FilePath)
	}
	if f.NewResolved != "" || f.NewPath != "" {
		b = append(b, " new="...)
		if f.NewResolved != "" {
			b = appendTextValue(b, f.NewResolved)
		} else {
			b = appendTextValue(b, f.NewPath)
		}
	}
	if f.Op == event.FileChmod || f.Op == event.FileMkdir || f.Mode != 0 {
		b = append(b, " mode="...)
		b = appendOctal(b, f.Mode)
		for _, bit := range f.SpecialBits() {
			b = append(b, ',')
			b = append(b, bit...)
		}
	}
	if f.Op == event.FileChown || f.UID != 0 || f.GID != 0 {
		b = append(b, " owner="...)
		b = strconv.AppendInt(b, int64(int32(f.UID)), 10)
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(int32(f.GID)), 10)
	}
	if f.Op == event.FileTruncate || f.Length != 0 {
		b = append(b, " length="...)
		b = strconv.AppendInt(b, f.Length, 10)
	}
	if f.AtFlags != 0 {
		b = append(b, " at_flags=0x"...)
		b = strconv.AppendUint(b, uint64(f.AtFlags), 16)
	}
	return appendTextRet(b, f.Ret)
}

func appendOctal(b []byte, mode uint32) []byte {
	b = append(b, '0')
	return strconv.AppendUint(b, uint64(mode), 8)
}

func appendTextNamespace(b []byte, n *event.Namespace) []byte {
	b = appendTextValue(b, string(n.Syscall))
	for _, kv := range [...]struct{ k, v string }{{" source=", n.Source}, {" target=", n.Target}, {" dir=", n.Dir}, {" fstype=", n.FSType}, {" ns=", n.NsFile}} {
		if kv.v != "" {
			b = append(b, kv.k...)
			b = appendTextValue(b, kv.v)
		}
	}
	if n.Syscall == "setns" || n.Fd != 0 {
		b = append(b, " fd="...)
		b = strconv.AppendInt(b, int64(n.Fd), 10)
	}
	b = append(b, " flags=0x"...)
	b = strconv.AppendUint(b, n.Flags, 16)
	if ns := n.Namespaces(); len(ns) > 0 {
		b = append(b, " namespaces="...)
		for i, name := range ns {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, name...)
		}
	}
	return appendTextRet(b, n.Ret)
}

func appendTextSocket(b []byte, s *event.Socket) []byte {
	b = appendTextValue(b, string(s.Syscall))
	b = append(b, " fd="...)
	b = strconv.AppendInt(b, int64(s.Fd), 10)
	b = append(b, ' ')
	b = append(b, SocketFamilyName(s.Family)...)
	if s.Type != 0 {
		b = append(b, ' ')
		b = append(b, SocketTypeName(s.Type)...)
	}
	if s.Protocol != 0 {
		b = append(b, " proto="...)
		b = strconv.AppendUint(b, uint64(s.Protocol), 10)
	}
	if s.Addr.IsValid() {
		b = append(b, " local="...)
		b = netip.AddrPortFrom(s.Addr, s.Port).AppendTo(b)
	}
	if s.Peer.IsValid() {
		b = append(b, " peer="...)
		b = netip.AddrPortFrom(s.Peer, s.PeerPort).AppendTo(b)
	}
	if s.Syscall == "listen" || s.Backlog != 0 {
		b = append(b, " backlog="...)
		b = strconv.AppendInt(b, int64(s.Backlog), 10)
	}
	return appendTextRet(b, s.Ret)
}

func appendTextSys(b []byte, s *event.Sys) []byte {
	b = appendTextValue(b, string(s.Syscall))
	if name := SysOpName(s.Syscall, s.Op); name != "" {
		b = append(b, ' ')
		b = append(b, name...)
	} else if s.Op != 0 {
		b = append(b, " op="...)
		b = strconv.AppendUint(b, s.Op, 10)
	}
	if s.Name != "" {
		b = append(b, " name="...)
		b = appendTextValue(b, s.Name)
	}
	if s.Args != [3]uint64{} {
		b = append(b, " args="...)
		for i, a := range s.Args {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, "0x"...)
			b = strconv.AppendUint(b, a, 16)
		}
	}
	return appendTextRet(b, s.Ret)
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
