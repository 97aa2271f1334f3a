package enclave

import (
	seccomp "github.com/elastic/go-seccomp-bpf"
	"golang.org/x/sys/unix"
)

// allowedSyscalls are what a Go gRPC plugin needs: the Go runtime and the
// dynamic loader (memory, threads, signals, time, polling), files, and
// AF_UNIX sockets for go-plugin. Measured with strace -f -c on every
// detector of the library under load, then widened to the runtime's other
// paths (profiling timers, fallbacks). ptrace, bpf, module loading, kexec,
// mount, reboot, namespaces, keyrings and everything else are not here:
// the kernel kills a plugin that calls them.
var allowedSyscalls = []string{
	// the hot ones first: the filter is a list, tried in order
	"futex", "read", "write", "epoll_pwait", "nanosleep", "sched_yield", "recvmsg", "sendmsg", "getpid", "tgkill",
	// memory
	"brk", "mmap", "munmap", "mprotect", "mremap", "madvise", "mincore", "membarrier",
	// threads, scheduling, futexes
	"sched_getaffinity", "set_robust_list", "get_robust_list", "set_tid_address",
	"rseq", "arch_prctl", "gettid", "getppid", "exit", "exit_group", "restart_syscall", "prctl",
	"clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "time",
	// signals (to its own threads; Landlock keeps them inside the plugin)
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait", "sigaltstack",
	"tkill", "kill", "getitimer", "setitimer", "timer_create", "timer_settime", "timer_gettime", "timer_delete",
	// files (Landlock says which)
	"readv", "writev", "pread64", "pwrite64", "lseek", "close", "close_range",
	"openat", "open", "access", "faccessat", "faccessat2", "stat", "lstat", "fstat", "newfstatat", "statx",
	"statfs", "fstatfs", "readlink", "readlinkat", "getdents64", "getcwd", "fcntl", "ioctl", "dup", "dup2", "dup3",
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

// policy is the filter: the allowed calls; fork and vfork fail with
// EPERM, clone3 with ENOSYS (glibc then falls back to clone, which can be
// checked); sockets only AF_UNIX, clone only for threads; death for the
// rest, a new process included.
//
// The group with argument conditions must come last: go-seccomp-bpf loads
// an argument into the accumulator to test it and does not load the
// syscall number again, so a group after it would compare numbers with
// the argument (and a call it does not allow falls to the default, death).
func policy() seccomp.Filter {
	return seccomp.Filter{
		NoNewPrivs: true,
		Flag:       seccomp.FilterFlagTSync,
		Policy: seccomp.Policy{
			DefaultAction: seccomp.ActionKillProcess,
			Syscalls: []seccomp.SyscallGroup{
				{Action: seccomp.ActionAllow, Names: allowedSyscalls},
				{Action: seccomp.ActionErrno | seccomp.Action(unix.EPERM), Names: []string{"fork", "vfork"}},
				{Action: seccomp.ActionErrno | seccomp.Action(unix.ENOSYS), Names: []string{"clone3"}},
				{Action: seccomp.ActionAllow, NamesWithCondtions: []seccomp.NameWithConditions{
					{Name: "socket", Conditions: seccomp.ArgumentConditions{{Argument: 0, Operation: seccomp.Equal, Value: unix.AF_UNIX}}},
					{Name: "socketpair", Conditions: seccomp.ArgumentConditions{{Argument: 0, Operation: seccomp.Equal, Value: unix.AF_UNIX}}},
					{Name: "clone", Conditions: seccomp.ArgumentConditions{{Argument: 0, Operation: seccomp.BitsSet, Value: unix.CLONE_THREAD}}},
				}},
			},
		},
	}
}
