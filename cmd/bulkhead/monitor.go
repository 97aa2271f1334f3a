package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/enclave"
	"github.com/bulkhead-sec/bulkhead/bpf"
	"github.com/bulkhead-sec/bulkhead/pipeline/decode"
	"github.com/bulkhead-sec/bulkhead/pipeline/dispatch"
	"github.com/bulkhead-sec/bulkhead/pipeline/enrich"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/export"
	"github.com/bulkhead-sec/bulkhead/pipeline/metrics"
	"github.com/bulkhead-sec/bulkhead/pipeline/sinks"
	"github.com/bulkhead-sec/bulkhead/pipeline/source"
	"go.uber.org/zap"
)

// captureConfig is what the kernel side and the reader need.
type captureConfig struct {
	RingMiB       int
	WakeupKiB     int
	FlushInterval time.Duration
	Kinds         event.KindSet // kinds written to the sink
	PIDs          bpf.Filter[uint32]
	Comms         bpf.Filter[string]
	Cgroups       bpf.Filter[uint64]
	// EnvNames are the environment variables captured at exec; nil means
	// bpf.DefaultEnvNames.
	EnvNames []string
	// SysExitBTF: see bpf.Options.
	SysExitBTF bool
	// Output, when set, is the sink whose own counts (written, lost) the
	// summary and the metrics report, events and findings alike.
	Output *sinks.Locked
}

func defaultCaptureConfig() captureConfig {
	return captureConfig{RingMiB: 16, WakeupKiB: 256, FlushInterval: 5 * time.Millisecond, Kinds: event.AllKindSet()}
}

// kernelKinds are the record kinds whose syscall hooks must be attached:
// those written out and those a detector wants. Process lifecycle hooks are
// always attached: the process table needs them.
func (c captureConfig) kernelKinds(d *dispatch.Dispatcher) []uint16 {
	var out []uint16
	for _, k := range event.AllKinds() {
		if c.Kinds.Has(k) || (d != nil && d.Wants(k)) {
			out = append(out, uint16(k))
		}
	}
	return out
}

// monitor is the capture pipeline, wired explicitly:
// kernel → source.Reader → decode.Decoder → enrich.Table → sinks.Sink
//
//	↘ dispatch.Dispatcher → detectors
//
// Every stage up to the dispatcher runs on the reader's goroutine, in event
// order; each detector has its own queue and goroutine.
type monitor struct {
	log     *zap.Logger
	cfg     captureConfig
	kernel  *bpf.Kernel
	reader  *source.Reader
	decoder *decode.Decoder
	table   *enrich.Table
	sink    sinks.Sink // nil: events are not written out
	// detect is the dispatcher (nil: no detectors). Only the reader
	// goroutine changes it (swap), between two events; others only load.
	detect  atomic.Pointer[dispatch.Dispatcher]
	swap    chan swapRequest
	retired retiredLanes // the counts of dispatchers replaced by a reload

	ev         event.Event // reused for every record
	written    [event.KindCount]uint64
	sinkErrors uint64
	lastErr    error
	// live is what the reader goroutine last published of its own counts,
	// for readers on other goroutines (the metrics endpoint).
	live        atomic.Pointer[userCounts]
	publishedAt time.Time

	stopOnce sync.Once
	cancel   context.CancelFunc
	done     chan struct{} // closed when the reader returns
	runErr   error         // the reader's error; read after done
	started  time.Time
}

// startMonitor checks the host, loads and attaches the programs, seeds the
// process table and starts reading. Events go to sink (if not nil) and to
// the detectors behind d (if not nil). The caller stops it with stop, which
// also closes d.
func startMonitor(log *zap.Logger, cfg captureConfig, sink sinks.Sink, d *dispatch.Dispatcher) (*monitor, error) {
	if err := bpf.Preflight(); err != nil {
		return nil, fmt.Errorf("this host cannot run the monitor yet:\n%w", err)
	}
	kernel, err := bpf.Load(bpf.Options{
		RingBytes:   uint32(cfg.RingMiB) << 20,
		WakeupBytes: uint64(cfg.WakeupKiB) << 10,
		SelfPID:     uint32(os.Getpid()),
		PIDs:        cfg.PIDs,
		Comms:       cfg.Comms,
		Cgroups:     cfg.Cgroups,
		EnvNames:    cfg.EnvNames,

		SysExitBTF: cfg.SysExitBTF,
	})
	if err != nil {
		return nil, err
	}
	m := &monitor{log: log, cfg: cfg, kernel: kernel, decoder: decode.New(), sink: sink, swap: make(chan swapRequest), done: make(chan struct{})}
	if d != nil {
		m.detect.Store(d)
	}
	fail := func(err error) (*monitor, error) {
		kernel.Close()
		return nil, err
	}
	if err := kernel.Attach(cfg.kernelKinds(d)); err != nil {
		return fail(err)
	}
	for _, s := range kernel.Skipped {
		log.Warn("hook not available on this kernel; its events will not be seen", zap.String("hook", s))
	}
	log.Info("programs attached", zap.Int("hooks", len(kernel.Attached)), zap.Int("ring_mib", cfg.RingMiB))

	opts := enrich.DefaultOptions()
	if cg, err := enrich.NewCgroups("/proc/self/mountinfo"); err != nil {
		log.Warn("cgroup paths and container ids unavailable", zap.Error(err))
	} else {
		opts.Cgroups = cg
	}
	m.table = enrich.New(opts, log.Named("enrich"))
	// Attached first, seeded second: a process that starts in between is
	// both in /proc and in the ring, never in neither.
	n, err := m.table.Seed()
	if err != nil {
		return fail(fmt.Errorf("seed the process table from /proc: %w", err))
	}
	log.Info("process table seeded", zap.Int("processes", n))

	m.reader, err = source.New(kernel.Events(), cfg.FlushInterval)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.started = time.Now()
	go func() {
		m.runErr = m.reader.Run(ctx, m)
		close(m.done)
	}()
	return m, nil
}

