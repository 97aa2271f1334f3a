package goplugin

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/wire"
	"github.com/bulkhead-sec/bulkhead/backends/pluginlog"
	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/test/testenv"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// peakRSS is the process's peak resident set (VmHWM), in MiB.
func peakRSS(t *testing.T) float64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" {
			kb, _ := strconv.Atoi(f[1])
			return float64(kb) / 1024
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// rogue starts the rogue plugin with config, logging into an observer.
func rogue(t *testing.T, config string, tune func(*Options)) (*Backend, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	o := fastOptions(testenv.Plugin(t, "rogue"), config)
	if tune != nil {
		tune(&o)
	}
	b, err := New(o, zap.New(core).With(zap.String("detector", "rogue")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	return b, logs
}

func reported(fs []detection.Finding) map[string]int {
	seen := map[string]int{}
	for _, f := range fs {
		if f.Rule == "rogue-report" {
			seen[f.Events[0].Open.Resolved]++
		}
	}
	return seen
}

// Each attack of the rogue plugin on the protocol, for real: a plugin
// process sends the hostile answer to a batch with an honest event on each
// side of the trigger. What is over a bound is dropped or cut and counted
// as a protocol violation; an unreadable or oversized answer gets the
// plugin killed (counted as a violation, not a crash) and the trigger
// quarantined; the honest events' findings always arrive, and the monitor
// (this test process) stays within a bounded memory.
func TestProtocolAttacksAreBoundedAndCounted(t *testing.T) {
	for _, c := range []struct {
		attack string
		extra  string
		check  func(t *testing.T, fs []detection.Finding, s backends.Stats, logs *observer.ObservedLogs)
	}{
		{"flood-findings", "", func(t *testing.T, fs []detection.Finding, s backends.Stats, _ *observer.ObservedLogs) {
			if len(fs) > 64 || s.FindingsRefused < 999_000 || s.Crashes != 0 {
				t.Errorf("%d findings kept, %d refused, %d crashes: want ≤64 kept, the rest of 1,000,000 refused, no crash", len(fs), s.FindingsRefused, s.Crashes)
			}
		}},
		{"huge-summary", "", func(t *testing.T, fs []detection.Finding, s backends.Stats, _ *observer.ObservedLogs) {
			// 50 MiB: over the 8 MiB result bound, the plugin is killed for
			// it each time, and the trigger is quarantined.
			if s.Quarantined != 1 || s.ProtocolViolations < 3 || s.Crashes != 0 {
				t.Errorf("stats %+v: want the trigger quarantined after violation kills, no crash", s)
			}
			for _, f := range fs {
				if f.Rule == "huge-summary" {
					t.Errorf("the 50 MiB summary was delivered (%d bytes)", len(f.Summary))
				}
			}
		}},
		{"huge-summary", `,"size":1048576`, func(t *testing.T, fs []detection.Finding, s backends.Stats, _ *observer.ObservedLogs) {
			// 1 MiB: the result is readable; the summary is cut, the finding kept.
			var got *detection.Finding
			for i := range fs {
				if fs[i].Rule == "huge-summary" {
					got = &fs[i]
				}
			}
			if got == nil || len(got.Summary) > 4096+64 || !strings.Contains(got.Summary, "bytes cut]") {
				t.Errorf("want the finding kept with its summary cut to 4 KiB: %v", got != nil)
			}
			if s.ProtocolViolations != 1 || s.FindingsRefused != 0 {
				t.Errorf("stats %+v: want 1 violation, nothing refused", s)
			}
		}},
		{"huge-fields", "", func(t *testing.T, fs []detection.Finding, s backends.Stats, _ *observer.ObservedLogs) {
			for _, f := range fs {
				if f.Rule == "huge-fields" && (f.Fields["big"] != nil || f.Fields[wire.RefusedKey] == nil) {
					t.Errorf("the 1 MiB fields were not replaced: %d keys", len(f.Fields))
				}
			}
			if s.ProtocolViolations != 1 {
				t.Errorf("stats %+v: want 1 violation", s)
			}
		}},
		{"bad-severity", "", func(t *testing.T, fs []detection.Finding, s backends.Stats, _ *observer.ObservedLogs) {
			for _, f := range fs {
				if f.Rule == "bad-severity" {
					t.Errorf("a finding of severity %d was delivered", f.Severity)
				}
			}
			if s.ProtocolViolations != 1 || s.FindingsRefused != 1 {
				t.Errorf("stats %+v: want the finding refused, 1 violation", s)
			}
		}},
		{"fabricated-evidence", "", func(t *testing.T, fs []detection.Finding, s backends.Stats, _ *observer.ObservedLogs) {
			for _, f := range fs {
				for _, ev := range f.Events {
					if ev.Exec.Exe == "/bin/fabricated" || ev.PID == 1 {
						t.Errorf("a fabricated event was delivered as evidence: %+v", ev.Header)
					}
				}
				if strings.HasPrefix(f.Rule, "fabricated") {
					t.Errorf("finding %s delivered", f.Rule)
				}
			}
			if s.ProtocolViolations != 2 || s.FindingsRefused != 2 {
				t.Errorf("stats %+v: want both findings refused, 2 violations (fabricated, out of the batch)", s)
			}
		}},
		{"bad-counters", "", func(t *testing.T, fs []detection.Finding, s backends.Stats, logs *observer.ObservedLogs) {
			if s.Errors != 3 || s.ProtocolViolations != 2 {
				t.Errorf("stats %+v: want errors clamped to the batch's 3 events, 2 violations (count, last error cut)", s)
			}
			for _, e := range logs.FilterMessageSnippet("returned errors").All() {
				last := e.ContextMap()["last"].(string)
				if len(last) > 1200 || strings.ContainsAny(last, "\x1b\x07\n\r") {
					t.Errorf("the plugin's last error reached the log unbounded or unescaped: %d bytes", len(last))
				}
			}
		}},
		{"out-of-order", "", nil},
		{"garbage", "", nil},
	} {
		t.Run(c.attack+c.extra, func(t *testing.T) {
			before := peakRSS(t)
			var tune func(*Options)
			if c.attack == "huge-summary" && c.extra == "" {
				// Writing 50 MiB can take longer than 500 ms on a busy
				// host: that kill would count as a hang, not the violation
				// tested here.
				tune = func(o *Options) { o.BatchDeadline = 10 * time.Second }
			}
			b, logs := rogue(t, fmt.Sprintf(`{"attack":%q,"on":"/attack","report_on":"/ok"%s}`, c.attack, c.extra), tune)
			fs, err := backends.Deliver(context.Background(), b, opens("/ok/1", "/attack", "/ok/2"))
			if err != nil {
				t.Fatal(err)
			}
			runtime.GC()
			after := peakRSS(t)
			s := b.Stats()
			t.Logf("%d findings, stats %+v; peak RSS %.0f → %.0f MiB", len(fs), s, before, after)
			seen := reported(fs)
			if c.attack != "flood-findings" && (seen["/ok/1"] != 1 || seen["/ok/2"] != 1) {
				// (the flood's own later findings are over its bound: only /ok/1's is sure)
				t.Errorf("the honest events' findings: %v", seen)
			}
			if seen["/ok/1"] != 1 {
				t.Errorf("the honest event before the attack was not reported: %v", seen)
			}
			if s.ProtocolViolations == 0 {
				t.Error("no protocol violation counted")
			}
			if after-before > 150 {
				t.Errorf("peak RSS grew by %.0f MiB", after-before)
			}
			if len(logs.FilterMessageSnippet("broke the protocol").All()) == 0 {
				t.Error("the violation was not logged")
			}
			if c.check != nil {
				c.check(t, fs, s, logs)
			} else if s.Quarantined != 1 || s.Crashes != 0 || s.ProtocolViolations < 3 {
				t.Errorf("stats %+v: want the plugin killed for each violation (not counted as crashes) and the trigger quarantined", s)
			}
			// The plugin still works.
			fs, err = backends.Deliver(context.Background(), b, opens("/ok/3"))
			if err != nil || reported(fs)["/ok/3"] != 1 {
				t.Errorf("after the attack: %v, %d findings", err, len(fs))
			}
		})
	}
}

// A plugin floods its stderr with 200,000 lines: escapes, a 1 MiB line and
// the line {"@message":1} that go-plugin's own parser panics on (which
// would kill the monitor). The monitor stays up, logs at most the burst
// and the rate, every logged string bounded and escaped, and counts and
// reports the lines it dropped.
func TestStderrFloodIsRateLimited(t *testing.T) {
	b, logs := rogue(t, `{"attack":"stderr-flood","on":"/attack","report_on":"/ok"}`, func(o *Options) { o.LogLinesPerSecond, o.LogBurst = 50, 100 })
	start := time.Now()
	cpu0 := cpuTime(t)
	if _, err := backends.Deliver(context.Background(), b, opens("/attack")); err != nil {
		t.Fatal(err)
	}
	for b.Stats().LogLinesDropped < 199_000 && time.Since(start) < 60*time.Second {
		time.Sleep(50 * time.Millisecond)
	}
	took, cpu := time.Since(start), cpuTime(t)-cpu0
	fs, err := backends.Deliver(context.Background(), b, opens("/ok/1"))
	if err != nil || reported(fs)["/ok/1"] != 1 {
		t.Errorf("after the flood: %v, %d findings", err, len(fs))
	}
	b.Close(context.Background())
	s := b.Stats()
	var fromPlugin []observer.LoggedEntry
	for _, e := range logs.All() {
		if strings.Contains(e.LoggerName, "bulkhead-plugin-rogue") {
			fromPlugin = append(fromPlugin, e)
		}
	}
	t.Logf("200,000 lines in %s: %d dropped, %d logged, monitor CPU %s; stats %+v", took.Round(time.Millisecond), s.LogLinesDropped, len(fromPlugin), cpu, s)
	if s.LogLinesDropped < 199_000 || s.Crashes != 0 || s.ProtocolViolations == 0 {
		t.Errorf("stats %+v: want the flood dropped and counted as a violation, no crash", s)
	}
	if max := 100 + int(50*took.Seconds()) + 20; len(fromPlugin) > max {
		t.Errorf("%d lines from the plugin logged, want at most %d", len(fromPlugin), max)
	}
	reports := 0
	for _, e := range fromPlugin {
		if strings.Contains(e.Message, "dropped over the rate limit") {
			reports++
		}
		check := func(what, s string) {
			if len(s) > 1100 || strings.ContainsAny(s, "\x1b\x07\r\n\u009b") || !utf8Valid(s) {
				t.Errorf("%s unbounded or unescaped (%d bytes): %.80q", what, len(s), s)
			}
		}
		check("message", e.Message)
		for k, v := range e.ContextMap() {
			if s, ok := v.(string); ok {
				check("field "+k, s)
			}
		}
	}
	if reports == 0 {
		t.Error("the dropped lines were never reported")
	}
}

// A plugin that takes 1.9 s per batch, with a 2 s deadline and 16 batches
// queued: the deadline runs from when the plugin could start each batch,
// so none is killed as hung; every batch is answered, in order.
func TestSlowPluginWithQueuedBatchesIsNotHung(t *testing.T) {
	if testing.Short() {
		t.Skip("30 s")
	}
	delay, deadline := 1900*time.Millisecond, 2*time.Second
	b, _ := rogue(t, fmt.Sprintf(`{"attack":"slow","delay":%q,"report_on":"/ok"}`, delay), func(o *Options) { o.BatchDeadline = deadline })
	var (
		mu   sync.Mutex
		seen []string
		errs []error
		wg   sync.WaitGroup
		at   = []time.Time{time.Now()}
	)
	for i := range 16 {
		wg.Add(1)
		b.Submit(context.Background(), opens(fmt.Sprintf("/ok/%d", i)), func(fs []detection.Finding, err error) {
			mu.Lock()
			defer mu.Unlock()
			for _, f := range fs {
				seen = append(seen, f.Events[0].Open.Resolved)
			}
			at = append(at, time.Now())
			if err != nil {
				errs = append(errs, err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	s := b.Stats()
	var gaps []string
	for i := 1; i < len(at); i++ {
		gaps = append(gaps, at[i].Sub(at[i-1]).Round(time.Millisecond).String())
	}
	t.Logf("stats %+v; answers after %s", s, strings.Join(gaps, " "))
	if s.Hangs != 0 || s.Crashes != 0 || len(errs) != 0 || len(seen) != 16 || s.Delivered != 16 {
		t.Errorf("hangs %d, crashes %d, errors %v, %d of 16 answered: want every batch answered, none killed", s.Hangs, s.Crashes, errs, len(seen))
	}
	for i, p := range seen {
		if p != fmt.Sprintf("/ok/%d", i) {
			t.Errorf("answer %d is for %s", i, p)
		}
	}
}

// A plugin that really hangs is still killed at the deadline, even with
// batches queued behind the hanging one; at Close, every batch submitted
// gets its done call: answered, or ErrStopped.
func TestHangStillKilledAndCloseAnswersEveryBatch(t *testing.T) {
	b, _ := rogue(t, `{"attack":"hang","on":"/attack","report_on":"/ok"}`, func(o *Options) { o.BatchDeadline = 300 * time.Millisecond })
	var (
		mu             sync.Mutex
		ok, stopped, n int
	)
	done := func(fs []detection.Finding, err error) {
		mu.Lock()
		defer mu.Unlock()
		n++
		switch {
		case err == nil:
			ok++
		case err == backends.ErrStopped:
			stopped++
		default:
			t.Errorf("batch error %v", err)
		}
	}
	b.Submit(context.Background(), opens("/ok/0", "/attack", "/ok/1"), done)
	for i := range 5 {
		b.Submit(context.Background(), opens(fmt.Sprintf("/ok/x%d", i)), done)
	}
	deadline := time.Now().Add(20 * time.Second)
	for b.Stats().Hangs == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if b.Stats().Hangs == 0 {
		t.Fatal("the hanging plugin was not killed")
	}
	// Stop with a short context while the split of the hanging batch goes on.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	b.Close(ctx)
	mu.Lock()
	defer mu.Unlock()
	t.Logf("stats %+v; %d answered, %d stopped", b.Stats(), ok, stopped)
	if n != 6 || ok+stopped != 6 {
		t.Errorf("%d of 6 batches got their done call (%d answered, %d stopped)", n, ok, stopped)
	}
}

// cpuTime is this process's user and system CPU time.
func cpuTime(t *testing.T) time.Duration {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skip("no /proc/self/stat")
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return time.Duration(u+s) * 10 * time.Millisecond
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\ufffd") == s }

// A plugin logs 120 lines 40 a second (under the line rate), each with 16
// fields of 1 KiB: 17 KiB of log each, 2 MiB in 3 s. The byte budget
// (16 KiB a second, bursts of 256 KiB) lets through what it allows, drops
// and counts the rest, and counts the flood as a protocol violation.
func TestStderrByteBudget(t *testing.T) {
	b, logs := rogue(t, `{"attack":"stderr-wide","on":"/attack","report_on":"/ok"}`, nil)
	start := time.Now()
	if _, err := backends.Deliver(context.Background(), b, opens("/attack")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3500 * time.Millisecond)
	took := time.Since(start)
	fs, err := backends.Deliver(context.Background(), b, opens("/ok/1"))
	if err != nil || reported(fs)["/ok/1"] != 1 {
		t.Errorf("after the flood: %v, %d findings", err, len(fs))
	}
	b.Close(context.Background())
	s := b.Stats()
	logged, lines := 0, 0
	for _, e := range logs.All() {
		if !strings.Contains(e.LoggerName, "bulkhead-plugin-rogue") || !strings.HasPrefix(e.Message, "MMM") {
			continue
		}
		lines++
		logged += len(e.Message)
		for _, v := range e.ContextMap() {
			if s, ok := v.(string); ok {
				logged += len(s)
			}
		}
	}
	budget := 16<<10*(pluginlog.BurstSeconds+took.Seconds()) + 64<<10
	t.Logf("in %s: %d wide lines logged, %d KiB; %d dropped; stats %+v", took.Round(time.Millisecond), lines, logged>>10, s.LogLinesDropped, s)
	if float64(logged) > budget {
		t.Errorf("%d KiB logged, want at most %.0f KiB", logged>>10, budget/1024)
	}
	if s.LogLinesDropped < 60 || s.ProtocolViolations == 0 || lines == 0 {
		t.Errorf("want most of the 120 lines dropped and counted, a violation, some lines logged: %d logged, stats %+v", lines, s)
	}
}
