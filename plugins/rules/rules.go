// Package rules is the operators' detector: rules in YAML with CEL
// conditions (package ruleset), evaluated on either backend. It ships
// default.yaml, which covers the built-in detectors' ground in rule form
// and a few more; an operator's files come after it and can change or
// disable any of its rules.
//
// The rule files are watched: when one changes, the rule set is rebuilt
// and replaced at once. A file with any bad rule leaves the old set
// running, and the log says why. SIGHUP to the monitor restarts the
// detector, which re-reads the files; a bad rule fails the new detector's
// Init, so the running one stays (unless skip_bad_rules is set).
package rules

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/rules/ruleset"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
	"go.uber.org/zap"
)

// DefaultRules is default.yaml.
//
//go:embed default.yaml
var DefaultRules []byte

// Config is the detector's configuration.
type Config struct {
	// Files are read after the default rules, in order.
	Files []string `json:"files"`
	// NoDefaultRules leaves default.yaml out.
	NoDefaultRules bool `json:"no_default_rules"`
	// ReloadInterval is how often the files are checked for changes
	// (default 2s; "0s" turns watching off).
	ReloadInterval string `json:"reload_interval"`
	// SkipBadRules starts with the rules that compile when some do not
	// (each rejected one is logged). By default a bad rule fails Init,
	// which keeps the running rules in place on a SIGHUP to the monitor,
	// as a watched file change does.
	SkipBadRules bool `json:"skip_bad_rules"`
}

// Sources are the default rules (unless left out) and files, in order.
func (c Config) Sources() ([]ruleset.Source, error) {
	var out []ruleset.Source
	if !c.NoDefaultRules {
		out = append(out, ruleset.Source{Name: "default.yaml", Data: DefaultRules})
	}
	for _, f := range c.Files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, ruleset.Source{Name: f, Data: b})
	}
	return out, nil
}

// Detector evaluates the rule set.
type Detector struct {
	cfg   Config
	set   atomic.Pointer[ruleset.Set]
	eval  *ruleset.Evaluator // of the set it was made for; OnEvent's alone
	out   []ruleset.Match
	log   *zap.Logger
	stop  chan struct{}
	wg    sync.WaitGroup
	mtime map[string]time.Time
}

// New returns the detector; Init loads the rules.
func New() *Detector { return &Detector{} }

func (d *Detector) Definition() sdk.Definition {
	// Before Init every kind; after, the kinds some rule can match. A
	// reload that needs more kinds takes a restart (SIGHUP to the monitor).
	kinds := event.AllKinds()
	if s := d.set.Load(); s != nil {
		kinds = s.Kinds().Kinds()
	}
	return sdk.Definition{Name: "rules", Version: "1.0.0",
		Description: "operator rules: YAML with CEL conditions", Kinds: kinds}
}

func (d *Detector) Init(_ context.Context, cfg sdk.Config, log *zap.Logger) error {
	c := Config{ReloadInterval: "2s"}
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	interval, err := time.ParseDuration(c.ReloadInterval)
	if err != nil || interval < 0 {
		return fmt.Errorf("reload_interval %q: use a duration such as 2s, or 0s to turn watching off", c.ReloadInterval)
	}
	d.cfg, d.log = c, log
	d.mtime = d.mtimes()
	srcs, err := c.Sources()
	if err != nil {
		return err
	}
	set, problems, err := ruleset.LoadSources(srcs...)
	if err != nil {
		return err
	}
	if len(problems) > 0 && !c.SkipBadRules {
		return fmt.Errorf("%d rule(s) rejected (skip_bad_rules: true runs the others):\n%w", len(problems), errors.Join(problems...))
	}
	for _, p := range problems {
		log.Error("rule rejected; the other rules are loaded", zap.Error(p))
	}
	if len(set.Rules) == 0 {
		return fmt.Errorf("no rule loaded (%d rejected): nothing to evaluate", len(problems))
	}
	d.set.Store(set)
	log.Info("rules loaded", zap.Int("rules", len(set.Rules)), zap.Int("rejected", len(problems)), zap.Int("disabled", set.Disabled))
	if interval > 0 && len(c.Files) > 0 {
		d.stop = make(chan struct{})
		d.wg.Add(1)
		go d.watch(interval)
	}
	return nil
}

// mtimes are the rule files' modification times now.
func (d *Detector) mtimes() map[string]time.Time {
	m := map[string]time.Time{}
	for _, f := range d.cfg.Files {
		if st, err := os.Stat(f); err == nil {
			m[f] = st.ModTime()
		}
	}
	return m
}

// watch reloads the rule set when a file changes. Any problem leaves the
// running set in place.
func (d *Detector) watch(every time.Duration) {
	defer d.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		now := d.mtimes()
		if equal(now, d.mtime) {
			continue
		}
		d.mtime = now
		d.reload()
	}
}

func (d *Detector) reload() {
	srcs, err := d.cfg.Sources()
	if err != nil {
		d.log.Error("rule files changed but could not be read; the running rules stay", zap.Error(err))
		return
	}
	set, problems, err := ruleset.LoadSources(srcs...)
	if err == nil && len(problems) > 0 {
		err = fmt.Errorf("%d rule(s) rejected, the first: %w", len(problems), problems[0])
	}
	if err != nil {
		d.log.Error("rule files changed but are not valid; the running rules stay", zap.Error(err))
		for _, p := range problems {
			d.log.Warn("rejected rule", zap.Error(p))
		}
		return
	}
	d.set.Store(set)
	d.log.Info("rules reloaded", zap.Int("rules", len(set.Rules)), zap.Int("disabled", set.Disabled))
}

func equal(a, b map[string]time.Time) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !b[k].Equal(v) {
			return false
		}
	}
	return true
}

func (d *Detector) OnEvent(_ context.Context, ev *sdk.Event) ([]sdk.Finding, error) {
	s := d.set.Load()
	if d.eval == nil || d.eval.Set() != s {
		d.eval = s.NewEvaluator()
	}
	d.out = d.eval.Eval(ev, d.out[:0])
	if len(d.out) == 0 {
		return nil, nil
	}
	fs := make([]sdk.Finding, 0, len(d.out))
	for _, m := range d.out {
		f := detect.NewFinding(ev, m.Rule.ID, m.Rule.Severity, m.Output, m.Rule.Techniques...)
		f.Fields = map[string]any{"desc": m.Rule.Desc}
		if len(m.Rule.Tags) > 0 {
			f.Fields["tags"] = m.Rule.Tags
		}
		fs = append(fs, f)
	}
	return fs, nil
}

func (d *Detector) Close(context.Context) error {
	if d.stop != nil {
		close(d.stop)
		d.wg.Wait()
		d.stop = nil
	}
	return nil
}
