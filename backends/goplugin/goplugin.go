package goplugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/enclave"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/shm"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/wire"
	"github.com/bulkhead-sec/bulkhead/backends/pluginlog"
	"github.com/bulkhead-sec/bulkhead/backends/restart"
	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"go.uber.org/zap"
	"google.golang.org/grpc/mem"
)

// Options configure one plugin.
type Options struct {
	Path   string           // the plugin binary
	Config detection.Config // handed to the detector's Init
	// BatchDeadline: a batch not answered by then means the plugin hangs;
	// it is killed, restarted, and the batch sent again.
	BatchDeadline time.Duration
	// StartTimeout bounds the handshake, Describe and Init.
	StartTimeout time.Duration
	// Restarts back off and a crash loop opens the breaker (its events
	// are shed) as the policy says.
	restart.Policy
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
		Policy: restart.DefaultPolicy(), PoisonAttempts: 2, Window: 16,
		Limits: wire.DefaultLimits(), LogLinesPerSecond: 50, LogBurst: 500, LogBytesPerSecond: 16 << 10,
	}
}

// Backend runs a detector in its own process, supervised. Submit encodes a
// batch on the caller's goroutine; everything about the plugin process is
// owned by one goroutine (loop).
type Backend struct {
	opts Options
	log  *zap.Logger
	def  detection.Definition
	enc  *wire.FlatEncoder // Submit's (grpc); the loop's (shm, while Submit waits)
	// maxBatch is the largest encoded batch the transport carries: the
	// ring's record, or the stream's message.
	maxBatch int
	reqs     chan request
	encoded  chan struct{} // shm: the loop is done reading a request's events
	done     chan struct{}

	// Owned by loop.
	proc     *process
	splitEnc *wire.FlatEncoder // for batches split to find a poison event
	seq      uint64
	inflight []*pending // sent, not yet answered, oldest first
	timer    *time.Timer
	poll     *time.Timer // shm: looks at the ring for progress
	restart  restart.State
	// lastAnswer is when the plugin last answered a batch of the stream:
	// it works on one batch at a time, so the next batch's deadline runs
	// from then, not from when it was sent and queued behind others.
	lastAnswer time.Time

	delivered, findings, crashes, hangs, restarts, redelivered, quarantined, violations, limitKills, ringFull atomic.Uint64
	answers                                                                                                   pluginlog.Answers
	errLog                                                                                                    backends.Every
	pid                                                                                                       atomic.Int64
	plog                                                                                                      *pluginLog // the plugin's stderr
}

type request struct {
	ctx    context.Context
	batch  *pending       // encoded by Submit (grpc)
	events []*event.Event // or to be encoded by the loop (shm), then encoded
	flat   []byte         // or encoded already (shm, SubmitFlat): count events, copied by the loop, then encoded
	count  int
	done   backends.Done
	stop   func(error) // or: stop
}

// pending is a batch on its way through the plugin. It keeps the encoded
// batch (a reference of its own on the buffer, or, shm, a view of the ring
// it was encoded into, held there until settled and copied out if the
// process dies), not the events: enough to send again after a crash.
type pending struct {
	ctx         context.Context
	buf         mem.Buffer
	count       int
	done        backends.Done
	seq         uint64
	sentAt      time.Time
	written     bool          // in the current process's ring or stream (shm: a full ring leaves it waiting)
	inRing      bool          // shm: buf views the ring, where it was encoded (held there until settled)
	ring        *shm.Producer // shm: the ring it was written to
	ringPos     uint64        // shm: the ring position of its record
	ringEnd     uint64        // shm: the ring position after its record; a consumer past it has read it
	waited      bool          // it found the ring full once (counted once)
	redelivered bool          // its batch is flagged as sent before
	failures    int           // times the plugin died while this was the oldest batch
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
	b = &Backend{opts: opts, log: log, restart: restart.State{Policy: opts.Policy}, reqs: make(chan request), encoded: make(chan struct{}, 1), done: make(chan struct{}),
		enc: wire.NewFlatEncoder(), splitEnc: wire.NewFlatEncoder(), timer: time.NewTimer(time.Hour), poll: time.NewTimer(time.Hour)}
	b.maxBatch = maxBatchBytes(opts)
	b.plog = newPluginLog(log.Named(filepath.Base(opts.Path)), opts.LogLinesPerSecond, opts.LogBurst, opts.LogBytesPerSecond, func() { b.answers.Violations.Add(1) })
	b.timer.Stop()
	b.poll.Stop()
	proc, def, err := b.start()
	if err != nil {
		return nil, err
	}
	b.proc, b.def = proc, def
	go b.loop()
	return b, nil
}

