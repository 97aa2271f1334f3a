package ruleset

import (
	"path"
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
	field("kind", cel.StringType, "exec, fork, exit, open, connect, setid, ptrace, module, bpf_prog, memfd, file, namespace, signal, socket, sys", str(func(ev *event.Event) string { return ev.Kind.String() })),
	field("syscall", cel.StringType, "the syscall, for the kinds that have several: open (open, openat, openat2), setid, module, file (unlinkat, renameat2, fchmod …), namespace, signal, socket, sys", str(eventSyscall)),
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
	field("path", cel.StringType, "open: the opened file as the kernel resolved it (symlinks followed), or the requested path when the open failed; exec: the binary; module: the file; file: the file the call names (rename, link: the old name; symlink: the link's target, made absolute against the link's directory; fchmod, fchown, ftruncate: the kernel's path of the descriptor); namespace: mount, umount2, chroot: the mount point or new root, made absolute", str(func(ev *event.Event) string {
		switch ev.Kind {
		case event.KindFile:
			return filePath(&ev.File)
		case event.KindNamespace:
			return namespacePath(&ev.Namespace)
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
		case event.KindFile:
			return ev.File.Ret
		case event.KindNamespace:
			return ev.Namespace.Ret
		case event.KindSignal:
			return ev.Signal.Ret
		case event.KindSocket:
			return ev.Socket.Ret
		case event.KindSys:
			return ev.Sys.Ret
		}
		return 0
	})),
	field("addr", cel.StringType, "connect: the destination address; socket: the local address (bound, listened on, accepted on)", str(func(ev *event.Event) string {
		switch {
		case ev.Kind == event.KindConnect && ev.Connect.Addr.IsValid():
			return ev.Connect.Addr.String()
		case ev.Kind == event.KindSocket && ev.Socket.Addr.IsValid():
			return ev.Socket.Addr.String()
		}
		return ""
	})),
	field("port", cel.IntType, "connect: the destination port; socket: the local port", num(func(ev *event.Event) uint16 {
		switch ev.Kind {
		case event.KindConnect:
			return ev.Connect.Port
		case event.KindSocket:
			return ev.Socket.Port
		}
		return 0
	})),
	field("peer_addr", cel.StringType, "socket: accept: the remote address", str(func(ev *event.Event) string {
		if ev.Kind == event.KindSocket && ev.Socket.Peer.IsValid() {
			return ev.Socket.Peer.String()
		}
		return ""
	})),
	field("peer_port", cel.IntType, "socket: accept: the remote port", num(func(ev *event.Event) uint16 { return onKind(ev, event.KindSocket, ev.Socket.PeerPort) })),
	field("family", cel.IntType, "socket: the address family (AF_INET 2, AF_INET6 10, AF_PACKET 17 …)", num(func(ev *event.Event) uint16 { return onKind(ev, event.KindSocket, ev.Socket.Family) })),
	field("sock_type", cel.IntType, "socket: the socket type without its flags (SOCK_STREAM 1, SOCK_DGRAM 2, SOCK_RAW 3 …)", num(func(ev *event.Event) uint32 { return onKind(ev, event.KindSocket, ev.Socket.Type&0xf) })),
	field("protocol", cel.IntType, "socket: the protocol (for AF_PACKET, the ethertype)", num(func(ev *event.Event) uint32 { return onKind(ev, event.KindSocket, ev.Socket.Protocol) })),
	field("backlog", cel.IntType, "socket: listen's backlog", num(func(ev *event.Event) int32 { return onKind(ev, event.KindSocket, ev.Socket.Backlog) })),
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
	field("target_pid", cel.IntType, "ptrace: the traced process; signal: the process signalled (kill: 0 and below name process groups, -1 every process; tkill: 0)", num(func(ev *event.Event) int64 {
		switch ev.Kind {
		case event.KindPtrace:
			return int64(ev.Ptrace.TargetPID)
		case event.KindSignal:
			return int64(ev.Signal.TargetPID)
		}
		return 0
	})),
	field("target_comm", cel.StringType, "signal: the target's command name, when one process was found", str(func(ev *event.Event) string { return onKind(ev, event.KindSignal, ev.Signal.TargetComm) })),
	field("signal", cel.IntType, "signal: the signal sent (0 probes whether the target exists)", num(func(ev *event.Event) uint32 { return onKind(ev, event.KindSignal, ev.Signal.Signal) })),
	field("name", cel.StringType, "bpf_prog: the program's name; memfd: the memfd's name; sys: prctl(PR_SET_NAME): the new name, kexec_file_load: the kernel image, bpf: the object's name", str(func(ev *event.Event) string {
		switch ev.Kind {
		case event.KindBPFProg:
			return ev.BPFProg.Name
		case event.KindMemfd:
			return ev.Memfd.Name
		case event.KindSys:
			return ev.Sys.Name
		}
		return ""
	})),
	field("script", cel.StringType, "exec: for a script (#!), the script's path (the interpreter is exe); empty for a binary", str(func(ev *event.Event) string { return onKind(ev, event.KindExec, ev.Exec.Script) })),
	field("env", cel.ListType(cel.StringType), "exec: the selected variables of the new program's environment (LD_PRELOAD, LD_LIBRARY_PATH, proxies, BASH_ENV …), NAME=value", list(func(ev *event.Event) []string {
		if ev.Kind != event.KindExec {
			return nil
		}
		return ev.Exec.EnvList()
	})),
	field("file_op", cel.StringType, "file: unlink, rmdir, rename, link, symlink, mkdir, chmod, chown, truncate", str(func(ev *event.Event) string { return onKind(ev, event.KindFile, string(ev.File.Op)) })),
	field("new_path", cel.StringType, "file: rename, link, symlink: the new name, made absolute", str(func(ev *event.Event) string { return onKind(ev, event.KindFile, ev.File.NewResolved) })),
	field("mode", cel.IntType, "file: chmod, mkdir: the mode passed, setuid (0o4000), setgid (0o2000) and sticky (0o1000) bits included", num(func(ev *event.Event) uint32 { return onKind(ev, event.KindFile, ev.File.Mode) })),
	field("mode_bits", cel.ListType(cel.StringType), "file: chmod, mkdir: \"setuid\", \"setgid\", \"sticky\" where mode sets them", list(func(ev *event.Event) []string {
		if ev.Kind != event.KindFile {
			return nil
		}
		return ev.File.SpecialBits()
	})),
	field("owner_uid", cel.IntType, "file: chown: the new owner; -1 when the call leaves it unchanged, and for every other event", num(func(ev *event.Event) int64 { return chownID(ev, ev.File.UID) })),
	field("owner_gid", cel.IntType, "file: chown: the new group; -1 when the call leaves it unchanged, and for every other event", num(func(ev *event.Event) int64 { return chownID(ev, ev.File.GID) })),
	field("length", cel.IntType, "file: truncate: the new length", num(func(ev *event.Event) int64 { return onKind(ev, event.KindFile, ev.File.Length) })),
	field("at_flags", cel.IntType, "file: the call's flags (AT_REMOVEDIR 0x200, AT_SYMLINK_NOFOLLOW 0x100, RENAME_EXCHANGE 2 …)", num(func(ev *event.Event) uint32 { return onKind(ev, event.KindFile, ev.File.AtFlags) })),
	field("ns_flags", cel.IntType, "namespace: the call's flags: MS_* for mount, MNT_* for umount2, CLONE_* for unshare and clone, the namespace type for setns", num(func(ev *event.Event) uint64 { return onKind(ev, event.KindNamespace, ev.Namespace.Flags) })),
	field("namespaces", cel.ListType(cel.StringType), "namespace: unshare, clone, setns: the namespaces named (mnt, pid, net, user, uts, ipc, cgroup, time)", list(func(ev *event.Event) []string {
		if ev.Kind != event.KindNamespace {
			return nil
		}
		return ev.Namespace.Namespaces()
	})),
	field("mount_source", cel.StringType, "namespace: mount: the source; pivot_root: the new root", str(func(ev *event.Event) string { return onKind(ev, event.KindNamespace, ev.Namespace.Source) })),
	field("fstype", cel.StringType, "namespace: mount: the filesystem type", str(func(ev *event.Event) string { return onKind(ev, event.KindNamespace, ev.Namespace.FSType) })),
	field("ns_file", cel.StringType, "namespace: setns: what the descriptor refers to, as the kernel names it (\"mnt:[4026531841]\")", str(func(ev *event.Event) string { return onKind(ev, event.KindNamespace, ev.Namespace.NsFile) })),
	field("op", cel.IntType, "sys: prctl: the option (PR_SET_NAME 15); bpf: the command (BPF_PROG_ATTACH 8, BPF_LINK_CREATE 28 …)", num(func(ev *event.Event) uint64 { return onKind(ev, event.KindSys, ev.Sys.Op) })),
	field("sys_arg0", cel.IntType, "sys: capset: the effective capabilities; userfaultfd, kexec_file_load: the flags; io_uring_setup: the entries; kexec_load: the segments; bpf: the attach type (a mask with bit 63 set reads negative)", num(func(ev *event.Event) uint64 { return onKind(ev, event.KindSys, ev.Sys.Args[0]) })),
	field("sys_arg1", cel.IntType, "sys: capset: the permitted capabilities; io_uring_setup, kexec_load: the flags; bpf: the target fd or object id", num(func(ev *event.Event) uint64 { return onKind(ev, event.KindSys, ev.Sys.Args[1]) })),
	field("sys_arg2", cel.IntType, "sys: capset: the inheritable capabilities", num(func(ev *event.Event) uint64 { return onKind(ev, event.KindSys, ev.Sys.Args[2]) })),
}