// Record is the pipeline's hot path, called by the reader per record.
func (m *monitor) Record(raw []byte) {
	if m.decoder.Decode(raw, &m.ev) != nil {
		return // counted by the decoder
	}
	m.table.Enrich(&m.ev)
	if d := m.detect.Load(); d != nil {
		d.Add(&m.ev)
	}
	if m.sink == nil || !m.cfg.Kinds.Has(m.ev.Kind) {
		return
	}
	if err := m.sink.Write(&m.ev); err != nil {
		m.sinkErrors++
		m.lastErr = err
		return
	}
	m.written[m.ev.Kind]++
}

// userCounts are the counts kept on the reader's goroutine.
type userCounts struct {
	Reader     source.Stats
	Decode     decode.Stats
	Table      enrich.Stats
	Written    [event.KindCount]uint64
	SinkErrors uint64
}

// publishEvery bounds how stale the published counts are.
const publishEvery = 100 * time.Millisecond

// publish copies the reader goroutine's counts for other goroutines.
func (m *monitor) publish() {
	m.live.Store(&userCounts{Reader: m.reader.Stats(), Decode: m.decoder.Stats(), Table: m.table.Stats(),
		Written: m.written, SinkErrors: m.sinkErrors})
	m.publishedAt = time.Now()
}

// Flush is called by the reader when the ring is dry or time is up.
func (m *monitor) Flush() {
	if time.Since(m.publishedAt) >= publishEvery {
		m.publish()
	}
	if d := m.detect.Load(); d != nil {
		d.Flush()
	}
	select {
	case req := <-m.swap:
		req.replaced <- m.detect.Swap(req.next)
	default:
	}
	if m.sink == nil {
		return
	}
	if err := m.sink.Flush(); err != nil {
		m.lastErr = err
		if m.cfg.Output == nil {
			m.sinkErrors++ // a sink that does not count its own losses
		}
	}
}

// stop detaches the programs, drains the ring, flushes the sink and returns
// the summary. It is safe to call more than once.
func (m *monitor) stop() (summary, error) {
	var runErr error
	m.stopOnce.Do(func() {
		detachErr := m.kernel.Detach()
		m.cancel()
		<-m.done
		runErr = errors.Join(m.runErr, detachErr)
		if d := m.detect.Load(); d != nil {
			// Capture is drained: let every detector finish its queue.
			runErr = errors.Join(runErr, d.Close(context.Background()))
			// A plugin abandoned at stop (still busy when the drain timed
			// out) is never closed: its processes, cgroup and directory go
			// here, so nothing of this monitor outlives it.
			for _, what := range enclave.Sweep() {
				m.log.Warn("removed at stop what an abandoned plugin left", zap.String("removed", what))
			}
		}
		if m.sink != nil {
			m.Flush()
		}
	})
	s := m.summary()
	closeErr := errors.Join(m.reader.Close(), m.kernel.Close())
	return s, errors.Join(runErr, closeErr)
}

// summary is what a run saw and lost, layer by layer.
type summary struct {
	Duration   time.Duration
	Kernel     bpf.Counters
	Reader     source.Stats
	Decode     decode.Stats
	Table      enrich.Stats
	Written    [event.KindCount]uint64
	SinkErrors uint64 // events not written
	// Output is the output's own account, when it keeps one (Counted):
	// then Written and SinkErrors are its counts too.
	Output    sinks.Stats
	Counted   bool
	Skipped   []string
	Detectors []dispatch.LaneStats
}

