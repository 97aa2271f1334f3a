// Package persistence reports files opened for writing where attackers
// make themselves survive a reboot or a logout: cron (MITRE ATT&CK
// T1053.003), systemd units (T1543.002), shell start-up files (T1546.004)
// and the dynamic loader's preload list (T1574.006).
//
// Only opens that the kernel allowed are reported. Files created by rename
// (editors, `install`) are seen as the open of their temporary name in
// the same directory, which the directory patterns cover.
//
// A file put into one of these places by a rename, a hard link or a
// symbolic link (KindFile: `mv unit /etc/systemd/system/`, `ln -s`, a
// program's rename(2)) is reported under the same rule. So are files
// put by rename or link into the other places a planted file runs from or
// rules the system (files written there are the rules detector's
// system_binary_write and neighbours): the binary directories (T1554),
// shared libraries (T1574), the loader's configuration (T1574.006),
// sudoers (T1548.003), PAM (T1556.003), SysV init and rc.local
// (T1037.004) and SSH authorized_keys (T1098.004).
package persistence

import (
	"context"
	"fmt"
	"strings"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/match"
	"go.uber.org/zap"
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

// movedPlaces are where a file put by rename or link is reported; a write
// there is the rules detector's.
var movedPlaces = []place{
	{"system-binary-write", "T1554", sdk.SeverityHigh, []string{
		"/usr/bin/*", "/usr/sbin/*", "/bin/*", "/sbin/*", "/usr/local/bin/*", "/usr/local/sbin/*"}},
	{"system-library-write", "T1574", sdk.SeverityHigh, []string{
		"/usr/lib/*.so", "/usr/lib/*.so.*", "/lib/*.so", "/lib/*.so.*", "/lib64/*.so", "/lib64/*.so.*", "/usr/lib64/*.so", "/usr/lib64/*.so.*",
		"/usr/local/lib/*.so", "/usr/local/lib/*.so.*"}},
	{"loader-config-write", "T1574.006", sdk.SeverityHigh, []string{"/etc/ld.so.conf", "/etc/ld.so.conf.d/*"}},
	{"sudoers-write", "T1548.003", sdk.SeverityHigh, []string{"/etc/sudoers", "/etc/sudoers.d/*"}},
	{"pam-config-write", "T1556.003", sdk.SeverityHigh, []string{"/etc/pam.d/*", "/etc/pam.conf", "/etc/security/*"}},
	{"startup-script-write", "T1037.004", sdk.SeverityMedium, []string{"/etc/rc.local", "/etc/init.d/*", "/etc/rc?.d/*"}},
	{"authorized-keys-write", "T1098.004", sdk.SeverityHigh, []string{
		"/root/.ssh/authorized_keys", "/root/.ssh/authorized_keys2", "/home/*/.ssh/authorized_keys", "/home/*/.ssh/authorized_keys2"}},
}

// DefaultMoveAllow, beside DefaultAllow, put files into those places by
// rename or link as their job: ldconfig links libraries, the
// alternatives system and update-rc.d link binaries and init scripts,
// visudo and pam-auth-update replace their files, the account tools and
// ssh-keygen replace theirs.
var DefaultMoveAllow = match.Allowlist{
	{Exe: "ldconfig"}, {Exe: "ldconfig.real"}, {Exe: "update-alternatives"}, {Exe: "update-rc.d"}, {Exe: "insserv"},
	{Exe: "/usr/sbin/visudo"}, {Exe: "pam-auth-update"}, {Exe: "depmod"}, {Exe: "systemd-sysv-install"},
	{Exe: "/usr/bin/ssh-keygen"}, {Exe: "/usr/lib/systemd/systemd-*"},
}

// DefaultAllow: package managers install these files (and the scripts
// they run edit them); systemd and systemctl write units. crontab, how users
// edit their own crontab, is reported: allow it where that is routine.
var DefaultAllow = append(match.Allowlist{{Exe: "systemd"}, {Exe: "systemctl"}}, match.PackageManagers...)

// Detector is the detector.
type Detector struct {
	allow match.Allowlist
	move  match.Allowlist // for renames and links: allow and DefaultMoveAllow
	// files recognises the watched files under any name: a write to one
	// under another name (a hard link) is the same.
	files *match.Files
}

// New returns the detector; Init configures it.
func New() *Detector { return &Detector{} }

func (d *Detector) Definition() sdk.Definition {
	return sdk.Definition{Name: "persistence", Version: "1.0.0",
		Description: "writes to cron, systemd units, shell start-up files and ld.so.preload (T1053.003, T1543.002, T1546.004, T1574.006)",
		Kinds:       []sdk.Kind{sdk.KindOpen, event.KindFile},
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
	d.move = append(append(match.Allowlist(nil), allow...), DefaultMoveAllow...)
	if c.NoDefaultAllow {
		d.move = allow
	}
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
const writeFlags = event.OpenWriteOnly | event.OpenReadWrite | event.OpenCreate | event.OpenTruncate | event.OpenAppend

func (d *Detector) OnEvent(_ context.Context, ev *sdk.Event) ([]sdk.Finding, error) {
	if ev.Kind == event.KindFile {
		return d.moved(ev), nil
	}
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

// moved reports a file put into a watched place by rename, link or
// symlink: its new name is the watched one.
func (d *Detector) moved(ev *sdk.Event) []sdk.Finding {
	f := &ev.File
	if f.Ret < 0 || f.NewResolved == "" {
		return nil
	}
	var verb string
	switch f.Op {
	case event.FileRename:
		verb = "renamed %s to %s"
	case event.FileLink:
		verb = "hard-linked %s as %s"
	case event.FileSymlink:
		verb = "made %[2]s a symbolic link to %[1]s"
	default:
		return nil
	}
	p := placeOf(places, f.NewResolved)
	if p == nil {
		p = placeOf(movedPlaces, f.NewResolved)
	}
	if p == nil || d.move.Allows(ev) {
		return nil
	}
	from := f.Resolved
	if from == "" {
		from = f.Path
	}
	out := sdk.NewFinding(ev, p.rule, p.sev,
		fmt.Sprintf("%s (pid %d, uid %d) "+verb, ev.Comm, ev.PID, ev.UID, from, f.NewResolved), p.technique)
	out.Fields = map[string]any{"path": f.NewResolved, "from": from, "op": string(f.Op), "syscall": string(f.Syscall), "uid": ev.UID}
	if ev.Process != nil {
		out.Fields["exe"] = ev.Process.Exe
	}
	return []sdk.Finding{out}
}

// placeOf is the place of ps whose patterns match path, or nil.
func placeOf(ps []place, path string) *place {
	for i := range ps {
		for _, pat := range ps[i].patterns {
			if match.Glob(pat, path) {
				return &ps[i]
			}
		}
	}
	return nil
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
