package suite

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends/goplugin"
	"github.com/bulkhead-sec/bulkhead/internal/bench"
	"github.com/bulkhead-sec/bulkhead/internal/config"
	"github.com/bulkhead-sec/bulkhead/internal/monitor"
	"github.com/bulkhead-sec/bulkhead/internal/procstat"
	"github.com/bulkhead-sec/bulkhead/pipeline/dispatch"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/probe"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
	"go.uber.org/zap"
)

// env is what every bench section shares.
type env struct {
	log       *zap.Logger
	pluginDir string // where bulkhead-plugin-* are
	enclave   bool   // goplugin detectors run in their enclave
	mtls      bool   // and with AutoMTLS
	capture   monitor.Capture
}

// plugin is the path of a plugin binary, or an error that says how to get it.
func (e env) plugin(name string) (string, error) {
	p := filepath.Join(e.pluginDir, "bulkhead-plugin-"+name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("the bench runs plugin %s from %s, which is missing: build the plugins next to bulkhead (make build), or point --plugins at them", name, p)
	}
	return p, nil
}

// module is the path of a detector's wasm module, or an error that says
// how to get it.
func (e env) module(name string) (string, error) {
	p := filepath.Join(e.pluginDir, "bulkhead-plugin-"+name+".wasm")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("the bench runs wasm module %s from %s, which is missing: build the modules next to bulkhead (make build), or point --plugins at them", name, p)
	}
	return p, nil
}

// detectorsConfig is n copies of a builtin detector on a backend, as
// `bulkhead run` would start them from a config file. batch 0 keeps the
// default; goplugin-naive always uses 1.
func (e env) detectorsConfig(name, backend string, n, batch int, cfg map[string]any) (config.File, error) {
	fc := config.File{Enclave: config.Enclave{Enabled: &e.enclave, MTLS: &e.mtls}}
	def := dispatch.DefaultOptions()
	fc.Dispatch = config.Dispatch{BatchSize: def.BatchSize, QueueBatches: def.QueueBatches, DrainTimeout: def.DrainTimeout}
	if batch > 0 {
		fc.Dispatch.BatchSize = batch
	}
	dc := config.Detector{Config: cfg}
	switch backend {
	case bench.InProc, bench.InProcRecover:
		dc.Backend, dc.Builtin, dc.RecoverPanics = "inproc", name, backend == bench.InProcRecover
	case bench.GoPlugin, bench.GoPluginGRPC, bench.GoPluginNaive:
		dc.Backend = "goplugin"
		switch backend {
		case bench.GoPluginGRPC:
			dc.Transport = goplugin.TransportGRPC
		case bench.GoPluginNaive:
			// One unary RPC per batch, batches of one: one RPC per event.
			dc.Backend, fc.Dispatch.BatchSize = "goplugin-unary", 1
		}
		p, err := e.plugin(name)
		if err != nil {
			return fc, err
		}
		dc.Plugin = p
	case bench.Wasm:
		dc.Backend = "wasm"
		p, err := e.module(name)
		if err != nil {
			return fc, err
		}
		dc.Module = p
	default:
		return fc, fmt.Errorf("unknown backend %q", backend)
	}
	for i := 0; i < n; i++ {
		dc.Name = fmt.Sprintf("%s-%d", name, i+1)
		fc.Detectors = append(fc.Detectors, dc)
	}
	return fc, nil
}

// syntheticOpen is an open event with process context, as the pipeline
// hands it to the dispatcher; the probe reports none of it unless asked.
func syntheticOpen(path string) *event.Event {
	ev := &event.Event{Header: event.Header{Kind: event.KindOpen, PID: 4242, TID: 4242, PPID: 1, Comm: "cat"}}
	ev.Open = event.Open{Syscall: "openat", Dfd: -100, Path: path, Resolved: path, Ret: 3}
	ev.Process = &event.Process{PID: 4242, Exe: "/usr/bin/cat", Comm: "cat", Args: "cat\x00" + path + "\x00",
		Ancestors: []event.Ancestor{{PID: 1, Exe: "/sbin/init", Comm: "init"}}}
	return ev
}

