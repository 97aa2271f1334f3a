package sinks

import (
	"io"
	"strconv"
	"syscall"
	"time"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"golang.org/x/sys/unix"
)

// JSON writes one JSON object per event, per line. Encoding appends into
// the output's buffer: no allocation per event.
type JSON struct {
	out *Output
	tb  event.Timebase
}

// DefaultRetry is how often a failing output is tried again.
const DefaultRetry = 100 * time.Millisecond

// NewJSON writes to w through an Output with the default backlog.
func NewJSON(w io.Writer, tb event.Timebase) *JSON {
	return NewJSONTo(NewOutput(w, 0, DefaultRetry), tb)
}

// NewJSONTo writes to out.
func NewJSONTo(out *Output, tb event.Timebase) *JSON { return &JSON{out: out, tb: tb} }

// Write encodes ev. It returns an error only when ev was dropped (ErrLost):
// a failing writer keeps records in its backlog and is tried again.
func (j *JSON) Write(ev *event.Event) error {
	if j.out.dropping() {
		return j.out.lose(false)
	}
	start := j.out.begin()
	j.out.buf = AppendEventJSON(j.out.buf, ev, j.tb)
	j.out.buf = append(j.out.buf, '\n')
	return j.out.event(start, ev.Kind)
}

// Flush pushes buffered lines out.
func (j *JSON) Flush() error { return j.out.Flush() }

// Output is where j writes.
func (j *JSON) Output() *Output { return j.out }

