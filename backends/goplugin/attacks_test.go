package goplugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/enclave"
	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	roguepkg "github.com/bulkhead-sec/bulkhead/plugins/rogue"
	"github.com/bulkhead-sec/bulkhead/test/testenv"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// rogueAs is the rogue plugin under the name that makes its start attack.
func rogueAs(t *testing.T, attack, arg string) string {
	return testenv.PluginNamed(t, "rogue", roguepkg.StartName(attack, arg))
}

// connections counts what connects to l.
func connections(l net.Listener) func() int {
	n := testenv.Accepted(l)
	return func() int { return int(n.Load()) }
}

// testEnclave is an enclave for one plugin of this test (root only).
func testEnclave(t *testing.T, name string) (*enclave.Enclave, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("an enclave needs root")
	}
	e, err := enclave.Prepare(name, 0, enclave.Config{}, enclave.Probe())
	if err != nil {
		t.Skipf("no enclave on this host: %v", err)
	}
	return e, testenv.Binary(t)
}

// The plugin names where the monitor connects (go-plugin's handshake
// line). A TCP address, a name for a DNS lookup, a symbolic link to a
// socket elsewhere, or (in an enclave) a socket outside the plugin's
// private directory: each is refused before anything is resolved or
// dialled, with a clear error that says it is a protocol violation, and
// the test's listener sees no connection.
func TestHandshakeAddressIsChecked(t *testing.T) {
	dir := t.TempDir()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	sock := filepath.Join(dir, "elsewhere.sock")
	unixL, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer unixL.Close()
	tcpConns, unixConns := connections(tcp), connections(unixL)
	for _, c := range []struct {
		attack, arg, want string
		enclave           bool
	}{
		{"dial-tcp", tcp.Addr().String(), "names tcp address 127.0.0.1", false},
		{"dial-dns", "", "exfil.example.invalid:443: the monitor connects to a plugin's UNIX socket only", false},
		{"dial-symlink", sock, "not a socket (a symbolic link", false},
		{"dial-tcp", tcp.Addr().String(), "names tcp address 127.0.0.1", true},
		{"dial-unix", sock, "outside the plugin's private directory", true},
	} {
		name := c.attack
		if c.enclave {
			name += "-in-enclave"
		}
		t.Run(name, func(t *testing.T) {
			o := fastOptions(rogueAs(t, c.attack, c.arg), "")
			if c.enclave {
				o.Enclave, o.Launcher = testEnclave(t, "rogue-"+c.attack)
			}
			start := time.Now()
			b, err := New(o, zap.NewNop())
			took := time.Since(start)
			if err == nil {
				b.Close(context.Background())
				t.Fatal("the plugin started")
			}
			t.Logf("refused in %s: %v", took.Round(time.Millisecond), err)
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "protocol violation") || !errors.Is(err, errViolation) {
				t.Errorf("error %q: want %q, as a protocol violation", err, c.want)
			}
			if took > 5*time.Second {
				t.Errorf("refused after %s", took)
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	if n, m := tcpConns(), unixConns(); n != 0 || m != 0 {
		t.Errorf("the monitor connected where the plugin said: %d TCP, %d UNIX connections", n, m)
	}
}

// The same attack on a restart, beside a healthy detector: the plugin
// starts honestly, is killed, and from then on names a TCP address. Each
// start is refused and counted as a protocol violation (not a crash),
// the breaker opens and its events are shed, nothing connects, its stop
// is quick; the healthy detector in the same monitor loses nothing.
func TestHandshakeAttackOnRestartIsCounted(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	conns := connections(tcp)
	arm := filepath.Join(t.TempDir(), "arm")
	t.Setenv("BULKHEAD_ROGUE_ARM", arm)
	o := fastOptions(rogueAs(t, "dial-tcp", tcp.Addr().String()), `{"report_on":"/ok"}`)
	o.BreakerCrashes, o.BreakerWindow = 4, time.Minute
	b, err := New(o, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	healthy, err := New(fastOptions(testenv.Plugin(t, "example"), `{"paths":["/etc/shadow"]}`), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer healthy.Close(context.Background())
	if fs, err := backends.Deliver(context.Background(), b, opens("/ok/1")); err != nil || len(fs) != 1 {
		t.Fatalf("the honest start: %v, %d findings", err, len(fs))
	}
	os.WriteFile(arm, nil, 0o600)
	syscall.Kill(b.Stats().PID, syscall.SIGKILL)
	var (
		wg          sync.WaitGroup
		healthySeen int
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 50 {
			fs, err := backends.Deliver(context.Background(), healthy, opens("/etc/shadow"))
			if err == nil {
				healthySeen += len(fs)
			}
		}
	}()
	_, err = backends.Deliver(context.Background(), b, opens("/ok/2"))
	wg.Wait()
	s := b.Stats()
	t.Logf("rogue: %v, stats %+v; healthy: %d of 50 findings", err, s, healthySeen)
	if !errors.Is(err, backends.ErrUnavailable) || !s.BreakerOpen {
		t.Errorf("want the breaker open and the batch shed: %v", err)
	}
	if s.ProtocolViolations < 3 || s.Crashes != 1 {
		t.Errorf("want each refused start counted as a protocol violation, the one kill as a crash: %+v", s)
	}
	if healthySeen != 50 {
		t.Errorf("the healthy detector reported %d of 50", healthySeen)
	}
	start := time.Now()
	b.Close(context.Background())
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("stop took %s", took)
	}
	if n := conns(); n != 0 {
		t.Errorf("the monitor made %d TCP connections to the plugin's address", n)
	}
}

// goroutinesSettle is the number of goroutines once it stops falling.
func goroutinesSettle() int {
	n := runtime.NumGoroutine()
	for range 20 {
		time.Sleep(50 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m >= n {
			return m
		}
		n = m
	}
	return n
}

// go-plugin's client opens two streams of its own: its broker's (each
// message a plugin sends on it costs a map entry, a goroutine and the
// message for 5 s) and its stdio's (read and thrown away). A rogue floods
// each with 400,000 messages as soon as it is opened. The monitor never
// opens them: the plugin never gets to flood (it says so on its stderr
// when it does), the monitor's goroutines and memory stay flat, and the
// plugin works.
func TestGoPluginStreamsAreRefused(t *testing.T) {
	for _, attack := range []string{"broker-flood", "stdio-flood"} {
		t.Run(attack, func(t *testing.T) {
			before, rss := goroutinesSettle(), peakRSS(t)
			core, logs := observer.New(zap.DebugLevel)
			b, err := New(fastOptions(rogueAs(t, attack, ""), `{"report_on":"/ok"}`), zap.New(core))
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second) // the flood would be under way
			during := runtime.NumGoroutine()
			fs, err := backends.Deliver(context.Background(), b, opens("/ok/1", "/ok/2"))
			if err != nil || len(fs) != 2 {
				t.Errorf("the plugin: %v, %d findings", err, len(fs))
			}
			b.Close(context.Background())
			after := goroutinesSettle()
			grew := peakRSS(t) - rss
			flooded := len(logs.FilterMessageSnippet("flooding").All())
			t.Logf("goroutines %d before, %d with the plugin running, %d after; peak RSS +%.0f MiB; flood lines logged %d; stats %+v",
				before, during, after, grew, flooded, b.Stats())
			if flooded != 0 {
				t.Error("the monitor opened the stream the plugin floods")
			}
			if during > before+60 || after > before+5 {
				t.Errorf("goroutines: %d before, %d during, %d after", before, during, after)
			}
			if grew > 50 {
				t.Errorf("peak RSS grew by %.0f MiB", grew)
			}
			for _, e := range logs.All() {
				if strings.Contains(e.Message, "stdio") {
					t.Errorf("go-plugin's stdio client logged %q", e.Message)
				}
			}
		})
	}
}

// A plugin that answers batches but never answers Close (nor go-plugin's
// Shutdown), or answers Close but never Shutdown: its stop still ends
// within a bound, even with no deadline on the stop, and the process is
// gone.
func TestStopIsBoundedWhenThePluginIgnoresClose(t *testing.T) {
	for _, c := range []struct {
		attack string
		bound  time.Duration
	}{
		{"ignore-close", 2500 * time.Millisecond},              // Close's 1 s, then a kill
		{"ignore-shutdown", stopGrace + 1500*time.Millisecond}, // the grace, then a kill
	} {
		t.Run(c.attack, func(t *testing.T) {
			b, logs := rogue(t, fmt.Sprintf(`{"attack":%q,"report_on":"/ok"}`, c.attack), nil)
			if fs, err := backends.Deliver(context.Background(), b, opens("/ok/1")); err != nil || len(fs) != 1 {
				t.Fatalf("%v, %d findings", err, len(fs))
			}
			pid := b.Stats().PID
			start := time.Now()
			err := b.Close(context.Background())
			took := time.Since(start)
			t.Logf("stop took %s: %v", took.Round(time.Millisecond), err)
			if took > c.bound {
				t.Errorf("stop took %s, want at most %s", took, c.bound)
			}
			if syscall.Kill(pid, 0) == nil {
				t.Errorf("plugin process %d still there", pid)
			}
			if len(logs.FilterMessageSnippet("never answering").All()) == 0 {
				t.Error("the plugin was never asked to stop (no line from it)")
			}
		})
	}
}

// A plugin ends its stream with an error status of its own: 32 KiB of C1
// controls, DEL and escapes. The monitor logs it bounded and escaped.
func TestPluginErrorTextIsEscapedInTheLog(t *testing.T) {
	b, logs := rogue(t, `{"attack":"stream-error","on":"/attack","report_on":"/ok"}`, nil)
	fs, err := backends.Deliver(context.Background(), b, opens("/ok/1", "/attack", "/ok/2"))
	if err != nil {
		t.Fatal(err)
	}
	s := b.Stats()
	t.Logf("%d findings, stats %+v", len(fs), s)
	if seen := reported(fs); seen["/ok/1"] != 1 || seen["/ok/2"] != 1 || s.Quarantined != 1 {
		t.Errorf("findings %v, stats %+v: want both honest events reported, the trigger quarantined", seen, s)
	}
	n := 0
	for _, e := range logs.All() {
		check := func(what, v string) {
			if strings.Contains(v, "pwned") {
				n++
			}
			if len(v) > 1200 || strings.ContainsAny(v, "\x1b\x07\x7f\u009b") || !utf8Valid(v) {
				t.Errorf("%s of %q unbounded or unescaped (%d bytes): %.80q", what, e.Message, len(v), v)
			}
		}
		check("message", e.Message)
		for k, v := range e.ContextMap() {
			if s, ok := v.(string); ok {
				check("field "+k, s)
			}
		}
	}
	if n == 0 {
		t.Error("the plugin's error text was never logged")
	}
}

// A batch is split to find the event that kills the plugin, and the
// breaker opens during the split: the findings of the events answered
// before it go out with the error, and are counted.
func TestPartialFindingsOfASplitBatchAreDelivered(t *testing.T) {
	o := fastOptions(testenv.Plugin(t, "chaos"), `{"fault":"exit","on":"/crash","report_on":"/ok"}`)
	o.BreakerCrashes, o.BreakerWindow, o.PoisonAttempts = 3, time.Minute, 3
	b, err := New(o, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	var (
		got  []detection.Finding
		gerr error
	)
	done := make(chan struct{})
	b.Submit(context.Background(), opens("/ok/1", "/crash", "/ok/2"), func(fs []detection.Finding, err error) {
		got, gerr = fs, err
		close(done)
	})
	<-done
	s := b.Stats()
	t.Logf("%d findings, %v; stats %+v", len(got), gerr, s)
	if !errors.Is(gerr, backends.ErrUnavailable) || !s.BreakerOpen {
		t.Fatalf("want the breaker open during the split: %v", gerr)
	}
	if len(got) != 1 || got[0].Events[0].Open.Resolved != "/ok/1" || s.Findings != 1 {
		t.Errorf("want /ok/1's finding delivered and counted: %d findings, %d counted", len(got), s.Findings)
	}
}

// A restart whose binary has gone (the process never starts): counted as
// a failed start, the breaker opens, nothing panics.
func TestRestartOfAMissingBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "plugin")
	if err := os.Link(testenv.Plugin(t, "example"), bin); err != nil {
		t.Fatal(err)
	}
	o := fastOptions(bin, "")
	o.BreakerCrashes = 3
	b, err := New(o, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	os.Remove(bin)
	syscall.Kill(b.Stats().PID, syscall.SIGKILL)
	_, err = backends.Deliver(context.Background(), b, opens("/etc/shadow"))
	if s := b.Stats(); !errors.Is(err, backends.ErrUnavailable) || !s.BreakerOpen || s.Crashes < 3 {
		t.Errorf("%v, stats %+v: want failed starts counted and the breaker open", err, s)
	}
}

// Only a batch's result may be big: a definition of 2 MiB (over the
// 1 MiB bound of every other message) is refused by gRPC from its length
// prefix, and the plugin does not start: a protocol violation.
func TestHugeDefinitionIsRefused(t *testing.T) {
	rss := peakRSS(t)
	_, err := New(fastOptions(rogueAs(t, "huge-definition", ""), ""), zap.NewNop())
	t.Logf("%v; peak RSS +%.0f MiB", err, peakRSS(t)-rss)
	if err == nil || !strings.Contains(err.Error(), "describe") || !strings.Contains(err.Error(), "ResourceExhausted") || !errors.Is(err, errViolation) {
		t.Errorf("want the definition refused: %v", err)
	}
}
