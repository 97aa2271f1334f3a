package goplugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/shm"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/wire"
	"github.com/bulkhead-sec/bulkhead/backends/pluginlog"
	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"go.uber.org/zap"
	"google.golang.org/grpc/mem"
)

// Transports: how batches reach a plugin (Options.Transport).
const (
	// TransportGRPC sends each batch as a message on the gRPC stream (and
	// every batch is answered there).
	TransportGRPC = "grpc"
	// TransportShm, the default, writes each batch into a shared-memory
	// ring of the plugin process's own (package shm): a record of the
	// header wire.PutRingHeader writes and the flat batch. The plugin gets
	// the ring's two sealed memfds as descriptors 3 and 4 and wire.ShmEnv
	// in its environment; it answers on gRPC only batches with findings
	// or errors; control and supervision stay on gRPC.
	TransportShm = "shm"
)

// DefaultRingBytes is the shm ring's default data area: 4 MiB holds the
// default Window (16) of batches of 256 events of up to 1 KiB (typical
// events encode to a quarter of that); batches of larger events wait in
// flight for room. Batches of more than 1024 events get a ring that holds
// one of them at RingEventBytes an event.
const DefaultRingBytes = 4 << 20

// RingEventBytes is what the ring must have room for per event of one
// batch: a whole path's worth (PATH_MAX) with the batch's share of the
// process records and headers. The ring holds at least one such batch.
const RingEventBytes = 4 << 10

// CheckTransport says whether New would refuse o's transport: an unknown
// one, or a ring that cannot hold a batch.
func CheckTransport(o Options) error {
	return checkTransport(&o)
}

// checkTransport fills the transport's defaults (shm, except for the
// one-RPC-per-batch mode) and refuses a ring that cannot hold one batch
// of BatchEvents events of RingEventBytes.
func checkTransport(o *Options) error {
	switch o.Transport {
	case "":
		o.Transport = TransportShm
		if o.Unary {
			o.Transport = TransportGRPC
			return nil
		}
	case TransportGRPC:
		return nil
	case TransportShm:
	default:
		return fmt.Errorf("transport %q: use %s or %s", o.Transport, TransportShm, TransportGRPC)
	}
	if o.Unary {
		return errors.New("transport shm carries the batch stream: the one-RPC-per-batch mode (goplugin-unary) has none")
	}
	if o.BatchEvents <= 0 {
		o.BatchEvents = 256
	}
	if o.RingBytes == 0 {
		// The default, or as much more as batches this large need.
		o.RingBytes = DefaultRingBytes
		for o.RingBytes < shm.MaxDataSize && int64(o.RingBytes) < int64(o.BatchEvents)*RingEventBytes {
			o.RingBytes *= 2
		}
	}
	if o.RingBytes < shm.MinDataSize || o.RingBytes > shm.MaxDataSize || o.RingBytes&(o.RingBytes-1) != 0 {
		return fmt.Errorf("shm ring of %d bytes: want a power of two from %d KiB to %d MiB", o.RingBytes, shm.MinDataSize>>10, shm.MaxDataSize>>20)
	}
	if need := int64(o.BatchEvents) * RingEventBytes; int64(o.RingBytes) < need {
		return fmt.Errorf("shm ring of %d KiB cannot hold a batch of up to %d events (%d KiB at %d bytes an event): make the ring at least %d MiB or the batches smaller",
			o.RingBytes>>10, o.BatchEvents, need>>10, RingEventBytes, (need+(1<<20)-1)>>20)
	}
	return nil
}

// newRing makes a fresh ring for the process cmd will start, if the
// transport is shm, and hands it over: its descriptors become the
// process's 3 and 4 (the enclave launcher keeps exactly those), and
// wire.ShmEnv tells the plugin.
func (b *Backend) newRing(cmd *exec.Cmd) (*shm.Producer, error) {
	if b.opts.Transport != TransportShm {
		return nil, nil
	}
	ring, err := shm.New(b.opts.RingBytes)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", b.opts.Path, err)
	}
	prod, cons := ring.Files()
	cmd.ExtraFiles = append(cmd.ExtraFiles[:0], prod, cons) // 3, 4
	cmd.Env = append(cmd.Env, wire.ShmEnv+"="+wire.ShmEnvValue())
	return ring, nil
}

