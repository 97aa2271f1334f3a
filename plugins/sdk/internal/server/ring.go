package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"

	"github.com/bulkhead-sec/bulkhead/backends/goplugin/shm"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/wire"
)

// OpenRing opens the consumer end of the ring the monitor passed (the
// value of wire.ShmEnv names its descriptors). The descriptors are closed:
// the mappings stay.
func OpenRing(env string) (*shm.Consumer, error) {
	pfd, cfd, err := wire.ParseShmEnv(env)
	if err != nil {
		return nil, err
	}
	pf, cf := os.NewFile(uintptr(pfd), "bulkhead-ring"), os.NewFile(uintptr(cfd), "bulkhead-ring-consumer")
	defer pf.Close()
	defer cf.Close()
	ring, err := shm.Open(pf, cf, shm.ConsumerOptions{})
	if err != nil {
		return nil, fmt.Errorf("%s=%s: %w", wire.ShmEnv, env, err)
	}
	// The ring's reader spins on its P, then sleeps in a futex wait that
	// keeps the P until sysmon takes it back: on a quiet host up to 10 ms.
	// With a single P (the runtime's default in an enclave whose cgroup
	// allows one CPU), a goroutine it made runnable meanwhile, gRPC's
	// writer with an answer carrying findings, waited as long: that was
	// most of the finding's latency. A second P runs it at once; the
	// cgroup still bounds the CPU the plugin uses.
	if runtime.GOMAXPROCS(0) < minProcs {
		runtime.GOMAXPROCS(minProcs)
	}
	return ring, nil
}

// minProcs is the fewest Ps a plugin reading a ring runs with.
const minProcs = 2

// UseRing makes Stream read batches from ring instead of from the stream.
func (s *Server) UseRing(ring *shm.Consumer) { s.ring = ring }

// ringStream reads the batches of the ring in order, answers those with
// findings or errors on the stream, and acknowledges each once done. The
// stream is still read, to notice the monitor ending it. The batch's
// bytes view the read-only mapping until the result is sent.
func (s *Server) ringStream(stream wire.Detector_StreamServer) error {
	if !s.ringBusy.TryLock() {
		return errors.New("the ring already has a stream reading it")
	}
	defer s.ringBusy.Unlock()
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	var (
		recvErr error
		wg      sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel()
		var batch wire.InBatch
		for {
			if err := stream.RecvMsg(&batch); err != nil {
				if !errors.Is(err, io.EOF) {
					recvErr = err
				}
				return
			}
			// With a ring, nothing comes on the stream.
		}
	}()
	var dec wire.FlatDecoder
	for {
		rec, err := s.ring.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				wg.Wait()
				return recvErr
			}
			return err
		}
		res := &wire.Result{}
		if seq, _, batch, perr := wire.ParseRingRecord(rec); perr != nil {
			// The record's seq is not known: the monitor's seq check
			// catches the mismatch.
			res.Errors, res.LastError = 1, []byte(perr.Error())
		} else {
			res = s.process(ctx, seq, batch, &dec)
		}
		// Only a batch with findings or errors is answered on the stream:
		// the monitor settles the others from the consumer position, and
		// from the answered count, published with it, knows when an
		// answer is still on its way. No message, no system call.
		if len(res.Findings) > 0 || res.Errors > 0 {
			if err := stream.Send(res); err != nil {
				return err
			}
			s.ring.Answered()
		}
		s.ring.Ack()
	}
}
