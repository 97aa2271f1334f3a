// Package kernelload reports code loaded into the kernel: kernel modules
// (MITRE ATT&CK T1547.006) and BPF programs (T1014) by processes that are
// not known to load them. Rootkits arrive exactly this way. It also
// reports a new kernel staged with kexec_load or kexec_file_load (T1014:
// a kernel the attacker chose, run at the next reboot or panic without the
// boot loader's checks), BPF programs attached to hooks
// (BPF_PROG_ATTACH, BPF_LINK_CREATE, BPF_RAW_TRACEPOINT_OPEN: what turns
// a loaded program into a running one), and BPF objects of other
// programs reached by id or by pinned path (BPF_PROG_GET_FD_BY_ID,
// BPF_MAP_GET_FD_BY_ID, BPF_OBJ_GET: how a security agent's maps and
// programs are tampered with, T1562.001), by processes outside the BPF
// allowlist.
//
// Module loads are seen only where the kernel has the init_module and
// finit_module syscall tracepoints; `bulkhead run` logs at start which
// kinds this host can capture.
package kernelload

import (
	"context"
	"fmt"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/match"
	"go.uber.org/zap"
)

// Config is the detector's configuration. Module and BPF loaders are
// allowed separately: a tool trusted to load BPF is not thereby trusted to
// load modules.
type Config struct {
	// ModuleAllow, BPFAllow and KexecAllow are added to the defaults.
	// BPFAllow covers loads, attaches and reaching other objects.
	ModuleAllow match.AllowConfig `json:"module"`
	BPFAllow    match.AllowConfig `json:"bpf"`
	KexecAllow  match.AllowConfig `json:"kexec"`
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

// DefaultKexecAllow: systemd's own kexec path (systemctl kexec) and the
// kdump service staging its crash kernel at boot. kexec run by hand is
// reported.
var DefaultKexecAllow = append(match.Allowlist{
	{Exe: "systemd"}, {Exe: "systemd-*"}, {Exe: "kexec", Ancestor: "kdump-tools"}, {Exe: "kexec", Ancestor: "kdumpctl"},
	{Exe: "kexec", Ancestor: "systemd-*"},
}, match.PackageManagers...)

// Detector is the detector.
type Detector struct {
	module, bpf  match.Allowlist
	kexec        match.Allowlist
	reportFailed bool
}

// New returns the detector; Init configures it.
func New() *Detector { return &Detector{} }

func (d *Detector) Definition() sdk.Definition {
	return sdk.Definition{Name: "kernelload", Version: "1.0.0",
		Description: "kernel modules, BPF programs, BPF attaches and kexec kernels by unexpected processes (T1547.006, T1014, T1562.001)",
		Kinds:       []sdk.Kind{sdk.KindModule, sdk.KindBPFProg, event.KindSys}}
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
	if d.kexec, err = c.KexecAllow.Build(DefaultKexecAllow); err != nil {
		return fmt.Errorf("kexec: %w", err)
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
	case event.KindSys:
		var ok bool
		if f, ok = d.sys(ev); !ok {
			return nil, nil
		}
	default:
		return nil, nil
	}
	if ev.Process != nil {
		f.Fields["exe"] = ev.Process.Exe
	}
	return []sdk.Finding{f}, nil
}

// bpfCommands are the bpf() commands KindSys carries, by what they do.
var bpfCommands = map[uint64]struct {
	name   string
	attach bool // attaches a program; otherwise reaches an existing object
}{
	event.BPFProgAttach: {"BPF_PROG_ATTACH", true}, event.BPFLinkCreate: {"BPF_LINK_CREATE", true},
	event.BPFRawTracepointOpen: {"BPF_RAW_TRACEPOINT_OPEN", true},
	event.BPFProgGetFdByID:     {"BPF_PROG_GET_FD_BY_ID", false}, event.BPFMapGetFdByID: {"BPF_MAP_GET_FD_BY_ID", false},
	event.BPFObjGet: {"BPF_OBJ_GET", false},
}

// sys is the finding for a kexec or a bpf() command, if any.
func (d *Detector) sys(ev *sdk.Event) (sdk.Finding, bool) {
	s := &ev.Sys
	if s.Ret < 0 && !d.reportFailed {
		return sdk.Finding{}, false
	}
	var f sdk.Finding
	switch s.Syscall {
	case "kexec_load", "kexec_file_load":
		if d.kexec.Allows(ev) {
			return f, false
		}
		what := "a kernel image"
		if s.Name != "" {
			what = s.Name
		}
		v := "staged"
		if s.Ret < 0 {
			v = fmt.Sprintf("tried (errno %d) to stage", -s.Ret)
		}
		f = sdk.NewFinding(ev, "kexec-load", severity(s.Ret, sdk.SeverityCritical),
			fmt.Sprintf("%s (pid %d, uid %d) %s %s to boot into with %s", ev.Comm, ev.PID, ev.UID, v, what, s.Syscall), "T1014", "T1542")
		f.Fields = map[string]any{"syscall": string(s.Syscall), "path": s.Name, "flags": s.Args[0], "ret": s.Ret}
		if s.Syscall == "kexec_load" {
			f.Fields["segments"], f.Fields["flags"] = s.Args[0], s.Args[1]
		}
	case "bpf":
		cmd, known := bpfCommands[s.Op]
		if !known || d.bpf.Allows(ev) {
			return f, false
		}
		if cmd.attach {
			v := "attached a BPF program"
			if s.Ret < 0 {
				v = fmt.Sprintf("tried (errno %d) to attach a BPF program", -s.Ret)
			}
			f = sdk.NewFinding(ev, "bpf-attach", severity(s.Ret, sdk.SeverityHigh),
				fmt.Sprintf("%s (pid %d, uid %d) %s with %s (attach type or target %d)", ev.Comm, ev.PID, ev.UID, v, cmd.name, s.Args[0]), "T1014")
		} else {
			v := "reached"
			if s.Ret < 0 {
				v = fmt.Sprintf("tried (errno %d) to reach", -s.Ret)
			}
			obj := fmt.Sprintf("id %d", s.Args[0])
			if s.Op == event.BPFObjGet && s.Name != "" {
				obj = s.Name
			}
			f = sdk.NewFinding(ev, "bpf-object-access", severity(s.Ret, sdk.SeverityMedium),
				fmt.Sprintf("%s (pid %d, uid %d) %s another program's BPF object %s with %s", ev.Comm, ev.PID, ev.UID, v, obj, cmd.name), "T1562.001", "T1014")
		}
		f.Fields = map[string]any{"command": cmd.name, "args": []uint64{s.Args[0], s.Args[1], s.Args[2]}, "name": s.Name, "ret": s.Ret}
	default:
		return f, false
	}
	return f, true
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
