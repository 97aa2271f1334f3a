package ruleset

import (
	"strings"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

// Field is one name a condition (or an output template) can use.
type Field struct {
	Name string
	Type *cel.Type
	Doc  string
	get  func(ev *event.Event) ref.Val
	// For guards, without boxing: the string or the number, whichever
	// the field is (nil for lists).
	str func(ev *event.Event) string
	num func(ev *event.Event) int64
}

// getter is a field's accessors.
type getter struct {
	get func(ev *event.Event) ref.Val
	str func(ev *event.Event) string
	num func(ev *event.Event) int64
}

func str(f func(ev *event.Event) string) getter {
	return getter{get: func(ev *event.Event) ref.Val { return types.String(f(ev)) }, str: f}
}

func num[T ~int32 | ~int64 | ~uint16 | ~uint32 | ~uint64](f func(ev *event.Event) T) getter {
	n := func(ev *event.Event) int64 { return int64(f(ev)) }
	return getter{get: func(ev *event.Event) ref.Val { return types.Int(n(ev)) }, num: n}
}

func list(f func(ev *event.Event) []string) getter {
	return getter{get: func(ev *event.Event) ref.Val { return types.NewStringList(types.DefaultTypeAdapter, f(ev)) }}
}

func field(name string, t *cel.Type, doc string, g getter) Field {
	return Field{Name: name, Type: t, Doc: doc, get: g.get, str: g.str, num: g.num}
}

func proc(ev *event.Event) *event.Process {
	if ev.Process != nil {
		return ev.Process
	}
	return &event.Process{}
}

func splitArgs(args string) []string {
	if args == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(args, "\x00"), "\x00")
}