// AppendEventJSON appends ev as a JSON object.
func AppendEventJSON(b []byte, ev *event.Event, tb event.Timebase) []byte {
	b = append(b, `{"type":"event","time":"`...)
	b = tb.Wall(ev.KernelTimeNs).UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","kind":"`...)
	b = append(b, ev.Kind.String()...)
	b = append(b, '"')
	b = field(b, "pid", uint64(ev.PID))
	b = field(b, "tid", uint64(ev.TID))
	b = field(b, "ppid", uint64(ev.PPID))
	b = field(b, "uid", uint64(ev.UID))
	b = field(b, "gid", uint64(ev.GID))
	b = field(b, "euid", uint64(ev.EUID))
	b = field(b, "egid", uint64(ev.EGID))
	b = field(b, "cgroup_id", ev.CgroupID)
	b = append(b, ',')
	b = appendField(b, "comm", ev.Comm)
	if ev.Flags != 0 {
		b = append(b, `,"flags":[`...)
		for i, n := range ev.Flags.Names() {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, n)
		}
		b = append(b, ']')
	}
	b = append(b, `,"`...)
	b = append(b, ev.Kind.String()...)
	b = append(b, `":{`...)
	b = appendPayload(b, ev)
	b = append(b, '}')
	if p := ev.Process; p != nil {
		b = append(b, `,"process":{`...)
		b = appendField(b, "exe", p.Exe)
		b = append(b, ',')
		b = appendArgsField(b, "args", p.Args)
		if p.CgroupPath != "" {
			b = append(b, ',')
			b = appendField(b, "cgroup", p.CgroupPath)
		}
		if p.ContainerID != "" {
			b = append(b, ',')
			b = appendField(b, "container_id", p.ContainerID)
		}
		b = append(b, `,"ancestors":[`...)
		for i, a := range p.Ancestors {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"pid":`...)
			b = strconv.AppendUint(b, uint64(a.PID), 10)
			b = append(b, ',')
			b = appendField(b, "exe", a.Exe)
			b = append(b, ',')
			b = appendField(b, "comm", a.Comm)
			b = append(b, '}')
		}
		b = append(b, "]}"...)
	}
	return append(b, '}')
}

func appendPayload(b []byte, ev *event.Event) []byte {
	switch ev.Kind {
	case event.KindExec:
		e := &ev.Exec
		b = appendField(b, "filename", e.Filename)
		b = append(b, ',')
		b = appendField(b, "exe", e.Exe)
		b = append(b, ',')
		b = appendArgsField(b, "args", e.Args)
		b = append(b, `,"args_truncated":`...)
		b = strconv.AppendBool(b, ev.Flags&event.FlagTruncArgs != 0)
		b = field(b, "args_size", uint64(e.ArgsSize))
		b = field(b, "exe_nlink", uint64(e.ExeNlink))
		if e.Script != "" {
			b = append(b, ',')
			b = appendField(b, "script", e.Script)
		}
		if e.Env != "" {
			b = append(b, ',')
			b = appendArgsField(b, "env", e.Env)
		}
		b = append(b, `,"env_truncated":`...)
		b = strconv.AppendBool(b, ev.Flags&event.FlagTruncEnv != 0)
	case event.KindFork:
		b = append(b, `"child_pid":`...)
		b = strconv.AppendUint(b, uint64(ev.Fork.ChildPID), 10)
	case event.KindExit:
		b = append(b, `"code":`...)
		b = strconv.AppendUint(b, uint64(ev.Exit.Code), 10)
		b = field(b, "signal", uint64(ev.Exit.Signal))
		b = append(b, `,"core_dumped":`...)
		b = strconv.AppendBool(b, ev.Exit.CoreDumped)
	case event.KindOpen:
		o := &ev.Open
		b = append(b, `"syscall":`...)
		b = appendString(b, string(o.Syscall))
		b = append(b, ',')
		b = appendField(b, "path", o.Path)
		if o.Dir != "" {
			b = append(b, ',')
			b = appendField(b, "dir", o.Dir)
		}
		if o.Resolved != "" {
			b = append(b, ',')
			b = appendField(b, "resolved", o.Resolved)
		}
		if o.FilePath != "" {
			b = append(b, ',')
			b = appendField(b, "file_path", o.FilePath)
		}
		if o.Ret >= 0 && o.Ino != 0 {
			b = field(b, "file_dev", o.Dev)
			b = field(b, "file_ino", o.Ino)
			b = field(b, "file_nlink", uint64(o.Nlink))
			b = field(b, "file_mode", uint64(o.FileMode))
		}
		b = field(b, "flags", o.Flags)
		b = append(b, `,"flags_text":"`...)
		b = AppendOpenFlags(b, o.Flags)
		b = append(b, '"')
		b = field(b, "mode", o.Mode)
		if o.Dfd != -100 {
			b = append(b, `,"dfd":`...)
			b = strconv.AppendInt(b, int64(o.Dfd), 10)
		}
		b = appendRet(b, o.Ret)
	case event.KindConnect:
		c := &ev.Connect
		b = append(b, `"addr":"`...)
		b = c.Addr.AppendTo(b)
		b = append(b, '"')
		b = field(b, "port", uint64(c.Port))
		b = append(b, `,"family":`...)
		if c.Addr.Is4() {
			b = append(b, `"ipv4"`...)
		} else {
			b = append(b, `"ipv6"`...)
		}
		b = append(b, `,"fd":`...)
		b = strconv.AppendInt(b, int64(c.Fd), 10)
		b = appendRet(b, c.Ret)
	case event.KindSetID:
		s := &ev.SetID
		b = append(b, `"syscall":`...)
		b = appendString(b, string(s.Syscall))
		b = append(b, `,"args":[`...)
		for i, a := range s.Args[:setIDArgCount(s.Syscall)] {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(int32(a)), 10)
		}
		b = append(b, `],"old":`...)
		b = appendIDs(b, s.Old)
		b = append(b, `,"new":`...)
		b = appendIDs(b, s.New)
		b = appendRet(b, s.Ret)
	case event.KindPtrace:
		p := &ev.Ptrace
		b = append(b, `"request":`...)
		b = strconv.AppendInt(b, p.Request, 10)
		b = append(b, `,"request_name":`...)
		b = appendString(b, PtraceRequestName(p.Request))
		b = field(b, "target_pid", uint64(p.TargetPID))
		b = appendRet(b, p.Ret)
	case event.KindModule:
		m := &ev.Module
		b = append(b, `"syscall":`...)
		b = appendString(b, string(m.Syscall))
		b = append(b, ',')
		b = appendField(b, "path", m.Path)
		b = append(b, ',')
		b = appendField(b, "params", m.Params)
		b = field(b, "len", m.Len)
		b = field(b, "flags", uint64(m.Flags))
		b = appendRet(b, m.Ret)
	case event.KindBPFProg:
		p := &ev.BPFProg
		b = appendField(b, "name", p.Name)
		b = field(b, "prog_type", uint64(p.ProgType))
		b = field(b, "insn_count", uint64(p.InsnCount))
		b = appendRet(b, p.Ret)
	case event.KindMemfd:
		m := &ev.Memfd
		b = appendField(b, "name", m.Name)
		b = field(b, "flags", uint64(m.Flags))
		b = appendRet(b, m.Ret)
	case event.KindFile:
		b = appendFileJSON(b, &ev.File)
	case event.KindNamespace:
		b = appendNamespaceJSON(b, &ev.Namespace)
	case event.KindSignal:
		s := &ev.Signal
		b = appendField(b, "syscall", string(s.Syscall))
		b = intField(b, "target_pid", int64(s.TargetPID))
		b = intField(b, "target_tid", int64(s.TargetTID))
		if s.TargetComm != "" {
			b = append(b, ',')
			b = appendField(b, "target_comm", s.TargetComm)
		}
		b = field(b, "signal", uint64(s.Signal))
		b = append(b, `,"signal_name":`...)
		b = appendString(b, SignalName(s.Signal))
		b = appendRet(b, s.Ret)
	case event.KindSocket:
		b = appendSocketJSON(b, &ev.Socket)
	case event.KindSys:
		s := &ev.Sys
		b = appendField(b, "syscall", string(s.Syscall))
		b = field(b, "op", s.Op)
		if name := SysOpName(s.Syscall, s.Op); name != "" {
			b = append(b, `,"op_name":`...)
			b = appendString(b, name)
		}
		b = append(b, `,"args":[`...)
		for i, a := range s.Args {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, a, 10)
		}
		b = append(b, ']')
		if s.Name != "" {
			b = append(b, ',')
			b = appendField(b, "name", s.Name)
		}
		b = appendRet(b, s.Ret)
	}
	return b
}

