package bpf

import "golang.org/x/sys/unix"

// syscallHook is one traced syscall: its tracepoint name, number and what
// the programs make of it.
type syscallHook struct {
	name string
	nr   uint32
	what uint32
}

// sysFchmodat2 is fchmodat2 (Linux 6.6), which x/sys/unix does not name.
const sysFchmodat2 = 452

// syscallHooks lists, per record kind, the syscalls that produce it. bpf()
// is in two kinds: Attach merges its entries (WhatBPFBoth).
var syscallHooks = map[uint16][]syscallHook{
	RecordOpen:    {{"openat", unix.SYS_OPENAT, WhatOpenat}, {"openat2", unix.SYS_OPENAT2, WhatOpenat2}, {"open", unix.SYS_OPEN, WhatOpen}},
	RecordConnect: {{"connect", unix.SYS_CONNECT, WhatConnect}},
	RecordSetID: {
		{"setuid", unix.SYS_SETUID, WhatSetuid}, {"setgid", unix.SYS_SETGID, WhatSetgid},
		{"setreuid", unix.SYS_SETREUID, WhatSetreuid}, {"setregid", unix.SYS_SETREGID, WhatSetregid},
		{"setresuid", unix.SYS_SETRESUID, WhatSetresuid}, {"setresgid", unix.SYS_SETRESGID, WhatSetresgid},
		{"setfsuid", unix.SYS_SETFSUID, WhatSetfsuid}, {"setfsgid", unix.SYS_SETFSGID, WhatSetfsgid},
	},
	RecordPtrace:  {{"ptrace", unix.SYS_PTRACE, WhatPtrace}},
	RecordModule:  {{"init_module", unix.SYS_INIT_MODULE, WhatInitModule}, {"finit_module", unix.SYS_FINIT_MODULE, WhatFinitModule}},
	RecordBPFProg: {{"bpf", unix.SYS_BPF, WhatBPF}},
	RecordMemfd:   {{"memfd_create", unix.SYS_MEMFD_CREATE, WhatMemfdCreate}},
	RecordFile: {
		{"unlink", unix.SYS_UNLINK, WhatUnlink}, {"unlinkat", unix.SYS_UNLINKAT, WhatUnlinkat}, {"rmdir", unix.SYS_RMDIR, WhatRmdir},
		{"rename", unix.SYS_RENAME, WhatRename}, {"renameat", unix.SYS_RENAMEAT, WhatRenameat}, {"renameat2", unix.SYS_RENAMEAT2, WhatRenameat2},
		{"link", unix.SYS_LINK, WhatLink}, {"linkat", unix.SYS_LINKAT, WhatLinkat},
		{"symlink", unix.SYS_SYMLINK, WhatSymlink}, {"symlinkat", unix.SYS_SYMLINKAT, WhatSymlinkat},
		{"mkdir", unix.SYS_MKDIR, WhatMkdir}, {"mkdirat", unix.SYS_MKDIRAT, WhatMkdirat},
		{"chmod", unix.SYS_CHMOD, WhatChmod}, {"fchmod", unix.SYS_FCHMOD, WhatFchmod}, {"fchmodat", unix.SYS_FCHMODAT, WhatFchmodat},
		{"fchmodat2", sysFchmodat2, WhatFchmodat2},
		{"chown", unix.SYS_CHOWN, WhatChown}, {"fchown", unix.SYS_FCHOWN, WhatFchown}, {"lchown", unix.SYS_LCHOWN, WhatLchown},
		{"fchownat", unix.SYS_FCHOWNAT, WhatFchownat},
		{"truncate", unix.SYS_TRUNCATE, WhatTruncate}, {"ftruncate", unix.SYS_FTRUNCATE, WhatFtruncate},
	},
	RecordNamespace: {
		{"mount", unix.SYS_MOUNT, WhatMount}, {"umount2", unix.SYS_UMOUNT2, WhatUmount2}, {"pivot_root", unix.SYS_PIVOT_ROOT, WhatPivotRoot},
		{"chroot", unix.SYS_CHROOT, WhatChroot}, {"setns", unix.SYS_SETNS, WhatSetns}, {"unshare", unix.SYS_UNSHARE, WhatUnshare},
		{"clone", unix.SYS_CLONE, WhatClone}, {"clone3", unix.SYS_CLONE3, WhatClone3},
	},
	RecordSignal: {{"kill", unix.SYS_KILL, WhatKill}, {"tkill", unix.SYS_TKILL, WhatTkill}, {"tgkill", unix.SYS_TGKILL, WhatTgkill}},
	RecordSocket: {
		{"socket", unix.SYS_SOCKET, WhatSocket}, {"bind", unix.SYS_BIND, WhatBind}, {"listen", unix.SYS_LISTEN, WhatListen},
		{"accept", unix.SYS_ACCEPT, WhatAccept}, {"accept4", unix.SYS_ACCEPT4, WhatAccept4},
	},
	RecordSys: {
		{"capset", unix.SYS_CAPSET, WhatCapset}, {"prctl", unix.SYS_PRCTL, WhatPrctl}, {"userfaultfd", unix.SYS_USERFAULTFD, WhatUserfaultfd},
		{"io_uring_setup", unix.SYS_IO_URING_SETUP, WhatIOUringSetup}, {"kexec_load", unix.SYS_KEXEC_LOAD, WhatKexecLoad},
		{"kexec_file_load", unix.SYS_KEXEC_FILE_LOAD, WhatKexecFileLoad}, {"bpf", unix.SYS_BPF, WhatBPFCmd},
	},
}
