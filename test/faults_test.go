package test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends/wasm/wasmtest"
	"github.com/bulkhead-sec/bulkhead/test/testenv"
)

// faultCell is one cell of docs/faults.md: what a fault of the chaos
// detector does on one backend.
type faultCell struct {
	fault, backend string
	config         string // extra chaos config
	check          func(t *testing.T, o faultOutcome)
}

// faultOutcome is what one run showed.
type faultOutcome struct {
	started  bool // the monitor got as far as capturing
	died     bool // it exited before it was asked to stop
	code     int
	stderr   string
	findings []map[string]any
	dir      string
}

// delivered counts the distinct ok- markers detector reported.
func (o faultOutcome) delivered(detector string) int {
	return len(markersFound(o.findings, detector, o.dir+"/ok-"))
}

func (o faultOutcome) row(t *testing.T, detector string) map[string]string {
	return summaryRow(t, o.stderr, detector)
}

func atLeast(t *testing.T, row map[string]string, col string, n int) {
	t.Helper()
	if v, _ := strconv.Atoi(row[col]); v < n {
		t.Errorf("%s: %s = %s, want at least %d", row["name"], col, row[col], n)
	}
}

func exactly(t *testing.T, row map[string]string, col string, n int) {
	t.Helper()
	if v, _ := strconv.Atoi(row[col]); v != n {
		t.Errorf("%s: %s = %s, want %d", row["name"], col, row[col], n)
	}
}

const okMarkers = 60

// The monitor dies with the detector: the in-process contract. It says
// one of says (the Go runtime words the same death more than one way).
func monitorDies(code int, says ...string) func(*testing.T, faultOutcome) {
	return func(t *testing.T, o faultOutcome) {
		said := slices.ContainsFunc(says, func(s string) bool { return strings.Contains(o.stderr, s) })
		if !o.died || o.code != code || !said {
			t.Errorf("want the monitor dead with exit %d saying one of %q; died %v, exit %d, stderr head and tail:\n%s\n…\n%s",
				code, says, o.died, o.code, head(o.stderr, 15), tail(o.stderr, 15))
		}
	}
}

