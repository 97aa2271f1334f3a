// Package tmpexec reports programs run from places anyone can write to
// (/tmp, /var/tmp, /dev/shm) and programs run without a file at all — from
// a memfd, or a binary deleted before it ran (MITRE ATT&CK T1059, T1620).
// Droppers stage payloads in exactly these places. bulkhead names a memfd
// binary "memfd:NAME", as the kernel's d_path does without the leading '/'.
//
// Scripts count as programs: a #! script run from one of these places
// (`./x.sh` in /dev/shm: the kernel runs the interpreter, and names the
// script in Exec.Script) or handed to a shell or interpreter by its path
// (`sh /tmp/x.sh`, `python3 /var/tmp/x.py`) is reported as
// script-from-writable-dir (T1059.004), and a #! script run from a hidden
// directory as script-from-hidden-dir (T1564.001). A program that deletes
// its own binary, or whose child does, is self-deleting-binary (T1070.004):
// droppers remove their traces once running.
package tmpexec

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
	// Dirs are added to DefaultDirs (patterns; a binary anywhere below
	// matches).
	Dirs []string `json:"dirs"`
}

// DefaultDirs are world-writable or memory-backed.
var DefaultDirs = []string{"/tmp/", "/var/tmp/", "/dev/shm/", "/run/shm/", "/dev/mqueue/"}

// DefaultAllow trusts the Go toolchain's own build directories (go test,
// go run) and container runtimes, which run a sealed memfd copy of
// themselves to defend against CVE-2019-5736.
var DefaultAllow = match.Allowlist{
	match.GoToolchain,
	{Exe: "*memfd:runc_cloned*"}, {Ancestor: "runc"}, {Ancestor: "crun"},
}

// Detector is the detector.
type Detector struct {
	dirs  []string // as patterns: the directory and "*"
	allow match.Allowlist
}

// New returns the detector; Init configures it.
func New() *Detector { return &Detector{} }

func (d *Detector) Definition() sdk.Definition {
	return sdk.Definition{Name: "tmpexec", Version: "1.0.0",
		Description: "programs and scripts run from world-writable directories or from memory, programs deleting their own binary (T1059, T1620, T1070.004)",
		Kinds:       []sdk.Kind{sdk.KindExec, event.KindFile}}
}

func (d *Detector) Init(_ context.Context, cfg sdk.Config, log *zap.Logger) error {
	var c Config
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	for _, dir := range c.Dirs {
		if !strings.HasPrefix(dir, "/") {
			return fmt.Errorf("dirs: %q: use an absolute directory such as /srv/uploads", dir)
		}
	}
	allow, err := c.Build(DefaultAllow)
	if err != nil {
		return err
	}
	d.dirs = nil
	for _, dir := range append(append([]string(nil), DefaultDirs...), c.Dirs...) {
		if !strings.HasSuffix(dir, "/") && !strings.HasSuffix(dir, "*") {
			dir += "/"
		}
		d.dirs = append(d.dirs, dir+"*")
	}
	d.allow = allow
	log.Debug("configured", zap.Strings("dirs", d.dirs), zap.Int("allow_rules", len(allow)))
	return nil
}

func (d *Detector) OnEvent(_ context.Context, ev *sdk.Event) ([]sdk.Finding, error) {
	if ev.Kind == event.KindFile {
		return d.selfDelete(ev), nil
	}
	exe := ev.Exec.Exe
	var f sdk.Finding
	script, scriptDir := d.script(ev)
	switch {
	case strings.HasPrefix(exe, "memfd:") || strings.HasPrefix(exe, "/memfd:"):
		f = sdk.NewFinding(ev, "fileless-exec", sdk.SeverityHigh,
			fmt.Sprintf("pid %d ran a program from memory (%s), argv %q", ev.PID, exe, ev.Exec.ArgList()), "T1620")
	case ev.Exec.ExeNlink == 0 && exe != "":
		f = sdk.NewFinding(ev, "deleted-binary-exec", sdk.SeverityHigh,
			fmt.Sprintf("pid %d ran %s, which has no name left on disk", ev.PID, exe), "T1620", "T1070.004")
	case d.dir(exe) != "":
		dir := d.dir(exe)
		f = sdk.NewFinding(ev, "exec-from-writable-dir", sdk.SeverityMedium,
			fmt.Sprintf("pid %d (uid %d) ran %s from world-writable %s", ev.PID, ev.UID, exe, dir), "T1059")
		f.Fields = map[string]any{"dir": dir}
	case script != "" && scriptDir != "":
		f = sdk.NewFinding(ev, "script-from-writable-dir", sdk.SeverityMedium,
			fmt.Sprintf("pid %d (uid %d) ran script %s from world-writable %s with %s", ev.PID, ev.UID, script, scriptDir, exe), "T1059.004", "T1059")
		f.Fields = map[string]any{"dir": scriptDir, "script": script}
	case ev.Exec.Script != "" && hidden(ev.Exec.Script):
		f = sdk.NewFinding(ev, "script-from-hidden-dir", sdk.SeverityMedium,
			fmt.Sprintf("pid %d (uid %d) ran script %s from a hidden directory with %s", ev.PID, ev.UID, ev.Exec.Script, exe), "T1059.004", "T1564.001")
		f.Fields = map[string]any{"script": ev.Exec.Script}
	default:
		return nil, nil
	}
	if d.allow.Allows(ev) {
		return nil, nil
	}
	if f.Fields == nil {
		f.Fields = map[string]any{}
	}
	f.Fields["exe"], f.Fields["argv"], f.Fields["uid"] = exe, ev.Exec.ArgList(), ev.UID
	if ev.Process != nil && len(ev.Process.Ancestors) > 0 {
		f.Fields["parent"] = ev.Process.Ancestors[0].Exe
	}
	return []sdk.Finding{f}, nil
}

