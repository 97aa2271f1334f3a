package goplugin

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/wire"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
	plugin "github.com/hashicorp/go-plugin"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Options configure one plugin.
type Options struct {
	Path   string        // the plugin binary
	Config detect.Config // handed to the detector's Init
	// BatchDeadline: a batch not answered by then means the plugin hangs;
	// it is killed, restarted, and the batch sent again.
	BatchDeadline time.Duration
	// StartTimeout bounds the handshake, Describe and Init.
	StartTimeout time.Duration
	// Restarts back off exponentially from BackoffInitial to BackoffMax,
	// with ±25% jitter; the first restart after a healthy spell is at once.
	BackoffInitial, BackoffMax time.Duration
	// The breaker opens after BreakerCrashes crashes within BreakerWindow
	// with no batch answered in between: no restart until BreakerCooldown
	// has passed, events are shed.
	BreakerCrashes  int
	BreakerWindow   time.Duration
	BreakerCooldown time.Duration
	// PoisonAttempts: an event that kills the plugin this many times on its
	// own is quarantined (reported, not retried). A batch is retried whole
	// once, then split; with PoisonAttempts 2 a poison event costs 4 crashes,
	// below the breaker's default 5.
	PoisonAttempts int
	// Unary sends each batch as its own RPC instead of on the stream: the
	// naive baseline the benchmarks compare against.
	Unary bool
}

// DefaultOptions are sensible for a host.
func DefaultOptions(path string) Options {
	return Options{
		Path: path, BatchDeadline: 2 * time.Second, StartTimeout: 10 * time.Second,
		BackoffInitial: 50 * time.Millisecond, BackoffMax: 5 * time.Second,
		BreakerCrashes: 5, BreakerWindow: 10 * time.Second, BreakerCooldown: 60 * time.Second,
		PoisonAttempts: 2,
	}
}

// Backend runs a detector in its own process, supervised. All plugin state
// is owned by one goroutine (loop); Deliver hands it batches.
type Backend struct {
	opts Options
	log  *zap.Logger
	def  detect.Definition
	reqs chan request
	done chan struct{}

	// Owned by loop.
	proc         *process
	enc          *wire.Encoder
	seq          uint64
	timer        *time.Timer
	crashTimes   []time.Time
	healthy      bool // a batch succeeded since the last crash
	consecutive  int  // restarts since the last healthy batch
	breakerUntil time.Time

	delivered, findings, errs, crashes, hangs, restarts, redelivered, quarantined atomic.Uint64
	breakerOpen                                                                   atomic.Bool
	pid                                                                           atomic.Int64
}

type request struct {
	ctx    context.Context
	events []*event.Event
	reply  chan reply
}

type reply struct {
	findings []detect.Finding
	err      error
}

// New starts the plugin, checks it is a bulkhead detector plugin, and
// initialises it. Errors name what is wrong with the binary.
func New(opts Options, log *zap.Logger) (*Backend, error) {
	if st, err := os.Stat(opts.Path); err != nil {
		return nil, fmt.Errorf("plugin binary %s: %w", opts.Path, err)
	} else if st.IsDir() || st.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("plugin binary %s: not an executable file", opts.Path)
	}
	b := &Backend{opts: opts, log: log, reqs: make(chan request), done: make(chan struct{}), enc: wire.NewEncoder(),
		timer: time.NewTimer(time.Hour)}
	b.timer.Stop()
	proc, def, err := b.start()
	if err != nil {
		return nil, err
	}
	b.proc, b.def = proc, def
	go b.loop()
	return b, nil
}

func (b *Backend) Definition() detect.Definition { return b.def }

// Deliver sends events to the plugin and waits for its findings. A crash
// or hang on the way is handled inside: the plugin is restarted and the
// events are sent again, so they are delivered at least once.
func (b *Backend) Deliver(ctx context.Context, events []*event.Event) ([]detect.Finding, error) {
	if len(events) == 0 {
		return nil, nil
	}
	r := request{ctx: ctx, events: events, reply: make(chan reply, 1)}
	select {
	case b.reqs <- r:
	case <-b.done:
		return nil, backends.ErrUnavailable
	}
	rep := <-r.reply
	return rep.findings, rep.err
}

