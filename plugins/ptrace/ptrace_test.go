package ptrace_test

import (
	"testing"

	"github.com/bulkhead-sec/bulkhead/plugins/ptrace"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
	"golang.org/x/sys/unix"
)

func findings(t *testing.T, config string, ev *sdk.Event) []sdk.Finding {
	t.Helper()
	return sdktest.Run(t, ptrace.New(), config, ev)
}

var (
	py  = sdktest.Proc{PID: 10, Exe: "/usr/bin/python3.11", Ancestors: []string{"/usr/bin/bash"}}
	gdb = sdktest.Proc{PID: 20, Exe: "/usr/bin/gdb"}
)

func TestRequests(t *testing.T) {
	for _, c := range []struct {
		name, config string
		ev           *sdk.Event
		rule         string
		sev          sdk.Severity
	}{
		{"attach", "", py.Ptrace(unix.PTRACE_ATTACH, 99, 0), "ptrace-attach", sdk.SeverityMedium},
		{"seize", "", py.Ptrace(unix.PTRACE_SEIZE, 99, 0), "ptrace-attach", sdk.SeverityMedium},
		{"poke", "", py.Ptrace(unix.PTRACE_POKETEXT, 99, 0), "ptrace-write", sdk.SeverityHigh},
		{"refused", "", py.Ptrace(unix.PTRACE_ATTACH, 1, -1), "ptrace-attach", sdk.SeverityLow},
		{"refused, not reported", `{"report_failed": false}`, py.Ptrace(unix.PTRACE_ATTACH, 1, -1), "", 0},
		{"gdb", "", gdb.Ptrace(unix.PTRACE_ATTACH, 99, 0), "", 0},
		{"gdb on a production host", `{"no_default_allow": true}`, gdb.Ptrace(unix.PTRACE_ATTACH, 99, 0), "ptrace-attach", sdk.SeverityMedium},
		{"peek is not control", "", py.Ptrace(unix.PTRACE_PEEKDATA, 99, 0), "", 0},
		{"getregs is not control", "", py.Ptrace(unix.PTRACE_GETREGS, 99, 0), "", 0},
		{"traceme", "", py.Ptrace(unix.PTRACE_TRACEME, 0, 0), "ptrace-traceme", sdk.SeverityMedium},
		{"traceme refused (already traced: a debugger found)", "", py.Ptrace(unix.PTRACE_TRACEME, 0, -1), "ptrace-traceme", sdk.SeverityLow},
		{"traceme by gdb's child before it execs the program", "", gdb.Child(21, "/usr/bin/gdb").Ptrace(unix.PTRACE_TRACEME, 0, 0), "", 0},
		{"traceme by strace's child", "", sdktest.Proc{PID: 31, PPID: 30, Exe: "/usr/bin/strace"}.Ptrace(unix.PTRACE_TRACEME, 0, 0), "", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := findings(t, c.config, c.ev)
			if c.rule == "" {
				if len(fs) != 0 {
					t.Fatalf("want nothing, got %+v", fs)
				}
				return
			}
			technique := "T1055.008"
			if c.rule == "ptrace-traceme" {
				technique = "T1622"
			}
			if len(fs) != 1 || fs[0].Rule != c.rule || fs[0].Severity != c.sev || fs[0].Techniques[0] != technique {
				t.Fatalf("got %+v", fs)
			}
		})
	}
}

func TestOverTheWire(t *testing.T) {
	h, err := sdktest.Start(t, ptrace.New(), "")
	if err != nil {
		t.Fatal(err)
	}
	fs, err := h.Send(py.Ptrace(unix.PTRACE_ATTACH, 99, 0))
	if err != nil || len(fs) != 1 || fs[0].Fields["target_pid"] != float64(99) {
		t.Fatalf("%+v %v", fs, err)
	}
}
