package bpf

// The record layouts the kernel writes to the ring buffer, generated from
// events.h. pipeline/decode reads them; nothing else should.
type (
	HeaderRecord   = bulkheadEventHeader
	StrRef         = bulkheadStrRef
	ExecRecord     = bulkheadExecEvent
	ForkRecord     = bulkheadForkEvent
	ExitRecord     = bulkheadExitEvent
	OpenRecord     = bulkheadOpenEvent
	ConnectRecord  = bulkheadConnectEvent
	SetIDRecord    = bulkheadSetidEvent
	PtraceRecord   = bulkheadPtraceEvent
	ModuleRecord   = bulkheadModuleEvent
	BPFProgRecord  = bulkheadBpfProgEvent
	MemfdRecord    = bulkheadMemfdEvent
	CountersRecord = bulkheadEventCounters
)

// Record kinds as the kernel numbers them (enum event_kind).
const (
	RecordExec    = uint16(bulkheadEventKindKIND_EXEC)
	RecordFork    = uint16(bulkheadEventKindKIND_FORK)
	RecordExit    = uint16(bulkheadEventKindKIND_EXIT)
	RecordOpen    = uint16(bulkheadEventKindKIND_OPEN)
	RecordConnect = uint16(bulkheadEventKindKIND_CONNECT)
	RecordSetID   = uint16(bulkheadEventKindKIND_SETID)
	RecordPtrace  = uint16(bulkheadEventKindKIND_PTRACE)
	RecordModule  = uint16(bulkheadEventKindKIND_MODULE)
	RecordBPFProg = uint16(bulkheadEventKindKIND_BPF_PROG)
	RecordMemfd   = uint16(bulkheadEventKindKIND_MEMFD)
	RecordKinds   = int(bulkheadEventKindKIND_MAX)
)

// Header flags (enum event_flag).
const (
	FlagTruncArgs     = uint16(bulkheadEventFlagFLAG_TRUNC_ARGS)
	FlagTruncPath     = uint16(bulkheadEventFlagFLAG_TRUNC_PATH)
	FlagTruncWalk     = uint16(bulkheadEventFlagFLAG_TRUNC_WALK)
	FlagPseudoPath    = uint16(bulkheadEventFlagFLAG_PSEUDO_PATH)
	FlagTruncFilename = uint16(bulkheadEventFlagFLAG_TRUNC_FILENAME)
	FlagFileTruncWalk = uint16(bulkheadEventFlagFLAG_FILE_TRUNC_WALK)
	FlagFilePseudo    = uint16(bulkheadEventFlagFLAG_FILE_PSEUDO)
)

// Which syscall of a family produced a record (enum syscall_what).
const (
	WhatOpenat      = uint32(bulkheadSyscallWhatWHAT_OPENAT)
	WhatOpenat2     = uint32(bulkheadSyscallWhatWHAT_OPENAT2)
	WhatOpen        = uint32(bulkheadSyscallWhatWHAT_OPEN)
	WhatConnect     = uint32(bulkheadSyscallWhatWHAT_CONNECT)
	WhatPtrace      = uint32(bulkheadSyscallWhatWHAT_PTRACE)
	WhatBPF         = uint32(bulkheadSyscallWhatWHAT_BPF)
	WhatMemfdCreate = uint32(bulkheadSyscallWhatWHAT_MEMFD_CREATE)
	WhatSetuid      = uint32(bulkheadSyscallWhatWHAT_SETUID)
	WhatSetgid      = uint32(bulkheadSyscallWhatWHAT_SETGID)
	WhatSetreuid    = uint32(bulkheadSyscallWhatWHAT_SETREUID)
	WhatSetregid    = uint32(bulkheadSyscallWhatWHAT_SETREGID)
	WhatSetresuid   = uint32(bulkheadSyscallWhatWHAT_SETRESUID)
	WhatSetresgid   = uint32(bulkheadSyscallWhatWHAT_SETRESGID)
	WhatSetfsuid    = uint32(bulkheadSyscallWhatWHAT_SETFSUID)
	WhatSetfsgid    = uint32(bulkheadSyscallWhatWHAT_SETFSGID)
	WhatInitModule  = uint32(bulkheadSyscallWhatWHAT_INIT_MODULE)
	WhatFinitModule = uint32(bulkheadSyscallWhatWHAT_FINIT_MODULE)
)