func (b *Backend) Stats() backends.Stats {
	return backends.Stats{
		Delivered: b.delivered.Load(), Findings: b.findings.Load(), Errors: b.errs.Load(),
		Crashes: b.crashes.Load(), Hangs: b.hangs.Load(), Restarts: b.restarts.Load(),
		Redelivered: b.redelivered.Load(), Quarantined: b.quarantined.Load(),
		BreakerOpen: b.breakerOpen.Load(), PID: int(b.pid.Load()),
	}
}

// Close stops the plugin and waits for its process to be gone.
func (b *Backend) Close(ctx context.Context) error {
	select {
	case <-b.done:
		return nil
	default:
	}
	r := request{ctx: ctx, reply: make(chan reply, 1)} // nil events: stop
	b.reqs <- r
	return (<-r.reply).err
}

func (b *Backend) loop() {
	for {
		var died <-chan error
		if b.proc != nil {
			died = b.proc.errs
		}
		select {
		case r := <-b.reqs:
			if r.events == nil {
				r.reply <- reply{err: b.stop(r.ctx)}
				close(b.done)
				return
			}
			fs, err := b.deliver(r.ctx, r.events)
			r.reply <- reply{fs, err}
		case err := <-died:
			// Died between batches: notice now, restart now, so the next
			// batch does not wait for it.
			b.crashed(err, false)
			_ = b.ensureRunning()
		}
	}
}

