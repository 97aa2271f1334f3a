// Package persistence reports files opened for writing where attackers
// make themselves survive a reboot or a logout: cron (MITRE ATT&CK
// T1053.003), systemd units (T1543.002), shell start-up files (T1546.004)
// and the dynamic loader's preload list (T1574.006).
//
// Only opens that the kernel allowed are reported. Files created by rename
// (editors, `install`) are seen as the open of their temporary name in
// the same directory, which the directory patterns cover.
package persistence

import (
	"context"
	"fmt"
	"strings"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/match"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Config is the detector's configuration.
type Config struct {
	match.AllowConfig
}

type place struct {
	rule, technique string
	sev             sdk.Severity
	patterns        []string
}

var places = []place{
	{"ld-preload-write", "T1574.006", sdk.SeverityHigh, []string{"/etc/ld.so.preload"}},
	{"cron-write", "T1053.003", sdk.SeverityMedium, []string{
		"/etc/crontab", "/etc/cron.d/*", "/etc/cron.hourly/*", "/etc/cron.daily/*", "/etc/cron.weekly/*",
		"/etc/cron.monthly/*", "/var/spool/cron/*", "/etc/anacrontab"}},
	{"systemd-unit-write", "T1543.002", sdk.SeverityMedium, []string{
		"/etc/systemd/system/*", "/usr/lib/systemd/system/*", "/lib/systemd/system/*", "/etc/systemd/user/*",
		"/usr/lib/systemd/user/*", "/root/.config/systemd/user/*", "/home/*/.config/systemd/user/*"}},
	{"shell-rc-write", "T1546.004", sdk.SeverityMedium, []string{
		"/etc/profile", "/etc/profile.d/*", "/etc/bash.bashrc", "/etc/zsh/*", "/etc/environment",
		"/root/.bashrc", "/root/.bash_profile", "/root/.bash_login", "/root/.profile", "/root/.zshrc", "/root/.zprofile", "/root/.bash_logout",
		"/home/*/.bashrc", "/home/*/.bash_profile", "/home/*/.bash_login", "/home/*/.profile", "/home/*/.zshrc", "/home/*/.zprofile", "/home/*/.bash_logout"}},
}

// DefaultAllow: package managers install these files (and the scripts
// they run edit them); systemd and systemctl write units. crontab, how users
// edit their own crontab, is reported: allow it where that is routine.
var DefaultAllow = append(match.Allowlist{{Exe: "systemd"}, {Exe: "systemctl"}}, match.PackageManagers...)

// Detector is the detector.
type Detector struct {
	allow match.Allowlist
	// files recognises the watched files under any name: a write to one
	// under another name (a hard link) is the same.
	files *match.Files
}

// New returns the detector; Init configures it.
func New() *Detector { return &Detector{} }

func (d *Detector) Definition() sdk.Definition {
	return sdk.Definition{Name: "persistence", Version: "1.0.0",
		Description: "writes to cron, systemd units, shell start-up files and ld.so.preload (T1053.003, T1543.002, T1546.004, T1574.006)",
		Kinds:       []sdk.Kind{sdk.KindOpen},
		// Narrow prefixes: reads of /etc are the bulk of a host's opens, and
		// the monitor drops them before they are copied.
		Filter: sdk.Filter{PathPrefixes: []string{"/etc/ld.so.preload", "/etc/cron", "/etc/anacrontab", "/etc/systemd/",
			"/etc/profile", "/etc/bash.bashrc", "/etc/zsh/", "/etc/environment", "/var/spool/cron/",
			"/usr/lib/systemd/", "/lib/systemd/", "/root/.bash", "/root/.profile", "/root/.zsh", "/root/.zprofile",
			"/root/.config/systemd/", "/home/"}}}
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
	d.allow = allow
	d.files = match.NewFiles(placeIndex)
	var missed []string
	for _, p := range places {
		missed = append(missed, d.files.Stat(p.patterns)...)
	}
	if len(missed) > 0 {
		log.Info("some watched directories cannot be listed here: their files are matched by name and kernel path, not also by identity (a hard link to them goes unseen)",
			zap.Strings("directories", missed))
	}
	log.Debug("configured", zap.Int("allow_rules", len(allow)), zap.Int("files_by_identity", d.files.Len()))
	return nil
}

// writeFlags open a file to change it.
const writeFlags = unix.O_WRONLY | unix.O_RDWR | unix.O_CREAT | unix.O_TRUNC | unix.O_APPEND

func (d *Detector) OnEvent(_ context.Context, ev *sdk.Event) ([]sdk.Finding, error) {
	o := &ev.Open
	if o.Ret < 0 || o.Flags&writeFlags == 0 {
		return nil, nil
	}
	p, path, by := d.match(o)
	if p == nil || d.allow.Allows(ev) {
		return nil, nil
	}
	as := ""
	if o.FilePath != "" && o.FilePath != path {
		as = " as " + o.FilePath
	} else if o.Resolved != path {
		as = " as " + o.Resolved
	}
	f := sdk.NewFinding(ev, p.rule, p.sev,
		fmt.Sprintf("%s (pid %d, uid %d) opened %s for writing%s", ev.Comm, ev.PID, ev.UID, path, as), p.technique)
	f.Fields = map[string]any{"path": path, "matched_by": by, "flags": o.Flags, "uid": ev.UID}
	if o.Resolved != path {
		f.Fields["requested_path"] = o.Resolved
	}
	if o.FilePath != "" && o.FilePath != path {
		f.Fields["kernel_path"] = o.FilePath
	}
	if ev.Process != nil {
		f.Fields["exe"] = ev.Process.Exe
	}
	return []sdk.Finding{f}, nil
}

// match finds the place of the file o opened, the watched name it is
// known by and how it was recognised (match.Files.Match).
func (d *Detector) match(o *event.Open) (p *place, path, by string) {
	i, path, by := d.files.Match(o)
	if i < 0 {
		return nil, "", ""
	}
	return &places[i], path, by
}

// placeIndex is the index of path's place, or -1.
func placeIndex(path string) int {
	if !strings.HasPrefix(path, "/") {
		return -1
	}
	for i := range places {
		for _, pat := range places[i].patterns {
			if match.Glob(pat, path) {
				return i
			}
		}
	}
	return -1
}

func (d *Detector) Close(context.Context) error { return nil }
