// Package tmpexec reports programs run from places anyone can write to
// (/tmp, /var/tmp, /dev/shm) and programs run without a file at all — from
// a memfd, or a binary deleted before it ran (MITRE ATT&CK T1059, T1620).
// Droppers stage payloads in exactly these places. bulkhead names a memfd
// binary "memfd:NAME", as the kernel's d_path does without the leading '/'.
package tmpexec

import (
	"context"
	"fmt"
	"strings"

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
		Description: "programs run from world-writable directories or from memory (T1059, T1620)",
		Kinds:       []sdk.Kind{sdk.KindExec}}
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
	exe := ev.Exec.Exe
	var f sdk.Finding
	switch {
	case strings.HasPrefix(exe, "memfd:") || strings.HasPrefix(exe, "/memfd:"):
		f = sdk.NewFinding(ev, "fileless-exec", sdk.SeverityHigh,
			fmt.Sprintf("pid %d ran a program from memory (%s), argv %q", ev.PID, exe, ev.Exec.ArgList()), "T1620")
	case ev.Exec.ExeNlink == 0 && exe != "":
		f = sdk.NewFinding(ev, "deleted-binary-exec", sdk.SeverityHigh,
			fmt.Sprintf("pid %d ran %s, which has no name left on disk", ev.PID, exe), "T1620", "T1070.004")
	default:
		dir := d.dir(exe)
		if dir == "" {
			return nil, nil
		}
		f = sdk.NewFinding(ev, "exec-from-writable-dir", sdk.SeverityMedium,
			fmt.Sprintf("pid %d (uid %d) ran %s from world-writable %s", ev.PID, ev.UID, exe, dir), "T1059")
		f.Fields = map[string]any{"dir": dir}
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
