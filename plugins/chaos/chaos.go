// Package chaos is a TEST detector: it misbehaves on command so that tests
// and benchmarks can show what each fault does on each backend. Never run
// it on a host you care about.
//
// Each fault triggers on open events whose resolved path contains the
// configured marker: panic, exit, hang. "fail_init" makes Init fail.
package chaos

import (
	"context"
	"errors"
	"os"
	"strings"

	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"go.uber.org/zap"
)

// Config selects the faults.
type Config struct {
	PanicOn  string `json:"panic_on"` // panic when an opened path contains this
	ExitOn   string `json:"exit_on"`  // os.Exit(3)
	HangOn   string `json:"hang_on"`  // never return
	FailInit bool   `json:"fail_init"`
	// ReportOn reports every open whose path contains this, so tests can see
	// what was delivered.
	ReportOn string `json:"report_on"`
}

// Detector is the fault injector.
type Detector struct{ c Config }

// New returns the detector.
func New() *Detector { return &Detector{} }

func (d *Detector) Definition() sdk.Definition {
	return sdk.Definition{Name: "chaos", Version: "1.0.0", Description: "TEST ONLY: fails on command", Kinds: []sdk.Kind{sdk.KindOpen}}
}

func (d *Detector) Init(_ context.Context, cfg sdk.Config, _ *zap.Logger) error {
	if err := cfg.Decode(&d.c); err != nil {
		return err
	}
	if d.c.FailInit {
		return errors.New("configured to fail Init")
	}
	return nil
}

func (d *Detector) OnEvent(_ context.Context, ev *sdk.Event) ([]sdk.Finding, error) {
	path := ev.Open.Resolved
	switch {
	case on(path, d.c.PanicOn):
		panic("chaos: panic on " + path)
	case on(path, d.c.ExitOn):
		os.Exit(3)
	case on(path, d.c.HangOn):
		select {}
	case on(path, d.c.ReportOn):
		return []sdk.Finding{sdk.NewFinding(ev, "chaos-report", sdk.SeverityInfo, "saw "+path)}, nil
	}
	return nil, nil
}

func (d *Detector) Close(context.Context) error { return nil }

func on(path, marker string) bool { return marker != "" && strings.Contains(path, marker) }
