package goplugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/enclave"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/shm"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/wire"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
	plugin "github.com/hashicorp/go-plugin"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
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
	// Window is how many batches may be in flight at once: the plugin
	// works on some while the next are encoded and sent.
	Window int
	// Unary sends each batch as its own RPC instead of on the stream, one at
	// a time: the naive baseline the benchmarks compare against.
	Unary bool
	// Transport is how batches reach the plugin on the stream: TransportGRPC
	// (messages on the gRPC stream, the default) or TransportShm (records in
	// a sealed shared-memory ring per process; results still come back on
	// the stream). See transport_shm.go.
	Transport string
	// RingBytes is the shm ring's data area (a power of two, 4 KiB to
	// 1 GiB; 0: DefaultRingBytes). It must hold Window batches of
	// BatchEvents events at RingEventBytes each.
	RingBytes int
	// BatchEvents is the most events a batch carries (the dispatcher's
	// batch size; 0: 256), for sizing the ring.
	BatchEvents int
	// SHA256, if set, is the binary's SHA-256 in hex: a binary that does
	// not match is not started.
	SHA256 string
	// MTLS authenticates and encrypts the connection (go-plugin's
	// AutoMTLS: a certificate per process, each side checks the other's).
	MTLS bool
	// Enclave, if set, runs every process of the plugin in it, started
	// through Launcher (a bulkhead binary: `bulkhead enclave-exec`). The
	// backend owns it from New on, and closes it.
	Enclave  *enclave.Enclave
	Launcher string
	// Limits bound what the plugin's answers can make the monitor hold:
	// what is over a bound is dropped (or cut), counted as a protocol
	// violation of the plugin and logged; a result over ResultBytes, or
	// one that is not a Result at all, gets the plugin killed.
	Limits wire.Limits
	// LogLinesPerSecond (with bursts of LogBurst) and LogBytesPerSecond
	// (with bursts of 16 s of it) bound the lines of the plugin's stderr
	// that reach the monitor's log; the rest are dropped, counted and
	// reported.
	LogLinesPerSecond, LogBurst, LogBytesPerSecond int
}

// DefaultOptions are sensible for a host.
func DefaultOptions(path string) Options {
	return Options{
		Path: path, BatchDeadline: 2 * time.Second, StartTimeout: 10 * time.Second,
		BackoffInitial: 50 * time.Millisecond, BackoffMax: 5 * time.Second,
		BreakerCrashes: 5, BreakerWindow: 10 * time.Second, BreakerCooldown: 60 * time.Second,
		PoisonAttempts: 2, Window: 16,
		Limits: wire.DefaultLimits(), LogLinesPerSecond: 50, LogBurst: 500, LogBytesPerSecond: 16 << 10,
	}
}

// Backend runs a detector in its own process, supervised. Submit encodes a
// batch on the caller's goroutine; everything about the plugin process is
// owned by one goroutine (loop).
type Backend struct {
	opts Options
	log  *zap.Logger
	def  detect.Definition
	enc  *wire.Encoder // Submit's
	reqs chan request
	done chan struct{}

	// Owned by loop.
	proc         *process
	splitEnc     *wire.Encoder // for batches split to find a poison event
	seq          uint64
	inflight     []*pending // sent, not yet answered, oldest first
	timer        *time.Timer
	crashTimes   []time.Time
	consecutive  int // restarts since the last answered batch
	breakerUntil time.Time
	// lastAnswer is when the plugin last answered a batch of the stream:
	// it works on one batch at a time, so the next batch's deadline runs
	// from then, not from when it was sent and queued behind others.
	lastAnswer time.Time

	delivered, findings, errs, crashes, hangs, restarts, redelivered, quarantined, violations, limitKills atomic.Uint64
	protocolViolations, findingsRefused, ringFull                                                         atomic.Uint64
	errLog, violationLog                                                                                  backends.Every
	breakerOpen                                                                                           atomic.Bool
	pid                                                                                                   atomic.Int64
	plog                                                                                                  *pluginLog // the plugin's stderr
}

type request struct {
	ctx   context.Context
	batch *pending // nil: stop
	stop  func(error)
}