// Fields are the names conditions can use, with their CEL types.
var Fields = []Field{
	field("kind", cel.StringType, "exec, fork, exit, open, connect, setid, ptrace, module, bpf_prog, memfd", str(func(ev *event.Event) string { return ev.Kind.String() })),
	field("pid", cel.IntType, "process id", num(func(ev *event.Event) uint32 { return ev.PID })),
	field("tid", cel.IntType, "thread id", num(func(ev *event.Event) uint32 { return ev.TID })),
	field("ppid", cel.IntType, "parent process id", num(func(ev *event.Event) uint32 { return ev.PPID })),
	field("uid", cel.IntType, "real user id", num(func(ev *event.Event) uint32 { return ev.UID })),
	field("euid", cel.IntType, "effective user id", num(func(ev *event.Event) uint32 { return ev.EUID })),
	field("gid", cel.IntType, "real group id", num(func(ev *event.Event) uint32 { return ev.GID })),
	field("comm", cel.StringType, "command name", str(func(ev *event.Event) string { return ev.Comm })),
	field("exe", cel.StringType, "the process's binary (for exec: the new one)", str((*event.Event).ProcessExe)),
	field("args", cel.ListType(cel.StringType), "argv", list(func(ev *event.Event) []string { return splitArgs(ev.ProcessArgs()) })),
	field("cmdline", cel.StringType, "argv joined by spaces", str(func(ev *event.Event) string {
		return strings.TrimSpace(strings.ReplaceAll(ev.ProcessArgs(), "\x00", " "))
	})),
	field("parent_exe", cel.StringType, "the parent's binary", str(func(ev *event.Event) string {
		if a := proc(ev).Ancestors; len(a) > 0 {
			return a[0].Exe
		}
		return ""
	})),
	field("parent_comm", cel.StringType, "the parent's command name", str(func(ev *event.Event) string {
		if a := proc(ev).Ancestors; len(a) > 0 {
			return a[0].Comm
		}
		return ""
	})),
	field("ancestors", cel.ListType(cel.StringType), "the binaries of the parent, grandparent …", list(func(ev *event.Event) []string {
		a := proc(ev).Ancestors
		out := make([]string, len(a))
		for i := range a {
			out[i] = a[i].Exe
		}
		return out
	})),
	field("container_id", cel.StringType, "container id, empty on the host", str(func(ev *event.Event) string { return proc(ev).ContainerID })),
	field("path", cel.StringType, "open: the opened file as the kernel resolved it (symlinks followed), or the requested path when the open failed; exec: the binary; module: the file", str(func(ev *event.Event) string {
		switch ev.Kind {
		case event.KindOpen:
			if p := ev.Open.KernelPath(); p != "" {
				return p
			}
			return ev.Open.Resolved
		case event.KindExec:
			return ev.Exec.Exe
		case event.KindModule:
			return ev.Module.Path
		}
		return ""
	})),
	field("requested_path", cel.StringType, "open: the path as passed, made absolute and cleaned (\".\", \"..\", \"//\")", str(func(ev *event.Event) string {
		if ev.Kind == event.KindOpen {
			return ev.Open.Resolved
		}
		return ""
	})),
	field("file_path", cel.StringType, "open: the opened file's path as the kernel resolved it (symlinks followed, no \"..\"; a hard link's own name); empty when the open failed or the file has no path from the root", str(func(ev *event.Event) string {
		if ev.Kind == event.KindOpen {
			return ev.Open.KernelPath()
		}
		return ""
	})),
	field("file_dev", cel.IntType, "open: the opened file's device (st_dev); 0 when the open failed", num(func(ev *event.Event) uint64 { return ev.Open.Dev })),
	field("file_ino", cel.IntType, "open: the opened file's inode; with file_dev, the file under any of its names", num(func(ev *event.Event) uint64 { return ev.Open.Ino })),
	field("file_nlink", cel.IntType, "open: how many names (hard links) the opened file has", num(func(ev *event.Event) uint32 { return ev.Open.Nlink })),
	field("file_mode", cel.IntType, "open: the opened file's st_mode (type and permission bits)", num(func(ev *event.Event) uint32 { return ev.Open.FileMode })),
	field("flags", cel.IntType, "open flags (O_*)", num(func(ev *event.Event) uint64 { return ev.Open.Flags })),
	field("ret", cel.IntType, "the syscall's return value (negative: -errno)", num(func(ev *event.Event) int64 {
		switch ev.Kind {
		case event.KindOpen:
			return ev.Open.Ret
		case event.KindConnect:
			return ev.Connect.Ret
		case event.KindSetID:
			return ev.SetID.Ret
		case event.KindPtrace:
			return ev.Ptrace.Ret
		case event.KindModule:
			return ev.Module.Ret
		case event.KindBPFProg:
			return ev.BPFProg.Ret
		case event.KindMemfd:
			return ev.Memfd.Ret
		}
		return 0
	})),
	field("addr", cel.StringType, "connect: the destination address", str(func(ev *event.Event) string {
		if ev.Kind == event.KindConnect && ev.Connect.Addr.IsValid() {
			return ev.Connect.Addr.String()
		}
		return ""
	})),
	field("port", cel.IntType, "connect: the destination port", num(func(ev *event.Event) uint16 { return ev.Connect.Port })),
	// A gid-family call's Old and New are gids; its uids are the header's,
	// which it did not change.
	field("new_uid", cel.IntType, "setid: the real uid after the call (a gid call leaves it as it was)", num(func(ev *event.Event) uint32 {
		if !uidCall(ev) {
			return ev.UID
		}
		return ev.SetID.New.Real
	})),
	field("new_euid", cel.IntType, "setid: the effective uid after the call (a gid call leaves it as it was)", num(func(ev *event.Event) uint32 {
		if !uidCall(ev) {
			return ev.EUID
		}
		return ev.SetID.New.Effective
	})),
	field("old_uid", cel.IntType, "setid: the real uid before the call", num(func(ev *event.Event) uint32 {
		if !uidCall(ev) {
			return ev.UID
		}
		return ev.SetID.Old.Real
	})),
	field("target_pid", cel.IntType, "ptrace: the traced process", num(func(ev *event.Event) uint32 { return ev.Ptrace.TargetPID })),
	field("name", cel.StringType, "bpf_prog: the program's name; memfd: the memfd's name", str(func(ev *event.Event) string {
		if ev.Kind == event.KindBPFProg {
			return ev.BPFProg.Name
		}
		return ev.Memfd.Name
	})),
}

var fieldIndex = func() map[string]int {
	m := map[string]int{}
	for i, f := range Fields {
		m[f.Name] = i
	}
	return m
}()

// uidCall reports whether ev is a setid call of the uid family (setuid,
// setreuid, setresuid, setfsuid), whose Old and New are uids.
func uidCall(ev *event.Event) bool {
	switch ev.SetID.Syscall {
	case "setuid", "setreuid", "setresuid", "setfsuid":
		return true
	}
	return false
}
