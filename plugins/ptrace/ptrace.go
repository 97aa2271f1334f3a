// Package ptrace reports one process taking control of another with
// ptrace — attaching to it, or writing into its memory or registers — by a
// process that is not a known debugger or tracer (MITRE ATT&CK T1055.008).
// Credential stealers read sshd and browsers this way; injectors write
// code into a running service. A process asking to be traced by its own
// parent (PTRACE_TRACEME) outside a debugger's launch is anti-debugging
// (T1622): malware does it to refuse a debugger, or to test for one.
package ptrace

import (
	"context"
	"fmt"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/match"
	"go.uber.org/zap"
)

// Config is the detector's configuration.
type Config struct {
	match.AllowConfig
	// ReportFailed also reports requests the kernel refused (default true).
	ReportFailed *bool `json:"report_failed"`
}

// DefaultAllow are debuggers, tracers and checkpoint tools. On production
// hosts consider no_default_allow: an attacker can bring gdb too.
var DefaultAllow = match.Allowlist{
	{Exe: "gdb"}, {Exe: "gdbserver"}, {Exe: "strace"}, {Exe: "ltrace"}, {Exe: "lldb*"}, {Exe: "dlv"},
	{Exe: "rr"}, {Exe: "criu"}, {Exe: "systemd-coredump"},
}

// Detector is the detector.
type Detector struct {
	allow        match.Allowlist
	reportFailed bool
}

// New returns the detector; Init configures it.
func New() *Detector { return &Detector{} }

func (d *Detector) Definition() sdk.Definition {
	return sdk.Definition{Name: "ptrace", Version: "1.0.0",
		Description: "ptrace attach to, or writes into, another process (T1055.008); PTRACE_TRACEME outside debuggers (T1622)",
		Kinds:       []sdk.Kind{sdk.KindPtrace}}
}

func (d *Detector) Init(_ context.Context, cfg sdk.Config, log *zap.Logger) error {
	var c Config
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	allow, err := c.Build(DefaultAllow)
	if err != nil {
		return err
	}
	d.allow, d.reportFailed = allow, c.ReportFailed == nil || *c.ReportFailed
	log.Debug("configured", zap.Int("allow_rules", len(allow)))
	return nil
}

func (d *Detector) OnEvent(_ context.Context, ev *sdk.Event) ([]sdk.Finding, error) {
	p := &ev.Ptrace
	if (p.Ret < 0 && !d.reportFailed) || d.allow.Allows(ev) {
		return nil, nil
	}
	rule, sev, what := "ptrace-attach", sdk.SeverityMedium, "attached to"
	technique := "T1055.008"
	switch p.Request {
	case event.PtraceTraceMe:
		// A debugger's child asks this before it execs the program to
		// debug: it still has the debugger's binary, which the allowlist
		// trusts.
		rule, sev, what, technique = "ptrace-traceme", sdk.SeverityMedium, "asked its parent to trace it (PTRACE_TRACEME), as anti-debugging code does; parent", "T1622"
		p := *p
		p.TargetPID = ev.PPID
		return d.finding(ev, &p, rule, sev, what, technique), nil
	case event.PtraceAttach, event.PtraceSeize:
	case event.PtracePokeText, event.PtracePokeData, event.PtracePokeUser:
		rule, sev, what = "ptrace-write", sdk.SeverityHigh, "wrote into"
	default:
		return nil, nil
	}
	return d.finding(ev, p, rule, sev, what, technique), nil
}

func (d *Detector) finding(ev *sdk.Event, p *event.Ptrace, rule string, sev sdk.Severity, what, technique string) []sdk.Finding {
	if p.Ret < 0 {
		sev, what = sdk.SeverityLow, fmt.Sprintf("tried (errno %d) and failed: %s", -p.Ret, what)
	}
	f := sdk.NewFinding(ev, rule, sev, fmt.Sprintf("%s (pid %d, uid %d) %s pid %d", ev.Comm, ev.PID, ev.UID, what, p.TargetPID), technique)
	f.Fields = map[string]any{"request": p.Request, "target_pid": p.TargetPID, "ret": p.Ret}
	if ev.Process != nil {
		f.Fields["exe"] = ev.Process.Exe
	}
	return []sdk.Finding{f}
}

func (d *Detector) Close(context.Context) error { return nil }
