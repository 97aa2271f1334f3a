//go:build linux

package event

import (
	"testing"

	"golang.org/x/sys/unix"
)

// The constants are Linux's.
func TestLinuxValues(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"O_WRONLY", OpenWriteOnly, unix.O_WRONLY}, {"O_RDWR", OpenReadWrite, unix.O_RDWR}, {"O_CREAT", OpenCreate, unix.O_CREAT},
		{"O_TRUNC", OpenTruncate, unix.O_TRUNC}, {"O_APPEND", OpenAppend, unix.O_APPEND},
		{"PTRACE_TRACEME", PtraceTraceMe, unix.PTRACE_TRACEME}, {"PTRACE_POKETEXT", PtracePokeText, unix.PTRACE_POKETEXT},
		{"PTRACE_POKEDATA", PtracePokeData, unix.PTRACE_POKEDATA}, {"PTRACE_POKEUSR", PtracePokeUser, unix.PTRACE_POKEUSR},
		{"PTRACE_ATTACH", PtraceAttach, unix.PTRACE_ATTACH}, {"PTRACE_SEIZE", PtraceSeize, unix.PTRACE_SEIZE},
		{"BPF_OBJ_GET", BPFObjGet, unix.BPF_OBJ_GET}, {"BPF_PROG_ATTACH", BPFProgAttach, unix.BPF_PROG_ATTACH},
		{"BPF_PROG_GET_FD_BY_ID", BPFProgGetFdByID, unix.BPF_PROG_GET_FD_BY_ID}, {"BPF_MAP_GET_FD_BY_ID", BPFMapGetFdByID, unix.BPF_MAP_GET_FD_BY_ID},
		{"BPF_RAW_TRACEPOINT_OPEN", BPFRawTracepointOpen, unix.BPF_RAW_TRACEPOINT_OPEN}, {"BPF_LINK_CREATE", BPFLinkCreate, unix.BPF_LINK_CREATE},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, Linux's is %#x", c.name, c.got, c.want)
		}
	}
}