// errRingFull is a batch the ring has no room for even with nothing else
// in it (roundTrip's single batches): handled like a send that failed.
var errRingFull = errors.New("the shm ring has no room for the batch")

// How often the loop looks at the ring while batches are in flight: the
// plugin answers only batches with findings or errors on the stream, so a
// batch read without an answer is seen from the consumer position. Every
// batch sent looks too, so at saturation the timer rarely fires. The loop
// looks every pollMin while the plugin makes progress, every pollMax once
// it has made none for pollSlowAfter (a plugin that hangs is not polled
// 20,000 times a second until its deadline).
const (
	pollMin       = 50 * time.Microsecond
	pollMax       = time.Millisecond
	pollSlowAfter = 5 * time.Millisecond
)

// ringSend writes p into the ring after every batch before it. A ring
// without room now leaves p (and whatever comes after it) waiting in
// flight, counted once: ringProgress writes it once the plugin has
// acknowledged enough. The dispatcher never waits on the ring (the Window
// bounds what is in flight), and a plugin that stops acknowledging is
// caught by the batch deadline like any hang.
func (b *Backend) ringSend(p *pending) error {
	if i := b.unwritten(); i >= 0 && b.inflight[i] != p {
		return nil // an earlier batch waits for room: keep the order
	}
	return b.ringWritePending(p)
}

// unwritten is the index of the oldest batch in flight not yet in the
// ring, -1 if none.
func (b *Backend) unwritten() int {
	for i, p := range b.inflight {
		if !p.written {
			return i
		}
	}
	return -1
}

// maxBatchBytes is the largest encoded batch o's transport carries.
func maxBatchBytes(o Options) int {
	if o.Transport == TransportShm {
		return o.RingBytes - shm.RecordHeaderSize - wire.RingHeaderSize
	}
	return wire.MaxStreamBatch
}

// submitSplit sends a batch too large for the transport (a ring record, a
// stream message) as several that fit, answered together; an event too
// large on its own is refused: counted as quarantined and logged. Nothing
// is sent that the plugin would have to be killed over.
func (b *Backend) submitSplit(ctx context.Context, events []*event.Event, done backends.Done) {
	for _, p := range b.split(ctx, events, done) {
		b.queue(p)
	}
}

