// Package privesc reports processes that become root without going
// through a trusted setuid program (MITRE ATT&CK T1548, T1068):
//
//   - setuid-root-exec: a non-root user runs a setuid-root binary that is
//     not one of the system's known ones (sudo, su, passwd …);
//   - setid-to-root: a thread whose real uid is not root switches its real
//     or effective uid to 0 with the setuid family;
//   - creds-changed-without-syscall: a thread seen running as non-root is
//     later seen as root with no exec or setid call in between, or a
//     process that never held root shows a root thread — the mark of a
//     kernel exploit overwriting its credentials;
//   - setuid-bit-set, userfaultfd-unprivileged and container-escape on
//     the file, sys and namespace kinds (rare.go).
//
// Credentials belong to threads, not processes: one thread may drop or
// change its uids (the raw setresuid syscall, a server impersonating a user
// on one thread) while the others keep theirs, and a new thread starts with
// the credentials of the thread that made it. The last rule therefore
// follows each thread (TID) by itself, and judges a thread it has not seen
// before by its process: such a thread may be root only if some thread of
// its process has been root since the process started (its fork or exec),
// which the detector must have seen.
//
// The last rule watches every kind of event except opens (the busiest), so
// a thread that becomes root and then only opens files is caught at its
// next exec, connect, fork, exit or other watched call.
package privesc

import (
	"context"
	"fmt"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/match"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/procstate"
	"go.uber.org/zap"
)

