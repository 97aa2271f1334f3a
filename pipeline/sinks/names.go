package sinks

import (
	"strconv"
	"syscall"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"golang.org/x/sys/unix"
)

var openFlagNames = []struct {
	flag uint64
	name string
}{
	{unix.O_CREAT, "O_CREAT"}, {unix.O_EXCL, "O_EXCL"}, {unix.O_NOCTTY, "O_NOCTTY"},
	{unix.O_TRUNC, "O_TRUNC"}, {unix.O_APPEND, "O_APPEND"}, {unix.O_NONBLOCK, "O_NONBLOCK"},
	{unix.O_DSYNC, "O_DSYNC"}, {unix.O_DIRECT, "O_DIRECT"}, {unix.O_LARGEFILE, "O_LARGEFILE"},
	{unix.O_DIRECTORY, "O_DIRECTORY"}, {unix.O_NOFOLLOW, "O_NOFOLLOW"}, {unix.O_NOATIME, "O_NOATIME"},
	{unix.O_CLOEXEC, "O_CLOEXEC"}, {unix.O_PATH, "O_PATH"},
	// O_TMPFILE includes O_DIRECTORY; __O_TMPFILE is the distinguishing bit.
	{unix.O_TMPFILE &^ unix.O_DIRECTORY, "O_TMPFILE"},
	// O_SYNC includes O_DSYNC; __O_SYNC is the distinguishing bit.
	{unix.O_SYNC &^ unix.O_DSYNC, "O_SYNC"},
}

// AppendOpenFlags writes open(2) flags as "O_WRONLY|O_CREAT|O_TRUNC".
func AppendOpenFlags(b []byte, flags uint64) []byte {
	switch flags & unix.O_ACCMODE {
	case unix.O_RDONLY:
		b = append(b, "O_RDONLY"...)
	case unix.O_WRONLY:
		b = append(b, "O_WRONLY"...)
	case unix.O_RDWR:
		b = append(b, "O_RDWR"...)
	default:
		b = append(b, "O_ACCMODE3"...)
	}
	for _, f := range openFlagNames {
		if flags&f.flag != 0 {
			b = append(b, '|')
			b = append(b, f.name...)
		}
	}
	return b
}

// ptraceRequests names the ptrace requests every Linux architecture has
// (bulkhead captures every request).
var ptraceRequests = map[int64]string{
	unix.PTRACE_TRACEME: "PTRACE_TRACEME", unix.PTRACE_PEEKTEXT: "PTRACE_PEEKTEXT", unix.PTRACE_PEEKDATA: "PTRACE_PEEKDATA",
	unix.PTRACE_PEEKUSR: "PTRACE_PEEKUSR", unix.PTRACE_POKETEXT: "PTRACE_POKETEXT", unix.PTRACE_POKEDATA: "PTRACE_POKEDATA",
	unix.PTRACE_POKEUSR: "PTRACE_POKEUSR", unix.PTRACE_CONT: "PTRACE_CONT", unix.PTRACE_KILL: "PTRACE_KILL",
	unix.PTRACE_SINGLESTEP: "PTRACE_SINGLESTEP", unix.PTRACE_GETREGS: "PTRACE_GETREGS", unix.PTRACE_SETREGS: "PTRACE_SETREGS",
	unix.PTRACE_ATTACH: "PTRACE_ATTACH", unix.PTRACE_DETACH: "PTRACE_DETACH", unix.PTRACE_SYSCALL: "PTRACE_SYSCALL",
	unix.PTRACE_SETOPTIONS: "PTRACE_SETOPTIONS", unix.PTRACE_GETEVENTMSG: "PTRACE_GETEVENTMSG",
	unix.PTRACE_GETSIGINFO: "PTRACE_GETSIGINFO", unix.PTRACE_SETSIGINFO: "PTRACE_SETSIGINFO",
	unix.PTRACE_GETREGSET: "PTRACE_GETREGSET", unix.PTRACE_SETREGSET: "PTRACE_SETREGSET", unix.PTRACE_SEIZE: "PTRACE_SEIZE",
	unix.PTRACE_INTERRUPT: "PTRACE_INTERRUPT", unix.PTRACE_LISTEN: "PTRACE_LISTEN", unix.PTRACE_PEEKSIGINFO: "PTRACE_PEEKSIGINFO",
	unix.PTRACE_GETSIGMASK: "PTRACE_GETSIGMASK", unix.PTRACE_SETSIGMASK: "PTRACE_SETSIGMASK",
	unix.PTRACE_SECCOMP_GET_FILTER: "PTRACE_SECCOMP_GET_FILTER", unix.PTRACE_SECCOMP_GET_METADATA: "PTRACE_SECCOMP_GET_METADATA",
	unix.PTRACE_GET_SYSCALL_INFO: "PTRACE_GET_SYSCALL_INFO", unix.PTRACE_GET_RSEQ_CONFIGURATION: "PTRACE_GET_RSEQ_CONFIGURATION",
	unix.PTRACE_SET_SYSCALL_USER_DISPATCH_CONFIG: "PTRACE_SET_SYSCALL_USER_DISPATCH_CONFIG",
	unix.PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG: "PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG",
}