func (b *Backend) Definition() detection.Definition { return b.def }

// Submit encodes the events and queues the batch for the plugin; done gets
// the findings. A crash or hang on the way is handled inside: the plugin is
// restarted and every unanswered batch sent again, so events are delivered
// at least once.
func (b *Backend) Submit(ctx context.Context, events []*event.Event, done backends.Done) {
	if len(events) == 0 {
		done(nil, nil)
		return
	}
	if b.opts.Transport == TransportShm {
		b.submitShm(ctx, events, done)
		return
	}
	b.enc.Reset()
	for _, ev := range events {
		b.enc.Add(ev)
	}
	if b.enc.Len() > b.maxBatch {
		b.submitSplit(ctx, events, done)
		return
	}
	b.queue(&pending{ctx: ctx, buf: b.enc.Finish(), count: len(events), done: done})
}

// SubmitFlat is Submit for a batch already encoded in the flat layout
// (dispatch.FlatBackend): count events in batch, which is only read until
// SubmitFlat returns. Through the ring it is one copy into the ring; on
// the stream, one copy into a buffer of its own.
func (b *Backend) SubmitFlat(ctx context.Context, batch []byte, count int, done backends.Done) {
	if count == 0 {
		done(nil, nil)
		return
	}
	if len(batch) > b.maxBatch {
		// Too large for the transport: split by event, as Submit does.
		events, err := wire.DecodeFlat(batch)
		if err != nil {
			done(nil, err)
			return
		}
		ptrs := make([]*event.Event, len(events))
		for i := range events {
			ptrs[i] = &events[i]
		}
		b.Submit(ctx, ptrs, done)
		return
	}
	if b.opts.Transport == TransportShm {
		select {
		case b.reqs <- request{ctx: ctx, flat: batch, count: count, done: done}:
			<-b.encoded
		case <-b.done:
			done(nil, backends.ErrUnavailable)
		}
		return
	}
	b.queue(&pending{ctx: ctx, buf: wire.CopyBatch(batch), count: count, done: done})
}

// queue hands p to the loop.
func (b *Backend) queue(p *pending) {
	select {
	case b.reqs <- request{ctx: p.ctx, batch: p}:
	case <-b.done:
		p.buf.Free()
		p.done(nil, backends.ErrUnavailable)
	}
}

func (b *Backend) Stats() backends.Stats {
	return backends.Stats{
		Delivered: b.delivered.Load(), Findings: b.findings.Load(), Errors: b.answers.Errors.Load(),
		Crashes: b.crashes.Load(), Hangs: b.hangs.Load(), Restarts: b.restarts.Load(),
		Redelivered: b.redelivered.Load(), Quarantined: b.quarantined.Load(),
		Violations: b.violations.Load(), LimitKills: b.limitKills.Load(),
		ProtocolViolations: b.answers.Violations.Load(), FindingsRefused: b.answers.FindingsRefused.Load(), LogLinesDropped: b.plog.limit.Dropped(),
		RingFull:    b.ringFull.Load(),
		BreakerOpen: b.restart.Open(), PID: int(b.pid.Load()),
	}
}

// Close answers what is in flight, stops the plugin and waits for its
// process to be gone. Closing a closed backend does nothing, also while
// the first Close is finishing (its loop may be gone before done is).
func (b *Backend) Close(ctx context.Context) error {
	errc := make(chan error, 1)
	select {
	case b.reqs <- request{ctx: ctx, stop: func(err error) { errc <- err }}:
		return <-errc
	case <-b.done:
		return nil
	}
}

