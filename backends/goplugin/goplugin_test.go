package goplugin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/wire"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/test/testenv"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.Cleanup()
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreTopFunction("time.Sleep")); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines leaked:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func opens(paths ...string) []*event.Event {
	var out []*event.Event
	for i, p := range paths {
		ev := &event.Event{Header: event.Header{Kind: event.KindOpen, PID: uint32(100 + i), Comm: "cat"}}
		ev.Open.Path, ev.Open.Resolved = p, p
		out = append(out, ev)
	}
	return out
}

func fastOptions(path string, cfg string) Options {
	o := DefaultOptions(path)
	o.Config = []byte(cfg)
	o.BatchDeadline = 500 * time.Millisecond
	o.BackoffInitial, o.BackoffMax = 10*time.Millisecond, 50*time.Millisecond
	o.BreakerCooldown = time.Hour
	return o
}

// transports runs a test over each transport of the batch stream.
func transports(t *testing.T, test func(t *testing.T, transport string)) {
	for _, tr := range []string{TransportGRPC, TransportShm} {
		t.Run(tr, func(t *testing.T) { test(t, tr) })
	}
}

func withTransport(o Options, transport string) Options {
	o.Transport = transport
	return o
}

func TestFindingsAndStats(t *testing.T) { transports(t, testFindingsAndStats) }

func testFindingsAndStats(t *testing.T, tr string) {
	b, err := New(withTransport(fastOptions(testenv.Plugin(t, "example"), `{"paths":["/etc/shadow"]}`), tr), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	if d := b.Definition(); d.Name != "example" || len(d.Kinds) != 1 {
		t.Fatalf("definition %+v", d)
	}
	evs := opens("/etc/hostname", "/etc/shadow", "/tmp/x")
	fs, err := backends.Deliver(context.Background(), b, evs)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Rule != "sensitive-file-open" || fs[0].Events[0].PID != evs[1].PID || fs[0].Events[0].Open.Resolved != "/etc/shadow" || fs[0].Fields["path"] != "/etc/shadow" || len(fs[0].Techniques) != 1 || fs[0].Techniques[0] != "T1003.008" {
		t.Fatalf("findings %+v", fs)
	}
	if s := b.Stats(); s.Delivered != 3 || s.Findings != 1 || s.PID == 0 {
		t.Errorf("stats %+v", s)
	}
	if mapped := ringMapped(t, b.Stats().PID); mapped != (tr == TransportShm) {
		t.Errorf("transport %s: the plugin maps a ring: %v", tr, mapped)
	}
}

// ringMapped says whether process pid maps a bulkhead ring.
func ringMapped(t *testing.T, pid int) bool {
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(maps), "memfd:bulkhead-ring")
}

// The plugin is killed with SIGKILL between batches and during one: every
// batch is still answered, by a restarted process.
func TestKilledPluginIsRestartedAndLosesNothing(t *testing.T) {
	transports(t, testKilledPluginIsRestartedAndLosesNothing)
}

