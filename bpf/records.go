package bpf

// The record layouts the kernel writes to the ring buffer, generated from
// events.h. pipeline/decode reads them; nothing else should.
type (
	HeaderRecord    = bulkheadEventHeader
	StrRef          = bulkheadStrRef
	ExecRecord      = bulkheadExecEvent
	ForkRecord      = bulkheadForkEvent
	ExitRecord      = bulkheadExitEvent
	OpenRecord      = bulkheadOpenEvent
	ConnectRecord   = bulkheadConnectEvent
	SetIDRecord     = bulkheadSetidEvent
	PtraceRecord    = bulkheadPtraceEvent
	ModuleRecord    = bulkheadModuleEvent
	BPFProgRecord   = bulkheadBpfProgEvent
	MemfdRecord     = bulkheadMemfdEvent
	FileRecord      = bulkheadFileEvent
	NamespaceRecord = bulkheadNamespaceEvent
	SignalRecord    = bulkheadSignalEvent
	SocketRecord    = bulkheadSocketEvent
	SysRecord       = bulkheadSysEvent
	CountersRecord  = bulkheadEventCounters
)

// Record kinds as the kernel numbers them (enum event_kind).
const (
	RecordExec      = uint16(bulkheadEventKindKIND_EXEC)
	RecordFork      = uint16(bulkheadEventKindKIND_FORK)
	RecordExit      = uint16(bulkheadEventKindKIND_EXIT)
	RecordOpen      = uint16(bulkheadEventKindKIND_OPEN)
	RecordConnect   = uint16(bulkheadEventKindKIND_CONNECT)
	RecordSetID     = uint16(bulkheadEventKindKIND_SETID)
	RecordPtrace    = uint16(bulkheadEventKindKIND_PTRACE)
	RecordModule    = uint16(bulkheadEventKindKIND_MODULE)
	RecordBPFProg   = uint16(bulkheadEventKindKIND_BPF_PROG)
	RecordMemfd     = uint16(bulkheadEventKindKIND_MEMFD)
	RecordFile      = uint16(bulkheadEventKindKIND_FILE)
	RecordNamespace = uint16(bulkheadEventKindKIND_NAMESPACE)
	RecordSignal    = uint16(bulkheadEventKindKIND_SIGNAL)
	RecordSocket    = uint16(bulkheadEventKindKIND_SOCKET)
	RecordSys       = uint16(bulkheadEventKindKIND_SYS)
	RecordKinds     = int(bulkheadEventKindKIND_MAX)
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
	FlagTruncEnv      = uint16(bulkheadEventFlagFLAG_TRUNC_ENV)
)

// Which directory walks of a file or namespace record reached the root
// (enum dir_done), and what an exec record says of a script (enum
// exec_script).
const (
	DirDone       = uint32(bulkheadDirDoneDIR_DONE)
	NewDirDone    = uint32(bulkheadDirDoneNEW_DIR_DONE)
	ScriptIs      = uint32(bulkheadExecScriptSCRIPT_IS)
	ScriptDirDone = uint32(bulkheadExecScriptSCRIPT_DIR_DONE)
)