// withOutput takes the output's own counts.
func (s *summary) withOutput(out *sinks.Locked) {
	if out == nil {
		return
	}
	if st, ok := out.Stats(); ok {
		s.Output, s.Counted = st, true
		s.Written, s.SinkErrors = st.Written, st.EventsLost
	}
}

// summary is the final account; call it after the reader has returned.
func (m *monitor) summary() summary {
	m.publish()
	return m.liveSummary()
}

// liveSummary is the account so far, safe from any goroutine: the kernel's
// and the detectors' counts are current, the reader's at most publishEvery
// old.
func (m *monitor) liveSummary() summary {
	kc, err := m.kernel.Counters()
	if err != nil {
		m.log.Warn("kernel counters unavailable", zap.Error(err))
	}
	u := m.live.Load()
	if u == nil {
		u = &userCounts{}
	}
	s := summary{
		Duration:   time.Since(m.started),
		Kernel:     kc,
		Reader:     u.Reader,
		Decode:     u.Decode,
		Table:      u.Table,
		Written:    u.Written,
		SinkErrors: u.SinkErrors,
		Skipped:    m.kernel.Skipped,
		Detectors:  m.detectorStats(),
	}
	s.withOutput(m.cfg.Output)
	return s
}

func (m *monitor) detectorStats() []dispatch.LaneStats {
	var now []dispatch.LaneStats
	if d := m.detect.Load(); d != nil {
		now = d.Stats()
	}
	return m.retired.mergeInto(now)
}

type swapRequest struct {
	next     *dispatch.Dispatcher
	replaced chan *dispatch.Dispatcher
}

// replaceDetectors makes the reader send events to next from its next
// flush on (within the flush interval), closes the dispatcher it replaced
// once that has drained, and keeps its counts. It returns Close's error.
func (m *monitor) replaceDetectors(ctx context.Context, next *dispatch.Dispatcher) error {
	req := swapRequest{next: next, replaced: make(chan *dispatch.Dispatcher, 1)}
	select {
	case m.swap <- req:
	case <-m.done:
		if next != nil {
			next.Close(ctx)
		}
		return errors.New("the monitor has stopped: the new detectors were closed")
	}
	old := <-req.replaced
	if old == nil {
		return nil
	}
	err := old.Close(ctx)
	m.retired.add(old.Stats())
	return err
}

// retiredLanes are the final counts of detectors replaced by a reload, so
// the summary and the metrics keep counting from where they were.
type retiredLanes struct {
	mu    sync.Mutex
	lanes []dispatch.LaneStats
}

func (r *retiredLanes) add(lanes []dispatch.LaneStats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lanes = mergeLanes(r.lanes, lanes)
}

// mergeInto adds the retired counts to the current detectors of the same
// name; a retired detector no longer configured keeps its own row.
func (r *retiredLanes) mergeInto(now []dispatch.LaneStats) []dispatch.LaneStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lanes) == 0 {
		return now
	}
	return mergeLanes(append([]dispatch.LaneStats(nil), now...), r.lanes)
}

// mergeLanes adds each of from to the lane of into with the same name and
// backend, or appends it.
func mergeLanes(into, from []dispatch.LaneStats) []dispatch.LaneStats {
	for _, l := range from {
		merged := false
		for i := range into {
			if into[i].Name == l.Name && into[i].Backend == l.Backend {
				into[i], merged = into[i].Plus(l), true
			}
		}
		if !merged {
			into = append(into, l)
		}
	}
	return into
}