func (b *Backend) loop() {
	defer close(b.done)
	for {
		var (
			reqs     chan request
			results  <-chan *wire.InResult
			died     <-chan error
			deadline <-chan time.Time
			poll     <-chan time.Time
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
		poll = b.ringPoll()
		select {
		case r := <-reqs:
			switch {
			case r.stop != nil:
				r.stop(b.stop(r.ctx))
				return
			case r.events != nil || r.flat != nil:
				b.acceptShm(r)
			default:
				b.inflight = append(b.inflight, r.batch)
				if b.opts.Unary {
					b.deliverUnary()
				} else if err := b.send(r.batch); err != nil {
					b.recover(err, false)
				}
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
		case <-poll:
			if err := b.ringProgress(); err != nil {
				b.recover(err, false)
			}
		}
		b.timer.Stop()
		b.poll.Stop()
	}
}

// send writes p to the stream. gRPC takes a reference on the buffer of its
// own and drops it once the bytes are on the socket; p keeps its own.
func (b *Backend) send(p *pending) error {
	if b.proc == nil {
		return errNoProcess
	}
	if b.proc.ring != nil {
		return b.ringSend(p)
	}
	b.seq++
	p.seq, p.sentAt, p.written = b.seq, time.Now(), true
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

// answered hands a batch its result. On the stream every batch is
// answered, in order: the result is the oldest batch's. Through the ring
// only batches with findings or errors are; the batches before the one it
// names had none.
func (b *Backend) answered(in *wire.InResult) {
	if len(b.inflight) == 0 {
		b.recover(violation(errors.New("the plugin answered a batch it was not sent")), false)
		return
	}
	b.proc.answers++
	i := 0
	if b.proc.ring != nil {
		i = b.answeredIndex(in)
		if i < 0 {
			b.recover(violation(errors.New("the plugin answered a batch it was not sent")), false)
			return
		}
	}
	p := b.inflight[i]
	fs, err := b.result(in, p.seq, p.count, p.buf.ReadOnlyData())
	if err == nil {
		err = b.ringCheck()
	}
	if err != nil {
		b.recover(err, false)
		return
	}
	for _, q := range b.inflight[:i] {
		b.complete(q, nil, q.count)
	}
	b.inflight = b.inflight[i+1:]
	b.lastAnswer = time.Now()
	b.restart.Progressed()
	b.complete(p, fs, p.count)
	if err := b.ringProgress(); err != nil {
		b.recover(err, false)
	}
}

// errViolation marks a plugin killed for breaking the protocol: an answer
// that cannot be read, one over Limits.ResultBytes, or one out of order.
var errViolation = errors.New("protocol violation")

func violation(err error) error { return fmt.Errorf("%w: %w", errViolation, err) }

// result reads the plugin's answer to batch seq (count events, encoded in
// batch) within the limits: what is over them is refused and counted; an
// error is a violation the plugin is killed for.
func (b *Backend) result(in *wire.InResult, seq uint64, count int, batch []byte) ([]detection.Finding, error) {
	res, refused, err := wire.ParseResult(in.Raw, count, b.opts.Limits)
	if err != nil {
		return nil, violation(err)
	}
	if res.Seq != seq {
		return nil, violation(fmt.Errorf("the plugin answered batch %d, expected %d", res.Seq, seq))
	}
	return b.findingsOf(res, refused, batch), nil
}

// complete answers p and lets go of its buffer.
func (b *Backend) complete(p *pending, fs []detection.Finding, delivered int) {
	b.delivered.Add(uint64(delivered))
	b.findings.Add(uint64(len(fs)))
	p.buf.Free()
	p.done(fs, nil)
}

// partial answers p with err and the findings of the events that were
// answered before it (a batch split to find a poison event, cut short by
// the breaker): they are counted and delivered, not dropped.
func (b *Backend) partial(p *pending, fs []detection.Finding, err error) {
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
func (b *Backend) findingsOf(res *wire.Result, refused wire.Refused, batch []byte) []detection.Finding {
	b.answers.Errored(res.Errors, res.LastError, b.log)
	var out []detection.Finding
	if len(res.Findings) > 0 {
		events, err := wire.DecodeFlat(bytes.Clone(batch))
		if err != nil {
			b.answers.Errors.Add(uint64(len(res.Findings)))
			b.log.Error("cannot decode the batch a plugin answered", safeError(err))
			return nil
		}
		sent := make([]*event.Event, len(events))
		for i := range events {
			sent[i] = &events[i]
		}
		out = wire.Findings(res, &refused, sent)
	}
	b.answers.Refused(refused, len(out), "detector plugin", b.log)
	return out
}