// pending is a batch on its way through the plugin. It keeps the encoded
// batch (a reference of its own on the buffer), not the events: about a
// fifth of their size, and enough to send again after a crash.
type pending struct {
	ctx      context.Context
	buf      mem.Buffer
	count    int
	done     backends.Done
	seq      uint64
	sentAt   time.Time
	failures int // times the plugin died while this was the oldest batch
}

// New starts the plugin, checks it is a bulkhead detector plugin, and
// initialises it. Errors name what is wrong with the binary.
func New(opts Options, log *zap.Logger) (b *Backend, err error) {
	if opts.Enclave != nil {
		defer func() {
			if err != nil {
				opts.Enclave.Close()
			}
		}()
	}
	if st, err := os.Stat(opts.Path); err != nil {
		return nil, fmt.Errorf("plugin binary %s: %w", opts.Path, err)
	} else if st.IsDir() || st.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("plugin binary %s: not an executable file", opts.Path)
	}
	if err := enclave.CheckSHA256(opts.Path, opts.SHA256); err != nil {
		return nil, err
	}
	if opts.Enclave != nil && opts.Launcher == "" {
		return nil, errors.New("an enclave needs a launcher: the path of a bulkhead binary")
	}
	if opts.Window < 1 || opts.Unary {
		opts.Window = 1
	}
	if err := checkTransport(&opts); err != nil {
		return nil, err
	}
	if opts.LogLinesPerSecond <= 0 {
		opts.LogLinesPerSecond = 50
	}
	opts.LogBurst = max(opts.LogBurst, 1)
	if opts.LogBytesPerSecond <= 0 {
		opts.LogBytesPerSecond = 16 << 10
	}
	b = &Backend{opts: opts, log: log, reqs: make(chan request), done: make(chan struct{}),
		enc: wire.NewEncoder(), splitEnc: wire.NewEncoder(), timer: time.NewTimer(time.Hour)}
	b.plog = newPluginLog(log.Named(filepath.Base(opts.Path)), opts.LogLinesPerSecond, opts.LogBurst, opts.LogBytesPerSecond, func() { b.protocolViolations.Add(1) })
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

// Submit encodes the events and queues the batch for the plugin; done gets
// the findings. A crash or hang on the way is handled inside: the plugin is
// restarted and every unanswered batch sent again, so events are delivered
// at least once.
func (b *Backend) Submit(ctx context.Context, events []*event.Event, done backends.Done) {
	if len(events) == 0 {
		done(nil, nil)
		return
	}
	b.enc.Reset()
	for _, ev := range events {
		b.enc.Add(ev)
	}
	p := &pending{ctx: ctx, buf: b.enc.Finish(), count: len(events), done: done}
	select {
	case b.reqs <- request{ctx: ctx, batch: p}:
	case <-b.done:
		p.buf.Free()
		done(nil, backends.ErrUnavailable)
	}
}

func (b *Backend) Stats() backends.Stats {
	return backends.Stats{
		Delivered: b.delivered.Load(), Findings: b.findings.Load(), Errors: b.errs.Load(),
		Crashes: b.crashes.Load(), Hangs: b.hangs.Load(), Restarts: b.restarts.Load(),
		Redelivered: b.redelivered.Load(), Quarantined: b.quarantined.Load(),
		Violations: b.violations.Load(), LimitKills: b.limitKills.Load(),
		ProtocolViolations: b.protocolViolations.Load(), FindingsRefused: b.findingsRefused.Load(), LogLinesDropped: b.plog.dropped.Load(),
		RingFull:    b.ringFull.Load(),
		BreakerOpen: b.breakerOpen.Load(), PID: int(b.pid.Load()),
	}
}

// Close answers what is in flight, stops the plugin and waits for its
// process to be gone.
func (b *Backend) Close(ctx context.Context) error {
	select {
	case <-b.done:
		return nil
	default:
	}
	errc := make(chan error, 1)
	b.reqs <- request{ctx: ctx, stop: func(err error) { errc <- err }}
	return <-errc
}