// deliver sends events until the plugin has answered for all of them.
func (b *Backend) deliver(ctx context.Context, events []*event.Event) ([]detect.Finding, error) {
	for attempt := 1; ; attempt++ {
		if err := b.ensureRunning(); err != nil {
			return nil, err
		}
		fs, err := b.roundTrip(ctx, events)
		if err == nil {
			b.delivered.Add(uint64(len(events)))
			b.findings.Add(uint64(len(fs)))
			// Progress: earlier crashes were not a loop.
			b.healthy, b.consecutive = true, 0
			b.crashTimes = b.crashTimes[:0]
			return fs, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		b.crashed(err, errors.Is(err, errHang))
		switch {
		case len(events) > 1 && attempt >= 2:
			// The batch itself may be the cause: find the event.
			return b.deliverEach(ctx, events)
		case len(events) == 1 && attempt >= b.opts.PoisonAttempts:
			b.quarantine(events[0], err)
			return nil, nil
		}
		b.redelivered.Add(uint64(len(events)))
	}
}

// deliverEach sends a batch that keeps killing the plugin one event at a
// time, so that only a poison event is given up on.
func (b *Backend) deliverEach(ctx context.Context, events []*event.Event) ([]detect.Finding, error) {
	var out []detect.Finding
	for i := range events {
		fs, err := b.deliver(ctx, events[i:i+1])
		if err != nil {
			return out, err
		}
		out = append(out, fs...)
	}
	return out, nil
}

func (b *Backend) quarantine(ev *event.Event, err error) {
	b.quarantined.Add(1)
	b.log.Error("poison event quarantined: it killed the detector plugin every time it was sent alone",
		zap.Int("attempts", b.opts.PoisonAttempts), zap.Error(err),
		zap.String("kind", ev.Kind.String()), zap.Uint32("pid", ev.PID), zap.String("comm", ev.Comm),
		zap.Uint64("kernel_time_ns", ev.KernelTimeNs), zap.String("path", ev.Open.Resolved), zap.String("exe", ev.Exec.Exe))
}

var errHang = errors.New("no answer within the batch deadline")

// roundTrip sends one batch and waits for its result.
func (b *Backend) roundTrip(ctx context.Context, events []*event.Event) ([]detect.Finding, error) {
	b.enc.Reset()
	for _, ev := range events {
		b.enc.Add(ev)
	}
	b.seq++
	batch := &wire.Batch{Seq: b.seq, Events: b.enc.Bytes(), Count: b.enc.Count()}
	var res *wire.Result
	if b.opts.Unary {
		cctx, cancel := context.WithTimeout(ctx, b.opts.BatchDeadline)
		r, err := b.proc.rpc.Process(cctx, batch)
		cancel()
		if status.Code(err) == codes.DeadlineExceeded {
			return nil, errHang
		}
		if err != nil {
			return nil, err
		}
		res = r
	} else {
		if err := b.proc.stream.Send(batch); err != nil {
			return nil, fmt.Errorf("send batch: %w", err)
		}
		b.timer.Reset(b.opts.BatchDeadline)
		select {
		case res = <-b.proc.results:
			b.timer.Stop()
		case err := <-b.proc.errs:
			b.timer.Stop()
			return nil, err
		case <-b.timer.C:
			return nil, errHang
		case <-ctx.Done():
			b.timer.Stop()
			return nil, ctx.Err()
		}
		if res.Seq != b.seq {
			return nil, fmt.Errorf("plugin answered batch %d, expected %d", res.Seq, b.seq)
		}
	}
	if res.Errors > 0 {
		b.errs.Add(uint64(res.Errors))
		b.log.Debug("detector returned errors", zap.Uint32("errors", res.Errors), zap.String("last", res.LastError))
	}
	out := make([]detect.Finding, 0, len(res.Findings))
	for _, p := range res.Findings {
		f, err := wire.FindingFromProto(p, events)
		if err != nil {
			b.errs.Add(1)
			b.log.Warn("malformed finding from plugin", zap.Error(err))
			continue
		}
		out = append(out, f)
	}
	return out, nil
}

// crashed records the death (or hang) of the current process and kills
// what is left of it.
func (b *Backend) crashed(err error, hang bool) {
	if b.proc == nil {
		return
	}
	if hang {
		b.hangs.Add(1)
	} else {
		b.crashes.Add(1)
	}
	b.log.Warn("detector plugin failed; restarting it", zap.Bool("hang", hang), zap.Int("pid", b.proc.pid), zap.Error(err))
	b.proc.kill()
	b.proc = nil
	b.pid.Store(0)
	now := time.Now()
	recent := b.crashTimes[:0]
	for _, t := range b.crashTimes {
		if now.Sub(t) < b.opts.BreakerWindow {
			recent = append(recent, t)
		}
	}
	b.crashTimes = append(recent, now)
	if len(b.crashTimes) >= b.opts.BreakerCrashes {
		b.breakerUntil = now.Add(b.opts.BreakerCooldown)
		b.breakerOpen.Store(true)
		b.crashTimes = b.crashTimes[:0]
		b.log.Error("detector plugin is crash-looping: circuit breaker open, its events are shed until the cool-down ends",
			zap.Int("crashes", b.opts.BreakerCrashes), zap.Duration("window", b.opts.BreakerWindow),
			zap.Duration("cooldown", b.opts.BreakerCooldown))
	}
	if b.healthy {
		b.consecutive = 0
	}
	b.healthy = false
}

// ensureRunning starts a new process if there is none, after the backoff;
// with the breaker open it returns ErrUnavailable at once.
func (b *Backend) ensureRunning() error {
	for b.proc == nil {
		if time.Now().Before(b.breakerUntil) {
			return backends.ErrUnavailable
		}
		b.breakerOpen.Store(false)
		time.Sleep(b.backoff())
		b.consecutive++
		proc, _, err := b.start()
		if err != nil {
			b.log.Warn("detector plugin did not start", zap.Error(err))
			b.crashes.Add(1)
			b.crashTimes = append(b.crashTimes, time.Now())
			if len(b.crashTimes) >= b.opts.BreakerCrashes {
				b.breakerUntil = time.Now().Add(b.opts.BreakerCooldown)
				b.breakerOpen.Store(true)
				b.crashTimes = b.crashTimes[:0]
			}
			continue
		}
		b.proc = proc
		b.restarts.Add(1)
		b.log.Info("detector plugin restarted", zap.Int("pid", proc.pid), zap.Uint64("restarts", b.restarts.Load()))
	}
	return nil
}

// backoff is 0 for the first restart, then BackoffInitial doubling up to
// BackoffMax, each ±25%.
func (b *Backend) backoff() time.Duration {
	if b.consecutive == 0 {
		return 0
	}
	d := b.opts.BackoffInitial << min(b.consecutive-1, 20)
	d = min(d, b.opts.BackoffMax)
	return time.Duration(float64(d) * (0.75 + rand.Float64()/2))
}

func (b *Backend) stop(ctx context.Context) error {
	if b.proc == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	_, err := b.proc.rpc.Close(cctx, &wire.CloseRequest{})
	cancel()
	// Graceful: go-plugin asks the plugin to exit, and kills it after 2s.
	close(b.proc.quit)
	if b.proc.cancel != nil {
		b.proc.cancel()
	}
	b.proc.client.Kill()
	b.proc = nil
	b.pid.Store(0)
	if err != nil {
		return fmt.Errorf("close detector %s: %w", b.def.Name, err)
	}
	return nil
}

// process is one running plugin.
type process struct {
	client  *plugin.Client
	cmd     *exec.Cmd
	rpc     wire.DetectorClient
	stream  wire.Detector_StreamClient
	cancel  context.CancelFunc
	results chan *wire.Result
	errs    chan error
	quit    chan struct{} // closed by kill: read stops
	pid     int
}

// start launches the binary, shakes hands, describes and initialises it,
// and opens the batch stream.
func (b *Backend) start() (*process, detect.Definition, error) {
	var def detect.Definition
	cmd := exec.Command(b.opts.Path)
	// If the monitor dies, the kernel kills its plugins (and the SDK's own
	// watch on its parent catches the rest): no orphans.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  wire.Handshake(),
		Plugins:          plugin.PluginSet{wire.PluginName: &clientPlugin{}},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           newHCLog(b.log),
		StartTimeout:     b.opts.StartTimeout,
	})
	p := &process{client: client, cmd: cmd, results: make(chan *wire.Result, 1), errs: make(chan error, 1), quit: make(chan struct{})}
	fail := func(what string, err error) (*process, detect.Definition, error) {
		client.Kill()
		return nil, def, fmt.Errorf("plugin %s: %s: %w", b.opts.Path, what, err)
	}
	rpcClient, err := client.Client()
	if err != nil {
		return fail(fmt.Sprintf("not a bulkhead detector plugin, or one built for another protocol version (this monitor speaks version %d)", wire.ProtocolVersion), err)
	}
	raw, err := rpcClient.Dispense(wire.PluginName)
	if err != nil {
		return fail("dispense", err)
	}
	p.rpc = raw.(wire.DetectorClient)
	if rc := client.ReattachConfig(); rc != nil {
		p.pid = rc.Pid
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.StartTimeout)
	defer cancel()
	pd, err := p.rpc.Describe(ctx, &wire.DescribeRequest{})
	if err != nil {
		return fail("describe", err)
	}
	def = wire.DefinitionFromProto(pd)
	if err := def.Validate(); err != nil {
		return fail("definition", err)
	}
	if _, err := p.rpc.Init(ctx, &wire.InitRequest{ConfigJson: b.opts.Config}); err != nil {
		return fail("init", err)
	}
	if !b.opts.Unary {
		sctx, scancel := context.WithCancel(context.Background())
		p.cancel = scancel
		if p.stream, err = p.rpc.Stream(sctx); err != nil {
			return fail("open stream", err)
		}
		go p.read()
	}
	b.pid.Store(int64(p.pid))
	return p, def, nil
}

// read forwards the plugin's results; the first error, or kill, ends it.
func (p *process) read() {
	for {
		res, err := p.stream.Recv()
		if err != nil {
			select {
			case p.errs <- err:
			case <-p.quit:
			}
			return
		}
		select {
		case p.results <- res:
		case <-p.quit:
			return
		}
	}
}

// kill ends the process at once (a hung plugin gets no grace) and reaps it.
func (p *process) kill() {
	close(p.quit)
	if p.cmd.Process != nil {
		p.cmd.Process.Kill()
	}
	if p.cancel != nil {
		p.cancel()
	}
	p.client.Kill()
}

// clientPlugin is the monitor's side of go-plugin's plugin.GRPCPlugin.
type clientPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

func (clientPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("the monitor does not serve detectors")
}

func (clientPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return wire.NewDetectorClient(c), nil
}