func (s summary) print(w io.Writer) {
	fmt.Fprintf(w, "\nbulkhead summary (%s)\n", s.Duration.Round(time.Millisecond))
	fmt.Fprintf(w, "  %-10s %12s %12s %12s %12s\n", "kind", "kernel sent", "ring full", "decoded", "written")
	for _, k := range event.AllKinds() {
		fmt.Fprintf(w, "  %-10s %12d %12d %12d %12d\n", k, s.Kernel.Emitted[k], s.Kernel.Dropped[k], s.Decode.Decoded[k], s.Written[k])
	}
	fmt.Fprintf(w, "  dropped by layer:\n")
	fmt.Fprintf(w, "    kernel: ring buffer full       %d\n", s.Kernel.RingFull())
	fmt.Fprintf(w, "    kernel: enter/exit unpaired    %d (exit without enter %d, no task storage %d; stale enters replaced %d)\n",
		s.Kernel.PairMissing+s.Kernel.PairFull, s.Kernel.PairMissing, s.Kernel.PairFull, s.Kernel.PairOverwritten)
	fmt.Fprintf(w, "    kernel: program runs skipped   %d (recursion)\n", s.Kernel.RecursionMisses)
	fmt.Fprintf(w, "    decode: malformed records      %d (short %d, unknown kind %d, bad string %d)\n",
		s.Decode.Errors(), s.Decode.Short, s.Decode.UnknownKind, s.Decode.BadString)
	fmt.Fprintf(w, "    output: no queue (a slow sink backs up into the ring, counted above)\n")
	fmt.Fprintf(w, "    output: events not written     %d\n", s.SinkErrors)
	if s.Counted {
		fmt.Fprintf(w, "    output: findings not written   %d (%d written)\n", s.Output.FindingsLost, s.Output.Findings)
		fmt.Fprintf(w, "    output: failed writes          %d (writing worked again %d times)\n", s.Output.WriteErrors, s.Output.Recoveries)
	}
	fmt.Fprintf(w, "  reader: %d records, %d bytes, %d kernel wake-ups, %d deadline polls\n",
		s.Reader.Records, s.Reader.Bytes, s.Kernel.Wakeups, s.Reader.Polls)
	printDetectors(w, s.Detectors)
	fmt.Fprintf(w, "  processes: %d tracked, %d forks, %d execs, %d exits, %d read from /proc, %d evicted\n",
		s.Table.Processes, s.Table.Forks, s.Table.Execs, s.Table.Exits, s.Table.ProcLookups, s.Table.Evicted)
	if len(s.Skipped) > 0 {
		fmt.Fprintf(w, "  not available on this kernel: %s\n", strings.Join(s.Skipped, ", "))
	}
}

// printDetectors writes a row per detector: what it was given, found and
// lost, and how its backend fared.
func printDetectors(w io.Writer, lanes []dispatch.LaneStats) {
	if len(lanes) == 0 {
		return
	}
	fmt.Fprintf(w, "  detectors:\n    %-14s %-14s %10s %9s %10s %9s %7s %9s %8s %7s %9s %7s %6s %8s %10s %11s %7s\n", "name", "backend", "queued", "filtered", "delivered",
		"findings", "errors", "shed", "unavail", "failed", "abandoned", "crashes", "hangs", "restarts", "redeliver", "quarantine", "breaker")
	for _, d := range lanes {
		b := d.Backends
		breaker := "closed"
		if b.BreakerOpen {
			breaker = "OPEN"
		}
		fmt.Fprintf(w, "    %-14s %-14s %10d %9d %10d %9d %7d %9d %8d %7d %9d %7d %6d %8d %10d %11d %7s%s\n", d.Name, d.Backend, d.Queued, d.Filtered, d.Delivered,
			b.Findings, b.Errors, d.Shed, d.Unavailable, d.Failed, d.Abandoned, b.Crashes, b.Hangs, b.Restarts, b.Redelivered, b.Quarantined, breaker, enclaveKills(d.Backend, b))
	}
}

// enclaveKills notes the plugin processes the enclave killed, if any (a
// wasm module's instances ended at its memory limit).
func enclaveKills(backend string, b backends.Stats) string {
	s := ""
	if backend == "wasm" && b.LimitKills > 0 {
		s = fmt.Sprintf("  instances ended at the memory limit: %d", b.LimitKills)
	} else if b.Violations+b.LimitKills > 0 {
		s = fmt.Sprintf("  enclave killed: %d for forbidden system calls, %d at limits", b.Violations, b.LimitKills)
	}
	if b.ProtocolViolations > 0 {
		s += fmt.Sprintf("  protocol violations: %d (%d findings refused, %d log lines dropped)", b.ProtocolViolations, b.FindingsRefused, b.LogLinesDropped)
	}
	if b.RingFull > 0 {
		s += fmt.Sprintf("  ring full: %d batches", b.RingFull)
	}
	return s
}

// serveMetrics starts the Prometheus endpoint on the monitor's counters.
func serveMetrics(addr string, m *monitor, exp *export.Exporter, log *zap.Logger) (*metrics.Server, error) {
	c := metrics.NewCollector(func() metrics.Snapshot {
		s := m.liveSummary()
		used, size := m.reader.Fill()
		snap := metrics.Snapshot{Kernel: s.Kernel, Decode: s.Decode, Written: s.Written, SinkErrors: s.SinkErrors, FindingsLost: s.Output.FindingsLost,
			Processes: s.Table.Processes, RingUsed: used, RingSize: size, Detectors: s.Detectors}
		if exp != nil {
			es := exp.Stats()
			snap.Export = &es
		}
		return snap
	})
	srv, err := metrics.Serve(addr, c, log.Named("metrics"))
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	a := srv.Addr().(*net.TCPAddr)
	log.Info("serving metrics", zap.String("url", fmt.Sprintf("http://%s/metrics", a)))
	if !a.IP.IsLoopback() {
		log.Warn("the metrics endpoint is reachable from other hosts; it has no authentication", zap.String("addr", a.String()))
	}
	return srv, nil
}