func testKilledPluginIsRestartedAndLosesNothing(t *testing.T, tr string) {
	b, err := New(withTransport(fastOptions(testenv.Plugin(t, "chaos"), `{"report_on":"/mark/"}`), tr), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	seen := map[string]int{}
	for i := 0; i < 20; i++ {
		if i%5 == 2 {
			syscall.Kill(b.Stats().PID, syscall.SIGKILL)
		}
		fs, err := backends.Deliver(context.Background(), b, opens(fmt.Sprintf("/mark/%d", i)))
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		for _, f := range fs {
			seen[f.Events[0].Open.Resolved]++
		}
	}
	for i := 0; i < 20; i++ {
		if seen[fmt.Sprintf("/mark/%d", i)] == 0 {
			t.Errorf("event %d never delivered", i)
		}
	}
	if s := b.Stats(); s.Crashes != 4 || s.Restarts != 4 {
		t.Errorf("stats %+v: want 4 crashes and 4 restarts", s)
	}
}

// A hanging event is killed at the deadline; the batch is split, the hang
// is quarantined, and the rest of the batch is delivered.
func TestHangIsKilledAndQuarantined(t *testing.T) { transports(t, testHangIsKilledAndQuarantined) }

func testHangIsKilledAndQuarantined(t *testing.T, tr string) {
	b, err := New(withTransport(fastOptions(testenv.Plugin(t, "chaos"), `{"fault":"hang","on":"/hang","report_on":"/ok"}`), tr), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	fs, err := backends.Deliver(context.Background(), b, opens("/ok/1", "/hang", "/ok/2"))
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) < 2 {
		t.Errorf("findings %d, want the two /ok events", len(fs))
	}
	if s := b.Stats(); s.Hangs != 4 || s.Quarantined != 1 || s.BreakerOpen {
		t.Errorf("stats %+v: want hangs and one quarantined event", s)
	}
}

// A plugin that fails every start opens the breaker; Deliver then sheds.
func TestCrashLoopOpensBreaker(t *testing.T) { transports(t, testCrashLoopOpensBreaker) }

func testCrashLoopOpensBreaker(t *testing.T, tr string) {
	b, err := New(withTransport(fastOptions(testenv.Plugin(t, "chaos"), `{"fault":"exit","on":"/x"}`), tr), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	var lastErr error
	for i := 0; i < 10 && lastErr == nil; i++ {
		_, lastErr = backends.Deliver(context.Background(), b, opens(fmt.Sprintf("/x/%d", i)))
	}
	if lastErr != backends.ErrUnavailable || !b.Stats().BreakerOpen {
		t.Fatalf("err %v, stats %+v: want the breaker open", lastErr, b.Stats())
	}
}

func TestBadBinaries(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "plugin")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	for _, tc := range []struct{ path, want string }{
		{"/no/such/plugin", "no such file"},
		{notExec, "not an executable"},
		{"/bin/true", "not a bulkhead detector plugin"},
		{testenv.Build(t, testenv.Module+"/backends/goplugin/testdata/oldprotocol"), fmt.Sprintf("this monitor speaks version %d): incompatible API version with plugin. Plugin version: %d", wire.ProtocolVersion, wire.ProtocolVersion-1)},
	} {
		o := fastOptions(tc.path, "")
		o.StartTimeout = 2 * time.Second
		_, err := New(o, zaptest.NewLogger(t))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%s) = %v, want %q", tc.path, err, tc.want)
		}
	}
}

// A plugin that dies while idle is noticed (and restarted) within 100 ms:
// its stream breaks when the process goes.
func TestIdleDeathDetectedWithin100ms(t *testing.T) { transports(t, testIdleDeathDetectedWithin100ms) }

