// Package probe is the benchmarks' detector: it does almost nothing with
// each event, so what `bulkhead bench` measures is the pipeline and the
// isolation backend, not detection logic. With `every: N` it reports every
// Nth event it receives, with the CLOCK_BOOTTIME nanosecond at which it
// received it: the monitor then knows, for that event, kernel → detector
// and detector → finding latencies. It runs on either backend
// (cmd/bulkhead-plugin-probe for goplugin).
package probe

import (
	"context"
	"errors"
	"strconv"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"go.uber.org/zap"
)

// ReceivedField is the finding field that holds when the probe received
// the event: CLOCK_BOOTTIME nanoseconds as a decimal string (exact, unlike
// a JSON number).
const ReceivedField = "received_ns"

// Rule is the rule id of the probe's findings.
const Rule = "probe-sample"

// Config is the probe's configuration.
type Config struct {
	// Every reports every Nth event received; 0 reports none.
	Every int `json:"every"`
}

// Detector is the probe.
type Detector struct {
	every, seen int
}

// New returns the probe.
func New() *Detector { return &Detector{} }

func (d *Detector) Definition() sdk.Definition {
	return sdk.Definition{Name: "probe", Version: "1.0.0",
		Description: "BENCHMARKS: reports a sample of events with the time it received them",
		Kinds:       []sdk.Kind{sdk.KindOpen}}
}

func (d *Detector) Init(_ context.Context, cfg sdk.Config, _ *zap.Logger) error {
	var c Config
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	if c.Every < 0 {
		return errors.New("every must not be negative: 0 reports nothing, N every Nth event")
	}
	d.every = c.Every
	return nil
}

func (d *Detector) OnEvent(_ context.Context, ev *sdk.Event) ([]sdk.Finding, error) {
	d.seen++
	if d.every == 0 || d.seen%d.every != 0 {
		return nil, nil
	}
	f := sdk.NewFinding(ev, Rule, sdk.SeverityInfo, "latency sample")
	f.Fields = map[string]any{ReceivedField: strconv.FormatUint(event.KernelNow(), 10)}
	return []sdk.Finding{f}, nil
}

func (d *Detector) Close(context.Context) error { return nil }
