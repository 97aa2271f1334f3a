package suite

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends/goplugin"
	"github.com/bulkhead-sec/bulkhead/internal/bench"
	"github.com/bulkhead-sec/bulkhead/internal/config"
	"github.com/bulkhead-sec/bulkhead/internal/monitor"
	"github.com/bulkhead-sec/bulkhead/pipeline/dispatch"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
	"go.uber.org/zap"
)

// A resilience cell runs in its own process (`bulkhead bench fault-cell`),
// because on the inproc backend a crash fault takes the monitor with it:
// the parent reads the cell's progress as JSON lines and, if the child
// dies, reports what it got until then and how it ended.

// FaultPlan is one cell's settings.
type FaultPlan struct {
	Fault, Backend string
	Seconds        float64 // load runs this long (longer for hang: see faultTimes)
	Every          float64 // seconds between faults
	Rate           float64 // events/s offered
	// Flush is how often the injector flushes partial batches: the capture
	// reader's deadline on a quiet host (--flush-interval).
	Flush         time.Duration
	Enclave, MTLS bool
}

// Paths of the cell's events: a fault marker fires the chaos detector's
// fault once; a report marker must give a finding from both detectors.
const (
	faultMarker  = "/bench-fault/"
	reportMarker = "/bench-report/"
	reportEvery  = 200 // every Nth event is a report marker
)

// faultTimes are when the faults are injected, seconds from the start of
// load: the first after half an interval, then every interval, each with
// room to recover before the load ends. A hang is noticed only at the
// batch deadline, so hangs come further apart.
func (p FaultPlan) faultTimes() (times []float64, length float64) {
	every, room := p.Every, 1.0
	if p.Fault == "hang" {
		// Noticed only at the batch deadline; then half a second to restart.
		room = goplugin.DefaultOptions("").BatchDeadline.Seconds() + 0.5
		every = max(every, room+0.5)
	}
	length = max(p.Seconds, every/2+room)
	for t := every / 2; t+room <= length; t += every {
		times = append(times, t)
	}
	return times, length
}

// cellLine is one JSON line from the child.
type cellLine struct {
	Kind   string           `json:"kind"` // sample, mark, result
	Sample *bench.Sample    `json:"sample,omitempty"`
	Mark   *bench.Mark      `json:"mark,omitempty"`
	Sent   uint64           `json:"sent,omitempty"`
	Deliv  uint64           `json:"delivered,omitempty"`
	Result *bench.FaultCell `json:"result,omitempty"`
}

// runFaultCell runs one cell in a child process and reads its outcome.
func runFaultCell(p FaultPlan, stderrLog io.Writer) (bench.FaultCell, error) {
	cell := bench.FaultCell{Fault: p.Fault, Backend: p.Backend, Crash: bench.IsCrash(p.Fault)}
	self, err := os.Executable()
	if err != nil {
		return cell, err
	}
	plan, _ := json.Marshal(p)
	cmd := exec.Command(self, "bench", "fault-cell", "--plan", string(plan))
	var tail tailBuffer
	cmd.Stderr = io.MultiWriter(&tail, stderrLog)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return cell, fmt.Errorf("start the fault cell: %w", err)
	}
	var last cellLine
	var lastFaultT float64
	var lastFaultAt time.Time
	sc := bufio.NewScanner(out)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var l cellLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			continue // not ours (a plugin's stray output)
		}
		switch l.Kind {
		case "result":
			timeline, marks := cell.Timeline, cell.Marks
			cell = *l.Result
			cell.Timeline, cell.Marks = timeline, marks
		case "mark":
			cell.Marks = append(cell.Marks, *l.Mark)
			if l.Mark.Kind == "fault" {
				lastFaultT, lastFaultAt = l.Mark.T, time.Now()
				cell.Faults++
			}
		case "sample":
			cell.Timeline = append(cell.Timeline, *l.Sample)
			last = l
		}
	}
	waitErr := cmd.Wait()
	if cell.Verdict != "" {
		return cell, nil
	}
	// The child died before it could report: the monitor died.
	var ee *exec.ExitError
	if !errors.As(waitErr, &ee) {
		return cell, fmt.Errorf("fault cell %s/%s ended without a result: %v", p.Fault, p.Backend, waitErr)
	}
	cell.Verdict, cell.Exit = bench.Died, exitDescription(ee, tail.String())
	cell.Sent, cell.Delivered = last.Sent, last.Deliv
	cell.Lost = cell.Sent - min(cell.Delivered, cell.Sent)
	cell.OthersAffected = true
	if !lastFaultAt.IsZero() {
		after := time.Since(lastFaultAt).Seconds()
		cell.Marks = append(cell.Marks, bench.Mark{T: lastFaultT + after, Kind: "died"})
		cell.Note = fmt.Sprintf("the monitor died %.0f ms after the fault; capture and every other detector stopped with it, and nothing after that was seen", after*1000)
	}
	if len(cell.Timeline) > 0 {
		cell.Seconds = cell.Timeline[len(cell.Timeline)-1].T
	}
	return cell, nil
}