// Config is the detector's configuration.
type Config struct {
	match.AllowConfig
	// SetuidAllow, UserfaultfdAllow and ContainerAllow are added to the
	// defaults of the rules on the rarer kinds (see rare.go).
	SetuidAllow      match.AllowConfig `json:"setuid_allow"`
	UserfaultfdAllow match.AllowConfig `json:"userfaultfd_allow"`
	ContainerAllow   match.AllowConfig `json:"container_allow"`
	// MaxProcesses bounds the processes whose history is remembered
	// (default 65536); past it, arbitrary knowledge is dropped.
	MaxProcesses int `json:"max_processes"`
	// MaxThreads bounds the threads whose credentials are remembered
	// (default 131072); likewise.
	MaxThreads int `json:"max_threads"`
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

// process is what is known of one process (thread group) since the
// detector first saw it.
type process struct {
	gen uint64 // this incarnation of the pid; a thread's knowledge is valid only with it
	// started: the detector saw the fork or exec that began this program,
	// so everRoot covers its whole life.
	started  bool
	everRoot bool // some thread of it was seen as root (uid or euid 0)
}

// thread is a thread's last seen credentials.
type thread struct {
	gen   uint64 // its process's gen when recorded
	creds creds
	seen  pidTime // when recorded, to tell a reused TID
}

// Detector is the detector.
type Detector struct {
	allow match.Allowlist
	// for the rarer kinds' rules
	setuidAllow, ufdAllow, containerAllow match.Allowlist
	procs                                 *procstate.Map[process]
	threads                               *procstate.Map[thread]
	gen                                   uint64
	clock                                 pidClock
}

// New returns the detector; Init configures it.
func New() *Detector { return &Detector{} }

func (d *Detector) Definition() sdk.Definition {
	return sdk.Definition{Name: "privesc", Version: "1.1.0",
		Description: "non-root processes that become root other than through a trusted setuid program, setuid bits set, userfaultfd from non-root, container escapes (T1548, T1068, T1611)",
		Kinds: []sdk.Kind{sdk.KindExec, sdk.KindFork, sdk.KindExit, sdk.KindSetID, sdk.KindConnect,
			sdk.KindPtrace, sdk.KindModule, sdk.KindBPFProg, sdk.KindMemfd, event.KindFile, event.KindSys, event.KindNamespace}}
}

func (d *Detector) Init(_ context.Context, cfg sdk.Config, log *zap.Logger) error {
	c := Config{MaxProcesses: 1 << 16, MaxThreads: 1 << 17}
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	if c.MaxProcesses < 1 {
		return fmt.Errorf("max_processes: %d: use at least 1", c.MaxProcesses)
	}
	if c.MaxThreads < 1 {
		return fmt.Errorf("max_threads: %d: use at least 1", c.MaxThreads)
	}
	allow, err := c.Build(DefaultAllow)
	if err != nil {
		return err
	}
	if d.setuidAllow, err = c.SetuidAllow.Build(DefaultSetuidAllow); err != nil {
		return fmt.Errorf("setuid_allow: %w", err)
	}
	if d.ufdAllow, err = c.UserfaultfdAllow.Build(DefaultUserfaultfdAllow); err != nil {
		return fmt.Errorf("userfaultfd_allow: %w", err)
	}
	if d.containerAllow, err = c.ContainerAllow.Build(DefaultContainerAllow); err != nil {
		return fmt.Errorf("container_allow: %w", err)
	}
	d.allow, d.procs, d.threads = allow, procstate.New[process](c.MaxProcesses), procstate.New[thread](c.MaxThreads)
	d.gen, d.clock = 0, pidClock{}
	log.Debug("configured", zap.Int("allow_rules", len(allow)))
	return nil
}

// uidCall reports whether a setid syscall is of the uid family, whose Old
// and New are uids (the gid family's are gids).
func uidCall(s string) bool {
	switch s {
	case "setuid", "setreuid", "setresuid", "setfsuid":
		return true
	}
	return false
}

// begin records a new incarnation of pid whose start the detector sees,
// first held by thread tid with c.
func (d *Detector) begin(pid, tid uint32, c creds) {
	d.gen++
	d.procs.Put(pid, process{gen: d.gen, started: true, everRoot: c.root()})
	d.threads.Put(tid, thread{gen: d.gen, creds: c, seen: d.clock.now()})
}

func (d *Detector) OnEvent(_ context.Context, ev *sdk.Event) ([]sdk.Finding, error) {
	switch ev.Kind {
	case event.KindFile, event.KindSys, event.KindNamespace:
		return d.rare(ev), nil
	}
	now := creds{ev.UID, ev.EUID} // the header is read after the call: the thread's credentials now
	var out []sdk.Finding
	if ev.Kind == sdk.KindExec {
		// The exec'ing thread is the only one left, and the program's
		// start: what came before is forgotten. A setuid binary changes the
		// effective uid, never the real one: a process that never held
		// root coming out of exec with real uid 0 did not get it from exec.
		if p, ok := d.procs.Get(ev.PID); ok && p.started && !p.everRoot && ev.UID == 0 && !d.allow.Allows(ev) {
			out = append(out, d.credsChanged(ev, "never held root and exec'd as", now))
		}
		if ev.UID != 0 && ev.EUID == 0 && !d.allow.Allows(ev) {
			out = append(out, d.finding(ev, "setuid-root-exec", sdk.SeverityHigh,
				fmt.Sprintf("uid %d ran setuid-root %s and is now euid 0", ev.UID, ev.Exec.Exe), "T1548.001"))
		}
		d.begin(ev.PID, ev.TID, now)
		return out, nil
	}

	p, ok := d.procs.Get(ev.PID)
	if !ok {
		// Running before the detector saw its start: its past is unknown.
		d.gen++
		p = process{gen: d.gen}
	}
	th, seen := d.threads.Get(ev.TID)
	seen = seen && th.gen == p.gen && !d.clock.mayReuse(ev.TID, th.seen)
	// before is what the thread held just before this event's call.
	before := now
	if ev.Kind == sdk.KindSetID && uidCall(string(ev.SetID.Syscall)) {
		s := &ev.SetID
		before = creds{s.Old.Real, s.Old.Effective}
		if s.Ret == 0 && s.Old.Real != 0 && (s.New.Real == 0 || s.New.Effective == 0) && !d.allow.Allows(ev) {
			f := d.finding(ev, "setid-to-root", sdk.SeverityHigh,
				fmt.Sprintf("%s (pid %d tid %d) with uid %d switched to uid %d euid %d with %s",
					ev.Comm, ev.PID, ev.TID, s.Old.Real, s.New.Real, s.New.Effective, s.Syscall), "T1548")
			f.Fields["old"], f.Fields["new"] = s.Old, s.New
			out = append(out, f)
		}
	}
	if before.root() && !d.allow.Allows(ev) {
		switch {
		case seen && !th.creds.root():
			out = append(out, d.credsChangedFrom(ev, th.creds, before))
		case !seen && p.started && !p.everRoot:
			out = append(out, d.credsChanged(ev, "never held root and has a thread with", before))
		}
	}
	if now.root() || before.root() {
		p.everRoot = true
	}

	switch ev.Kind {
	case sdk.KindFork:
		d.clock.observe(ev.Fork.ChildPID)
		d.begin(ev.Fork.ChildPID, ev.Fork.ChildTID, now)
	case sdk.KindExit:
		// The whole process is gone: its threads' knowledge goes with its
		// gen; the common single-threaded case is freed at once.
		d.procs.Delete(ev.PID)
		d.threads.Delete(ev.TID)
		d.threads.Delete(ev.PID)
		return out, nil
	}
	d.procs.Put(ev.PID, p)
	d.threads.Put(ev.TID, thread{gen: p.gen, creds: now, seen: d.clock.now()})
	return out, nil
}

func (d *Detector) credsChangedFrom(ev *sdk.Event, was, is creds) sdk.Finding {
	f := d.finding(ev, "creds-changed-without-syscall", sdk.SeverityCritical,
		fmt.Sprintf("%s (pid %d tid %d) ran as uid %d euid %d and is now uid %d euid %d without exec or setid: kernel exploit?",
			ev.Comm, ev.PID, ev.TID, was.uid, was.euid, is.uid, is.euid), "T1068")
	f.Fields["was_uid"], f.Fields["was_euid"] = was.uid, was.euid
	return f
}

func (d *Detector) credsChanged(ev *sdk.Event, what string, is creds) sdk.Finding {
	return d.finding(ev, "creds-changed-without-syscall", sdk.SeverityCritical,
		fmt.Sprintf("%s (pid %d tid %d) %s uid %d euid %d without setid: kernel exploit?",
			ev.Comm, ev.PID, ev.TID, what, is.uid, is.euid), "T1068")
}

func (d *Detector) finding(ev *sdk.Event, rule string, sev sdk.Severity, summary string, techniques ...string) sdk.Finding {
	f := sdk.NewFinding(ev, rule, sev, summary, techniques...)
	f.Fields = map[string]any{"uid": ev.UID, "euid": ev.EUID, "tid": ev.TID}
	if ev.Process != nil {
		f.Fields["exe"] = ev.Process.Exe
	}
	return f
}

func (d *Detector) Close(context.Context) error { return nil }
