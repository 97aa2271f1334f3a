package goplugin

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/dispatch"
	"github.com/bulkhead-sec/bulkhead/test/testenv"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
)

// A ring that cannot hold a batch is refused before anything starts,
// saying what to change.
func TestRingSizeIsChecked(t *testing.T) {
	for _, tc := range []struct {
		name string
		tune func(*Options)
		want string
	}{
		{"default fits", func(*Options) {}, ""},
		{"too small", func(o *Options) { o.RingBytes = 512 << 10 }, "shm ring of 512 KiB cannot hold a batch of up to 256 events (1024 KiB at 4096 bytes an event): make the ring at least 1 MiB"},
		{"smaller batches fit", func(o *Options) { o.RingBytes, o.BatchEvents = 512<<10, 128 }, ""},
		{"the default is shm", func(o *Options) { o.Transport = "" }, ""},
		{"the default ring grows with batches", func(o *Options) { o.RingBytes, o.BatchEvents = 0, 4096 }, ""},
		{"not a power of two", func(o *Options) { o.RingBytes = 24 << 20 }, "want a power of two"},
		{"unary", func(o *Options) { o.Unary = true }, "goplugin-unary"},
		{"unknown", func(o *Options) { o.Transport = "carrier-pigeon" }, `transport "carrier-pigeon": use shm or grpc`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions("/bin/true")
			o.Transport = TransportShm
			tc.tune(&o)
			err := checkTransport(&o)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("checkTransport = %v, want %q", err, tc.want)
			}
			if err == nil && o.Transport != TransportShm {
				t.Fatalf("transport %q, want shm", o.Transport)
			}
		})
	}
}

// ringPair is the rogue plugin with a ring attack and, beside it, a
// healthy detector, both on transport shm (in an enclave each if enc).
func ringPair(t *testing.T, attack string, enc bool) (rogue, healthy *Backend, logs *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	o := withTransport(fastOptions(testenv.Plugin(t, "rogue"), fmt.Sprintf(`{"attack":%q,"on":"/attack","report_on":"/ok"}`, attack)), TransportShm)
	h := withTransport(fastOptions(testenv.Plugin(t, "example"), `{"paths":["/etc/shadow"]}`), TransportShm)
	if enc {
		o.Enclave, o.Launcher = testEnclave(t, "ring-rogue")
		h.Enclave, h.Launcher = testEnclave(t, "ring-healthy")
	}
	var err error
	if rogue, err = New(o, zap.New(core).With(zap.String("detector", "rogue"))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rogue.Close(context.Background()) })
	if healthy, err = New(h, zaptest.NewLogger(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { healthy.Close(context.Background()) })
	return rogue, healthy, logs
}

// The ring attacks, for real: a consumer position past what was produced
// or going back gets the plugin killed and counted as a protocol
// violation; writes into the ring are refused by its seals and its
// read-only mapping (the plugin dies of trying). The honest events beside
// the attack are answered, the monitor (this process) lives on, and a
// healthy detector beside loses nothing.
func TestRingAttacksAreContained(t *testing.T) {
	for _, enc := range []bool{false, true} {
		for _, attack := range []string{"ring-consumer-past", "ring-backwards", "ring-write", "ring-answered-past"} {
			name := attack
			if enc {
				name += "/enclave"
			}
			t.Run(name, func(t *testing.T) { testRingAttack(t, attack, enc) })
		}
	}
}

func testRingAttack(t *testing.T, attack string, enc bool) {
	rogue, healthy, logs := ringPair(t, attack, enc)
	ctx := context.Background()
	seen := map[string]int{}
	for i, paths := range [][]string{{"/ok/1"}, {"/ok/2", "/attack", "/ok/3"}, {"/ok/4"}, {"/ok/5"}} {
		fs, err := backends.Deliver(ctx, rogue, opens(paths...))
		if err != nil {
			t.Fatalf("batch %d: %v (stats %+v)", i, err, rogue.Stats())
		}
		for p, n := range reported(fs) {
			seen[p] += n
		}
		hf, err := backends.Deliver(ctx, healthy, opens("/etc/shadow", "/tmp/x"))
		if err != nil || len(hf) != 1 {
			t.Fatalf("healthy detector, batch %d: %v, %d findings", i, err, len(hf))
		}
	}
	for i := 1; i <= 5; i++ {
		if p := fmt.Sprintf("/ok/%d", i); seen[p] == 0 {
			t.Errorf("%s never answered; seen %v", p, seen)
		}
	}
	s := rogue.Stats()
	switch attack {
	case "ring-consumer-past", "ring-answered-past":
		// The lie comes after the trigger batch's answer: if the monitor
		// reads the answer first, the batch after is the one the
		// violation interrupts and is sent again; if it sees the lie
		// first, the trigger batch is, until its event is quarantined.
		if s.ProtocolViolations == 0 || s.Restarts == 0 || s.Quarantined > 1 {
			t.Errorf("stats %+v: want violations and restarts", s)
		}
	case "ring-backwards":
		if s.ProtocolViolations != 1 || s.Restarts != 1 {
			t.Errorf("stats %+v: want one violation and one restart", s)
		}
	case "ring-write":
		if s.Crashes == 0 || s.Restarts == 0 || s.Quarantined != 1 {
			t.Errorf("stats %+v: want crashes and the trigger quarantined", s)
		}
		refused := 0
		for _, e := range logs.All() {
			if strings.Contains(e.Message, "ALLOWED") {
				t.Errorf("the plugin could: %s", e.Message)
			}
			if strings.Contains(e.Message, "refused") {
				refused++
			}
		}
		if refused < 8 {
			t.Errorf("%d refusals logged, want every attempt's", refused)
		}
	}
	if hs := healthy.Stats(); hs.Delivered != 8 || hs.Crashes+hs.ProtocolViolations+hs.Restarts != 0 {
		t.Errorf("healthy detector stats %+v", hs)
	}
	if attack != "ring-write" { // its crash dumps are a log flood, counted too
		found := false
		for _, e := range logs.All() {
			v := fmt.Sprint(e.ContextMap()["violation"])
			found = found || strings.Contains(e.Message, "broke the protocol") && (strings.Contains(v, "consumer position") || strings.Contains(v, "answered count"))
		}
		if !found {
			t.Errorf("the violation was not logged with the consumer position or answered count; stats %+v", s)
		}
	}
}

