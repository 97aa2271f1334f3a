package wasm_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/backends/wasm"
	"github.com/bulkhead-sec/bulkhead/backends/wasm/wasmtest"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/probe"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	wasmtest.Cleanup()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// start makes a backend of the named library detector's module.
func start(t *testing.T, name, config string, tune func(*wasm.Options)) *wasm.Backend {
	t.Helper()
	o := wasm.DefaultOptions(wasmtest.Build(t, name))
	o.Config, o.Cache = []byte(config), wasmtest.Cache(t)
	o.BackoffInitial, o.BackoffMax = time.Millisecond, 10*time.Millisecond
	if tune != nil {
		tune(&o)
	}
	b, err := wasm.New(context.Background(), o, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	return b
}

var proc = sdktest.Proc{PID: 10, Exe: "/usr/bin/cat"}

// opens is a batch of opens of dir/0 … dir/n-1.
func opens(dir string, n int) []*event.Event {
	out := make([]*event.Event, n)
	for i := range out {
		out[i] = proc.Open(fmt.Sprintf("%s/%d", dir, i), 0, 3)
	}
	return out
}

func TestExampleFindsWhatInprocFinds(t *testing.T) {
	b := start(t, "example", `{"prefixes": ["/secret/"]}`, nil)
	if def := b.Definition(); def.Name != "example" || !slices.Equal(def.Kinds, []event.Kind{event.KindOpen}) {
		t.Fatalf("definition %+v", def)
	}
	evs := append(opens("/tmp", 3), proc.Open("/etc/shadow", 0, 3), proc.Open("/secret/x", 0, 3))
	fs, err := backends.Deliver(context.Background(), b, evs)
	if err != nil {
		t.Fatal(err)
	}
	if got := sdktest.Rules(fs); len(got) != 2 {
		t.Fatalf("findings %q, want 2", got)
	}
	if fs[0].Events[0].Open.Resolved != "/etc/shadow" || fs[1].Events[0].Open.Resolved != "/secret/x" {
		t.Fatalf("evidence %q, %q", fs[0].Events[0].Open.Resolved, fs[1].Events[0].Open.Resolved)
	}
	if s := b.Stats(); s.Delivered != 5 || s.Findings != 2 || s.Crashes+s.Hangs+s.Restarts != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestBadModulesAreRefused(t *testing.T) {
	dir := t.TempDir()
	notWasm := dir + "/x.wasm"
	os.WriteFile(notWasm, []byte("\x7fELF not a module"), 0o644)
	for _, c := range []struct{ path, config, want string }{
		{dir + "/missing.wasm", "", "no such file"},
		{notWasm, "", "not a WebAssembly module"},
		{wasmtest.Build(t, "example"), `{"paths": ["relative"]}`, "use an absolute path"},
		{wasmtest.Build(t, "example"), `{"nope": 1}`, "unknown field"},
	} {
		o := wasm.DefaultOptions(c.path)
		o.Config, o.Cache = []byte(c.config), wasmtest.Cache(t)
		_, err := wasm.New(context.Background(), o, zaptest.NewLogger(t))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: error %v, want %q", c.path, c.config, err, c.want)
		}
	}
}

// TestFaults: every crash-type fault of the chaos detector ends only its
// instance; the poison event is found and quarantined, every other event
// is delivered, and the next batch goes through.
func TestFaults(t *testing.T) {
	for _, fault := range []string{"panic", "exit", "fatal", "goroutine-nil", "hang", "memory"} {
		t.Run(fault, func(t *testing.T) {
			b := start(t, "chaos", `{"fault": "`+fault+`", "on": "/boom/", "report_on": "/m/"}`, func(o *wasm.Options) {
				o.BatchDeadline = time.Second
				if fault == "memory" {
					o.BatchDeadline = 3 * time.Second // filling 64 MiB takes 0.1-0.4 s on a busy host
				}
				o.MemoryPages = 1024 // 64 MiB
			})
			evs := append(opens("/m/a", 10), proc.Open("/boom/x", 0, 3))
			evs = append(evs, opens("/m/b", 10)...)
			t0 := time.Now()
			fs, err := backends.Deliver(context.Background(), b, evs)
			if err != nil {
				t.Fatal(err)
			}
			took := time.Since(t0)
			if len(fs) != 20 {
				t.Fatalf("%d findings, want the 20 markers", len(fs))
			}
			fs, err = backends.Deliver(context.Background(), b, opens("/m/c", 5))
			if err != nil || len(fs) != 5 {
				t.Fatalf("after the fault: %d findings, %v", len(fs), err)
			}
			s := b.Stats()
			t.Logf("%s: %+v in %v", fault, s, took)
			if s.Quarantined != 1 || s.Delivered != 25 {
				t.Errorf("quarantined %d, delivered %d: want 1, 25", s.Quarantined, s.Delivered)
			}
			failures := s.Crashes + s.Hangs
			if failures != 4 || s.Restarts != 4 {
				t.Errorf("%d crashes, %d hangs, %d restarts: want 4 failures and restarts", s.Crashes, s.Hangs, s.Restarts)
			}
			if (fault == "hang") != (s.Hangs == 4) || (fault == "memory") != (s.LimitKills == 4) {
				t.Errorf("hangs %d, limit kills %d for fault %s", s.Hangs, s.LimitKills, fault)
			}
			if s.Redelivered == 0 || s.BreakerOpen {
				t.Errorf("redelivered %d, breaker %v", s.Redelivered, s.BreakerOpen)
			}
		})
	}
}

// TestCrashLoopOpensBreaker: a module that dies on every event opens the
// breaker; its events are then shed (ErrUnavailable), not retried.
func TestCrashLoopOpensBreaker(t *testing.T) {
	b := start(t, "chaos", `{"fault": "panic", "after": 1}`, func(o *wasm.Options) { o.BreakerCooldown = time.Hour })
	_, err := backends.Deliver(context.Background(), b, opens("/x", 4))
	if !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("error %v, want unavailable", err)
	}
	s := b.Stats()
	if !s.BreakerOpen || s.Crashes != 5 {
		t.Fatalf("stats %+v: want the breaker open after 5 crashes", s)
	}
	if _, err := backends.Deliver(context.Background(), b, opens("/y", 2)); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("with the breaker open: %v", err)
	}
	if s2 := b.Stats(); s2.Crashes != s.Crashes {
		t.Fatal("the module was started again with the breaker open")
	}
}

