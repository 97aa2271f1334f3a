package bpf

import "golang.org/x/sys/unix"

// syscallHook is one traced syscall: its tracepoint name, number and what
// the programs make of it.
type syscallHook struct {
	name string
	nr   uint32
	what uint32
}

// syscallHooks lists, per record kind, the syscalls that produce it.
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
}