func (b *Backend) loop() {
	defer close(b.done)
	for {
		var (
			reqs     chan request
			results  <-chan *wire.InResult
			died     <-chan error
			deadline <-chan time.Time
		)
		if len(b.inflight) < b.opts.Window {
			reqs = b.reqs
		}
		if b.proc != nil {
			results, died = b.proc.results, b.proc.errs
		}
		if len(b.inflight) > 0 {
			b.timer.Reset(b.untilDeadline())
			deadline = b.timer.C
		}
		select {
		case r := <-reqs:
			if r.batch == nil {
				r.stop(b.stop(r.ctx))
				return
			}
			b.inflight = append(b.inflight, r.batch)
			if b.opts.Unary {
				b.deliverUnary()
			} else if err := b.send(r.batch); err != nil {
				b.recover(err, false)
			}
		case res := <-results:
			b.answered(res)
		case err := <-died:
			b.recover(err, false)
		case <-deadline:
			if err := b.ringCheck(); err != nil {
				b.recover(err, false)
			} else {
				b.recover(errHang, true)
			}
		}
		b.timer.Stop()
	}
}

// send writes p to the stream. gRPC takes a reference on the buffer of its
// own and drops it once the bytes are on the socket; p keeps its own.
func (b *Backend) send(p *pending) error {
	if b.proc == nil {
		return errNoProcess
	}
	b.seq++
	p.seq, p.sentAt = b.seq, time.Now()
	if b.proc.ring != nil {
		return b.ringWrite(p.seq, p.count, p.buf.ReadOnlyData())
	}
	p.buf.Ref()
	if err := b.proc.stream.SendMsg(&wire.OutBatch{Seq: p.seq, Count: uint32(p.count), Events: p.buf}); err != nil {
		return fmt.Errorf("send batch: %w", err)
	}
	return nil
}

var errNoProcess = errors.New("no plugin process")

// untilDeadline is the time left for the oldest batch in flight. Its
// deadline runs from when the plugin could start it: when it was sent, or
// when the plugin answered the batch before it, whichever is later.
func (b *Backend) untilDeadline() time.Duration {
	start := b.inflight[0].sentAt
	if b.lastAnswer.After(start) {
		start = b.lastAnswer
	}
	return time.Until(start.Add(b.opts.BatchDeadline))
}

// answered hands the oldest batch its result.
func (b *Backend) answered(in *wire.InResult) {
	if len(b.inflight) == 0 {
		b.recover(violation(errors.New("the plugin answered a batch it was not sent")), false)
		return
	}
	p := b.inflight[0]
	fs, err := b.result(in, p.seq, p.count, p.buf.ReadOnlyData())
	if err == nil {
		err = b.ringCheck()
	}
	if err != nil {
		b.recover(err, false)
		return
	}
	b.inflight = b.inflight[1:]
	b.lastAnswer = time.Now()
	b.progressed()
	b.complete(p, fs, p.count)
}

// errViolation marks a plugin killed for breaking the protocol: an answer
// that cannot be read, one over Limits.ResultBytes, or one out of order.
var errViolation = errors.New("protocol violation")

func violation(err error) error { return fmt.Errorf("%w: %w", errViolation, err) }

// result reads the plugin's answer to batch seq (count events, encoded in
// batch) within the limits: what is over them is refused and counted; an
// error is a violation the plugin is killed for.
func (b *Backend) result(in *wire.InResult, seq uint64, count int, batch []byte) ([]detect.Finding, error) {
	res, refused, err := wire.ParseResult(in.Raw, count, b.opts.Limits)
	if err != nil {
		return nil, violation(err)
	}
	if res.Seq != seq {
		return nil, violation(fmt.Errorf("the plugin answered batch %d, expected %d", res.Seq, seq))
	}
	return b.findingsOf(res, refused, batch), nil
}

// progressed notes an answered batch: earlier crashes were not a loop.
func (b *Backend) progressed() {
	b.consecutive = 0
	b.crashTimes = b.crashTimes[:0]
}

// complete answers p and lets go of its buffer.
func (b *Backend) complete(p *pending, fs []detect.Finding, delivered int) {
	b.delivered.Add(uint64(delivered))
	b.findings.Add(uint64(len(fs)))
	p.buf.Free()
	p.done(fs, nil)
}

// partial answers p with err and the findings of the events that were
// answered before it (a batch split to find a poison event, cut short by
// the breaker): they are counted and delivered, not dropped.
func (b *Backend) partial(p *pending, fs []detect.Finding, err error) {
	b.findings.Add(uint64(len(fs)))
	p.buf.Free()
	p.done(fs, err)
}