// interpreters run a script named by their first argument that is not an
// option, by their binary's name.
var interpreters = []string{"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "csh", "tcsh", "busybox",
	"python", "python2*", "python3*", "perl", "perl5*", "ruby", "ruby*", "php", "php*", "node", "nodejs", "lua*", "tclsh*",
	"ld-linux*.so*", "ld.so"}

// commandOptions take the program text itself (or a module's name), not
// a script's path; for the shells only -c does (-e is errexit).
var commandOptions = map[string]bool{"-c": true, "-e": true, "-E": true, "-r": true, "-m": true, "--command": true, "--eval": true}

// shells are the interpreters whose only command option is -c.
var shells = map[string]bool{"sh": true, "bash": true, "dash": true, "zsh": true, "ksh": true, "mksh": true, "ash": true,
	"fish": true, "csh": true, "tcsh": true, "busybox": true}

// script is the script ev runs and the watched directory it is in: the
// kernel's Exec.Script for a #! script, or the first argument of a shell
// or interpreter that is an absolute path and not an option. "" when ev
// runs no script from a watched directory.
func (d *Detector) script(ev *sdk.Event) (script, dir string) {
	if s := ev.Exec.Script; s != "" {
		if dir := d.dir(s); dir != "" {
			return s, dir
		}
	}
	base := ev.Exec.Exe
	if i := strings.LastIndexByte(base, '/'); i >= 0 {
		base = base[i+1:]
	}
	known := false
	for _, pat := range interpreters {
		if match.Glob(pat, base) {
			known = true
			break
		}
	}
	if !known {
		return "", ""
	}
	args := ev.Exec.ArgList()
	for i := 1; i < len(args) && i < 8; i++ {
		a := args[i]
		short := len(a) > 1 && a[0] == '-' && a[1] != '-' && !strings.Contains(a, "=")
		if shells[base] && short && strings.Contains(a[1:], "c") ||
			!shells[base] && (commandOptions[a] || short && strings.ContainsAny(a[1:], "cemr")) {
			return "", "" // sh -c '…', perl -e, python -c, bash -xc: a command, not a file
		}
		if strings.HasPrefix(a, "-") {
			continue
		}
		if strings.HasPrefix(a, "/") {
			if dir := d.dir(a); dir != "" {
				return a, dir
			}
		}
		return "", ""
	}
	return "", ""
}

// hidden reports whether path has a directory whose name starts with a
// dot, outside the usual tool homes (~/.local, ~/.cargo …).
func hidden(path string) bool {
	dir := path
	if i := strings.LastIndexByte(dir, '/'); i >= 0 {
		dir = dir[:i]
	}
	if !strings.Contains(dir, "/.") {
		return false
	}
	for _, home := range toolHomes {
		if strings.Contains(dir, "/"+home+"/") || strings.HasSuffix(dir, "/"+home) {
			return false
		}
	}
	return true
}

// toolHomes are hidden directories whose scripts are a user's tools.
var toolHomes = []string{".local", ".cargo", ".rustup", ".pyenv", ".rbenv", ".nvm", ".npm", ".sdkman", ".asdf", ".deno",
	".bun", ".volta", ".dotnet", ".yarn", ".goenv", ".jenv", ".linuxbrew", ".vscode-server", ".cursor-server", ".krew",
	".oh-my-zsh", ".git", ".config", ".cache", ".venv", ".tox", ".github"}

// selfDelete reports a process that deletes its own binary, or its
// parent's or another ancestor's: a dropper cleaning up once it runs.
func (d *Detector) selfDelete(ev *sdk.Event) []sdk.Finding {
	f := &ev.File
	if f.Op != event.FileUnlink || f.Ret < 0 || f.Resolved == "" || ev.Process == nil {
		return nil
	}
	whose := ""
	if ev.Process.Exe == f.Resolved {
		whose = "its own binary"
	} else {
		for i, a := range ev.Process.Ancestors {
			if a.Exe == f.Resolved {
				whose = fmt.Sprintf("the binary of its ancestor %s (pid %d, %d up)", a.Comm, a.PID, i+1)
				break
			}
		}
	}
	if whose == "" || d.allow.Allows(ev) {
		return nil
	}
	out := sdk.NewFinding(ev, "self-deleting-binary", sdk.SeverityHigh,
		fmt.Sprintf("%s (pid %d, uid %d) deleted %s, %s", ev.Comm, ev.PID, ev.UID, f.Resolved, whose), "T1070.004")
	out.Fields = map[string]any{"path": f.Resolved, "exe": ev.Process.Exe, "syscall": string(f.Syscall)}
	return []sdk.Finding{out}
}

// dir is the watched directory exe is under, or "".
func (d *Detector) dir(exe string) string {
	for _, pattern := range d.dirs {
		if match.Glob(pattern, exe) {
			return strings.TrimSuffix(pattern, "*")
		}
	}
	return ""
}

func (d *Detector) Close(context.Context) error { return nil }
