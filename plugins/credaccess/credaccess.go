// Package credaccess reports opens of credential files — password hashes
// (/etc/shadow, /etc/gshadow), sudo policy (/etc/sudoers*) and SSH private
// keys — by processes that are not known to need them (MITRE ATT&CK
// T1003.008, T1552.004).
//
// Failed attempts are reported too, at a lower severity: an unprivileged
// process probing /etc/shadow is reconnaissance even when it is refused.
//
// Links count (KindFile): a hard or symbolic link made to one of these
// files gives it a second name that the next reader, a world-readable
// backup or a careless service follows (credential-file-link, the class's
// technique); and a file renamed or linked over one of them replaces it
// (credential-file-replaced: T1098 for the password files, T1548.003 for
// sudo policy, T1098.004 for SSH keys). The tools whose job that is
// (passwd, visudo, ssh-keygen, package managers) are allowed as for reads.
package credaccess

import (
	"context"
	"fmt"
	pathpkg "path"
	"strings"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/match"
	"go.uber.org/zap"
)

// Config is the detector's configuration.
type Config struct {
	match.AllowConfig
	// Files are added to the default watched files (patterns), all reported
	// as T1003.008.
	Files []string `json:"files"`
}

// A class of credential file and what reading it is evidence of.
type class struct {
	rule      string
	technique string
	patterns  []string
	except    []string
}

var defaultClasses = []class{
	{"password-hash-access", "T1003.008", []string{"/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-"}, nil},
	{"sudoers-access", "T1003.008", []string{"/etc/sudoers", "/etc/sudoers.d/*"}, nil},
	{"ssh-private-key-access", "T1552.004", []string{
		"/root/.ssh/id_*", "/home/*/.ssh/id_*", "/etc/ssh/ssh_host_*_key", "/root/.ssh/*.pem", "/home/*/.ssh/*.pem"},
		[]string{"*.pub"}},
}

// DefaultAllow are the programs whose job is to read these files:
// authentication (login, sshd, PAM helpers), account tools, sudo, and the
// SSH client tools reading their own keys; and package managers with what
// they run (match.PackageManagers).
var DefaultAllow = append(match.Allowlist{
	{Exe: "sshd"}, {Exe: "sshd-session"}, {Exe: "sshd-auth"}, {Exe: "login"}, {Exe: "su"}, {Exe: "sudo"}, {Exe: "sudoedit"}, {Exe: "visudo"},
	{Exe: "unix_chkpwd"}, {Exe: "passwd"}, {Exe: "chpasswd"}, {Exe: "chage"}, {Exe: "chsh"}, {Exe: "chfn"},
	{Exe: "useradd"}, {Exe: "userdel"}, {Exe: "usermod"}, {Exe: "groupadd"}, {Exe: "groupdel"}, {Exe: "groupmod"},
	{Exe: "gpasswd"}, {Exe: "newgrp"}, {Exe: "pwck"}, {Exe: "grpck"}, {Exe: "pwconv"}, {Exe: "grpconv"}, {Exe: "vipw"},
	{Exe: "cron"}, {Exe: "systemd"}, {Exe: "systemd-logind"}, {Exe: "systemd-userdbd"}, {Exe: "polkitd"}, {Exe: "gdm-session-worker"},
	{Exe: "ssh"}, {Exe: "ssh-add"}, {Exe: "ssh-agent"}, {Exe: "ssh-keygen"}, {Exe: "ssh-keysign"}, {Exe: "scp"}, {Exe: "sftp"},
}, match.PackageManagers...)

// Detector is the detector.
type Detector struct {
	classes []class
	allow   match.Allowlist
	// files recognises the watched files under any name: an open of one
	// under another name is the same access.
	files *match.Files
}

// New returns the detector; Init configures it.
func New() *Detector { return &Detector{} }

func (d *Detector) Definition() sdk.Definition {
	def := sdk.Definition{Name: "credaccess", Version: "1.0.0",
		Description: "credential files opened by processes that do not need them (T1003.008, T1552.004)",
		Kinds:       []sdk.Kind{sdk.KindOpen, event.KindFile}}
	// Only the watched trees reach the detector: the monitor filters the
	// open storm before anything is copied.
	def.Filter.PathPrefixes = []string{"/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/ssh/", "/root/.ssh/", "/home/"}
	for _, c := range d.classes[min(len(d.classes), len(defaultClasses)):] {
		for _, p := range c.patterns {
			def.Filter.PathPrefixes = append(def.Filter.PathPrefixes, literalPrefix(p))
		}
	}
	return def
}

// literalPrefix is the part of a pattern before its first wildcard.
func literalPrefix(pattern string) string {
	if i := strings.IndexAny(pattern, "*?"); i >= 0 {
		return pattern[:i]
	}
	return pattern
}

func (d *Detector) Init(_ context.Context, cfg sdk.Config, log *zap.Logger) error {
	var c Config
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	if err := match.CheckPatterns("files", c.Files); err != nil {
		return err
	}
	allow, err := c.Build(DefaultAllow)
	if err != nil {
		return err
	}
	d.classes = append([]class(nil), defaultClasses...)
	if len(c.Files) > 0 {
		d.classes = append(d.classes, class{"credential-file-access", "T1003.008", c.Files, nil})
	}
	d.allow = allow
	d.files = match.NewFiles(d.classIndex)
	var missed []string
	for _, c := range d.classes {
		missed = append(missed, d.files.Stat(c.patterns)...)
	}
	if len(missed) > 0 {
		log.Info("some watched directories cannot be listed here: their files are matched by name and kernel path, not also by identity (a hard link to them goes unseen)",
			zap.Strings("directories", missed))
	}
	log.Debug("configured", zap.Int("classes", len(d.classes)), zap.Int("allow_rules", len(allow)), zap.Int("files_by_identity", d.files.Len()))
	return nil
}