// replayThroughput pushes pre-decoded events into n probe detectors as
// fast as they take them, for d (the dispatcher blocks instead of
// shedding, so nothing is lost), and measures events/s until every
// detector has answered every event.
func replayThroughput(e env, backend string, n, batch int, d time.Duration) (bench.ThroughputCell, error) {
	c := bench.ThroughputCell{Source: bench.Replay, Backend: backend, Detectors: n, Batch: batch}
	fc, err := e.detectorsConfig("probe", backend, n, batch, nil)
	if err != nil {
		return c, err
	}
	c.Batch = fc.Dispatch.BatchSize
	resetPeakRSS()
	disp, err := monitor.StartDispatch(fc, true, func(detect.Finding) {}, e.log)
	if err != nil {
		return c, err
	}
	ev := syntheticOpen("/etc/hostname")
	monCPU, plugCPU := procstat.CPU(0), pluginCPU(disp)
	start := time.Now()
	deadline := start.Add(d)
	for time.Now().Before(deadline) {
		for i := 0; i < 256; i++ {
			ev.KernelTimeNs = c.Events
			disp.Add(ev)
			c.Events++
		}
	}
	disp.Drain()
	elapsed := time.Since(start)
	monUsed, plugUsed := procstat.CPU(0)-monCPU, pluginCPU(disp)-plugCPU
	c.PluginsPeakRSSBytes = pluginsPeakRSS(disp)
	c.MonitorPeakRSSBytes = procstat.Status("VmHWM")
	stats := disp.Stats()
	if err := disp.Close(context.Background()); err != nil {
		return c, err
	}
	c.Seconds = elapsed.Seconds()
	c.EventsPerSec = float64(c.Events) / c.Seconds
	for _, l := range stats {
		c.Delivered += l.Backends.Delivered
		c.Lost += l.Dropped()
	}
	if want := c.Events * uint64(n); c.Delivered+c.Lost < want {
		c.Lost = want - c.Delivered
	}
	c.MonitorCPUNsPerEvent = float64(monUsed.Nanoseconds()) / float64(c.Events)
	c.PluginCPUNsPerEvent = float64(plugUsed.Nanoseconds()) / float64(c.Events)
	return c, nil
}

// kernelThroughput runs the syscall storm with the monitor capturing it
// into n probe detectors: what they get of real kernel events, and what is
// lost on the way (in the kernel, or shed by a detector that cannot keep
// up: live capture never waits).
func kernelThroughput(e env, backend string, n int, d time.Duration) (bench.ThroughputCell, error) {
	c := bench.ThroughputCell{Source: bench.Kernel, Backend: backend, Detectors: n}
	fc, err := e.detectorsConfig("probe", backend, n, 0, nil)
	if err != nil {
		return c, err
	}
	c.Batch = fc.Dispatch.BatchSize
	r, err := monitoredStorm(e.log, e.capture, fc, "open", d, nil)
	if err != nil {
		return c, err
	}
	c.Seconds, c.Generated = r.Seconds, r.Generated
	c.Delivered, c.Lost = r.DetDelivered, r.Lost+r.DetDropped
	c.Events = r.DetDelivered / uint64(n)
	c.EventsPerSec = float64(c.Events) / c.Seconds
	c.MonitorPeakRSSBytes, c.PluginsPeakRSSBytes = r.PeakRSSBytes, r.PluginsPeakRSSBytes
	// Per event the detectors got: the storm's, and the host's own.
	if c.Events > 0 {
		perCaptured := float64(r.Delivered) / float64(c.Events)
		c.MonitorCPUNsPerEvent, c.PluginCPUNsPerEvent = r.MonitorCPUNsPerEv*perCaptured, r.PluginCPUNsPerEv*perCaptured
	}
	return c, nil
}

// latencySamples collects the probe's findings: for each, how long after
// the event's timestamp the detector had it and its finding came out.
type latencySamples struct {
	mu            sync.Mutex
	toDet, toFind []float64 // µs
	malformed     int
}

