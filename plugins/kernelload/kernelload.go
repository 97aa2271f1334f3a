// Package kernelload reports code loaded into the kernel: kernel modules
// (MITRE ATT&CK T1547.006) and BPF programs (T1014) by processes that are
// not known to load them. Rootkits arrive exactly this way.
//
// Module loads are seen only where the kernel has the init_module and
// finit_module syscall tracepoints; `bulkhead run` logs at start which
// kinds this host can capture.
package kernelload

import (
	"context"
	"fmt"

	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/match"
	"go.uber.org/zap"
)

// Config is the detector's configuration. Module and BPF loaders are
// allowed separately: a tool trusted to load BPF is not thereby trusted to
// load modules.
type Config struct {
	// ModuleAllow and BPFAllow are added to the defaults.
	ModuleAllow match.AllowConfig `json:"module"`
	BPFAllow    match.AllowConfig `json:"bpf"`
	// ReportFailed also reports loads the kernel refused (default true):
	// an attempt is evidence even when it fails.
	ReportFailed *bool `json:"report_failed"`
}

// DefaultModuleAllow: udev and systemd load drivers; dkms builds and loads
// them during package installs.
var DefaultModuleAllow = append(match.Allowlist{
	{Exe: "systemd-udevd"}, {Exe: "systemd-modules-load"}, {Exe: "kmod", Ancestor: "systemd-udevd"},
	{Exe: "modprobe", Ancestor: "systemd-udevd"},
}, match.PackageManagers...)

// DefaultBPFAllow: the init system, container runtimes and the well-known
// BPF-based agents — bulkhead among them — and Go test binaries on
// developer hosts.
var DefaultBPFAllow = match.Allowlist{
	{Exe: "bulkhead"}, {Exe: "systemd"}, {Exe: "systemd-*"}, {Exe: "runc"}, {Exe: "crun"}, {Exe: "containerd*"},
	{Exe: "dockerd"}, {Exe: "cilium-agent"}, {Exe: "tetragon"}, {Exe: "falco"}, {Exe: "tracee"}, {Exe: "kubelet"},
	match.GoToolchain,
}

// Detector is the detector.
type Detector struct {
	module, bpf  match.Allowlist
	reportFailed bool
}

// New returns the detector; Init configures it.
func New() *Detector { return &Detector{} }

func (d *Detector) Definition() sdk.Definition {
	return sdk.Definition{Name: "kernelload", Version: "1.0.0",
		Description: "kernel modules and BPF programs loaded by unexpected processes (T1547.006, T1014)",
		Kinds:       []sdk.Kind{sdk.KindModule, sdk.KindBPFProg}}
}

func (d *Detector) Init(_ context.Context, cfg sdk.Config, log *zap.Logger) error {
	var c Config
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	var err error
	if d.module, err = c.ModuleAllow.Build(DefaultModuleAllow); err != nil {
		return fmt.Errorf("module: %w", err)
	}
	if d.bpf, err = c.BPFAllow.Build(DefaultBPFAllow); err != nil {
		return fmt.Errorf("bpf: %w", err)
	}
	d.reportFailed = c.ReportFailed == nil || *c.ReportFailed
	log.Debug("configured", zap.Int("module_allow_rules", len(d.module)), zap.Int("bpf_allow_rules", len(d.bpf)))
	return nil
}

func (d *Detector) OnEvent(_ context.Context, ev *sdk.Event) ([]sdk.Finding, error) {
	var f sdk.Finding
	switch ev.Kind {
	case sdk.KindModule:
		m := &ev.Module
		if (m.Ret < 0 && !d.reportFailed) || d.module.Allows(ev) {
			return nil, nil
		}
		what := m.Path
		if what == "" {
			what = fmt.Sprintf("a %d-byte image", m.Len)
		}
		f = sdk.NewFinding(ev, "module-load", severity(m.Ret, sdk.SeverityCritical),
			fmt.Sprintf("%s (pid %d, uid %d) %s kernel module %s with %s", ev.Comm, ev.PID, ev.UID, verb(m.Ret), what, m.Syscall),
			"T1547.006", "T1014")
		f.Fields = map[string]any{"syscall": string(m.Syscall), "path": m.Path, "params": m.Params, "ret": m.Ret}
	case sdk.KindBPFProg:
		p := &ev.BPFProg
		if (p.Ret < 0 && !d.reportFailed) || d.bpf.Allows(ev) {
			return nil, nil
		}
		f = sdk.NewFinding(ev, "bpf-load", severity(p.Ret, sdk.SeverityHigh),
			fmt.Sprintf("%s (pid %d, uid %d) %s BPF program %q (type %d, %d instructions)", ev.Comm, ev.PID, ev.UID, verb(p.Ret), p.Name, p.ProgType, p.InsnCount),
			"T1014")
		f.Fields = map[string]any{"name": p.Name, "prog_type": p.ProgType, "insns": p.InsnCount, "ret": p.Ret}
	default:
		return nil, nil
	}
	if ev.Process != nil {
		f.Fields["exe"] = ev.Process.Exe
	}
	return []sdk.Finding{f}, nil
}

func verb(ret int64) string {
	if ret < 0 {
		return fmt.Sprintf("tried to load (errno %d)", -ret)
	}
	return "loaded"
}

func severity(ret int64, ok sdk.Severity) sdk.Severity {
	if ret < 0 {
		return sdk.SeverityMedium
	}
	return ok
}

func (d *Detector) Close(context.Context) error { return nil }