// exitDescription is how the process ended ("exit status 2", "signal:
// killed") and the first line of its dying words ("panic: …", "fatal
// error: …").
func exitDescription(ee *exec.ExitError, stderr string) string {
	how := ee.ProcessState.String()
	for _, line := range strings.Split(stderr, "\n") {
		for _, p := range []string{"panic: ", "fatal error: ", "runtime: out of memory"} {
			if strings.HasPrefix(line, p) {
				return how + ": " + strings.TrimSpace(line)
			}
		}
	}
	return how
}

// tailBuffer keeps the last 64 KiB written to it.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - 64<<10; over > 0 {
		t.b = t.b[over:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// FaultCell is the child (`bulkhead bench fault-cell --plan JSON`, which
// the binary must answer by calling it): it runs the chaos detector with the
// plan's fault next to a healthy detector on the same backend, offers
// steady load, injects the faults, and writes JSON lines to stdout.
func FaultCell(p FaultPlan, log *zap.Logger, stdout io.Writer) error {
	var mu sync.Mutex
	enc := json.NewEncoder(stdout)
	emit := func(l cellLine) {
		mu.Lock()
		defer mu.Unlock()
		enc.Encode(l)
	}
	e := env{log: log, enclave: p.Enclave, mtls: p.MTLS}
	if self, err := os.Executable(); err == nil {
		e.pluginDir = filepath.Dir(self)
	}
	fc, err := faultConfig(e, p)
	if err != nil {
		return err
	}
	cell := bench.FaultCell{Fault: p.Fault, Backend: p.Backend, Crash: bench.IsCrash(p.Fault)}
	found := newFoundSet(fc.Detectors[0].Name)
	disp, err := monitor.StartDispatch(fc, false, found.add, log)
	if err != nil {
		cell.Verdict, cell.Exit = bench.Refused, err.Error()
		emit(cellLine{Kind: "result", Result: &cell})
		return nil
	}
	times, length := p.faultTimes()
	var sent atomic.Uint64
	start := time.Now()
	w := &faultWatch{disp: disp, found: found, sent: &sent, emit: emit, start: start}
	stopWatch := w.run()
	var reports uint64
	next := 0
	for elapsed := time.Duration(0); elapsed.Seconds() < length; elapsed = time.Since(start) {
		for due := uint64(p.Rate * elapsed.Seconds()); sent.Load() < due; {
			n := sent.Load()
			path := "/bench-load/file"
			if next < len(times) && elapsed.Seconds() >= times[next] {
				path = fmt.Sprintf("%s%d", faultMarker, next)
				w.fault(time.Now())
				next++
			} else if n%reportEvery == 0 {
				path = fmt.Sprintf("%s%d", reportMarker, n)
				reports++
			}
			disp.Add(syntheticOpen(path))
			sent.Add(1)
		}
		disp.Flush()
		time.Sleep(p.Flush)
	}
	// Close, not Drain: a hung in-process detector never answers, and Close
	// abandons it after the drain timeout.
	closeErr := disp.Close(context.Background())
	stopWatch()
	stats := disp.Stats()

	faulty, other := stats[0], stats[1]
	cell.Verdict, cell.Seconds, cell.Faults = bench.Survived, time.Since(start).Seconds(), len(w.faultTimes())
	cell.Sent = sent.Load()
	cell.Delivered = min(faulty.Backends.Delivered, cell.Sent)
	cell.Lost = cell.Sent - cell.Delivered
	b := faulty.Backends
	cell.Redelivered, cell.Quarantined, cell.Crashes, cell.Hangs, cell.Restarts = b.Redelivered, b.Quarantined, b.Crashes, b.Hangs, b.Restarts
	cell.DetectMs, cell.RecoverMs = w.detect, w.recover // the watcher has stopped
	cell.FindingsExpected = reports
	cell.FindingsMissed = reports - min(reports, found.count(0))
	cell.OtherLost = cell.Sent - min(other.Backends.Delivered, cell.Sent)
	cell.OtherFindingsMissed = reports - min(reports, found.count(1))
	cell.OthersAffected = cell.OtherLost > 0 || cell.OtherFindingsMissed > 0
	if closeErr != nil {
		cell.Note = "at stop: " + closeErr.Error()
	}
	emit(cellLine{Kind: "result", Result: &cell})
	return nil
}

// faultConfig is the cell's two detectors: chaos with the fault (each
// marker fires once, so a restarted plugin processes the marker's event
// normally when it is delivered again), and example as the healthy
// neighbour, both reporting the report markers.
func faultConfig(e env, p FaultPlan) (config.File, error) {
	chaosCfg := map[string]any{"fault": p.Fault, "on": faultMarker, "once": true, "report_on": reportMarker, "memory_limit_mb": 128}
	if p.Fault == "fail-init" {
		chaosCfg = map[string]any{"fault": p.Fault}
	}
	fc, err := e.detectorsConfig("chaos", p.Backend, 1, 0, chaosCfg)
	if err != nil {
		return fc, err
	}
	healthy, err := e.detectorsConfig("example", p.Backend, 1, 0, map[string]any{"paths": []string{}, "prefixes": []string{reportMarker}})
	if err != nil {
		return fc, err
	}
	fc.Detectors = append(fc.Detectors, healthy.Detectors...)
	fc.Dispatch.DrainTimeout = time.Second
	// A memory fault ends at 128 MiB, quickly, instead of the default 512
	// (a wasm module's memory is capped by the backend instead).
	if p.Backend == bench.Wasm {
		fc.Detectors[0].MemoryMiB = 128
	} else {
		fc.Detectors[0].Enclave = &config.Enclave{Config: fc.Enclave.Config}
		fc.Detectors[0].Enclave.MemoryMB = 128
	}
	return fc, nil
}

// foundSet is the report markers each detector found (unique: delivery is
// at least once): [0] the faulty detector's, [1] the healthy one's.
type foundSet struct {
	faulty string // the faulty detector's name
	mu     sync.Mutex
	paths  [2]map[string]bool
	n      atomic.Uint64 // findings, duplicates included
}

func newFoundSet(faulty string) *foundSet {
	return &foundSet{faulty: faulty, paths: [2]map[string]bool{{}, {}}}
}

func (f *foundSet) add(fd detect.Finding) {
	f.n.Add(1)
	if len(fd.Events) == 0 {
		return
	}
	i := 0
	if fd.Detector != f.faulty {
		i = 1
	}
	f.mu.Lock()
	f.paths[i][fd.Events[0].Open.Resolved] = true
	f.mu.Unlock()
}

func (f *foundSet) count(i int) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return uint64(len(f.paths[i]))
}