// fail answers p with err and lets go of its buffer.
func (p *pending) fail(err error) {
	p.buf.Free()
	p.done(nil, err)
}

// findingsOf converts a result's findings (bounded by ParseResult, which
// counted in refused what it dropped). The events they point at are
// decoded from a copy of the batch, which outlives the pooled buffer.
func (b *Backend) findingsOf(res *wire.Result, refused wire.Refused, batch []byte) []detect.Finding {
	if res.Errors > 0 {
		b.errs.Add(uint64(res.Errors))
		if b.errLog.Allow(10 * time.Second) {
			b.log.Warn("the detector returned errors (counted; logged at most every 10s)", zap.Uint32("in_batch", res.Errors),
				zap.String("last", safeText(string(res.LastError))), zap.Uint64("errors_so_far", b.errs.Load()))
		}
	}
	var out []detect.Finding
	if len(res.Findings) > 0 {
		events, err := wire.Decode(bytes.Clone(batch))
		if err != nil {
			b.errs.Add(uint64(len(res.Findings)))
			b.log.Error("cannot decode the batch a plugin answered", safeError(err))
			return nil
		}
		sent := make([]*event.Event, len(events))
		for i := range events {
			sent[i] = &events[i]
		}
		out = make([]detect.Finding, 0, len(res.Findings))
		for _, p := range res.Findings {
			f, err := wire.FindingFromProto(p, sent)
			if err != nil {
				refused.BadFields++
				continue
			}
			out = append(out, f)
		}
	}
	b.refuse(refused, len(out))
	return out
}

// refuse counts and reports what a result broke: one protocol violation
// per kind of breach, and every finding dropped.
func (b *Backend) refuse(r wire.Refused, kept int) {
	if !r.Any() {
		return
	}
	b.protocolViolations.Add(uint64(r.Kinds()))
	b.findingsRefused.Add(uint64(r.Findings()))
	if b.violationLog.Allow(10 * time.Second) {
		b.log.Warn("the detector plugin broke the protocol: what was over its bounds was dropped (counted; logged at most every 10s)",
			zap.String("refused", r.String()), zap.Int("findings_kept", kept),
			zap.Uint64("violations_so_far", b.protocolViolations.Load()), zap.Uint64("findings_refused_so_far", b.findingsRefused.Load()))
	}
}

// recover handles a dead or hung plugin: restart it and send every
// unanswered batch again, in order. The oldest batch is the one the plugin
// was working on; if it has killed the plugin before, it is split so that
// only a poison event is given up on.
func (b *Backend) recover(err error, hang bool) {
	b.crashed(err, hang)
	for len(b.inflight) > 0 {
		oldest := b.inflight[0]
		oldest.failures++
		if oldest.failures < 2 {
			break
		}
		b.inflight = b.inflight[1:]
		before := b.quarantined.Load()
		fs, err := b.deliverEach(oldest.ctx, oldest.buf.ReadOnlyData())
		if err != nil {
			// The findings of the events answered before the breaker
			// opened go out with the error (which counts the batch's
			// events); they are not thrown away.
			b.partial(oldest, fs, err)
			b.failAll(err)
			return
		}
		b.complete(oldest, fs, oldest.count-int(b.quarantined.Load()-before))
	}
	if err := b.ensureRunning(); err != nil {
		b.failAll(err)
		return
	}
	for _, p := range b.inflight {
		b.redelivered.Add(uint64(p.count))
		if err := b.send(p); err != nil {
			b.recover(err, false)
			return
		}
	}
}

// failAll gives every batch in flight the error (the breaker is open).
func (b *Backend) failAll(err error) {
	for _, p := range b.inflight {
		p.fail(err)
	}
	b.inflight = b.inflight[:0]
}

// deliverUnary answers the one batch in flight with one RPC per batch.
func (b *Backend) deliverUnary() {
	p := b.inflight[0]
	b.inflight = b.inflight[:0]
	before := b.quarantined.Load()
	fs, err := b.deliverSync(p.ctx, p.buf.ReadOnlyData(), p.count)
	if err != nil {
		b.partial(p, fs, err)
		return
	}
	b.complete(p, fs, p.count-int(b.quarantined.Load()-before))
}