// split encodes events as batches that fit the transport (see
// submitSplit), answered together through done; none if every event is
// refused (done is then called at once).
func (b *Backend) split(ctx context.Context, events []*event.Event, done backends.Done) []*pending {
	var (
		chunks [][]*event.Event
		cur    []*event.Event
		size   = wire.FlatBatchHeaderSize
	)
	for _, ev := range events {
		n := wire.FlatSize(ev)
		if wire.FlatBatchHeaderSize+n > b.maxBatch {
			b.quarantined.Add(1)
			b.log.Error("event refused: larger on its own than the plugin's transport carries (counted as quarantined); raise ring_mib",
				zap.String("kind", ev.Kind.String()), zap.Uint32("pid", ev.PID), zap.String("comm", pluginlog.SafeText(ev.Comm)),
				zap.Int("bytes", n), zap.Int("max_bytes", b.maxBatch))
			continue
		}
		if size+n > b.maxBatch {
			chunks, cur, size = append(chunks, cur), nil, wire.FlatBatchHeaderSize
		}
		cur, size = append(cur, ev), size+n
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	if len(chunks) == 0 {
		done(nil, nil)
		return nil
	}
	all := &joined{left: len(chunks), done: done}
	out := make([]*pending, 0, len(chunks))
	for _, c := range chunks {
		b.enc.Reset()
		for _, ev := range c {
			b.enc.Add(ev)
		}
		out = append(out, &pending{ctx: ctx, buf: b.enc.Finish(), count: len(c), done: all.one})
	}
	return out
}

// submitShm is Submit on the shm transport: the loop encodes the batch
// straight into the ring, and Submit waits for that (the events are only
// valid until it returns).
func (b *Backend) submitShm(ctx context.Context, events []*event.Event, done backends.Done) {
	select {
	case b.reqs <- request{ctx: ctx, events: events, done: done}:
		<-b.encoded
	case <-b.done:
		done(nil, backends.ErrUnavailable)
	}
}

// acceptShm takes a batch of events Submit hands the loop: encoded into
// the ring when nothing waits before it and it fits (no copy: the pending
// batch views the ring, which holds it until it is settled), else into a
// buffer of its own that waits for room, or, too large for the ring, split.
// Submit returns once this has read the events.
func (b *Backend) acceptShm(r request) {
	ps := b.encodeShm(r)
	b.encoded <- struct{}{}
	for _, p := range ps {
		b.inflight = append(b.inflight, p)
		if p.written {
			continue
		}
		if err := b.send(p); err != nil {
			b.recover(err, false)
			return
		}
	}
	if err := b.ringProgress(); err != nil {
		b.recover(err, false)
	}
}

// minRingRoom is the least room worth encoding a batch into: with less,
// the batch is encoded aside and waits.
const minRingRoom = 4 << 10

func (b *Backend) encodeShm(r request) []*pending {
	if r.flat != nil {
		return b.copyShm(r)
	}
	count := len(r.events)
	if b.proc != nil && b.proc.ring != nil && b.unwritten() < 0 {
		ring := b.proc.ring
		b.ringHold()
		pos := ring.Produced()
		buf, ok, err := ring.ReserveUpTo(wire.RingHeaderSize+minRingRoom, wire.RingHeaderSize+b.maxBatch)
		if ok && err == nil {
			room := buf[wire.RingHeaderSize:]
			b.enc.ResetInto(room)
			for _, ev := range r.events {
				b.enc.Add(ev)
			}
			batch := b.enc.Bytes()
			if b.enc.Into(room) {
				b.seq++
				wire.PutRingHeader(buf, b.seq, count)
				if err := ring.Commit(wire.RingHeaderSize + len(batch)); err == nil {
					return []*pending{{ctx: r.ctx, buf: mem.SliceBuffer(batch), count: count, done: r.done,
						seq: b.seq, sentAt: time.Now(), written: true, inRing: true, ring: ring, ringPos: pos, ringEnd: ring.Produced()}}
				}
				b.seq--
			}
			ring.Abort()
			// It outgrew the room: it is whole in memory of its own.
			if len(batch) <= b.maxBatch {
				return []*pending{{ctx: r.ctx, buf: mem.SliceBuffer(batch), count: count, done: r.done}}
			}
			return b.split(r.ctx, r.events, r.done)
		}
		// No room now, or a violation the send will find: encode aside.
	}
	b.enc.Reset()
	for _, ev := range r.events {
		b.enc.Add(ev)
	}
	if b.enc.Len() > b.maxBatch {
		return b.split(r.ctx, r.events, r.done)
	}
	return []*pending{{ctx: r.ctx, buf: b.enc.Finish(), count: count, done: r.done}}
}

// copyShm is encodeShm for a batch encoded already (SubmitFlat, which
// checked that it fits a ring record): copied into the ring when nothing
// waits before it and it fits now, else into a buffer of its own that
// waits for room.
func (b *Backend) copyShm(r request) []*pending {
	if b.proc != nil && b.proc.ring != nil && b.unwritten() < 0 {
		ring := b.proc.ring
		b.ringHold()
		pos := ring.Produced()
		buf, ok, err := ring.Reserve(wire.RingHeaderSize + len(r.flat))
		if ok && err == nil {
			wire.PutRingHeader(buf, b.seq+1, r.count)
			batch := buf[wire.RingHeaderSize:]
			copy(batch, r.flat)
			if err := ring.Commit(len(buf)); err == nil {
				b.seq++
				return []*pending{{ctx: r.ctx, buf: mem.SliceBuffer(batch), count: r.count, done: r.done,
					seq: b.seq, sentAt: time.Now(), written: true, inRing: true, ring: ring, ringPos: pos, ringEnd: ring.Produced()}}
			}
			ring.Abort()
		}
		// No room now, or a violation the send will find: copy aside.
	}
	return []*pending{{ctx: r.ctx, buf: wire.CopyBatch(r.flat), count: r.count, done: r.done}}
}

// ringHold keeps the oldest batch in flight that views the ring from
// being overwritten: the plugin may have read it (and moved its position
// past it) before the monitor settled it and read its findings' events.
func (b *Backend) ringHold() {
	ring := b.proc.ring
	for _, p := range b.inflight {
		if p.inRing {
			ring.Hold(p.ringPos)
			return
		}
	}
	ring.Unhold()
}

// detach gives p a copy of its batch if it views the ring (which goes
// with its process).
func (p *pending) detach() {
	if p.inRing {
		p.buf, p.inRing = mem.SliceBuffer(bytes.Clone(p.buf.ReadOnlyData())), false
	}
}

// joined answers a batch sent in parts once every part is answered: with
// the findings of all (their events are copies of their own), and the
// first error.
type joined struct {
	left  int
	found []detection.Finding
	err   error
	done  backends.Done
}

func (j *joined) one(fs []detection.Finding, err error) {
	j.found = append(j.found, fs...)
	if j.err == nil {
		j.err = err
	}
	if j.left--; j.left == 0 {
		j.done(j.found, j.err)
	}
}

// ringPoll is a channel that fires when the loop should look at the ring
// again: nil without a ring or with nothing in flight.
func (b *Backend) ringPoll() <-chan time.Time {
	if b.proc == nil || b.proc.ring == nil || len(b.inflight) == 0 {
		return nil
	}
	since := b.inflight[0].sentAt
	if b.lastAnswer.After(since) {
		since = b.lastAnswer
	}
	every := pollMin
	if time.Since(since) > pollSlowAfter {
		every = pollMax
	}
	b.poll.Reset(every)
	return b.poll.C
}

// ringProgress settles the batches the plugin read without answering,
// then writes what waits for room. The consumer position and the answered
// count come from the plugin's page and are validated (a violation kills
// it): a batch is settled, with no findings, once the position is past
// it and every answer the plugin says it sent has arrived (answers come in
// order, so none is on its way for it). A plugin that lies only delays
// its own batches until the deadline, or settles them without findings.
func (b *Backend) ringProgress() error {
	if b.proc == nil || b.proc.ring == nil {
		return nil
	}
	if err := b.settleRead(); err != nil {
		return err
	}
	for i := b.unwritten(); i >= 0 && i < len(b.inflight); i++ {
		p := b.inflight[i]
		if err := b.ringWritePending(p); err != nil || !p.written {
			return err
		}
	}
	return nil
}

// settleRead settles, oldest first, the batches the plugin has read with
// no answer on its way (they had no findings), as its answers would have
// been on the stream.
func (b *Backend) settleRead() error {
	for len(b.inflight) > 0 && b.inflight[0].written && b.inflight[0].ring == b.proc.ring {
		p := b.inflight[0]
		done, err := b.ringRead(p.ringEnd)
		if err != nil {
			return err
		}
		if !done {
			break
		}
		b.inflight = b.inflight[1:]
		b.lastAnswer = time.Now()
		b.restart.Progressed()
		b.complete(p, nil, p.count)
	}
	return nil
}

// ringRead says whether the plugin has read the ring up to end with no
// answer on its way: the batch that ends there had no findings.
func (b *Backend) ringRead(end uint64) (bool, error) {
	ring := b.proc.ring
	pos, err := ring.Consumed()
	if err != nil {
		return false, violation(err)
	}
	if pos < end {
		return false, nil
	}
	answered, err := ring.Answered()
	if err != nil {
		return false, violation(err)
	}
	return answered <= b.proc.answers, nil
}

// answeredIndex is the index in flight of the batch a result from the
// ring's plugin answers: one written to the ring, by its seq. -1 if none.
func (b *Backend) answeredIndex(in *wire.InResult) int {
	seq, err := wire.ResultSeq(in.Raw)
	if err != nil {
		return -1
	}
	for i, p := range b.inflight {
		if !p.written {
			break
		}
		if p.seq == seq {
			return i
		}
	}
	return -1
}

// ringWritePending writes p into the ring if it fits now.
func (b *Backend) ringWritePending(p *pending) error {
	ok, err := b.ringWrite(b.seq+1, p.count, p.buf.ReadOnlyData())
	if err != nil {
		return err
	}
	if !ok {
		if !p.waited {
			p.waited = true
			b.ringFull.Add(1)
			if b.errLog.Allow(10 * time.Second) {
				ring := b.proc.ring
				b.log.Warn("the plugin's shm ring is full: the batch waits in flight until the plugin makes room (counted; logged at most every 10s)",
					zap.Int("ring_bytes", ring.Size()), zap.Uint64("pending_bytes", ring.Pending()), zap.Int("batch_bytes", p.buf.Len()))
			}
		}
		return nil
	}
	b.seq++
	p.seq, p.sentAt, p.written, p.ring, p.ringEnd = b.seq, time.Now(), true, b.proc.ring, b.proc.ring.Produced()
	return nil
}

// ringWriteWaiting writes one batch with nothing else waiting (a batch
// sent on its own), giving the plugin until the batch deadline to make
// room (its acknowledgement of the batch before may come just after its
// answer); past it, the plugin hangs.
func (b *Backend) ringWriteWaiting(ctx context.Context, seq uint64, count int, batch []byte) error {
	until := time.Now().Add(b.opts.BatchDeadline)
	for {
		ok, err := b.ringWrite(seq, count, batch)
		if ok || err != nil {
			return err
		}
		if time.Now().After(until) {
			return errHang
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(pollMin)
	}
}

// ringWrite writes one batch into the process's ring if it has room now
// (ok). It never waits. A batch larger than the whole ring is
// errRingFull; a consumer position that breaks the protocol is a
// violation.
func (b *Backend) ringWrite(seq uint64, count int, batch []byte) (ok bool, err error) {
	ring := b.proc.ring
	b.ringHold()
	buf, ok, err := ring.Reserve(wire.RingHeaderSize + len(batch))
	switch {
	case errors.Is(err, shm.ErrProtocol):
		return false, violation(err)
	case errors.Is(err, shm.ErrTooLarge):
		b.ringFull.Add(1)
		return false, fmt.Errorf("%w: %w", errRingFull, err)
	case err != nil:
		return false, fmt.Errorf("write batch to the shm ring: %w", err)
	case !ok:
		return false, nil
	}
	wire.PutRingHeader(buf, seq, count)
	copy(buf[wire.RingHeaderSize:], batch)
	return true, ring.Commit(len(buf))
}

// ringCheck validates the consumer position and the answered count the
// plugin wrote (the only values the monitor reads from memory it can
// write): a position that is not aligned, goes back, or is past what was
// produced, or a count that goes back or exceeds the batches written, is
// a violation.
func (b *Backend) ringCheck() error {
	if b.proc == nil || b.proc.ring == nil {
		return nil
	}
	if _, err := b.proc.ring.Consumed(); err != nil {
		return violation(err)
	}
	if _, err := b.proc.ring.Answered(); err != nil {
		return violation(err)
	}
	return nil
}

// closeRing lets go of the monitor's side of the ring (the plugin's
// mappings, if it still runs, keep the memory until it is gone).
func (p *process) closeRing() {
	if p.ring != nil {
		p.ring.Close()
		p.ring = nil
	}
}
