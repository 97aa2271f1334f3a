package event

// Linux's values as events carry them, on whatever platform a detector is
// built for (a wasm module has no golang.org/x/sys/unix for Linux).

// Open flags (Open.Flags), O_* of open(2).
const (
	OpenWriteOnly = 0x1   // O_WRONLY
	OpenReadWrite = 0x2   // O_RDWR
	OpenCreate    = 0x40  // O_CREAT
	OpenTruncate  = 0x200 // O_TRUNC
	OpenAppend    = 0x400 // O_APPEND
)

// Ptrace requests (Ptrace.Request), PTRACE_* of ptrace(2).
const (
	PtraceTraceMe  = 0      // PTRACE_TRACEME
	PtracePokeText = 4      // PTRACE_POKETEXT
	PtracePokeData = 5      // PTRACE_POKEDATA
	PtracePokeUser = 6      // PTRACE_POKEUSR
	PtraceAttach   = 16     // PTRACE_ATTACH
	PtraceSeize    = 0x4206 // PTRACE_SEIZE
)

// bpf(2) commands (Sys.Op of a "bpf" event), BPF_* of linux/bpf.h.
const (
	BPFObjGet            = 7  // BPF_OBJ_GET
	BPFProgAttach        = 8  // BPF_PROG_ATTACH
	BPFProgGetFdByID     = 13 // BPF_PROG_GET_FD_BY_ID
	BPFMapGetFdByID      = 14 // BPF_MAP_GET_FD_BY_ID
	BPFRawTracepointOpen = 17 // BPF_RAW_TRACEPOINT_OPEN
	BPFLinkCreate        = 28 // BPF_LINK_CREATE
)
