package test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/bpf"
	"github.com/bulkhead-sec/bulkhead/pipeline/decode"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/source"
	"github.com/bulkhead-sec/bulkhead/test/testenv"
	"golang.org/x/sys/unix"
)

// collector keeps the first raw record of each kind.
type collector struct {
	dec     *decode.Decoder
	ev      event.Event
	first   map[event.Kind][]byte
	errs    int
	flushes int
}

func (c *collector) Record(raw []byte) {
	if err := c.dec.Decode(raw, &c.ev); err != nil {
		c.errs++
		return
	}
	if _, ok := c.first[c.ev.Kind]; !ok {
		c.first[c.ev.Kind] = append([]byte(nil), raw...)
	}
}
func (c *collector) Flush() { c.flushes++ }

// TestKernelRecordsDecode reads the real ring buffer through source.Reader
// and decodes real records of every kind this kernel can produce. With
// BULKHEAD_UPDATE_RECORDS=1 it saves one of each as the decoder's recorded
// records and fuzz seeds (pipeline/decode/testdata/records).
func TestKernelRecordsDecode(t *testing.T) {
	testenv.RequireBPF(t)
	k, err := bpf.Load(bpf.Options{RingBytes: 4 << 20, WakeupBytes: 4096, SelfPID: 1}) // trace this test too
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	all := []uint16{bpf.RecordOpen, bpf.RecordConnect, bpf.RecordSetID, bpf.RecordPtrace, bpf.RecordModule, bpf.RecordBPFProg, bpf.RecordMemfd}
	if err := k.Attach(all); err != nil {
		t.Fatal(err)
	}
	rd, err := source.New(k.Events(), 2*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	c := &collector{dec: decode.New(), first: map[event.Kind][]byte{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- rd.Run(ctx, c) }()

	run(t, "/etc", "cat", "hostname")
	run(t, "", "/usr/bin/python3", "-c", "import os, socket, ctypes\ntry: socket.create_connection(('127.0.0.1', 1))\nexcept OSError: pass\nos.setgid(0)\nos.memfd_create('x')")
	fd, _ := unix.MemfdCreate("rec", 0)
	unix.Close(fd)

	time.Sleep(50 * time.Millisecond)
	if err := k.Detach(); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c.errs != 0 {
		t.Errorf("%d real records failed to decode", c.errs)
	}
	if c.flushes == 0 {
		t.Error("the reader never flushed its handler")
	}
	for _, kind := range []event.Kind{event.KindExec, event.KindFork, event.KindExit, event.KindOpen, event.KindConnect, event.KindSetID, event.KindMemfd} {
		if _, ok := c.first[kind]; !ok {
			t.Errorf("no %s record read from the kernel", kind)
		}
	}
	kc, err := k.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if st := rd.Stats(); uint64(sumEmitted(kc)) != st.Records {
		t.Errorf("kernel emitted %d records, reader read %d", sumEmitted(kc), st.Records)
	}
	if os.Getenv("BULKHEAD_UPDATE_RECORDS") == "1" {
		dir := filepath.Join("..", "pipeline", "decode", "testdata", "records")
		os.MkdirAll(dir, 0o755)
		for kind, raw := range c.first {
			if err := os.WriteFile(filepath.Join(dir, kind.String()+".bin"), raw, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func sumEmitted(c bpf.Counters) (n uint64) {
	for _, e := range c.Emitted {
		n += e
	}
	return n
}