// deliverSync sends an encoded batch on its own and waits, retrying across
// crashes; the split of a poison batch and the unary mode use it.
func (b *Backend) deliverSync(ctx context.Context, batch []byte, count int) ([]detect.Finding, error) {
	for attempt := 1; ; attempt++ {
		if err := b.ensureRunning(); err != nil {
			return nil, err
		}
		fs, err := b.roundTrip(ctx, batch, count)
		if err == nil {
			b.progressed()
			return fs, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		b.crashed(err, errors.Is(err, errHang))
		switch {
		case count > 1 && attempt >= 2:
			return b.deliverEach(ctx, batch)
		case count == 1 && attempt >= b.opts.PoisonAttempts:
			b.quarantine(batch, err)
			return nil, nil
		}
		b.redelivered.Add(uint64(count))
	}
}

// deliverEach sends a batch that keeps killing the plugin one event at a
// time, so that only a poison event is given up on.
func (b *Backend) deliverEach(ctx context.Context, batch []byte) ([]detect.Finding, error) {
	events, err := wire.Decode(bytes.Clone(batch))
	if err != nil {
		return nil, fmt.Errorf("split batch: %w", err)
	}
	var out []detect.Finding
	for i := range events {
		b.splitEnc.Reset()
		b.splitEnc.Add(&events[i])
		fs, err := b.deliverSync(ctx, bytes.Clone(b.splitEnc.Bytes()), 1)
		if err != nil {
			return out, err
		}
		out = append(out, fs...)
	}
	return out, nil
}

func (b *Backend) quarantine(batch []byte, err error) {
	b.quarantined.Add(1)
	fields := []zap.Field{zap.Int("attempts", b.opts.PoisonAttempts), safeError(err)}
	if evs, derr := wire.Decode(bytes.Clone(batch)); derr == nil && len(evs) == 1 {
		ev := &evs[0]
		fields = append(fields, zap.String("kind", ev.Kind.String()), zap.Uint32("pid", ev.PID), zap.String("comm", safeText(ev.Comm)),
			zap.Uint64("kernel_time_ns", ev.KernelTimeNs), zap.String("path", safeText(ev.Open.Resolved)), zap.String("exe", safeText(ev.Exec.Exe)))
	}
	b.log.Error("poison event quarantined: it killed the detector plugin every time it was sent alone", fields...)
}

var errHang = errors.New("no answer within the batch deadline")

// safeError is err as a log field, bounded and escaped: it can carry the
// plugin's own text (a gRPC status message it chose).
func safeError(err error) zap.Field {
	if err == nil {
		return zap.Skip()
	}
	return zap.String("error", safeText(err.Error()))
}

// roundTrip sends one encoded batch and waits for its result, with
// nothing else in flight.
func (b *Backend) roundTrip(ctx context.Context, batch []byte, count int) ([]detect.Finding, error) {
	b.seq++
	if b.opts.Unary {
		cctx, cancel := context.WithTimeout(ctx, b.opts.BatchDeadline)
		in, err := wire.ProcessRaw(cctx, b.proc.cc, &wire.Batch{Seq: b.seq, Events: batch, Count: uint32(count)})
		cancel()
		switch status.Code(err) {
		case codes.OK:
			return b.result(in, b.seq, count, batch)
		case codes.DeadlineExceeded:
			return nil, errHang
		case codes.ResourceExhausted:
			return nil, violation(err)
		}
		return nil, err
	}
	if b.proc.ring != nil {
		if err := b.ringWrite(b.seq, count, batch); err != nil {
			return nil, err
		}
	} else if err := b.proc.stream.SendMsg(&wire.OutBatch{Seq: b.seq, Count: uint32(count), Events: mem.SliceBuffer(batch)}); err != nil {
		return nil, fmt.Errorf("send batch: %w", err)
	}
	b.timer.Reset(b.opts.BatchDeadline)
	defer b.timer.Stop()
	select {
	case in := <-b.proc.results:
		fs, err := b.result(in, b.seq, count, batch)
		if err == nil {
			err = b.ringCheck()
		}
		return fs, err
	case err := <-b.proc.errs:
		return nil, err
	case <-b.timer.C:
		if err := b.ringCheck(); err != nil {
			return nil, err
		}
		return nil, errHang
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// crashed records the death (or hang) of the current process and kills
// what is left of it.
func (b *Backend) crashed(err error, hang bool) {
	if b.proc == nil {
		return
	}
	gross := errors.Is(err, errViolation)
	switch {
	case hang:
		b.hangs.Add(1)
	case gross:
		b.protocolViolations.Add(1)
	default:
		b.crashes.Add(1)
	}
	var ps *os.ProcessState
	if b.proc.kill(b.log) {
		ps = b.proc.cmd.ProcessState
	}
	exit := "unknown"
	if ps != nil {
		exit = fmt.Sprintf("%s after %v of CPU", ps, (ps.UserTime() + ps.SystemTime()).Round(time.Millisecond))
	}
	if k := b.enclaveKill(ps, hang); k != nil {
		if k.Kind == "seccomp" {
			b.violations.Add(1)
		} else {
			b.limitKills.Add(1)
		}
		b.log.Error("detector plugin "+k.Reason+"; restarting it", zap.String("enclave_kill", k.Kind), zap.Int("pid", b.proc.pid), zap.String("exit", exit))
	} else if gross {
		b.log.Error("detector plugin broke the protocol; killed, restarting it", zap.Int("pid", b.proc.pid), zap.String("violation", safeText(err.Error())))
	} else {
		b.log.Warn("detector plugin failed; restarting it", zap.Bool("hang", hang), zap.Int("pid", b.proc.pid), zap.String("exit", exit), safeError(err))
	}
	b.proc = nil
	b.pid.Store(0)
	b.countFailure()
}

// enclaveKill says whether the enclave killed the process that ended
// with ps (nil without an enclave, or when the backend killed a hang).
func (b *Backend) enclaveKill(ps *os.ProcessState, hang bool) *enclave.Kill {
	if b.opts.Enclave == nil || hang {
		return nil
	}
	return b.opts.Enclave.Cause(ps)
}

// countFailure notes a crash, hang or failed start, and opens the breaker
// when BreakerCrashes of them fall within BreakerWindow.
func (b *Backend) countFailure() {
	now := time.Now()
	recent := b.crashTimes[:0]
	for _, t := range b.crashTimes {
		if now.Sub(t) < b.opts.BreakerWindow {
			recent = append(recent, t)
		}
	}
	b.crashTimes = append(recent, now)
	if len(b.crashTimes) < b.opts.BreakerCrashes {
		return
	}
	b.breakerUntil = now.Add(b.opts.BreakerCooldown)
	b.breakerOpen.Store(true)
	b.crashTimes = b.crashTimes[:0]
	b.log.Error("detector plugin is crash-looping: circuit breaker open, its events are shed until the cool-down ends",
		zap.Int("crashes", b.opts.BreakerCrashes), zap.Duration("window", b.opts.BreakerWindow),
		zap.Duration("cooldown", b.opts.BreakerCooldown))
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
			b.log.Warn("detector plugin did not start", safeError(err))
			if errors.Is(err, errViolation) {
				b.protocolViolations.Add(1)
			} else {
				b.crashes.Add(1)
			}
			b.countFailure()
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

// stop lets the plugin answer what is in flight, then stops it. Every
// batch in flight ends answered, or failed with ErrStopped (the plugin
// could not answer it: it died, hung or its breaker is open).
func (b *Backend) stop(ctx context.Context) error {
	defer b.plog.flush()
	// Let the plugin answer what it has, each batch within its deadline,
	// all within ctx.
	for len(b.inflight) > 0 && b.proc != nil && ctx.Err() == nil {
		b.timer.Reset(b.untilDeadline())
		select {
		case res := <-b.proc.results:
			b.answered(res)
		case err := <-b.proc.errs:
			b.recover(err, false)
		case <-b.timer.C:
			b.recover(errHang, true)
		case <-ctx.Done():
		}
		b.timer.Stop()
	}
	b.failAll(backends.ErrStopped)
	// The enclave goes whatever state the plugin is in (breaker open, a
	// failed restart): its cgroup's tasks are killed, its directory removed.
	if b.opts.Enclave != nil {
		defer b.opts.Enclave.Close()
	}
	if b.proc == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	_, err := b.proc.rpc.Close(cctx, &wire.CloseRequest{})
	cancel()
	// A plugin that answered Close gets go-plugin's graceful end; one that
	// did not is killed at once. Either way the stop is bounded: see end.
	proc := b.proc
	b.proc = nil
	b.pid.Store(0)
	endErr := proc.end(ctx, err == nil)
	if err != nil {
		err = fmt.Errorf("close detector %s: %s", safeText(b.def.Name), safeText(err.Error()))
	}
	return errors.Join(err, endErr)
}

// stopGrace bounds each of the two steps of a plugin's end: the graceful
// one, then the one after its process was killed.
const stopGrace = 3 * time.Second

// end stops the process. With grace, go-plugin's Kill asks the plugin to
// shut down (its controller's Shutdown, which only returns once the
// process is gone) and waits up to 2 s for it to exit; a plugin that does
// not answer, or is not gone within stopGrace or by ctx, is killed, and
// go-plugin's Kill then ends. Without grace it is killed first. Should
// go-plugin still not be done stopGrace after the kill (a process of the
// plugin's outside its enclave keeps its pipes open), it is left to finish
// on its own and end says so: a stop never blocks for ever.
func (p *process) end(ctx context.Context, grace bool) error {
	defer p.closeRing()
	close(p.quit)
	if p.cancel != nil {
		p.cancel()
	}
	if !grace {
		p.runner.Kill(ctx)
	}
	done := make(chan struct{})
	go func() {
		p.client.Kill()
		p.runner.close()
		close(done)
	}()
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	p.runner.Kill(ctx)
	t.Reset(stopGrace)
	select {
	case <-done:
		return nil
	case <-t.C:
	}
	return fmt.Errorf("plugin process %d: killed, but its output pipes are still open %v later (a process it started holds them); left behind", p.pid, stopGrace)
}

// process is one running plugin.
type process struct {
	client  *plugin.Client
	cmd     *exec.Cmd
	rpc     wire.DetectorClient
	cc      grpc.ClientConnInterface
	stream  wire.Detector_StreamClient
	runner  *pluginRunner
	cancel  context.CancelFunc
	results chan *wire.InResult
	errs    chan error
	quit    chan struct{} // closed by kill: read stops
	pid     int
	ring    *shm.Producer // the shm transport's ring (nil: batches on the stream)
}

// start launches the binary, shakes hands, describes and initialises it,
// and opens the batch stream.
func (b *Backend) start() (*process, detect.Definition, error) {
	var def detect.Definition
	cfg := &plugin.ClientConfig{
		HandshakeConfig:  wire.Handshake(),
		Plugins:          plugin.PluginSet{wire.PluginName: &clientPlugin{}},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		StartTimeout:     b.opts.StartTimeout,
		GRPCDialOptions:  wire.DialOptions(b.opts.Limits.ResultBytes),
		Stderr:           b.plog.stderr(),
		AutoMTLS:         b.opts.MTLS,
	}
	var cmd *exec.Cmd
	if b.opts.Enclave != nil {
		var err error
		if cmd, err = b.opts.Enclave.Command(b.opts.Launcher, b.opts.Path, b.opts.SHA256, b.opts.Transport == TransportShm); err != nil {
			return nil, def, err
		}
		cfg.SkipHostEnv = true
	} else {
		cmd = exec.Command(b.opts.Path)
		// If the monitor dies, the kernel kills its plugins (and the SDK's
		// own watch on its parent catches the rest): no orphans.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	ring, err := b.newRing(cmd)
	if err != nil {
		return nil, def, err
	}
	// The runner starts cmd and checks the address the plugin names.
	r := newRunner(cmd, b.opts.Enclave, b.opts.SHA256)
	cfg.RunnerFunc = r.run
	// go-plugin names the reader of the plugin's stderr after the binary
	// it starts; newHCLog turns that one off (see zapHCLog).
	cfg.Logger = newHCLog(b.log, filepath.Base(cmd.Path))
	client := plugin.NewClient(cfg)
	p := &process{client: client, cmd: cmd, runner: r, results: make(chan *wire.InResult, 1), errs: make(chan error, 1), quit: make(chan struct{}), ring: ring}
	fail := func(what string, err error) (*process, detect.Definition, error) {
		p.end(context.Background(), false)
		if status.Code(err) == codes.ResourceExhausted {
			err = violation(err) // an answer over its bound
		}
		return nil, def, &startError{msg: safeText(fmt.Sprintf("plugin %s: %s: %v", b.opts.Path, what, err)), err: err}
	}
	rpcClient, err := client.Client()
	if refused := r.refusal(); refused != nil {
		return fail("refused, killed", refused)
	}
	if err != nil {
		return fail(fmt.Sprintf("not a bulkhead detector plugin, or one built for another protocol version (this monitor speaks version %d)", wire.ProtocolVersion), handshakeError(err))
	}
	raw, err := rpcClient.Dispense(wire.PluginName)
	if err != nil {
		return fail("dispense", err)
	}
	conn := raw.(*rpcConn)
	p.rpc, p.cc = conn.DetectorClient, conn.cc
	p.pid = cmd.Process.Pid
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.StartTimeout)
	defer cancel()
	// The definition is asked before Init, and again after it: a
	// configured detector may narrow its filter.
	// what names the step that failed.
	describe := func(definition string) (what string, err error) {
		pd, err := p.rpc.Describe(ctx, &wire.DescribeRequest{})
		if err != nil {
			return "describe", err
		}
		def = wire.DefinitionFromProto(pd)
		return definition, def.Validate()
	}
	if what, err := describe("definition"); err != nil {
		return fail(what, err)
	}
	if _, err := p.rpc.Init(ctx, &wire.InitRequest{ConfigJson: b.opts.Config}); err != nil {
		err = detectorError(err)
		if b.opts.Enclave != nil && strings.Contains(err.Error(), "permission denied") {
			err = fmt.Errorf("%w (the plugin runs in an enclave as uid %d: list the path under the detector's enclave: read:, and make it readable by that uid)",
				err, b.opts.Enclave.UID())
		}
		return fail("init", err)
	}
	if what, err := describe("definition after init"); err != nil {
		return fail(what, err)
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

// startError is why a plugin did not start. Its message can quote the
// plugin (its handshake line, its Init error): it is bounded and escaped.
type startError struct {
	msg string
	err error
}

func (e *startError) Error() string { return e.msg }
func (e *startError) Unwrap() error { return e.err }

// handshakeError is the first line of go-plugin's handshake error: what
// the plugin printed instead of a handshake (its own bytes, escaped by
// fail) without go-plugin's page of generic advice.
func handshakeError(err error) error {
	line, _, _ := strings.Cut(err.Error(), "\n")
	line = strings.TrimSuffix(strings.TrimSpace(line), ":")
	if line == "Unrecognized remote plugin message" {
		line = "it printed no handshake line on its stdout"
	}
	return errors.New(line)
}

// detectorError is the detector's own message in a gRPC error.
func detectorError(err error) error {
	if s, ok := status.FromError(err); ok && s.Code() == codes.Unknown {
		return errors.New(s.Message())
	}
	return err
}

// read forwards the plugin's results, unparsed; the first error, or kill,
// ends it. A result over the receive limit is a violation.
func (p *process) read() {
	for {
		res := &wire.InResult{}
		err := p.stream.RecvMsg(res)
		if status.Code(err) == codes.ResourceExhausted {
			err = violation(err)
		}
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

// kill ends the process at once (a hung plugin gets no grace) and reaps
// it, within a bound (see end). It says whether go-plugin is done with it
// (and cmd.ProcessState may be read).
func (p *process) kill(log *zap.Logger) bool {
	if err := p.end(context.Background(), false); err != nil {
		log.Error("a killed plugin process was not reaped", safeError(err))
		return false
	}
	return true
}

// clientPlugin is the monitor's side of go-plugin's plugin.GRPCPlugin.
type clientPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

func (clientPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("the monitor does not serve detectors")
}

func (clientPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &rpcConn{DetectorClient: wire.NewDetectorClient(c), cc: c}, nil
}

// rpcConn is the detector's client and the connection under it (for
// wire.ProcessRaw).
type rpcConn struct {
	wire.DetectorClient
	cc grpc.ClientConnInterface
}
