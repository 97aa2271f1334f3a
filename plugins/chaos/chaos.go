// Package chaos is a TEST detector: it fails on command, in every way a
// real detector can, so tests and benchmarks can show what each fault does
// on each backend (docs/faults.md has the table; test/faults_test.go checks
// every cell of it). Never run it on a host you care about.
//
// A fault is triggered by an open event whose path contains `on`, or by the
// Nth event (`after`); a marker triggers it every time it is seen, `after`
// every N events. With `once`, each marker triggers the fault only the
// first time it is seen, even by the plugin's next process: a transient
// fault, whose event is processed normally when it is delivered again. The
// faults:
//
//	panic          panic in OnEvent
//	exit           os.Exit(3)
//	fatal          concurrent map writes: a fatal runtime error recover cannot stop
//	goroutine-nil  a nil dereference in a background goroutine
//	hang           OnEvent never returns
//	slow           every event from the trigger on takes `delay`
//	memory         allocate without end; when triggered, the process's address
//	               space is capped at memory_limit_mb above its size (default
//	               256), so it dies of "out of memory" instead of taking the host
//	               (in a plugin enclave, which hides /proc, its memory limit
//	               ends it instead)
//	fail-init      Init fails
//
// Built as a wasm module (plugins/chaos/wasm, for the wasm backend) the
// faults keep their meaning within a module's single thread: exit is the
// module's proc_exit, fatal is the runtime's "all goroutines are asleep -
// deadlock!" (concurrent map writes cannot happen without a second
// thread), hang spins (blocking would be that fatal error), and memory
// grows the module's memory to the backend's limit, where the runtime dies
// of "out of memory".
package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"go.uber.org/zap"
)

// Faults lists every fault this detector can inject.
var Faults = []string{"panic", "exit", "fatal", "goroutine-nil", "hang", "slow", "memory", "fail-init"}

// Config selects the fault.
type Config struct {
	Fault string `json:"fault"`
	// On triggers the fault on open events whose path contains it.
	On string `json:"on"`
	// After triggers it on every Nth event.
	After int `json:"after"`
	// Once triggers it only on a marker's first delivery: a restarted
	// plugin handles the marker's event normally when the monitor sends
	// it again (sdk.Redelivered). A plugin in an enclave keeps nothing
	// across restarts, so this is the only memory a fault can have.
	Once bool `json:"once"`
	// Delay is what each event costs once a slow fault is triggered
	// (default 1ms); without On or After the slowness starts at once.
	Delay string `json:"delay"`
	// MemoryLimitMB caps the memory fault (default 256).
	MemoryLimitMB int `json:"memory_limit_mb"`
	// ReportOn reports every open whose path contains it, so tests can see
	// what was delivered.
	ReportOn string `json:"report_on"`
}

// Detector is the fault injector.
type Detector struct {
	c     Config
	delay time.Duration
	seen  int
	slow  bool
	hoard [][]byte // the memory fault's, kept reachable
	log   *zap.Logger
}

// New returns the detector.
func New() *Detector { return &Detector{} }

func (d *Detector) Definition() sdk.Definition {
	return sdk.Definition{Name: "chaos", Version: "2.0.0", Description: "TEST ONLY: fails on command", Kinds: []sdk.Kind{sdk.KindOpen}}
}

func (d *Detector) Init(_ context.Context, cfg sdk.Config, log *zap.Logger) error {
	c := Config{Delay: "1ms", MemoryLimitMB: 256}
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	known := c.Fault == ""
	for _, f := range Faults {
		known = known || c.Fault == f
	}
	if !known {
		return fmt.Errorf("fault %q: use one of %s", c.Fault, strings.Join(Faults, ", "))
	}
	delay, err := time.ParseDuration(c.Delay)
	if err != nil || delay < 0 {
		return fmt.Errorf("delay %q: use a duration such as 1ms", c.Delay)
	}
	if c.After < 0 || c.MemoryLimitMB < 1 {
		return errors.New("after must not be negative and memory_limit_mb must be at least 1")
	}
	if c.Fault != "" && c.Fault != "slow" && c.Fault != "fail-init" && c.On == "" && c.After == 0 {
		return fmt.Errorf("fault %s needs a trigger: on (a path marker) or after (every Nth event)", c.Fault)
	}
	d.c, d.delay, d.log = c, delay, log
	d.slow = c.Fault == "slow" && c.On == "" && c.After == 0
	switch c.Fault {
	case "fail-init":
		return errors.New("configured to fail Init")
	}
	log.Warn("TEST detector armed: it will fail on command", zap.String("fault", c.Fault), zap.String("on", c.On), zap.Int("after", c.After))
	return nil
}

func (d *Detector) OnEvent(ctx context.Context, ev *sdk.Event) ([]sdk.Finding, error) {
	d.seen++
	path := ev.Open.Resolved
	if d.triggered(ctx, path) {
		d.log.Warn("injecting fault", zap.String("fault", d.c.Fault), zap.String("path", path), zap.Int("event", d.seen))
		d.inject(path)
	}
	if d.slow {
		time.Sleep(d.delay)
	}
	if on(path, d.c.ReportOn) {
		return []sdk.Finding{sdk.NewFinding(ev, "chaos-report", sdk.SeverityInfo, "saw "+path)}, nil
	}
	return nil, nil
}

func (d *Detector) triggered(ctx context.Context, path string) bool {
	if on(path, d.c.On) {
		return !d.c.Once || !sdk.Redelivered(ctx)
	}
	return d.c.After > 0 && d.seen%d.c.After == 0
}

func (d *Detector) inject(path string) {
	switch d.c.Fault {
	case "panic":
		panic("chaos: panic on " + path)
	case "exit":
		os.Exit(3)
	case "fatal":
		fatal()
	case "goroutine-nil":
		go func() {
			var p *Config
			fmt.Fprintln(os.Stderr, p.Fault) // nil dereference: the process dies
		}()
	case "hang":
		hang()
	case "slow":
		d.slow = true
	case "memory":
		if err := capAddressSpace(d.c.MemoryLimitMB); err != nil {
			panic("chaos: memory fault: " + err.Error())
		}
		for {
			b := make([]byte, 16<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1 // touch every page: resident, not just reserved
			}
			d.hoard = append(d.hoard, b)
		}
	}
}

// concurrentMapWrites makes the Go runtime throw "concurrent map writes",
// a fatal error that no recover can catch.
func concurrentMapWrites() {
	m := map[int]int{}
	for g := 0; g < 4; g++ {
		go func() {
			for i := 0; ; i++ {
				m[i%1024] = i
			}
		}()
	}
	for i := 0; ; i++ {
		m[i%1024] = i
	}
}

func (d *Detector) Close(context.Context) error { return nil }

func on(path, marker string) bool { return marker != "" && strings.Contains(path, marker) }
