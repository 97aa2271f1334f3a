package kernelload_test

import (
	"context"
	"testing"

	"github.com/bulkhead-sec/bulkhead/plugins/kernelload"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
	"go.uber.org/zap/zaptest"
)

func findings(t *testing.T, config string, ev *sdk.Event) []sdk.Finding {
	t.Helper()
	return sdktest.Run(t, kernelload.New(), config, ev)
}

var (
	shell  = sdktest.Proc{PID: 10, Exe: "/usr/bin/bash", Ancestors: []string{"/usr/sbin/sshd"}}
	insmod = shell.Child(11, "/usr/bin/kmod", "insmod", "/tmp/rk.ko")
	udev   = sdktest.Proc{PID: 20, Exe: "/usr/lib/systemd/systemd-udevd"}
	loader = shell.Child(12, "/tmp/loader", "loader")
)

func TestLoads(t *testing.T) {
	for _, c := range []struct {
		name, config string
		ev           *sdk.Event
		rule         string
		sev          sdk.Severity
	}{
		{"insmod by hand", "", insmod.Module("/tmp/rk.ko", 0), "module-load", sdk.SeverityCritical},
		{"refused module", "", insmod.Module("/tmp/rk.ko", -1), "module-load", sdk.SeverityMedium},
		{"refused, not reported", `{"report_failed": false}`, insmod.Module("/tmp/rk.ko", -1), "", 0},
		{"udev loads drivers", "", udev.Child(21, "/usr/bin/kmod", "modprobe", "snd").Module("/lib/modules/snd.ko", 0), "", 0},
		{"unknown BPF loader", "", loader.BPFProg("hide_pid", 26, 4), "bpf-load", sdk.SeverityHigh},
		{"bulkhead itself", "", sdktest.Proc{PID: 30, Exe: "/usr/local/bin/bulkhead"}.BPFProg("exec", 26, 4), "", 0},
		{"allowed BPF is not allowed modules", `{"bpf": {"allow": [{"exe": "/tmp/loader"}]}}`, loader.Module("/tmp/x.ko", 0), "module-load", sdk.SeverityCritical},
		{"allowed BPF", `{"bpf": {"allow": [{"exe": "/tmp/loader"}]}}`, loader.BPFProg("x", 26, 4), "", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := findings(t, c.config, c.ev)
			if c.rule == "" {
				if len(fs) != 0 {
					t.Fatalf("want nothing, got %+v", fs)
				}
				return
			}
			if len(fs) != 1 || fs[0].Rule != c.rule || fs[0].Severity != c.sev {
				t.Fatalf("got %+v", fs)
			}
		})
	}
	if err := kernelload.New().Init(context.Background(), sdk.Config(`{"module": {"allow": [{}]}}`), zaptest.NewLogger(t)); err == nil {
		t.Fatal("an empty allow rule must be refused")
	}
}

func TestOverTheWire(t *testing.T) {
	h, err := sdktest.Start(t, kernelload.New(), "")
	if err != nil {
		t.Fatal(err)
	}
	fs, err := h.Send(loader.BPFProg("hide_pid", 26, 4))
	if err != nil || len(fs) != 1 || fs[0].Fields["name"] != "hide_pid" {
		t.Fatalf("%+v %v", fs, err)
	}
}

// kexec and the bpf() commands that attach programs or reach other
// programs' objects (KindSys), by unknown processes and by the allowed ones.
func TestSysCalls(t *testing.T) {
	kexec := shell.Child(13, "/usr/sbin/kexec", "kexec", "-l", "/tmp/vmlinuz")
	kdump := sdktest.Proc{PID: 40, Exe: "/usr/bin/bash", Ancestors: []string{"/usr/sbin/kdump-tools"}}.Child(41, "/usr/sbin/kexec", "kexec", "-p")
	bpftool := shell.Child(14, "/usr/sbin/bpftool", "bpftool", "map", "dump", "id", "7")
	bulkhead := sdktest.Proc{PID: 30, Exe: "/usr/local/bin/bulkhead"}
	for _, c := range []struct {
		name, config string
		ev           *sdk.Event
		rule         string
		sev          sdk.Severity
	}{
		{"kexec_file_load by hand", "", kexec.Sys("kexec_file_load", 0, [3]uint64{0}, "/tmp/vmlinuz", 0), "kexec-load", sdk.SeverityCritical},
		{"kexec_load refused", "", kexec.Sys("kexec_load", 0, [3]uint64{2, 0}, "", -1), "kexec-load", sdk.SeverityMedium},
		{"kdump stages its crash kernel", "", kdump.Sys("kexec_file_load", 0, [3]uint64{2}, "/boot/vmlinuz", 0), "", 0},
		{"an unknown program attaches a BPF program", "", loader.Sys("bpf", 28, [3]uint64{38, 5}, "", 6), "bpf-attach", sdk.SeverityHigh},
		{"raw tracepoint opened", "", loader.Sys("bpf", 17, [3]uint64{}, "sys_enter", 6), "bpf-attach", sdk.SeverityHigh},
		{"bpftool reaches another program's map by id", "", bpftool.Sys("bpf", 14, [3]uint64{7}, "", 3), "bpf-object-access", sdk.SeverityMedium},
		{"a pinned object opened", "", loader.Sys("bpf", 7, [3]uint64{}, "/sys/fs/bpf/bulkhead/events", 3), "bpf-object-access", sdk.SeverityMedium},
		{"bulkhead attaches its own programs", "", bulkhead.Sys("bpf", 28, [3]uint64{}, "", 6), "", 0},
		{"a map update is not reported", "", loader.Sys("bpf", 2, [3]uint64{}, "", 0), "", 0},
		{"other sys calls are not this detector's", "", loader.Sys("prctl", 15, [3]uint64{}, "kworker", 0), "", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := sdktest.Run(t, kernelload.New(), c.config, c.ev)
			if c.rule == "" {
				if len(fs) != 0 {
					t.Fatalf("want nothing, got %+v", fs)
				}
				return
			}
			if len(fs) != 1 || fs[0].Rule != c.rule || fs[0].Severity != c.sev || len(fs[0].Techniques) == 0 {
				t.Fatalf("got %+v", fs)
			}
			t.Log(fs[0].Summary)
		})
	}
}