// The chaos plugin killed at every stage, in its enclave, with the ring:
// every batch answered by a restarted process, each with a ring of its own.
func TestRingInEnclaveRestartsLoseNothing(t *testing.T) {
	o := withTransport(fastOptions(testenv.Plugin(t, "chaos"), `{"report_on":"/mark/"}`), TransportShm)
	o.Enclave, o.Launcher = testEnclave(t, "ring-chaos")
	o.MTLS = true
	b, err := New(o, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	seen := map[string]int{}
	for i := 0; i < 20; i++ {
		if i%5 == 2 {
			if !ringMapped(t, b.Stats().PID) {
				t.Fatal("the plugin in its enclave maps no ring")
			}
			killPID(b.Stats().PID)
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

func killPID(pid int) { syscall.Kill(pid, syscall.SIGKILL) }

// The plugin gets the ring as descriptors 3 and 4, maps it, and closes
// them (the mappings stay); none of the monitor's files reaches it, with
// and without an enclave.
func TestRingDescriptorsHandedOver(t *testing.T) {
	for _, enc := range []bool{false, true} {
		t.Run(fmt.Sprintf("enclave=%v", enc), func(t *testing.T) {
			o := withTransport(fastOptions(testenv.Plugin(t, "example"), ""), TransportShm)
			if enc {
				o.Enclave, o.Launcher = testEnclave(t, "ring-fds")
			}
			b, err := New(o, zaptest.NewLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close(context.Background())
			pid := b.Stats().PID
			if !ringMapped(t, pid) {
				t.Fatal("the plugin maps no ring")
			}
			mine := map[string]bool{}
			for _, target := range fds(t, os.Getpid()) {
				// The Go runtime of each process opens its cgroup's CPU
				// limit files itself.
				if strings.HasPrefix(target, "/") && !strings.HasPrefix(target, "/dev/") && !strings.HasPrefix(target, "/sys/fs/cgroup/") {
					mine[target] = true
				}
			}
			for fd, target := range fds(t, pid) {
				if strings.Contains(target, "memfd:") {
					t.Errorf("fd %s of the plugin is %s: the SDK closes the ring's descriptors once mapped", fd, target)
				}
				if mine[target] {
					t.Errorf("fd %s of the plugin is the monitor's %s", fd, target)
				}
			}
		})
	}
}

// fds is what each descriptor of process pid is.
func fds(t *testing.T, pid int) map[string]string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		if target, err := os.Readlink(dir + "/" + e.Name()); err == nil {
			out[e.Name()] = target
		}
	}
	return out
}

// Batches larger than the ring's per-event budget fill it: what does not
// fit waits in flight, counted, and is written as the plugin makes room.
// Nothing is lost, the plugin is not restarted, the caller never waits
// longer than the Window makes it.
func TestRingFullBatchesWait(t *testing.T) {
	o := withTransport(fastOptions(testenv.Plugin(t, "rogue"), `{"attack":"slow","delay":"30ms","report_on":"/ok"}`), TransportShm)
	o.Window, o.BatchEvents, o.RingBytes = 2, 1, 8<<10
	b, err := New(o, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
	)
	const n = 8
	for i := 0; i < n; i++ {
		// 2 KiB of path (twice: as opened and resolved): two batches do
		// not fit in 8 KiB.
		wg.Add(1)
		b.Submit(context.Background(), opens(fmt.Sprintf("/ok/%d/%s", i, strings.Repeat("p", 2<<10))), func(fs []detection.Finding, err error) {
			defer wg.Done()
			if err != nil {
				t.Errorf("batch: %v", err)
			}
			mu.Lock()
			for p, k := range reported(fs) {
				seen[p[:strings.LastIndexByte(p, '/')]] += k
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	for i := 0; i < n; i++ {
		if p := fmt.Sprintf("/ok/%d", i); seen[p] != 1 {
			t.Errorf("%s answered %d times", p, seen[p])
		}
	}
	if s := b.Stats(); s.RingFull == 0 || s.Crashes+s.Hangs+s.Restarts+s.ProtocolViolations != 0 || s.Delivered != n {
		t.Errorf("stats %+v: want the ring full at times, and nothing else", s)
	}
}

// A batch larger than the ring goes as several that fit, answered
// together; an event larger than the whole ring on its own is refused,
// counted and logged. The plugin is never killed over either.
func TestBatchLargerThanTheRing(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	o := withTransport(fastOptions(testenv.Plugin(t, "example"), `{"prefixes":["/big/"]}`), TransportShm)
	o.RingBytes, o.BatchEvents, o.Window = 64<<10, 4, 4 // the smallest ring these batches allow
	b, err := New(o, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	var paths []string
	for i := range 11 {
		paths = append(paths, fmt.Sprintf("/big/%d", i))
	}
	events := opens(paths...)
	for _, ev := range events[:10] {
		ev.Open.Dir = strings.Repeat("d", 24<<10) // 10 × ~24 KiB: 4 ring records
	}
	events[10].Open.Dir = strings.Repeat("d", 80<<10) // more than the ring alone
	fs, err := backends.Deliver(context.Background(), b, events)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, f := range fs {
		seen[f.Events[0].Open.Resolved]++
	}
	for i := range 10 {
		if seen[paths[i]] != 1 {
			t.Errorf("event %d answered %d times", i, seen[paths[i]])
		}
	}
	s := b.Stats()
	if s.Quarantined != 1 || s.Delivered != 10 || s.Restarts+s.Crashes+s.Hangs+s.ProtocolViolations != 0 {
		t.Errorf("stats %+v: want 10 delivered, the huge event refused, no restart", s)
	}
	if len(logs.FilterMessageSnippet("larger on its own than the plugin's transport carries").All()) != 1 {
		t.Error("the refused event was not logged")
	}
	// The plugin still answers.
	if fs, err := backends.Deliver(context.Background(), b, opens("/big/after")); err != nil || len(fs) != 1 {
		t.Fatalf("after: %v, %d findings", err, len(fs))
	}
}

// A plugin that stops reading its ring and lives on: its batches miss
// their deadline (a hang: restarted, the trigger quarantined in the end);
// meanwhile its queue fills and its events are shed, counted; a healthy
// detector beside it loses nothing; every event of the stalled one has an
// outcome.
func TestRingStallSheds(t *testing.T) {
	rogue, healthy, _ := ringPair(t, "ring-stall", false)
	d := dispatch.New(context.Background(), dispatch.Options{BatchSize: 16, QueueEvents: 2048, QueueBytes: 1 << 30, QueueBatches: 1 << 20, DrainTimeout: 5 * time.Second},
		[]dispatch.Detector{{Name: "rogue", Backend: "goplugin", Run: rogue}, {Name: "healthy", Backend: "goplugin", Run: healthy}},
		func(detection.Finding) {}, zaptest.NewLogger(t))
	const total = 8000
	start := time.Now()
	for i := range total {
		path := fmt.Sprintf("/ok/%d", i)
		switch {
		case i == 100:
			path = "/attack"
		case i%100 == 0:
			path = "/etc/shadow"
		}
		d.Add(opens(path)[0])
		// About 4000 events a second: two seconds of events, well past
		// the deadline of the stalled batch (500 ms).
		if want := start.Add(time.Duration(i) * 250 * time.Microsecond); time.Until(want) > 0 {
			time.Sleep(time.Until(want))
		}
	}
	d.Drain()
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, s := range d.Stats() {
		t.Logf("%s: queued %d delivered %d shed %d unavailable %d failed %d abandoned %d; backend %+v", s.Name, s.Queued, s.Delivered, s.Shed, s.Unavailable, s.Failed, s.Abandoned, s.Backends)
		if s.Queued+s.Shed != total || s.Settled() != s.Queued {
			t.Errorf("%s: %d queued + %d shed of %d, %d settled: an event without an outcome", s.Name, s.Queued, s.Shed, total, s.Settled())
		}
		switch s.Name {
		case "healthy":
			if s.Delivered != total || s.Shed != 0 {
				t.Errorf("healthy: %d of %d delivered, %d shed", s.Delivered, total, s.Shed)
			}
		case "rogue":
			if s.Shed == 0 || s.Backends.Hangs == 0 {
				t.Errorf("rogue: %d shed, %d hangs: want its queue shed while it stalled", s.Shed, s.Backends.Hangs)
			}
		}
	}
}