func testIdleDeathDetectedWithin100ms(t *testing.T, tr string) {
	b, err := New(withTransport(fastOptions(testenv.Plugin(t, "example"), ""), tr), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	pid := b.Stats().PID
	start := time.Now()
	syscall.Kill(pid, syscall.SIGKILL)
	for b.Stats().Crashes == 0 {
		if time.Since(start) > time.Second {
			t.Fatal("the death was not noticed within a second")
		}
		time.Sleep(time.Millisecond)
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("noticed after %s, want under 100ms", took)
	}
	for b.Stats().PID == 0 || b.Stats().PID == pid {
		if time.Since(start) > 2*time.Second {
			t.Fatalf("not restarted: %+v", b.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	if fs, err := backends.Deliver(context.Background(), b, opens("/etc/shadow")); err != nil || len(fs) != 1 {
		t.Fatalf("after the restart: %v, %d findings", err, len(fs))
	}
}

// What a plugin logs arrives in the monitor's zap log at its own level,
// with the monitor's fields for the detector and the plugin's name.
func TestPluginLogsReachMonitor(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	log := zap.New(core).With(zap.String("detector", "sensitive"))
	b, err := New(fastOptions(testenv.Plugin(t, "example"), `{"paths":["/etc/shadow"]}`), log)
	if err != nil {
		t.Fatal(err)
	}
	b.Close(context.Background())
	var found []observer.LoggedEntry
	for _, e := range logs.All() {
		if e.Message == "watching" {
			found = append(found, e)
		}
	}
	if len(found) != 1 {
		t.Fatalf("the plugin's Init log line arrived %d times; log: %v", len(found), logs.All())
	}
	e := found[0]
	if e.Level != zap.InfoLevel || e.ContextMap()["detector"] != "sensitive" || !strings.Contains(e.LoggerName, "bulkhead-plugin-example") {
		t.Errorf("entry %+v (logger %q, fields %v)", e.Entry, e.LoggerName, e.ContextMap())
	}
	if paths, _ := e.ContextMap()["paths"].([]any); len(paths) != 1 || paths[0] != "/etc/shadow" {
		t.Errorf("fields of the plugin's line: %v", e.ContextMap())
	}
}

// A batch sent again after a crash is flagged as redelivered, and the SDK
// tells the detector: the chaos detector with once fires only on a
// marker's first delivery, so one crash, the batch sent again, nothing
// quarantined, every finding delivered. (In an enclave a plugin keeps
// nothing across restarts: this flag is the only way it can know.)
func TestRedeliveryIsFlagged(t *testing.T) { transports(t, testRedeliveryIsFlagged) }

func testRedeliveryIsFlagged(t *testing.T, tr string) {
	o := withTransport(fastOptions(testenv.Plugin(t, "chaos"), `{"fault":"panic","on":"/boom","once":true,"report_on":"/"}`), tr)
	o.Enclave, o.Launcher = testEnclave(t, "redelivery-"+tr)
	b, err := New(o, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	fs, err := backends.Deliver(context.Background(), b, opens("/ok/1", "/boom", "/ok/2"))
	if err != nil {
		t.Fatal(err)
	}
	if s := b.Stats(); len(fs) != 3 || s.Crashes != 1 || s.Restarts != 1 || s.Redelivered != 3 || s.Quarantined != 0 {
		t.Fatalf("%d findings, stats %+v: want 3, one crash, the batch sent again once and nothing quarantined", len(fs), s)
	}
}

// In an enclave go-plugin runs the launcher; its messages about the
// process name the plugin's binary, not the launcher.
func TestPluginLogsNameThePlugin(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	o := fastOptions(testenv.Plugin(t, "example"), `{"paths":["/etc/shadow"]}`)
	o.Enclave, o.Launcher = testEnclave(t, "names")
	b, err := New(o, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	b.Close(context.Background())
	named := 0
	for _, e := range logs.All() {
		if p, ok := e.ContextMap()["plugin"].(string); ok {
			if p == o.Launcher {
				t.Errorf("%q names the launcher", e.Message)
			}
			if p == o.Path {
				named++
			}
		}
	}
	if named == 0 {
		t.Error("no go-plugin message named the plugin")
	}
}

// Close may be called again, and at once from several goroutines (the
// dispatcher closes a backend and the caller's own deferred Close follows
// it): every call returns, the first one's error is the only one.
func TestCloseTwiceAndConcurrently(t *testing.T) {
	b, err := New(fastOptions(testenv.Plugin(t, "example"), `{"paths":["/etc/shadow"]}`), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	const closers = 4
	errs := make(chan error, closers)
	for range closers {
		go func() { errs <- b.Close(context.Background()) }()
	}
	timeout := time.After(30 * time.Second)
	for i := range closers {
		select {
		case err := <-errs:
			if err != nil {
				t.Errorf("Close %d: %v", i, err)
			}
		case <-timeout:
			t.Fatalf("%d of %d concurrent Close calls never returned", closers-i, closers)
		}
	}
	if err := b.Close(context.Background()); err != nil {
		t.Errorf("Close after Close: %v", err)
	}
}
