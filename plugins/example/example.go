// Package example is the SDK's worked example: a detector that reports
// opens of sensitive files. It runs unchanged in the monitor (backend
// inproc) or as its own process (cmd/bulkhead-plugin-example, backend
// goplugin).
package example

import (
	"context"
	"fmt"
	"strings"

	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"go.uber.org/zap"
)

// Config is the detector's configuration (the `config:` block of its entry
// in the monitor's config file).
type Config struct {
	// Paths are reported when opened, exactly.
	Paths []string `json:"paths"`
	// Prefixes are reported when a path under them is opened.
	Prefixes []string `json:"prefixes"`
}

// Detector reports opens of the configured paths.
type Detector struct {
	paths    map[string]bool
	prefixes []string
	log      *zap.Logger
}

// New returns the detector; Init configures it.
func New() *Detector { return &Detector{} }

func (d *Detector) Definition() sdk.Definition {
	return sdk.Definition{
		Name:        "example",
		Version:     "1.0.0",
		Description: "reports opens of sensitive files (default: /etc/shadow, /etc/gshadow)",
		Kinds:       []sdk.Kind{sdk.KindOpen},
	}
}

func (d *Detector) Init(_ context.Context, cfg sdk.Config, log *zap.Logger) error {
	c := Config{Paths: []string{"/etc/shadow", "/etc/gshadow"}}
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	d.paths = map[string]bool{}
	for _, p := range append(append([]string(nil), c.Paths...), c.Prefixes...) {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("path %q: use an absolute path", p)
		}
	}
	for _, p := range c.Paths {
		d.paths[p] = true
	}
	d.prefixes, d.log = c.Prefixes, log
	log.Info("watching", zap.Strings("paths", c.Paths), zap.Strings("prefixes", c.Prefixes))
	return nil
}

func (d *Detector) OnEvent(_ context.Context, ev *sdk.Event) ([]sdk.Finding, error) {
	path := ev.Open.Resolved
	if !d.paths[path] && !hasPrefix(path, d.prefixes) {
		return nil, nil
	}
	f := sdk.NewFinding(ev, "sensitive-file-open", sdk.SeverityHigh,
		fmt.Sprintf("%s (pid %d, uid %d) opened %s", ev.Comm, ev.PID, ev.UID, path), "T1003.008")
	f.Fields = map[string]any{"path": path, "ret": ev.Open.Ret, "exe": ev.ProcessExe()}
	return []sdk.Finding{f}, nil
}

func (d *Detector) Close(context.Context) error { return nil }

func hasPrefix(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}
