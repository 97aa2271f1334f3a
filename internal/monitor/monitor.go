package monitor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends/goplugin/enclave"
	"github.com/bulkhead-sec/bulkhead/bpf"
	"github.com/bulkhead-sec/bulkhead/pipeline/decode"
	"github.com/bulkhead-sec/bulkhead/pipeline/dispatch"
	"github.com/bulkhead-sec/bulkhead/pipeline/enrich"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/sinks"
	"github.com/bulkhead-sec/bulkhead/pipeline/source"
	"go.uber.org/zap"
)

// Capture is what the kernel side and the reader need.
type Capture struct {
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

func DefaultCapture() Capture {
	return Capture{RingMiB: 16, WakeupKiB: 256, FlushInterval: 5 * time.Millisecond, Kinds: event.AllKindSet()}
}

// kernelKinds are the record kinds whose syscall hooks must be attached:
// those written out and those a detector wants. Process lifecycle hooks are
// always attached: the process table needs them.
func (c Capture) kernelKinds(d *dispatch.Dispatcher) []uint16 {
	var out []uint16
	for _, k := range event.AllKinds() {
		if c.Kinds.Has(k) || (d != nil && d.Wants(k)) {
			out = append(out, uint16(k))
		}
	}
	return out
}

// Monitor is the capture pipeline, wired explicitly:
// kernel → source.Reader → decode.Decoder → enrich.Table → sinks.Sink
//
//	↘ dispatch.Dispatcher → detectors
//
// Every stage up to the dispatcher runs on the reader's goroutine, in event
// order; each detector has its own queue and goroutine.
type Monitor struct {
	log     *zap.Logger
	cfg     Capture
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

// Start checks the host, loads and attaches the programs, seeds the
// process table and starts reading. Events go to sink (if not nil) and to
// the detectors behind d (if not nil). The caller stops it with Stop, which
// also closes d.
func Start(log *zap.Logger, cfg Capture, sink sinks.Sink, d *dispatch.Dispatcher) (*Monitor, error) {
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
	m := &Monitor{log: log, cfg: cfg, kernel: kernel, decoder: decode.New(), sink: sink, swap: make(chan swapRequest), done: make(chan struct{})}
	if d != nil {
		m.detect.Store(d)
	}
	fail := func(err error) (*Monitor, error) {
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
func (m *Monitor) Record(raw []byte) {
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

// Done is closed when the reader has returned: the monitor stopped, or
// the ring could not be read (Err says why).
func (m *Monitor) Done() <-chan struct{} { return m.done }

// Err is why the reader returned; valid once Done is closed.
func (m *Monitor) Err() error {
	select {
	case <-m.done:
		return m.runErr
	default:
		return nil
	}
}

// WriteErrors are the events the sink refused and its last error (nil:
// none); call it after Stop.
func (m *Monitor) WriteErrors() (uint64, error) { return m.sinkErrors, m.lastErr }

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
func (m *Monitor) publish() {
	m.live.Store(&userCounts{Reader: m.reader.Stats(), Decode: m.decoder.Stats(), Table: m.table.Stats(),
		Written: m.written, SinkErrors: m.sinkErrors})
	m.publishedAt = time.Now()
}

// Flush is called by the reader when the ring is dry or time is up.
func (m *Monitor) Flush() {
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

// Stop detaches the programs, drains the ring, flushes the sink and returns
// the summary. It is safe to call more than once.
func (m *Monitor) Stop() (Summary, error) {
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

// Summary is what a run saw and lost, layer by layer.
type Summary struct {
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

// WithOutput takes the output's own counts.
func (s *Summary) WithOutput(out *sinks.Locked) {
	if out == nil {
		return
	}
	if st, ok := out.Stats(); ok {
		s.Output, s.Counted = st, true
		s.Written, s.SinkErrors = st.Written, st.EventsLost
	}
}

// summary is the final account; call it after the reader has returned.
func (m *Monitor) summary() Summary {
	m.publish()
	return m.liveSummary()
}

// liveSummary is the account so far, safe from any goroutine: the kernel's
// and the detectors' counts are current, the reader's at most publishEvery
// old.
func (m *Monitor) liveSummary() Summary {
	kc, err := m.kernel.Counters()
	if err != nil {
		m.log.Warn("kernel counters unavailable", zap.Error(err))
	}
	u := m.live.Load()
	if u == nil {
		u = &userCounts{}
	}
	s := Summary{
		Duration:   time.Since(m.started),
		Kernel:     kc,
		Reader:     u.Reader,
		Decode:     u.Decode,
		Table:      u.Table,
		Written:    u.Written,
		SinkErrors: u.SinkErrors,
		Skipped:    m.kernel.Skipped,
		Detectors:  m.DetectorStats(),
	}
	s.WithOutput(m.cfg.Output)
	return s
}

// DetectorStats are the detectors' counts, those replaced by a reload
// included.
func (m *Monitor) DetectorStats() []dispatch.LaneStats {
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
func (m *Monitor) replaceDetectors(ctx context.Context, next *dispatch.Dispatcher) error {
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