// match finds the class of the file o opened, the watched name it is
// known by and how it was recognised (match.Files.Match).
func (d *Detector) match(o *event.Open) (c *class, path, by string) {
	i, path, by := d.files.Match(o)
	if i < 0 {
		return nil, "", ""
	}
	return &d.classes[i], path, by
}

func (d *Detector) OnEvent(_ context.Context, ev *sdk.Event) ([]sdk.Finding, error) {
	if ev.Kind == event.KindFile {
		return d.link(ev), nil
	}
	c, path, by := d.match(&ev.Open)
	if c == nil || d.allow.Allows(ev) {
		return nil, nil
	}
	sev, what := sdk.SeverityHigh, "opened"
	if ev.Open.Ret < 0 {
		sev, what = sdk.SeverityMedium, "tried to open"
	}
	write := ev.Open.Flags&(event.OpenWriteOnly|event.OpenReadWrite|event.OpenTruncate) != 0
	techniques := []string{c.technique}
	if write && c.rule == "sudoers-access" {
		techniques = append(techniques, "T1548.003") // sudo policy changed
	}
	if write {
		what += " for writing"
	}
	as := ""
	if opened := ev.Open.FilePath; opened != "" && opened != path {
		as = " as " + opened
	} else if ev.Open.Resolved != path {
		as = " as " + ev.Open.Resolved
	}
	f := sdk.NewFinding(ev, c.rule, sev,
		fmt.Sprintf("%s (pid %d, uid %d) %s %s%s", ev.Comm, ev.PID, ev.UID, what, path, as), techniques...)
	f.Fields = map[string]any{"path": path, "matched_by": by, "write": write, "ret": ev.Open.Ret, "uid": ev.UID}
	if ev.Open.Resolved != path {
		f.Fields["requested_path"] = ev.Open.Resolved
	}
	if ev.Open.FilePath != "" && ev.Open.FilePath != path {
		f.Fields["kernel_path"] = ev.Open.FilePath
	}
	if ev.Process != nil {
		f.Fields["exe"] = ev.Process.Exe
	}
	return []sdk.Finding{f}, nil
}

// replacedTechnique is what replacing a file of a class is evidence of.
var replacedTechnique = map[string]string{
	"password-hash-access": "T1098", "sudoers-access": "T1548.003", "ssh-private-key-access": "T1098.004",
}

// link reports a link made to a watched file, or a file renamed or linked
// over one.
func (d *Detector) link(ev *sdk.Event) []sdk.Finding {
	f := &ev.File
	if f.Ret < 0 || f.NewResolved == "" {
		return nil
	}
	from := f.Resolved
	if f.Op == event.FileSymlink && f.Path != "" {
		// The link's text, made absolute against the link's directory:
		// what it points at whatever the kernel side resolved.
		from = f.Path
		if !strings.HasPrefix(from, "/") {
			from = pathpkg.Join(pathpkg.Dir(f.NewResolved), from)
		}
	}
	var rule, technique, summary string
	switch {
	case f.Op != event.FileLink && f.Op != event.FileSymlink && f.Op != event.FileRename:
		return nil
	case d.classIndex(pathpkg.Clean(f.NewResolved)) >= 0:
		c := &d.classes[d.classIndex(pathpkg.Clean(f.NewResolved))]
		rule, technique = "credential-file-replaced", replacedTechnique[c.rule]
		if technique == "" {
			technique = c.technique
		}
		summary = fmt.Sprintf("%s (pid %d, uid %d) replaced %s with %s (%s)", ev.Comm, ev.PID, ev.UID, f.NewResolved, from, f.Op)
	case f.Op != event.FileRename && from != "" && d.classIndex(pathpkg.Clean(from)) >= 0:
		c := &d.classes[d.classIndex(pathpkg.Clean(from))]
		kind := "hard link"
		if f.Op == event.FileSymlink {
			kind = "symbolic link"
		}
		rule, technique = "credential-file-link", c.technique
		summary = fmt.Sprintf("%s (pid %d, uid %d) made %s a %s to %s", ev.Comm, ev.PID, ev.UID, f.NewResolved, kind, from)
	default:
		return nil
	}
	if d.allow.Allows(ev) {
		return nil
	}
	out := sdk.NewFinding(ev, rule, sdk.SeverityHigh, summary, technique)
	out.Fields = map[string]any{"path": f.NewResolved, "target": from, "op": string(f.Op), "syscall": string(f.Syscall), "uid": ev.UID}
	if ev.Process != nil {
		out.Fields["exe"] = ev.Process.Exe
	}
	return []sdk.Finding{out}
}

// classIndex is the index of path's class, or -1.
func (d *Detector) classIndex(path string) int {
	for i := range d.classes {
		c := &d.classes[i]
		if matchAny(c.patterns, path) && !matchAny(c.except, path) {
			return i
		}
	}
	return -1
}

func matchAny(patterns []string, path string) bool {
	for _, p := range patterns {
		if match.Glob(p, path) {
			return true
		}
	}
	return false
}

func (d *Detector) Close(context.Context) error { return nil }