// Which syscall of a family produced a record (enum syscall_what).
const (
	WhatOpenat        = uint32(bulkheadSyscallWhatWHAT_OPENAT)
	WhatOpenat2       = uint32(bulkheadSyscallWhatWHAT_OPENAT2)
	WhatOpen          = uint32(bulkheadSyscallWhatWHAT_OPEN)
	WhatConnect       = uint32(bulkheadSyscallWhatWHAT_CONNECT)
	WhatPtrace        = uint32(bulkheadSyscallWhatWHAT_PTRACE)
	WhatBPF           = uint32(bulkheadSyscallWhatWHAT_BPF)
	WhatMemfdCreate   = uint32(bulkheadSyscallWhatWHAT_MEMFD_CREATE)
	WhatSetuid        = uint32(bulkheadSyscallWhatWHAT_SETUID)
	WhatSetgid        = uint32(bulkheadSyscallWhatWHAT_SETGID)
	WhatSetreuid      = uint32(bulkheadSyscallWhatWHAT_SETREUID)
	WhatSetregid      = uint32(bulkheadSyscallWhatWHAT_SETREGID)
	WhatSetresuid     = uint32(bulkheadSyscallWhatWHAT_SETRESUID)
	WhatSetresgid     = uint32(bulkheadSyscallWhatWHAT_SETRESGID)
	WhatSetfsuid      = uint32(bulkheadSyscallWhatWHAT_SETFSUID)
	WhatSetfsgid      = uint32(bulkheadSyscallWhatWHAT_SETFSGID)
	WhatInitModule    = uint32(bulkheadSyscallWhatWHAT_INIT_MODULE)
	WhatFinitModule   = uint32(bulkheadSyscallWhatWHAT_FINIT_MODULE)
	WhatUnlink        = uint32(bulkheadSyscallWhatWHAT_UNLINK)
	WhatUnlinkat      = uint32(bulkheadSyscallWhatWHAT_UNLINKAT)
	WhatRmdir         = uint32(bulkheadSyscallWhatWHAT_RMDIR)
	WhatRename        = uint32(bulkheadSyscallWhatWHAT_RENAME)
	WhatRenameat      = uint32(bulkheadSyscallWhatWHAT_RENAMEAT)
	WhatRenameat2     = uint32(bulkheadSyscallWhatWHAT_RENAMEAT2)
	WhatLink          = uint32(bulkheadSyscallWhatWHAT_LINK)
	WhatLinkat        = uint32(bulkheadSyscallWhatWHAT_LINKAT)
	WhatSymlink       = uint32(bulkheadSyscallWhatWHAT_SYMLINK)
	WhatSymlinkat     = uint32(bulkheadSyscallWhatWHAT_SYMLINKAT)
	WhatMkdir         = uint32(bulkheadSyscallWhatWHAT_MKDIR)
	WhatMkdirat       = uint32(bulkheadSyscallWhatWHAT_MKDIRAT)
	WhatChmod         = uint32(bulkheadSyscallWhatWHAT_CHMOD)
	WhatFchmod        = uint32(bulkheadSyscallWhatWHAT_FCHMOD)
	WhatFchmodat      = uint32(bulkheadSyscallWhatWHAT_FCHMODAT)
	WhatFchmodat2     = uint32(bulkheadSyscallWhatWHAT_FCHMODAT2)
	WhatChown         = uint32(bulkheadSyscallWhatWHAT_CHOWN)
	WhatFchown        = uint32(bulkheadSyscallWhatWHAT_FCHOWN)
	WhatLchown        = uint32(bulkheadSyscallWhatWHAT_LCHOWN)
	WhatFchownat      = uint32(bulkheadSyscallWhatWHAT_FCHOWNAT)
	WhatTruncate      = uint32(bulkheadSyscallWhatWHAT_TRUNCATE)
	WhatFtruncate     = uint32(bulkheadSyscallWhatWHAT_FTRUNCATE)
	WhatMount         = uint32(bulkheadSyscallWhatWHAT_MOUNT)
	WhatUmount2       = uint32(bulkheadSyscallWhatWHAT_UMOUNT2)
	WhatPivotRoot     = uint32(bulkheadSyscallWhatWHAT_PIVOT_ROOT)
	WhatChroot        = uint32(bulkheadSyscallWhatWHAT_CHROOT)
	WhatSetns         = uint32(bulkheadSyscallWhatWHAT_SETNS)
	WhatUnshare       = uint32(bulkheadSyscallWhatWHAT_UNSHARE)
	WhatClone         = uint32(bulkheadSyscallWhatWHAT_CLONE)
	WhatClone3        = uint32(bulkheadSyscallWhatWHAT_CLONE3)
	WhatKill          = uint32(bulkheadSyscallWhatWHAT_KILL)
	WhatTkill         = uint32(bulkheadSyscallWhatWHAT_TKILL)
	WhatTgkill        = uint32(bulkheadSyscallWhatWHAT_TGKILL)
	WhatSocket        = uint32(bulkheadSyscallWhatWHAT_SOCKET)
	WhatBind          = uint32(bulkheadSyscallWhatWHAT_BIND)
	WhatListen        = uint32(bulkheadSyscallWhatWHAT_LISTEN)
	WhatAccept        = uint32(bulkheadSyscallWhatWHAT_ACCEPT)
	WhatAccept4       = uint32(bulkheadSyscallWhatWHAT_ACCEPT4)
	WhatCapset        = uint32(bulkheadSyscallWhatWHAT_CAPSET)
	WhatPrctl         = uint32(bulkheadSyscallWhatWHAT_PRCTL)
	WhatUserfaultfd   = uint32(bulkheadSyscallWhatWHAT_USERFAULTFD)
	WhatIOUringSetup  = uint32(bulkheadSyscallWhatWHAT_IO_URING_SETUP)
	WhatKexecLoad     = uint32(bulkheadSyscallWhatWHAT_KEXEC_LOAD)
	WhatKexecFileLoad = uint32(bulkheadSyscallWhatWHAT_KEXEC_FILE_LOAD)
	WhatBPFCmd        = uint32(bulkheadSyscallWhatWHAT_BPF_CMD)
	WhatBPFBoth       = uint32(bulkheadSyscallWhatWHAT_BPF_BOTH)
)
