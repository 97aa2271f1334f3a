package enclave

import (
	"fmt"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// allowedSyscalls are what a Go gRPC plugin needs: the Go runtime and the
// dynamic loader (memory, threads, signals, time, polling), files, and
// AF_UNIX sockets for go-plugin. Measured with strace -f -c on every
// detector of the library under load, then widened to the runtime's other
// paths (profiling timers, fallbacks). ptrace, bpf, module loading, kexec,
// mount, reboot, namespaces, keyrings, setsid and everything else are not
// here: the kernel kills a plugin that calls them. ioctl, prctl, socket,
// socketpair and clone are allowed only with some arguments (argRules).
var allowedSyscalls = []string{
	// the hot ones first: the filter is a list, tried in order
	"futex", "read", "write", "epoll_pwait", "nanosleep", "sched_yield", "recvmsg", "sendmsg", "getpid", "tgkill",
	// memory
	"brk", "mmap", "munmap", "mprotect", "mremap", "madvise", "mincore", "membarrier",
	// threads, scheduling, futexes
	"sched_getaffinity", "set_robust_list", "get_robust_list", "set_tid_address",
	"rseq", "arch_prctl", "gettid", "getppid", "exit", "exit_group", "restart_syscall",
	"clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "time",
	// signals (to its own threads; Landlock keeps them inside the plugin)
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait", "sigaltstack",
	"tkill", "kill", "getitimer", "setitimer", "timer_create", "timer_settime", "timer_gettime", "timer_delete",
	// files (Landlock says which)
	"readv", "writev", "pread64", "pwrite64", "lseek", "close", "close_range",
	"openat", "open", "access", "faccessat", "faccessat2", "stat", "lstat", "fstat", "newfstatat", "statx",
	"statfs", "fstatfs", "readlink", "readlinkat", "getdents64", "getcwd", "fcntl", "dup", "dup2", "dup3",
	"fsync", "fdatasync", "ftruncate", "unlink", "unlinkat", "mkdirat", "renameat", "renameat2", "fchmod", "umask",
	"pipe", "pipe2", "eventfd2", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
	// polling
	"epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait2",
	"poll", "ppoll", "select", "pselect6",
	// sockets (socket and socketpair only for AF_UNIX, below)
	"bind", "listen", "accept", "accept4", "connect", "getsockname", "getpeername", "getsockopt", "setsockopt",
	"sendto", "recvfrom", "shutdown",
	// identity and limits (reading, or lowering its own)
	"getuid", "geteuid", "getgid", "getegid", "getgroups", "getresuid", "getresgid", "capget",
	"getrlimit", "prlimit64", "getrusage", "uname", "sysinfo", "getrandom",
	// the launcher's own exec of the plugin (Landlock allows executing
	// only the plugin binary and the dynamic loader)
	"execve", "execveat", "wait4", "waitid",
}

// Terminal ioctls a plugin must never make: TIOCSTI and TIOCLINUX type
// into a terminal (a command into the operator's shell), TIOCSCTTY takes
// a controlling terminal, TIOCCONS redirects the console, TIOCSETD
// changes the line discipline.
var refusedIoctls = []uint32{unix.TIOCSTI, unix.TIOCLINUX, unix.TIOCSCTTY, unix.TIOCCONS, unix.TIOCSETD}

// prctl options a plugin may use: naming its threads and memory (the Go
// runtime names its mappings with PR_SET_VMA), setting no_new_privs again,
// and reading. Every other option fails with EPERM: PR_SET_PDEATHSIG
// (clearing it would let the plugin outlive the monitor),
// PR_SET_CHILD_SUBREAPER, PR_SET_DUMPABLE (it would let another process
// of its uid ptrace it), PR_SET_PTRACER, PR_SET_MM, PR_SET_KEEPCAPS,
// PR_SET_SECUREBITS, PR_SET_SECCOMP, PR_SET_IO_FLUSHER…
var allowedPrctls = []uint32{
	unix.PR_SET_NAME, unix.PR_GET_NAME, unix.PR_SET_VMA, unix.PR_SET_NO_NEW_PRIVS,
	unix.PR_GET_PDEATHSIG, unix.PR_GET_DUMPABLE, unix.PR_GET_KEEPCAPS, unix.PR_CAPBSET_READ,
	unix.PR_GET_NO_NEW_PRIVS, unix.PR_GET_SECCOMP, unix.PR_GET_TIMERSLACK, unix.PR_GET_SECUREBITS,
	unix.PR_GET_CHILD_SUBREAPER, unix.PR_GET_THP_DISABLE,
}

// argRule decides a call by one argument's low 32 bits (each of these
// arguments is an int or unsigned int in the kernel, which ignores the
// high bits: comparing 64 bits would let a plugin slip past a refusal by
// setting them): when the argument is one of values (or, with bits, has
// one of them set) the action is match, else other.
type argRule struct {
	name   string
	arg    uint32
	values []uint32
	bits   bool
	match  seccomp.Action
	other  seccomp.Action
}

const (
	allow = seccomp.ActionAllow
	kill  = seccomp.ActionKillProcess
	eperm = seccomp.ActionErrno | seccomp.Action(unix.EPERM)
)

var argRules = []argRule{
	{name: "ioctl", arg: 1, values: refusedIoctls, match: eperm, other: allow},
	{name: "prctl", arg: 0, values: allowedPrctls, match: allow, other: eperm},
	{name: "socket", arg: 0, values: []uint32{unix.AF_UNIX}, match: allow, other: kill},
	{name: "socketpair", arg: 0, values: []uint32{unix.AF_UNIX}, match: allow, other: kill},
	{name: "clone", arg: 0, values: []uint32{unix.CLONE_THREAD}, bits: true, match: allow, other: kill},
}

// errnoCalls fail without killing: fork and vfork with EPERM, clone3
// with ENOSYS (glibc and Go then fall back to clone, which is checked).
var errnoCalls = map[string]seccomp.Action{
	"fork": eperm, "vfork": eperm, "clone3": seccomp.ActionErrno | seccomp.Action(unix.ENOSYS),
}

// program is the filter for architecture a. Each call is matched on its
// number alone; a call with argument rules jumps to a block of its own
// that ends in a return, so no argument is ever compared with a syscall
// number. (go-seccomp-bpf's argument groups do that: after a failed
// argument test it compares the argument with the next syscall's number,
// which is why the filter is laid out here with its Program only.)
func program(a *arch.Info) ([]bpf.Instruction, error) {
	p := seccomp.NewProgram()
	nr := func(name string) (uint32, error) {
		n, ok := a.SyscallNames[name]
		if !ok {
			return 0, fmt.Errorf("seccomp: no system call %s on %s", name, a.Name)
		}
		return uint32(n | a.SeccompMask), nil
	}
	allowed := p.NewLabel()
	for _, name := range allowedSyscalls {
		n, err := nr(name)
		if err != nil {
			return nil, err
		}
		p.JmpIfTrue(bpf.JumpEqual, n, allowed)
	}
	type errnoCall struct {
		label  seccomp.Label
		action seccomp.Action
	}
	var errnos []errnoCall
	for _, name := range []string{"fork", "vfork", "clone3"} {
		n, err := nr(name)
		if err != nil {
			continue // not on every architecture
		}
		l := p.NewLabel()
		p.JmpIfTrue(bpf.JumpEqual, n, l)
		errnos = append(errnos, errnoCall{l, errnoCalls[name]})
	}
	blocks := make([]seccomp.Label, len(argRules))
	for i, r := range argRules {
		n, err := nr(r.name)
		if err != nil {
			return nil, err
		}
		blocks[i] = p.NewLabel()
		p.JmpIfTrue(bpf.JumpEqual, n, blocks[i])
	}
	p.Ret(kill) // everything else
	p.SetLabel(allowed)
	p.Ret(allow)
	for _, e := range errnos {
		p.SetLabel(e.label)
		p.Ret(e.action)
	}
	for i, r := range argRules {
		p.SetLabel(blocks[i])
		p.LdLo(r.arg)
		matched := p.NewLabel()
		test := bpf.JumpEqual
		if r.bits {
			test = bpf.JumpBitsSet
		}
		for _, v := range r.values {
			p.JmpIfTrue(test, v, matched)
		}
		p.Ret(r.other)
		p.SetLabel(matched)
		p.Ret(r.match)
	}
	body, err := p.Assemble()
	if err != nil {
		return nil, err
	}
	// seccomp_data: nr at 0, arch at 4. Another architecture is killed;
	// on x86-64 the x32 ABI's calls fail with ENOSYS.
	out := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(a.ID), SkipTrue: 1},
		bpf.RetConstant{Val: uint32(kill)},
		bpf.LoadAbsolute{Off: 0, Size: 4},
	}
	if a.ID == arch.X86_64.ID {
		out = append(out,
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: uint32(arch.X32.SeccompMask), SkipFalse: 1},
			bpf.RetConstant{Val: uint32(seccomp.ActionErrno) | uint32(unix.ENOSYS)})
	}
	return append(out, body...), nil
}

// loadSeccomp installs the filter on every thread of the process
// (no_new_privs is already set).
func loadSeccomp() error {
	a, err := arch.GetInfo("")
	if err != nil {
		return err
	}
	insts, err := program(a)
	if err != nil {
		return err
	}
	raw, err := bpf.Assemble(insts)
	if err != nil {
		return err
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	tid, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	switch {
	case errno != 0:
		return errno
	case tid != 0:
		return fmt.Errorf("thread %d could not take the filter", tid)
	}
	return nil
}