// TestOnceFaultIsRedeliveredFlagged: a transient fault (once) fires on the
// first delivery only: the redelivered batch carries the flag, and nothing
// is quarantined.
func TestOnceFaultIsRedeliveredFlagged(t *testing.T) {
	b := start(t, "chaos", `{"fault": "panic", "on": "/boom/", "once": true, "report_on": "/"}`, nil)
	fs, err := backends.Deliver(context.Background(), b, append(opens("/a", 3), proc.Open("/boom/1", 0, 3)))
	if err != nil || len(fs) != 4 {
		t.Fatalf("%d findings, %v", len(fs), err)
	}
	if s := b.Stats(); s.Crashes != 1 || s.Quarantined != 0 || s.Redelivered != 4 {
		t.Fatalf("stats %+v", s)
	}
}

// TestModuleClockIsTheKernels: a module's monotonic clock is the host's
// CLOCK_BOOTTIME, so event.KernelNow in it is comparable with the events'
// kernel times (the probe detector reports it, for the latency bench).
func TestModuleClockIsTheKernels(t *testing.T) {
	b := start(t, "probe", `{"every": 1}`, nil)
	ev := proc.Open("/etc/hostname", 0, 3)
	ev.KernelTimeNs = event.KernelNow()
	fs, err := backends.Deliver(context.Background(), b, []*event.Event{ev})
	after := event.KernelNow()
	if err != nil || len(fs) != 1 {
		t.Fatalf("%d findings, %v", len(fs), err)
	}
	got, err := strconv.ParseUint(fmt.Sprint(fs[0].Fields[probe.ReceivedField]), 10, 64)
	if err != nil || got < ev.KernelTimeNs || got > after {
		t.Fatalf("received %d (%v), want within [%d, %d]", got, err, ev.KernelTimeNs, after)
	}
}

// TestHostileModuleIsBounded: a module's answers are hostile input.
// Pointers and lengths outside its memory, an answer over 8 MiB or bytes
// that are not a result end the instance as a protocol violation (the
// batch then goes the way of a crash: its event is quarantined); a flood
// of findings and fabricated evidence are cut and counted, and the
// module keeps running.
func TestHostileModuleIsBounded(t *testing.T) {
	mod := wasmtest.BuildPackage(t, "./backends/wasm/testdata/hostile", "hostile")
	for _, c := range []struct {
		attack      string
		killed      bool
		findings    int
		refusedMore int // findings refused, at least
	}{
		{"alloc-outside", true, 0, 0},
		{"ptr-outside", true, 0, 0},
		{"too-big", true, 0, 0},
		{"garbage", true, 0, 0},
		{"flood", false, 64, 9000},
		{"fabricated", false, 0, 1},
	} {
		t.Run(c.attack, func(t *testing.T) {
			o := wasm.DefaultOptions(mod)
			o.Config, o.Cache = []byte(`{"attack": "`+c.attack+`"}`), wasmtest.Cache(t)
			o.BackoffInitial, o.BackoffMax = time.Millisecond, 10*time.Millisecond
			b, err := wasm.New(context.Background(), o, zaptest.NewLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close(context.Background())
			fs, err := backends.Deliver(context.Background(), b, []*event.Event{proc.Open("/x", 0, 3)})
			if err != nil {
				t.Fatal(err)
			}
			s := b.Stats()
			if len(fs) != c.findings || s.ProtocolViolations == 0 || int(s.FindingsRefused) < c.refusedMore {
				t.Fatalf("%d findings, stats %+v", len(fs), s)
			}
			if c.killed != (s.Quarantined == 1 && s.Restarts >= 1) {
				t.Fatalf("killed %v, stats %+v", c.killed, s)
			}
		})
	}
}