// PtraceRequestName is "PTRACE_ATTACH" for 16; "request N" for a request
// it does not name.
func PtraceRequestName(req int64) string {
	if name, ok := ptraceRequests[req]; ok {
		return name
	}
	return "request " + strconv.FormatInt(req, 10)
}

// SignalName is "SIGKILL" for 9 (0: "0", the probe); "signal N" for a
// number Linux does not name.
func SignalName(sig uint32) string {
	if sig == 0 {
		return "0"
	}
	if name := unix.SignalName(syscall.Signal(sig)); name != "" {
		return name
	}
	return "signal " + strconv.FormatUint(uint64(sig), 10)
}

// SocketFamilyName is "AF_INET6" for 10; "family N" for the others.
func SocketFamilyName(f uint16) string {
	switch f {
	case unix.AF_UNIX:
		return "AF_UNIX"
	case unix.AF_INET:
		return "AF_INET"
	case unix.AF_INET6:
		return "AF_INET6"
	case unix.AF_NETLINK:
		return "AF_NETLINK"
	case unix.AF_PACKET:
		return "AF_PACKET"
	case unix.AF_VSOCK:
		return "AF_VSOCK"
	}
	return "family " + strconv.FormatUint(uint64(f), 10)
}

// SocketTypeName names a socket type (its flags, SOCK_NONBLOCK and
// SOCK_CLOEXEC, left out): "SOCK_RAW"; "type N" for the others.
func SocketTypeName(t uint32) string {
	switch t & 0xf {
	case unix.SOCK_STREAM:
		return "SOCK_STREAM"
	case unix.SOCK_DGRAM:
		return "SOCK_DGRAM"
	case unix.SOCK_RAW:
		return "SOCK_RAW"
	case unix.SOCK_SEQPACKET:
		return "SOCK_SEQPACKET"
	case unix.SOCK_PACKET:
		return "SOCK_PACKET"
	}
	return "type " + strconv.FormatUint(uint64(t&0xf), 10)
}

// bpfCommands names the bpf() commands.
var bpfCommands = map[uint64]string{
	unix.BPF_MAP_CREATE: "BPF_MAP_CREATE", unix.BPF_MAP_LOOKUP_ELEM: "BPF_MAP_LOOKUP_ELEM", unix.BPF_MAP_UPDATE_ELEM: "BPF_MAP_UPDATE_ELEM",
	unix.BPF_MAP_DELETE_ELEM: "BPF_MAP_DELETE_ELEM", unix.BPF_MAP_GET_NEXT_KEY: "BPF_MAP_GET_NEXT_KEY", unix.BPF_PROG_LOAD: "BPF_PROG_LOAD",
	unix.BPF_OBJ_PIN: "BPF_OBJ_PIN", unix.BPF_OBJ_GET: "BPF_OBJ_GET", unix.BPF_PROG_ATTACH: "BPF_PROG_ATTACH",
	unix.BPF_PROG_DETACH: "BPF_PROG_DETACH", unix.BPF_PROG_TEST_RUN: "BPF_PROG_TEST_RUN", unix.BPF_PROG_GET_NEXT_ID: "BPF_PROG_GET_NEXT_ID",
	unix.BPF_MAP_GET_NEXT_ID: "BPF_MAP_GET_NEXT_ID", unix.BPF_PROG_GET_FD_BY_ID: "BPF_PROG_GET_FD_BY_ID",
	unix.BPF_MAP_GET_FD_BY_ID: "BPF_MAP_GET_FD_BY_ID", unix.BPF_OBJ_GET_INFO_BY_FD: "BPF_OBJ_GET_INFO_BY_FD",
	unix.BPF_PROG_QUERY: "BPF_PROG_QUERY", unix.BPF_RAW_TRACEPOINT_OPEN: "BPF_RAW_TRACEPOINT_OPEN", unix.BPF_BTF_LOAD: "BPF_BTF_LOAD",
	unix.BPF_BTF_GET_FD_BY_ID: "BPF_BTF_GET_FD_BY_ID", unix.BPF_TASK_FD_QUERY: "BPF_TASK_FD_QUERY",
	unix.BPF_LINK_CREATE: "BPF_LINK_CREATE", unix.BPF_LINK_UPDATE: "BPF_LINK_UPDATE", unix.BPF_LINK_GET_FD_BY_ID: "BPF_LINK_GET_FD_BY_ID",
	unix.BPF_ENABLE_STATS: "BPF_ENABLE_STATS", unix.BPF_ITER_CREATE: "BPF_ITER_CREATE", unix.BPF_LINK_DETACH: "BPF_LINK_DETACH",
	unix.BPF_PROG_BIND_MAP: "BPF_PROG_BIND_MAP",
}

// SysOpName names a sys event's Op: the prctl option or the bpf command;
// "" for the calls without one, or an op it does not know.
func SysOpName(call event.Syscall, op uint64) string {
	switch call {
	case "prctl":
		if op == unix.PR_SET_NAME {
			return "PR_SET_NAME"
		}
	case "bpf":
		return bpfCommands[op]
	}
	return ""
}
