package rogue

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/bulkhead-sec/bulkhead/backends/goplugin/shm"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/wire"
	"golang.org/x/sys/unix"
)

// RingAttacks are the attacks on the shared-memory transport (the monitor
// runs the plugin with transport shm); they are in Attacks too.
var RingAttacks = []string{"ring-consumer-past", "ring-backwards", "ring-write", "ring-answered-past", "ring-stall"}

// ring is the rogue's end of the monitor's ring: the SDK's consumer, and
// the descriptors kept open to attack it with.
type ring struct {
	cons     *shm.Consumer
	pf, cf   *os.File
	page     []byte // its own writable mapping of the consumer page
	backward bool   // ring-backwards: the next batch moves the position back
	lie      func() // told after every Ack once the attack started
}

// openRing opens the ring the monitor passed, if it passed one.
func openRing() (*ring, error) {
	v := os.Getenv(wire.ShmEnv)
	if v == "" {
		return nil, nil
	}
	pfd, cfd, err := wire.ParseShmEnv(v)
	if err != nil {
		return nil, err
	}
	r := &ring{pf: os.NewFile(uintptr(pfd), "ring"), cf: os.NewFile(uintptr(cfd), "ring-consumer")}
	if r.cons, err = shm.Open(r.pf, r.cf, shm.ConsumerOptions{}); err != nil {
		return nil, err
	}
	if r.page, err = unix.Mmap(cfd, 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return nil, err
	}
	return r, nil
}

// setAnswered writes the answered count, whatever it is.
func (r *ring) setAnswered(n uint64) {
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&r.page[128])), n)
}

// setConsumer writes the consumer position, whatever it is.
func (r *ring) setConsumer(pos uint64) {
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&r.page[0])), pos)
}

// ringStream is Stream with batches from the ring, and the ring attacks.
func (s *server) ringStream(stream interface {
	Context() context.Context
	RecvMsg(any) error
	SendMsg(any) error
}) error {
	r := s.ring
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	go func() {
		defer cancel()
		var batch wire.InBatch
		for stream.RecvMsg(&batch) == nil {
		}
	}()
	var dec wire.FlatDecoder
	for {
		rec, err := r.cons.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		seq, _, batch, err := wire.ParseRingRecord(rec)
		if err != nil {
			return err
		}
		events, err := dec.Decode(batch)
		if err != nil {
			return err
		}
		if s.c.Attack == "slow" {
			time.Sleep(s.delay)
		}
		// The protocol: answer (every batch, here; an honest plugin may
		// answer only those with findings), count the answer, then
		// acknowledge. The attacks break it after that.
		attack := ""
		switch {
		case r.backward:
			attack = "ring-backwards-now"
		case s.triggered(events):
			attack = s.c.Attack
		}
		switch attack {
		case "ring-write":
			r.write(s.stderr)
		case "stream-error":
			return s.streamError()
		case "ring-stall":
			// Never reads, answers or acknowledges again, and lives on.
			notice(s.stderr, "ring-stall: the ring is no longer read")
			<-ctx.Done()
			return nil
		}
		out := raw(s.answer(seq, events))
		if err := stream.SendMsg(&out); err != nil {
			return err
		}
		r.cons.Answered()
		r.cons.Ack()
		if r.lie != nil {
			r.lie() // every Ack overwrote it: told again
		}
		switch attack {
		case "ring-backwards-now":
			// The position goes back before what the monitor validated.
			notice(s.stderr, "ring-backwards: consumer position back to 0")
			r.setConsumer(0)
		case "ring-consumer-past":
			notice(s.stderr, fmt.Sprintf("ring-consumer-past: consumer position %d", r.cons.Position()+2*uint64(r.cons.Size())))
			r.lie = func() { r.setConsumer(r.cons.Position() + 2*uint64(r.cons.Size())) }
			r.lie()
		case "ring-backwards":
			r.backward = true // the next batch goes back
		case "ring-answered-past":
			// Claims more answers than batches were ever sent.
			notice(s.stderr, "ring-answered-past: answered count 1<<40")
			r.lie = func() { r.setAnswered(1 << 40) }
			r.lie()
		}
	}
}

// write tries every way to change the ring's data or size, says which
// were refused, and then writes through its read-only mapping (the
// plugin dies of it).
func (r *ring) write(stderr io.Writer) {
	say := func(what string, err error) {
		if err != nil {
			notice(stderr, "ring-write: "+what+": refused: "+err.Error())
		} else {
			notice(stderr, "ring-write: "+what+": ALLOWED")
		}
	}
	pfd, cfd := int(r.pf.Fd()), int(r.cf.Fd())
	page := os.Getpagesize()
	m, err := unix.Mmap(pfd, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	say("map the ring writable", err)
	if err == nil {
		binary.LittleEndian.PutUint64(m[64:], 1<<40) // the producer position
		unix.Munmap(m)
	}
	_, err = unix.Pwrite(pfd, []byte("rogue"), int64(page))
	say("write the ring's memfd", err)
	say("truncate the ring", unix.Ftruncate(pfd, 0))
	say("grow the ring", unix.Ftruncate(pfd, int64(64<<20)))
	say("truncate the consumer page", unix.Ftruncate(cfd, 0))
	_, err = unix.FcntlInt(uintptr(pfd), unix.F_ADD_SEALS, unix.F_SEAL_WRITE)
	say("seal the ring against the monitor's writes", err)
	_, err = unix.FcntlInt(uintptr(cfd), unix.F_ADD_SEALS, unix.F_SEAL_WRITE)
	say("seal the consumer page against the monitor's writes", err)
	ro, err := unix.Mmap(pfd, 0, page, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		say("map the ring read-only", err)
		os.Exit(5)
	}
	say("make a read-only mapping writable", unix.Mprotect(ro, unix.PROT_READ|unix.PROT_WRITE))
	notice(stderr, "ring-write: writing through the read-only mapping")
	ro[64] = 0xff // SIGSEGV: the Go runtime ends the plugin
}