func (s *latencySamples) finding(f detect.Finding) {
	now := event.KernelNow()
	if f.Rule != probe.Rule || len(f.Events) == 0 {
		return
	}
	sent := f.Events[0].KernelTimeNs
	got, err := strconv.ParseUint(fmt.Sprint(f.Fields[probe.ReceivedField]), 10, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil || got < sent || now < got {
		s.malformed++
		return
	}
	s.toDet = append(s.toDet, float64(got-sent)/1e3)
	s.toFind = append(s.toFind, float64(now-sent)/1e3)
}

func (s *latencySamples) cell(c bench.LatencyCell) (bench.LatencyCell, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.malformed > 0 {
		return c, fmt.Errorf("%d latency samples had no usable %s field or went back in time", s.malformed, probe.ReceivedField)
	}
	c.Samples = len(s.toDet)
	c.KernelToDetector, c.KernelToFinding = bench.PercentilesOf(s.toDet), bench.PercentilesOf(s.toFind)
	return c, nil
}

// targetSamples is about how many latency samples a cell collects.
const targetSamples = 5000

// replayLatency offers events at a steady rate (open loop: each is stamped
// when it enters the dispatcher, and partial batches are flushed every
// --flush-interval, as the capture reader does on a quiet host) to one
// probe detector that reports a sample of them.
func replayLatency(e env, backend string, rate float64, d time.Duration) (bench.LatencyCell, error) {
	c := bench.LatencyCell{Source: bench.Replay, Backend: backend, RatePerSec: rate}
	every := max(1, int(rate*d.Seconds()/targetSamples))
	fc, err := e.detectorsConfig("probe", backend, 1, 0, map[string]any{"every": every})
	if err != nil {
		return c, err
	}
	var s latencySamples
	disp, err := monitor.StartDispatch(fc, false, s.finding, e.log)
	if err != nil {
		return c, err
	}
	ev := syntheticOpen("/etc/hostname")
	start := time.Now()
	var sent int
	for elapsed := time.Duration(0); elapsed < d; elapsed = time.Since(start) {
		for due := int(rate * elapsed.Seconds()); sent < due; sent++ {
			ev.KernelTimeNs = event.KernelNow()
			disp.Add(ev)
		}
		disp.Flush()
		time.Sleep(e.capture.FlushInterval)
	}
	disp.Drain()
	for _, l := range disp.Stats() {
		c.Dropped += l.Dropped()
	}
	if err := disp.Close(context.Background()); err != nil {
		return c, err
	}
	return s.cell(c)
}

// kernelLatency is the latency of real kernel events under the storm at
// full speed, into one probe detector.
func kernelLatency(e env, backend string, d time.Duration) (bench.LatencyCell, error) {
	c := bench.LatencyCell{Source: bench.Kernel, Backend: backend}
	// The storm makes up to a million events a second; fewer samples than
	// in replay, since each finding costs the saturated host CPU.
	every := max(1, int(1e6*d.Seconds()/(targetSamples/2)))
	fc, err := e.detectorsConfig("probe", backend, 1, 0, map[string]any{"every": every})
	if err != nil {
		return c, err
	}
	var s latencySamples
	r, err := monitoredStorm(e.log, e.capture, fc, "open", d, s.finding)
	if err != nil {
		return c, err
	}
	c.RatePerSec, c.Dropped = r.MonitoredPerSec, r.Lost+r.DetDropped
	return s.cell(c)
}

// hostRoundTrip is the latency section's control: one byte to `cat` and
// back over two pipes, once every 2 ms for d (both processes idle in
// between, as a monitor and a plugin are at the latency section's rate).
// It is what one hand-off from a process to another and back costs on
// this host, scheduler and hypervisor included: the floor under any
// out-of-process detector's latency.
func hostRoundTrip(d time.Duration) (bench.Percentiles, error) {
	cmd := exec.Command("cat")
	in, err := cmd.StdinPipe()
	if err != nil {
		return bench.Percentiles{}, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return bench.Percentiles{}, err
	}
	if err := cmd.Start(); err != nil {
		return bench.Percentiles{}, fmt.Errorf("host round trip: start cat: %w", err)
	}
	defer func() {
		in.Close()
		cmd.Wait()
	}()
	const every = 2 * time.Millisecond
	samples := make([]float64, 0, int(d/every)+1)
	b := []byte{'x'}
	for start := time.Now(); time.Since(start) < d; {
		time.Sleep(every)
		t := time.Now()
		if _, err := in.Write(b); err != nil {
			return bench.Percentiles{}, fmt.Errorf("host round trip: %w", err)
		}
		if _, err := io.ReadFull(out, b); err != nil {
			return bench.Percentiles{}, fmt.Errorf("host round trip: %w", err)
		}
		samples = append(samples, float64(time.Since(t).Nanoseconds())/1e3)
	}
	return bench.PercentilesOf(samples), nil
}