// faultWatch polls the faulty detector's counters to time, for each
// fault, when the monitor noticed it (a crash, a hang, a recovered panic)
// and when the detector took events again; and samples the timeline.
type faultWatch struct {
	disp  *dispatch.Dispatcher
	found *foundSet
	sent  *atomic.Uint64
	emit  func(cellLine)
	start time.Time // of the load
	mu    sync.Mutex
	// faults are when the injector sent each fault; detect and recover,
	// milliseconds after them, are the watcher's own until it has stopped.
	faults          []time.Time
	detect, recover []float64
}

// fault records that a fault was sent at t.
func (w *faultWatch) fault(t time.Time) {
	w.mu.Lock()
	w.faults = append(w.faults, t)
	w.mu.Unlock()
	w.emit(cellLine{Kind: "mark", Mark: &bench.Mark{T: t.Sub(w.start).Seconds(), Kind: "fault"}})
}

func (w *faultWatch) faultTimes() []time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.faults
}

func (w *faultWatch) mark(now time.Time, kind string) {
	w.emit(cellLine{Kind: "mark", Mark: &bench.Mark{T: now.Sub(w.start).Seconds(), Kind: kind}})
}

// run polls every 2 ms until the returned stop is called.
func (w *faultWatch) run() (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		var noticed, restartsAt, deliveredAt uint64
		waiting := false // a noticed fault not yet recovered from
		lastSample := w.start
		var lastFaulty, lastOther, lastFound uint64
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				st := w.disp.Stats()
				// The time of this look, not the tick's: a tick read late is
				// older than a fault the counters already show.
				now := time.Now()
				b := st[0].Backends
				faults := w.faultTimes()
				events := b.Crashes + b.Hangs + b.Errors
				if k := len(w.detect); events > noticed && k < len(faults) && !waiting {
					w.detect = append(w.detect, now.Sub(faults[k]).Seconds()*1000)
					waiting, restartsAt, deliveredAt = true, b.Restarts, b.Delivered
					w.mark(now, "detected")
				}
				noticed = events
				// Recovered: restarted if it has a process, and taking events again.
				restarted := b.PID == 0 || b.Restarts > restartsAt
				if waiting && restarted && b.Delivered > deliveredAt && !b.BreakerOpen {
					w.recover = append(w.recover, now.Sub(faults[len(w.detect)-1]).Seconds()*1000)
					waiting = false
					w.mark(now, "recovered")
				}
				if dt := now.Sub(lastSample).Seconds(); dt >= 0.1 {
					f, o, n := b.Delivered, st[1].Backends.Delivered, w.found.n.Load()
					w.emit(cellLine{Kind: "sample", Sent: w.sent.Load(), Deliv: f, Sample: &bench.Sample{
						T: now.Sub(w.start).Seconds(), FaultyPerSec: float64(f-lastFaulty) / dt,
						OtherPerSec: float64(o-lastOther) / dt, FindingsPerSec: float64(n-lastFound) / dt}})
					lastSample, lastFaulty, lastOther, lastFound = now, f, o, n
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}
