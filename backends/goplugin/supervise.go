package goplugin

// Supervision: what the backend does when a plugin dies, hangs or breaks
// the protocol (restart, resend, split, quarantine, the breaker), and the
// end of a backend.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/enclave"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/wire"
	"github.com/bulkhead-sec/bulkhead/backends/pluginlog"
	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
)

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
		p.written = false // the new process has seen none
	}
	for _, p := range b.inflight {
		b.redelivered.Add(uint64(p.count))
		p.markRedelivered()
		if err := b.send(p); err != nil {
			b.recover(err, false)
			return
		}
	}
}

// markRedelivered flags p's batch as sent before (the SDK tells the
// detector: detection.Redelivered), in a copy: the buffer sent may still be
// referenced by the dead process's stream.
func (p *pending) markRedelivered() {
	if p.redelivered {
		return
	}
	old := p.buf
	p.buf, p.redelivered = mem.SliceBuffer(wire.Redelivered(old.ReadOnlyData())), true
	old.Free()
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
func (b *Backend) deliverSync(ctx context.Context, batch []byte, count int) ([]detection.Finding, error) {
	for attempt := 1; ; attempt++ {
		if err := b.ensureRunning(); err != nil {
			return nil, err
		}
		fs, err := b.roundTrip(ctx, batch, count)
		if err == nil {
			b.restart.Progressed()
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
		batch = wire.Redelivered(batch)
	}
}

// deliverEach sends a batch that keeps killing the plugin one event at a
// time, so that only a poison event is given up on.
func (b *Backend) deliverEach(ctx context.Context, batch []byte) ([]detection.Finding, error) {
	events, err := wire.DecodeFlat(bytes.Clone(batch))
	if err != nil {
		return nil, fmt.Errorf("split batch: %w", err)
	}
	var out []detection.Finding
	for i := range events {
		b.splitEnc.Reset()
		b.splitEnc.Add(&events[i])
		// Each event of the split was sent before, in the batch.
		fs, err := b.deliverSync(ctx, wire.Redelivered(b.splitEnc.Bytes()), 1)
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
	if evs, derr := wire.DecodeFlat(bytes.Clone(batch)); derr == nil && len(evs) == 1 {
		ev := &evs[0]
		fields = append(fields, zap.String("kind", ev.Kind.String()), zap.Uint32("pid", ev.PID), zap.String("comm", pluginlog.SafeText(ev.Comm)),
			zap.Uint64("kernel_time_ns", ev.KernelTimeNs), zap.String("path", pluginlog.SafeText(ev.Open.Resolved)), zap.String("exe", pluginlog.SafeText(ev.Exec.Exe)))
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
	return zap.String("error", pluginlog.SafeText(err.Error()))
}

// roundTrip sends one encoded batch and waits for its result, with
// nothing else in flight.
func (b *Backend) roundTrip(ctx context.Context, batch []byte, count int) ([]detection.Finding, error) {
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
	var ringEnd uint64
	if b.proc.ring != nil {
		if err := b.ringWriteWaiting(ctx, b.seq, count, batch); err != nil {
			return nil, err
		}
		ringEnd = b.proc.ring.Produced()
	} else if err := b.proc.stream.SendMsg(&wire.OutBatch{Seq: b.seq, Count: uint32(count), Events: mem.SliceBuffer(batch)}); err != nil {
		return nil, fmt.Errorf("send batch: %w", err)
	}
	b.timer.Reset(b.opts.BatchDeadline)
	defer b.timer.Stop()
	for poll := pollMin; ; poll = min(2*poll, pollMax) {
		var polled <-chan time.Time
		if b.proc.ring != nil {
			b.poll.Reset(poll)
			polled = b.poll.C
		}
		select {
		case in := <-b.proc.results:
			b.poll.Stop()
			b.proc.answers++
			fs, err := b.result(in, b.seq, count, batch)
			if err == nil {
				err = b.ringCheck()
			}
			return fs, err
		case err := <-b.proc.errs:
			b.poll.Stop()
			return nil, err
		case <-b.timer.C:
			b.poll.Stop()
			if err := b.ringCheck(); err != nil {
				return nil, err
			}
			return nil, errHang
		case <-ctx.Done():
			b.poll.Stop()
			return nil, ctx.Err()
		case <-polled:
			if done, err := b.ringRead(ringEnd); done || err != nil {
				return nil, err // read without an answer: no findings
			}
		}
	}
}

// crashed records the death (or hang) of the current process and kills
// what is left of it.
func (b *Backend) crashed(err error, hang bool) {
	if b.proc == nil {
		return
	}
	if b.proc.ring != nil {
		// What a process that died or hung read and had no answer for is
		// done, as it would be on the stream, where those answers came
		// before the end. Nothing a process that broke the protocol says
		// is trusted. The ring goes with the process: batches that view
		// it get copies.
		if !errors.Is(err, errViolation) {
			_ = b.settleRead()
		}
		for _, p := range b.inflight {
			p.detach()
		}
	}
	gross := errors.Is(err, errViolation)
	switch {
	case hang:
		b.hangs.Add(1)
	case gross:
		b.answers.Violations.Add(1)
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
		b.log.Error("detector plugin broke the protocol; killed, restarting it", zap.Int("pid", b.proc.pid), zap.String("violation", pluginlog.SafeText(err.Error())))
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

// countFailure notes a crash, hang or failed start, and says so when it
// opens the breaker.
func (b *Backend) countFailure() {
	if !b.restart.Failed() {
		return
	}
	b.log.Error("detector plugin is crash-looping: circuit breaker open, its events are shed until the cool-down ends",
		zap.Int("crashes", b.opts.BreakerCrashes), zap.Duration("window", b.opts.BreakerWindow),
		zap.Duration("cooldown", b.opts.BreakerCooldown))
}

// ensureRunning starts a new process if there is none, after the backoff;
// with the breaker open it returns ErrUnavailable at once.
func (b *Backend) ensureRunning() error {
	for b.proc == nil {
		if b.restart.Cooling() {
			return backends.ErrUnavailable
		}
		time.Sleep(b.restart.NextAttempt())
		proc, _, err := b.start()
		if err != nil {
			b.log.Warn("detector plugin did not start", safeError(err))
			if errors.Is(err, errViolation) {
				b.answers.Violations.Add(1)
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
		case <-b.ringPoll():
			if err := b.ringProgress(); err != nil {
				b.recover(err, false)
			}
		case <-ctx.Done():
		}
		b.timer.Stop()
		b.poll.Stop()
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
		err = fmt.Errorf("close detector %s: %s", pluginlog.SafeText(b.def.Name), pluginlog.SafeText(err.Error()))
	}
	return errors.Join(err, endErr)
}