// head is the first n lines of s.
func head(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

// The monitor survives, the plugin is restarted (after a crash, or a
// hang: seen as the column says), every marker reaches it (at least once),
// and the bystander sees everything.
func pluginRestarted(seenAs string, quarantine bool) func(*testing.T, faultOutcome) {
	return func(t *testing.T, o faultOutcome) {
		if o.died || o.code != 0 {
			t.Fatalf("the monitor must survive: died %v, exit %d\n%s", o.died, o.code, tail(o.stderr, 20))
		}
		r := o.row(t, "faulty")
		atLeast(t, r, seenAs, 1)
		atLeast(t, r, "restarts", 1)
		for _, col := range []string{"shed", "unavail", "failed", "abandoned"} {
			if _, ok := r[col]; ok || col != "abandoned" {
				exactly(t, r, col, 0)
			}
		}
		if quarantine {
			atLeast(t, r, "quarantine", 1)
		}
		if n := o.delivered("faulty"); n != okMarkers {
			t.Errorf("the faulty detector got %d of %d markers: events were lost", n, okMarkers)
		}
		bystanderUnaffected(t, o)
	}
}

func bystanderUnaffected(t *testing.T, o faultOutcome) {
	t.Helper()
	if n := o.delivered("bystander"); n != okMarkers {
		t.Errorf("the other detector got %d of %d markers", n, okMarkers)
	}
	r := o.row(t, "bystander")
	for _, col := range []string{"shed", "crashes", "failed", "abandoned"} {
		if _, ok := r[col]; ok || col != "abandoned" {
			exactly(t, r, col, 0)
		}
	}
}

func refusesToStart(t *testing.T, o faultOutcome) {
	if o.started || o.code != 1 || !strings.Contains(o.stderr, "detector #1 (faulty") || !strings.Contains(o.stderr, "configured to fail Init") {
		t.Errorf("want the monitor to refuse to start, naming the detector; started %v, exit %d\n%s", o.started, o.code, tail(o.stderr, 10))
	}
}

// faultTable is docs/faults.md, cell by cell.
var faultTable = []faultCell{
	{"panic", "inproc", "", monitorDies(2, "panic: chaos: panic on")},
	{"panic", "goplugin", "", pluginRestarted("crashes", true)},
	{"exit", "inproc", "", monitorDies(3, "")},
	{"exit", "goplugin", "", pluginRestarted("crashes", true)},
	{"fatal", "inproc", "", monitorDies(2, "fatal error: concurrent map writes")},
	{"fatal", "goplugin", "", pluginRestarted("crashes", true)},
	{"goroutine-nil", "inproc", "", monitorDies(2, "nil pointer dereference")},
	{"goroutine-nil", "goplugin", "", pluginRestarted("crashes", false)},
	// Out of memory in the heap, or out of room for a thread's stack
	// under the address-space limit: the same death, in the runtime's or
	// libc's words.
	{"memory", "inproc", "", monitorDies(2, "out of memory", "cannot allocate memory", "pthread_create failed", "failed to create new OS thread")},
	{"memory", "goplugin", "", pluginRestarted("crashes", true)},
	{"hang", "inproc", "", func(t *testing.T, o faultOutcome) {
		// Alive, but the detector is gone for good: everything after the
		// hang waits in its queue (or is shed when that is full), and at
		// stop it is abandoned, counted.
		var abandoned int
		if i := strings.Index(o.stderr, "detector faulty did not finish in time and was abandoned: "); o.died || i < 0 {
			t.Errorf("want the monitor alive and the detector abandoned at stop; died %v, exit %d\n%s", o.died, o.code, tail(o.stderr, 20))
		} else if _, err := fmt.Sscanf(o.stderr[i:], "detector faulty did not finish in time and was abandoned: %d events abandoned", &abandoned); err != nil || abandoned < 1 {
			t.Errorf("want the events after the hang counted as abandoned: %d (%v)", abandoned, err)
		}
		if r := o.row(t, "faulty"); r["abandoned"] != "" {
			exactly(t, r, "abandoned", abandoned)
		}
		if n := o.delivered("faulty"); n >= okMarkers {
			t.Errorf("a hung inproc detector cannot have seen every marker (%d)", n)
		}
		bystanderUnaffected(t, o)
	}},
	{"hang", "goplugin", "", pluginRestarted("hangs", true)},
	{"slow", "inproc", slowConfig, slowSheds},
	{"slow", "goplugin", slowConfig, slowSheds},
	{"fail-init", "inproc", "", refusesToStart},
	{"fail-init", "goplugin", "", refusesToStart},
	// The wasm column: a module in the monitor's process, in wazero. A
	// trap (the Go runtime's panic and fatal errors end in one), an exit or
	// the memory limit ends the instance, the batch deadline a hang; the
	// next instance gets the batch, split until the poison event is
	// quarantined. In a module's one thread the nil dereference in a
	// goroutine runs within the batch that started it (the SDK yields
	// before answering), so it is a poison event too.
	{"panic", "wasm", "", pluginRestarted("crashes", true)},
	{"exit", "wasm", "", pluginRestarted("crashes", true)},
	{"fatal", "wasm", "", pluginRestarted("crashes", true)},
	{"goroutine-nil", "wasm", "", pluginRestarted("crashes", true)},
	{"memory", "wasm", "", pluginRestarted("crashes", true)},
	{"hang", "wasm", "", pluginRestarted("hangs", true)},
	{"slow", "wasm", slowConfig, slowSheds},
	{"fail-init", "wasm", "", refusesToStart},
}

// withGRPC is the table with the goplugin cells (transport shm, the
// default) of a crash and a hang again on backend "goplugin-grpc": goplugin
// with transport grpc, the same expectations. Those are the faults whose
// handling differs by transport (a stream broken mid-batch, a batch
// answered late); the other deaths are a crash to either, and the
// backend's own tests run its crash handling on both transports.
func withGRPC(cells []faultCell) []faultCell {
	out := append([]faultCell(nil), cells...)
	for _, c := range cells {
		if c.backend == "goplugin" && (c.fault == "panic" || c.fault == "hang") {
			c.backend = "goplugin-grpc"
			out = append(out, c)
		}
	}
	return out
}

// slowConfig makes each event cost 10ms from the boom marker on.
const slowConfig = ", delay: 10ms"

// Slowness backs up the detector's own queue; what does not fit is shed
// and counted, nothing crashes, the other detector keeps up. After the boom
// marker the cell opens a file 40,000 times over about two seconds: with a
// flush every 20ms, more than 150 batches of up to 256, more than a queue
// of 64 and a plugin's 16 in flight hold, so the slow detector sheds for
// certain; a detector that keeps up has 16,384 events of room, and batches
// big enough that a plugin on a busy host keeps up.
func slowSheds(t *testing.T, o faultOutcome) {
	// At stop it has more queued than it can finish within drain_timeout:
	// it is abandoned (what it had is counted), and the exit status says so.
	if o.died || o.code != 0 && !strings.Contains(o.stderr, "detector faulty did not finish in time and was abandoned") {
		t.Fatalf("the monitor must survive: died %v, exit %d\n%s", o.died, o.code, tail(o.stderr, 20))
	}
	r := o.row(t, "faulty")
	atLeast(t, r, "shed", 1)
	exactly(t, r, "crashes", 0)
	bystanderUnaffected(t, o)
}

// TestFaultTable runs every cell of docs/faults.md: each fault of the
// chaos detector on each backend, under real events, next to a healthy
// detector on the same backend.
func TestFaultTable(t *testing.T) {
	testenv.RequireBPF(t)
	for _, c := range withGRPC(faultTable) {
		t.Run(c.fault+"/"+c.backend, func(t *testing.T) {
			o := runFault(t, c)
			t.Logf("died %v, exit %d; faulty delivered %d of %d markers", o.died, o.code, o.delivered("faulty"), okMarkers)
			for _, line := range strings.Split(o.stderr, "\n") {
				if f := strings.Fields(line); len(f) > 0 && (f[0] == "name" || f[0] == "faulty") {
					t.Log(line)
				}
			}
			if c.backend == "wasm" {
				logRecovery(t, o.stderr)
			}
			c.check(t, o)
			if o.started && !o.died {
				everyEventAccounted(t, o)
			}
		})
	}
}

// everyEventAccounted checks, for each detector of a run that was stopped,
// that every event its queue took has one outcome in the summary. Only
// once the summary shows the abandoned column: before that its delivered
// column is the backend's count, which may include what a detector
// answered after it was abandoned.
func everyEventAccounted(t *testing.T, o faultOutcome) {
	t.Helper()
	for _, name := range []string{"faulty", "bystander"} {
		r := o.row(t, name)
		if r["abandoned"] == "" {
			continue
		}
		n := func(col string) int { v, _ := strconv.Atoi(r[col]); return v }
		if settled := n("filtered") + n("delivered") + n("unavail") + n("failed") + n("abandoned"); settled != n("queued") {
			t.Errorf("%s: queued %d, but filtered + delivered + unavail + failed + abandoned = %d: %v", name, n("queued"), settled, r)
		}
	}
}

func runFault(t *testing.T, c faultCell) faultOutcome {
	dir := t.TempDir()
	o := faultOutcome{dir: dir}
	where, backend := "builtin: chaos", c.backend
	if c.backend == "goplugin" || c.backend == "goplugin-grpc" {
		where = "plugin: " + testenv.Plugin(t, "chaos") + "\n    batch_deadline: 1s"
		if c.fault == "slow" {
			where = "plugin: " + testenv.Plugin(t, "chaos") + "\n    batch_deadline: 60s"
		}
		if c.backend == "goplugin-grpc" {
			where += "\n    transport: grpc"
			backend = "goplugin"
		}
		if c.fault == "memory" {
			// The enclave's memory limit ends the fault: keep it small, so
			// each of the poison event's crashes is quick.
			where += "\n    enclave: {memory_mb: 64}"
		}
	}
	top := ""
	if c.backend == "wasm" {
		warmWasm(t)
		where = "module: " + wasmtest.Build(t, "chaos") + "\n    batch_deadline: 1s"
		if c.fault == "slow" {
			where = "module: " + wasmtest.Build(t, "chaos") + "\n    batch_deadline: 60s"
		}
		if c.fault == "memory" {
			where += "\n    memory_mib: 64"
		}
		// Compiled once for every run of the tests, not per run.
		top = "wasm_cache_dir: " + wasmtest.CacheDir() + "\n"
	}
	// Default queues, as a host runs them, except where slowness must shed.
	// A stop waits for a plugin's recovery to finish (a poison event costs
	// four deadlines and restarts, longer on a busy host), but not long for
	// what cannot finish: a hung in-process detector, a slow one's queue.
	queues, drain, flush := "", "10s", "2ms"
	if c.fault == "slow" {
		queues, flush = "queue_batches: 64, ", "20ms"
	}
	if c.fault == "slow" || c.fault == "hang" && c.backend == "inproc" {
		drain = "2s"
	}
	cfg := writeConfig(t, top+fmt.Sprintf(`
dispatch: {%[6]sdrain_timeout: %[7]s}
detectors:
  - name: faulty
    backend: %[1]s
    %[2]s
    config: {fault: %[3]s, on: "%[4]s/boom", report_on: "%[4]s/ok-"%[5]s}
  - name: bystander
    backend: %[1]s
    %[2]s
    config: {report_on: "%[4]s/ok-"}
`, backend, where, c.fault, dir, c.config, queues, drain))
	// The events are the test's own python3 processes': their opens at
	// start-up, the markers and the burst. What the rest of a shared host
	// does (another test's storm of 100,000 opens a second, go builds) must
	// not decide a cell: a busy host is what the cells must survive, an
	// overloaded one sheds, counted, by design.
	m := launchMonitor(t, "--config", cfg, "--comm", "python3", "--flush-interval", flush)
	exited := make(chan error, 1)
	go func() { <-m.copied; exited <- m.cmd.Wait() }()
	if o.started = m.waitCapturing(exited); o.started {
		stop := background(t, dir+"/load")
		defer stop()
		openMarkersFrom(t, dir, "ok", 0, okMarkers/2, 300*time.Millisecond)
		openMarkersFrom(t, dir, "boom", 0, 1, 0)
		if c.fault == "slow" {
			openBurst(t, dir+"/burst", 400, 100, 5*time.Millisecond)
		}
		openMarkersFrom(t, dir, "ok", okMarkers/2, okMarkers/2, 300*time.Millisecond)
	}
	var err error
	select {
	case err = <-exited:
	case <-time.After(2 * time.Second): // deadlines, restarts and redelivery play out
		m.cmd.Process.Signal(os.Interrupt)
		select {
		case err = <-exited:
		case <-time.After(30 * time.Second):
			m.cmd.Process.Kill()
			err = <-exited
			t.Errorf("the monitor did not stop within 30s of SIGINT")
		}
	}
	if err != nil {
		o.code = -1
		if ee, ok := err.(interface{ ExitCode() int }); ok {
			o.code = ee.ExitCode()
		}
	}
	o.stderr = m.stderr.String()
	// Died of the fault, not stopped: no summary. (A fault may take the
	// monitor down after the SIGINT on a loaded host: its memory takes a
	// while to run out.)
	o.died = o.started && !strings.Contains(o.stderr, "bulkhead summary")
	o.findings = parseLines(t, m.stdout.String())
	return o
}

// logRecovery logs, from a wasm cell's log, how long each instance the
// fault ended took to be replaced: from the line saying it failed (a trap
// or exit when it happened, a hang at the deadline) to the next saying a
// new one runs (the backoff and the instantiation).
func logRecovery(t *testing.T, stderr string) {
	var failed time.Time
	var took []string
	for _, line := range strings.Split(stderr, "\n") {
		var l struct {
			TS  time.Time `json:"ts"`
			Msg string    `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &l) != nil {
			continue
		}
		switch {
		case strings.HasPrefix(l.Msg, "detector wasm module ") && strings.HasSuffix(l.Msg, "instantiating it again"):
			failed = l.TS
		case l.Msg == "detector wasm module instantiated again" && !failed.IsZero():
			took = append(took, l.TS.Sub(failed).String())
			failed = time.Time{}
		}
	}
	t.Logf("wasm instances replaced after: %s", strings.Join(took, ", "))
}

var warmed sync.Once

// warmWasm has the monitor compile the chaos module into the test's
// cache once, by replaying the shipped recording into it: a cold compile
// takes 10 s and more on a busy host, and a cell must not wait for it.
// (The monitor's cache is keyed by wazero's version, which a test binary
// does not know: the test process cannot warm it.)
func warmWasm(t *testing.T) {
	warmed.Do(func() {
		cfg := writeConfig(t, "wasm_cache_dir: "+wasmtest.CacheDir()+"\ndetectors:\n  - {name: warm, backend: wasm, module: "+wasmtest.Build(t, "chaos")+"}\n")
		out, err := exec.Command(testenv.Binary(t), "replay", "../testdata/recordings/library.bhrec", "--config", cfg, "--output", os.DevNull).CombinedOutput()
		if err != nil {
			t.Fatalf("warm the wasm cache: %v\n%s", err, tail(string(out), 10))
		}
	})
}

// background opens path about 2,000 times a second until stop is called: a
// host's steady load, in the small batches a flush every few milliseconds
// makes. Every detector must keep up with it through every fault, and a
// queue of 64 small batches held a tenth of a second of it.
func background(t *testing.T, path string) (stop func()) {
	t.Helper()
	cmd := exec.Command("/usr/bin/python3", "-c", fmt.Sprintf(`import time
while True:
    for i in range(10):
        open(%q, "w").close()
    time.sleep(0.005)`, path))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return func() {
		cmd.Process.Kill()
		cmd.Wait()
	}
}

// openBurst opens path groups×n times from python3, pausing between groups.
func openBurst(t *testing.T, path string, groups, n int, pause time.Duration) {
	t.Helper()
	script := fmt.Sprintf(`import time
for i in range(%d):
    for j in range(%d):
        open(%q, "w").close()
    time.sleep(%f)`, groups, n, path, pause.Seconds())
	if out, err := exec.Command("/usr/bin/python3", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("open burst: %v\n%s", err, out)
	}
}

// waitCapturing waits until the monitor captures, or exits, or 20s pass.
func (m *monitorRun) waitCapturing(exited chan error) bool {
	deadline := time.After(20 * time.Second)
	for !strings.Contains(m.stderr.String(), `"msg":"capturing"`) {
		select {
		case err := <-exited:
			exited <- err // for the caller
			return false
		case <-deadline:
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return true
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}
