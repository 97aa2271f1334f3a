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
