// Package privesc reports processes that become root without going
// through a trusted setuid program (MITRE ATT&CK T1548, T1068):
//
//   - setuid-root-exec: a non-root user runs a setuid-root binary that is
//     not one of the system's known ones (sudo, su, passwd …);
//   - setid-to-root: a process started by a non-root user switches its real
//     or effective uid to 0 with the setuid family;
//   - creds-changed-without-syscall: a process seen running as non-root is
//     later seen as root with no exec or setid call in between — the mark
//     of a kernel exploit overwriting its credentials.
//
// The last rule watches every kind of event except opens (the busiest), so
// a process that becomes root and then only opens files is caught at its
// next exec, connect, fork or exit.
package privesc

import (
	"context"
	"fmt"

	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/match"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/procstate"
	"go.uber.org/zap"
)

// Config is the detector's configuration.
type Config struct {
	match.AllowConfig
	// MaxProcesses bounds the processes whose credentials are remembered
	// (default 65536); past it, the oldest knowledge is dropped.
	MaxProcesses int `json:"max_processes"`
}

// DefaultAllow are the setuid-root programs a Debian or Ubuntu system
// ships, by full path: a copy elsewhere is not trusted.
var DefaultAllow = match.Allowlist{
	{Exe: "/usr/bin/sudo"}, {Exe: "/usr/bin/sudoedit"}, {Exe: "/usr/bin/su"}, {Exe: "/usr/bin/passwd"},
	{Exe: "/usr/bin/newgrp"}, {Exe: "/usr/bin/sg"}, {Exe: "/usr/bin/pkexec"}, {Exe: "/usr/bin/chsh"},
	{Exe: "/usr/bin/chfn"}, {Exe: "/usr/bin/gpasswd"}, {Exe: "/usr/bin/mount"}, {Exe: "/usr/bin/umount"},
	{Exe: "/usr/bin/fusermount"}, {Exe: "/usr/bin/fusermount3"}, {Exe: "/usr/bin/doas"}, {Exe: "/usr/bin/at"},
	{Exe: "/usr/sbin/unix_chkpwd"}, {Exe: "/usr/sbin/pppd"}, {Exe: "/usr/sbin/exim4"},
	{Exe: "/usr/lib/openssh/ssh-keysign"}, {Exe: "/usr/lib/dbus-1.0/dbus-daemon-launch-helper"},
	{Exe: "/usr/lib/polkit-1/polkit-agent-helper-1"}, {Exe: "/usr/libexec/polkit-agent-helper-1"},
	{Exe: "/usr/lib/xorg/Xorg.wrap"}, {Exe: "/usr/lib/snapd/snap-confine"},
}

type creds struct{ uid, euid uint32 }

func (c creds) root() bool { return c.uid == 0 || c.euid == 0 }

// Detector is the detector.
type Detector struct {
	allow match.Allowlist
	known *procstate.Map[creds]
}

// New returns the detector; Init configures it.
func New() *Detector { return &Detector{} }

func (d *Detector) Definition() sdk.Definition {
	return sdk.Definition{Name: "privesc", Version: "1.0.0",
		Description: "non-root processes that become root other than through a trusted setuid program (T1548, T1068)",
		Kinds: []sdk.Kind{sdk.KindExec, sdk.KindFork, sdk.KindExit, sdk.KindSetID, sdk.KindConnect,
			sdk.KindPtrace, sdk.KindModule, sdk.KindBPFProg, sdk.KindMemfd}}
}

func (d *Detector) Init(_ context.Context, cfg sdk.Config, log *zap.Logger) error {
	c := Config{MaxProcesses: 1 << 16}
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	if c.MaxProcesses < 1 {
		return fmt.Errorf("max_processes: %d: use at least 1", c.MaxProcesses)
	}
	allow, err := c.Build(DefaultAllow)
	if err != nil {
		return err
	}
	d.allow, d.known = allow, procstate.New[creds](c.MaxProcesses)
	log.Debug("configured", zap.Int("allow_rules", len(allow)))
	return nil
}

func (d *Detector) OnEvent(_ context.Context, ev *sdk.Event) ([]sdk.Finding, error) {
	now := creds{ev.UID, ev.EUID}
	before, seen := d.known.Get(ev.PID)
	var f *sdk.Finding
	switch ev.Kind {
	case sdk.KindExec:
		if ev.UID != 0 && ev.EUID == 0 && !d.allow.Allows(ev) {
			f = d.finding(ev, "setuid-root-exec", sdk.SeverityHigh,
				fmt.Sprintf("uid %d ran setuid-root %s and is now euid 0", ev.UID, ev.Exec.Exe), "T1548.001")
		}
	case sdk.KindSetID:
		s := &ev.SetID
		if s.Ret == 0 && s.Old.Real != 0 && (s.New.Real == 0 || s.New.Effective == 0) && !d.allow.Allows(ev) {
			f = d.finding(ev, "setid-to-root", sdk.SeverityHigh,
				fmt.Sprintf("%s (pid %d) started by uid %d switched to uid %d euid %d with %s",
					ev.Comm, ev.PID, s.Old.Real, s.New.Real, s.New.Effective, s.Syscall), "T1548")
			f.Fields["old"], f.Fields["new"] = s.Old, s.New
		}
		now = creds{s.New.Real, s.New.Effective}
	case sdk.KindFork:
		d.known.Put(ev.Fork.ChildPID, now)
	case sdk.KindExit:
		d.known.Delete(ev.PID)
	}
	if ev.Kind != sdk.KindExec && ev.Kind != sdk.KindSetID && seen && !before.root() && now.root() && !d.allow.Allows(ev) {
		f = d.finding(ev, "creds-changed-without-syscall", sdk.SeverityCritical,
			fmt.Sprintf("%s (pid %d) ran as uid %d euid %d and is now uid %d euid %d without exec or setid: kernel exploit?",
				ev.Comm, ev.PID, before.uid, before.euid, now.uid, now.euid), "T1068")
	}
	if ev.Kind != sdk.KindExit {
		d.known.Put(ev.PID, now)
	}
	if f == nil {
		return nil, nil
	}
	return []sdk.Finding{*f}, nil
}

func (d *Detector) finding(ev *sdk.Event, rule string, sev sdk.Severity, summary string, techniques ...string) *sdk.Finding {
	f := sdk.NewFinding(ev, rule, sev, summary, techniques...)
	f.Fields = map[string]any{"uid": ev.UID, "euid": ev.EUID}
	if ev.Process != nil {
		f.Fields["exe"] = ev.Process.Exe
	}
	return &f
}

func (d *Detector) Close(context.Context) error { return nil }