// onKind is v for an event of kind k, zero for the others.
func onKind[T any](ev *event.Event, k event.Kind, v T) T {
	if ev.Kind == k {
		return v
	}
	var zero T
	return zero
}

func eventSyscall(ev *event.Event) string {
	switch ev.Kind {
	case event.KindOpen:
		return string(ev.Open.Syscall)
	case event.KindSetID:
		return string(ev.SetID.Syscall)
	case event.KindModule:
		return string(ev.Module.Syscall)
	case event.KindFile:
		return string(ev.File.Syscall)
	case event.KindNamespace:
		return string(ev.Namespace.Syscall)
	case event.KindSignal:
		return string(ev.Signal.Syscall)
	case event.KindSocket:
		return string(ev.Socket.Syscall)
	case event.KindSys:
		return string(ev.Sys.Syscall)
	}
	return ""
}

// chownID is a chown's uid or gid, -1 for NoID and for every other event.
func chownID(ev *event.Event, id uint32) int64 {
	if ev.Kind != event.KindFile || ev.File.Op != event.FileChown || id == event.NoID {
		return -1
	}
	return int64(id)
}

// filePath is the file a file event names: its path made absolute, or the
// kernel's path of the descriptor; for a symlink its target, made
// absolute against the link's directory.
func filePath(f *event.File) string {
	if f.Op == event.FileSymlink {
		if strings.HasPrefix(f.Path, "/") || f.NewResolved == "" {
			return f.Path
		}
		return path.Join(path.Dir(f.NewResolved), f.Path)
	}
	if f.Resolved != "" {
		return f.Resolved
	}
	return f.FilePath
}

// namespacePath is the mount point of a mount or umount2, or the new root
// of a chroot, made absolute against Dir when relative.
func namespacePath(n *event.Namespace) string {
	switch n.Syscall {
	case "mount", "umount2", "chroot":
	default:
		return ""
	}
	if strings.HasPrefix(n.Target, "/") || n.Dir == "" || n.Target == "" {
		return n.Target
	}
	return path.Join(n.Dir, n.Target)
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