// appendFileJSON writes a file event: its paths where the call had them,
// and its numbers where the operation has them or they are set.
func appendFileJSON(b []byte, f *event.File) []byte {
	b = appendField(b, "op", string(f.Op))
	b = append(b, ',')
	b = appendField(b, "syscall", string(f.Syscall))
	for _, kv := range [...]struct{ k, v string }{
		{"path", f.Path}, {"dir", f.Dir}, {"resolved", f.Resolved},
		{"new_path", f.NewPath}, {"new_dir", f.NewDir}, {"new_resolved", f.NewResolved}, {"file_path", f.FilePath},
	} {
		if kv.v != "" {
			b = append(b, ',')
			b = appendField(b, kv.k, kv.v)
		}
	}
	if f.Ino != 0 || f.Dev != 0 || f.FileMode != 0 {
		b = field(b, "file_dev", f.Dev)
		b = field(b, "file_ino", f.Ino)
		b = field(b, "file_mode", uint64(f.FileMode))
	}
	if f.Op == event.FileChmod || f.Op == event.FileMkdir || f.Mode != 0 {
		b = field(b, "mode", uint64(f.Mode))
		b = append(b, `,"mode_bits":[`...)
		for i, bit := range f.SpecialBits() {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, bit)
		}
		b = append(b, ']')
	}
	if f.Op == event.FileChown || f.UID != 0 || f.GID != 0 {
		b = intField(b, "owner_uid", int64(int32(f.UID))) // -1: unchanged
		b = intField(b, "owner_gid", int64(int32(f.GID)))
	}
	if f.Op == event.FileTruncate || f.Length != 0 {
		b = intField(b, "length", f.Length)
	}
	b = field(b, "at_flags", uint64(f.AtFlags))
	return appendRet(b, f.Ret)
}

func appendNamespaceJSON(b []byte, n *event.Namespace) []byte {
	b = appendField(b, "syscall", string(n.Syscall))
	b = field(b, "flags", n.Flags)
	if ns := n.Namespaces(); ns != nil {
		b = append(b, `,"namespaces":[`...)
		for i, name := range ns {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, name)
		}
		b = append(b, ']')
	}
	if n.Syscall == "setns" || n.Fd != 0 {
		b = intField(b, "fd", int64(n.Fd))
	}
	for _, kv := range [...]struct{ k, v string }{{"ns_file", n.NsFile}, {"source", n.Source}, {"target", n.Target}, {"fstype", n.FSType}, {"dir", n.Dir}} {
		if kv.v != "" {
			b = append(b, ',')
			b = appendField(b, kv.k, kv.v)
		}
	}
	return appendRet(b, n.Ret)
}

func appendSocketJSON(b []byte, s *event.Socket) []byte {
	b = appendField(b, "syscall", string(s.Syscall))
	b = intField(b, "fd", int64(s.Fd))
	b = field(b, "family", uint64(s.Family))
	b = append(b, `,"family_name":`...)
	b = appendString(b, SocketFamilyName(s.Family))
	b = field(b, "type", uint64(s.Type))
	b = field(b, "protocol", uint64(s.Protocol))
	if s.Addr.IsValid() {
		b = append(b, `,"addr":"`...)
		b = s.Addr.AppendTo(b)
		b = append(b, '"')
		b = field(b, "port", uint64(s.Port))
	}
	if s.Peer.IsValid() {
		b = append(b, `,"peer_addr":"`...)
		b = s.Peer.AppendTo(b)
		b = append(b, '"')
		b = field(b, "peer_port", uint64(s.PeerPort))
	}
	if s.Syscall == "listen" || s.Backlog != 0 {
		b = intField(b, "backlog", int64(s.Backlog))
	}
	return appendRet(b, s.Ret)
}

func setIDArgCount(s event.Syscall) int {
	switch s {
	case "setreuid", "setregid":
		return 2
	case "setresuid", "setresgid":
		return 3
	}
	return 1
}

func appendIDs(b []byte, ids event.IDs) []byte {
	b = append(b, `{"real":`...)
	b = strconv.AppendUint(b, uint64(ids.Real), 10)
	b = field(b, "effective", uint64(ids.Effective))
	b = field(b, "saved", uint64(ids.Saved))
	b = field(b, "fs", uint64(ids.FS))
	return append(b, '}')
}

// appendRet writes the syscall result and, for failures, the errno's name.
func appendRet(b []byte, ret int64) []byte {
	b = append(b, `,"ret":`...)
	b = strconv.AppendInt(b, ret, 10)
	if ret < 0 && ret > -4096 {
		b = append(b, `,"error":"`...)
		b = append(b, ErrnoName(-ret)...)
		b = append(b, '"')
	}
	return b
}

// ErrnoName is "ENOENT" for 2; "errno N" for numbers Linux does not name.
func ErrnoName(n int64) string {
	if name := unix.ErrnoName(syscall.Errno(n)); name != "" {
		return name
	}
	return "errno " + strconv.FormatInt(n, 10)
}

func intField(b []byte, name string, v int64) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, v, 10)
}

func field(b []byte, name string, v uint64) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendUint(b, v, 10)
}
