package shm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The test binary re-executes itself as the consumer process: childEnv
// names the role, fds 3 and 4 are the ring's descriptors.
const (
	childEnv  = "BULKHEAD_SHM_CHILD"
	childArg  = "BULKHEAD_SHM_ARG"
	childMax  = 9000 // largest payload the consume child expects
	childWait = 60 * time.Second
)

func runChild(mode string) int {
	c, err := Open(os.NewFile(3, "ring"), os.NewFile(4, "consumer"), ConsumerOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 3
	}
	arg := os.Getenv(childArg)
	in := bufio.NewReader(os.Stdin)
	ctx, cancel := context.WithTimeout(context.Background(), childWait)
	defer cancel()
	switch mode {
	case "consume": // read and check N records, acknowledging every 7th
		n, _ := strconv.ParseUint(arg, 10, 64)
		h := fnv.New64a()
		for seq := range n {
			rec, err := c.Next(ctx)
			if err != nil {
				fmt.Fprintf(os.Stderr, "seq %d: %v\n", seq, err)
				return 4
			}
			if !check(rec, seq, childMax) {
				fmt.Fprintf(os.Stderr, "seq %d: wrong record (%d bytes)\n", seq, len(rec))
				return 5
			}
			_, _ = h.Write(rec)
			if seq%7 == 0 {
				c.Ack()
			}
		}
		c.Ack()
		fmt.Printf("count=%d sum=%x sleeps=%d\n", n, h.Sum64(), c.Sleeps())
	case "bench": // count N records, acknowledging each
		n, _ := strconv.ParseUint(arg, 10, 64)
		var sink byte
		for range n {
			rec, err := c.Next(ctx)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 4
			}
			sink ^= touch(rec)
			c.Ack()
		}
		fmt.Printf("sleeps=%d sink=%d\n", c.Sleeps(), sink)
	case "write-data", "write-header": // write into the read-only mapping
		target := &c.m.data[0]
		if mode == "write-header" {
			target = (*byte)(unsafe.Pointer(c.prodPtr))
		}
		fmt.Println("ready")
		*target = 0xff
		fmt.Println("wrote") // not reached
	case "remap": // every other way to get write access or change the size
		res := map[string]string{}
		errno := func(err error) string {
			if err == nil {
				return "ok"
			}
			var e unix.Errno
			if errors.As(err, &e) {
				return unix.ErrnoName(e)
			}
			return err.Error()
		}
		page := pageSize()
		res["mprotect_rw_data"] = errno(unix.Mprotect(c.m.data[:page], unix.PROT_READ|unix.PROT_WRITE))
		res["mprotect_rw_header"] = errno(unix.Mprotect(c.m.header, unix.PROT_READ|unix.PROT_WRITE))
		_, err := unix.Mmap(3, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		res["mmap_shared_rw"] = errno(err)
		ro, err := unix.Mmap(3, int64(page), page, unix.PROT_READ, unix.MAP_SHARED)
		res["mmap_shared_ro"] = errno(err)
		if err == nil {
			res["mprotect_rw_fresh"] = errno(unix.Mprotect(ro, unix.PROT_READ|unix.PROT_WRITE))
		}
		priv, err := unix.Mmap(3, int64(page), page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
		res["mmap_private_rw"] = errno(err)
		if err == nil {
			priv[0] = 0xee // a private copy: must not reach the producer
		}
		_, err = unix.Pwrite(3, []byte{0xee}, int64(page))
		res["pwrite"] = errno(err)
		if f, err := os.OpenFile("/proc/self/fd/3", os.O_RDWR, 0); err != nil {
			res["reopen_write"] = errno(err)
		} else {
			_, err = f.WriteAt([]byte{0xee}, int64(page))
			res["reopen_write"] = errno(err)
			_ = f.Close()
		}
		res["fallocate_punch"] = errno(unix.Fallocate(3, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, int64(page), int64(page)))
		res["ftruncate_shrink_ring"] = errno(unix.Ftruncate(3, 0))
		res["ftruncate_grow_ring"] = errno(unix.Ftruncate(3, int64(64*page)))
		res["ftruncate_shrink_consumer"] = errno(unix.Ftruncate(4, 0))
		res["ftruncate_grow_consumer"] = errno(unix.Ftruncate(4, int64(64*page)))
		_, err = unix.FcntlInt(4, unix.F_ADD_SEALS, unix.F_SEAL_WRITE)
		res["add_seal_consumer"] = errno(err)
		_, err = unix.FcntlInt(3, unix.F_ADD_SEALS, unix.F_SEAL_WRITE)
		res["add_seal_ring"] = errno(err)
		_ = json.NewEncoder(os.Stdout).Encode(res)
	case "position": // acknowledge honestly, then write a bad position
		rec := 0
		for range 3 {
			if _, err := c.Next(ctx); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 4
			}
			rec++
		}
		c.Ack()
		fmt.Printf("acked %d\n", c.acked)
		_, _ = in.ReadString('\n')
		var bad uint64
		switch arg {
		case "past":
			bad = atomic.LoadUint64(c.prodPtr) + 8
		case "unaligned":
			bad = c.acked + 3
		case "backwards":
			bad = c.acked - 8
		case "huge":
			bad = ^uint64(0) &^ 7
		}
		atomic.StoreUint64(c.consPtr, bad)
		fmt.Printf("wrote %d\n", bad)
	case "stall": // map, never read, never acknowledge
		fmt.Println("ready")
		_, _ = io.Copy(io.Discard, in)
	default:
		fmt.Fprintln(os.Stderr, "unknown child mode", mode)
		return 2
	}
	_ = c.Close()
	return 0
}

type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr bytes.Buffer
}

func startChild(t testing.TB, p *Producer, mode, arg string) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ch := &child{cmd: exec.Command(exe, "-test.run=^$")}
	ch.cmd.Env = append(os.Environ(), childEnv+"="+mode, childArg+"="+arg, "GOTRACEBACK=single")
	pf, cf := p.Files()
	ch.cmd.ExtraFiles = []*os.File{pf, cf}
	ch.cmd.Stderr = &ch.stderr
	if ch.stdin, err = ch.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := ch.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	ch.stdout = bufio.NewReader(out)
	if err := ch.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if ch.cmd.ProcessState == nil {
			_ = ch.cmd.Process.Kill()
			_ = ch.cmd.Wait()
		}
	})
	return ch
}

func (ch *child) line(t testing.TB) string {
	t.Helper()
	s, err := ch.stdout.ReadString('\n')
	if err != nil {
		t.Fatalf("child output: %q, %v; stderr: %s", s, err, ch.stderr.String())
	}
	return strings.TrimSpace(s)
}

func (ch *child) wait(t testing.TB) {
	t.Helper()
	_ = ch.stdin.Close()
	_, _ = io.Copy(io.Discard, ch.stdout)
	if err := ch.cmd.Wait(); err != nil {
		t.Fatalf("child: %v; stderr: %s", err, ch.stderr.String())
	}
}

// A real second process consumes and checksums N records while this one
// produces them: nothing lost, order kept, contents intact.
func TestCrossProcess(t *testing.T) {
	const n = 30000
	p := newRing(t, 1<<16)
	ch := startChild(t, p, "consume", strconv.Itoa(n))
	timeout, cancel := context.WithTimeout(context.Background(), childWait)
	defer cancel()
	sum, full := produce(t, p, 0, n, childMax, timeout.Done())
	got := ch.line(t)
	ch.wait(t)
	want := fmt.Sprintf("count=%d sum=%x", n, sum)
	if !strings.HasPrefix(got, want+" ") {
		t.Fatalf("child read %q, producer wrote %q", got, want)
	}
	if pos, err := p.Consumed(); err != nil || pos != p.Produced() {
		t.Fatalf("Consumed = %d, %v; produced %d", pos, err, p.Produced())
	}
	t.Logf("%d records, %d bytes, %d laps; producer full %d times; child %s; producer wakes %d",
		n, p.Produced(), p.Produced()/uint64(p.Size()), full, got, p.Wakes())
}

// The consumer process writes into its read-only mapping (the data, then
// the producer position): it dies of SIGSEGV, the ring is unchanged and the
// producer carries on with a new consumer.
func TestHostileWriteIntoMapping(t *testing.T) {
	for _, mode := range []string{"write-data", "write-header"} {
		t.Run(mode, func(t *testing.T) {
			p := newRing(t, 1<<14)
			for seq := range uint64(5) {
				_, _ = produce(t, p, seq, 1, 200, nil)
			}
			before := append([]byte(nil), p.m.data[:p.Size()]...)
			prod := p.Produced()
			ch := startChild(t, p, mode, "")
			if got := ch.line(t); got != "ready" {
				t.Fatalf("child said %q", got)
			}
			_, _ = io.Copy(io.Discard, ch.stdout)
			err := ch.cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("child survived its write: %v", err)
			}
			// The Go runtime turns the SIGSEGV into a fatal error (exit 2);
			// SEGV_ACCERR (code=0x2) says the page was mapped, not writable.
			stderr := ch.stderr.String()
			if !strings.Contains(stderr, "SIGSEGV") || !strings.Contains(stderr, "code=0x2") {
				t.Fatalf("child did not die of an access fault: %v\n%s", err, stderr)
			}
			t.Logf("child: %v; %s", err, firstLines(stderr, 2))
			if !bytes.Equal(before, p.m.data[:p.Size()]) || atomic.LoadUint64(p.prodPtr) != prod {
				t.Fatal("the ring changed under the producer")
			}
			if _, err := p.Consumed(); err != nil {
				t.Fatal(err)
			}
			_, _ = produce(t, p, 5, 1, 200, nil)
			if start, err := p.ResetConsumer(); err != nil || start != 0 {
				t.Fatalf("ResetConsumer = %d, %v", start, err)
			}
			c := openRing(t, p, ConsumerOptions{})
			for seq := range uint64(6) {
				rec, err := c.Next(context.Background())
				if err != nil || !check(rec, seq, 200) {
					t.Fatalf("new consumer, seq %d: %v", seq, err)
				}
			}
		})
	}
}

// The consumer process tries every way to write the sealed memfd or change
// its size: all refused; a private copy stays private; the consumer page
// cannot be truncated or sealed further.
func TestHostileRemapAndTruncate(t *testing.T) {
	p := newRing(t, 1<<14)
	_, _ = produce(t, p, 0, 3, 200, nil)
	before := append([]byte(nil), p.m.data[:p.Size()]...)
	ch := startChild(t, p, "remap", "")
	var res map[string]string
	if err := json.Unmarshal([]byte(ch.line(t)), &res); err != nil {
		t.Fatal(err)
	}
	ch.wait(t)
	want := map[string]string{
		"mprotect_rw_data":          "EACCES", // the kernel cleared VM_MAYWRITE on a sealed memfd
		"mprotect_rw_header":        "EACCES",
		"mprotect_rw_fresh":         "EACCES",
		"mmap_shared_rw":            "EPERM",
		"mmap_shared_ro":            "ok", // control: the fd itself works
		"mmap_private_rw":           "ok", // copy-on-write, checked below
		"pwrite":                    "EPERM",
		"reopen_write":              "EPERM",
		"fallocate_punch":           "EPERM",
		"ftruncate_shrink_ring":     "EPERM",
		"ftruncate_grow_ring":       "EPERM",
		"ftruncate_shrink_consumer": "EPERM",
		"ftruncate_grow_consumer":   "EPERM",
		"add_seal_consumer":         "EPERM",
		"add_seal_ring":             "EPERM",
	}
	for op, w := range want {
		if res[op] != w {
			t.Errorf("%s: %q, want %s", op, res[op], w)
		}
	}
	t.Logf("child saw: %v", res)
	if !bytes.Equal(before, p.m.data[:p.Size()]) {
		t.Fatal("the ring changed under the producer")
	}
	var st unix.Stat_t
	pf, cf := p.Files()
	if err := unix.Fstat(int(pf.Fd()), &st); err != nil || st.Size != int64(pageSize()+p.Size()) {
		t.Fatalf("ring size now %d (%v)", st.Size, err)
	}
	if err := unix.Fstat(int(cf.Fd()), &st); err != nil || st.Size != int64(pageSize()) {
		t.Fatalf("consumer page size now %d (%v)", st.Size, err)
	}
}

// The consumer process acknowledges three records honestly, then writes a
// position past the producer, unaligned, backwards or absurd: the
// producer's next read is ErrProtocol, and so is every Reserve until the
// supervisor resets the ring for a new consumer.
func TestHostileConsumerPosition(t *testing.T) {
	for _, mode := range []string{"past", "unaligned", "backwards", "huge"} {
		t.Run(mode, func(t *testing.T) {
			p := newRing(t, 1<<14)
			_, _ = produce(t, p, 0, 10, 200, nil)
			ch := startChild(t, p, "position", mode)
			var acked uint64
			if _, err := fmt.Sscanf(ch.line(t), "acked %d", &acked); err != nil {
				t.Fatal(err)
			}
			if got, err := p.Consumed(); err != nil || got != acked {
				t.Fatalf("honest position: %d, %v; child acked %d", got, err, acked)
			}
			_, _ = io.WriteString(ch.stdin, "go\n")
			wrote := ch.line(t)
			ch.wait(t)
			_, err := p.Consumed()
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("after the child %s: Consumed = %v, want ErrProtocol", wrote, err)
			}
			t.Logf("child %s → %v", wrote, err)
			// Reserve needs the consumer position once the ring is full:
			// sticky error either way.
			if _, _, err := p.Reserve(8); !errors.Is(err, ErrProtocol) {
				t.Fatalf("Reserve = %v", err)
			}
			if start, err := p.ResetConsumer(); err != nil || start != acked {
				t.Fatalf("ResetConsumer = %d, %v; want the validated %d", start, err, acked)
			}
			c := openRing(t, p, ConsumerOptions{})
			for seq := uint64(3); seq < 10; seq++ {
				rec, err := c.Next(context.Background())
				if err != nil || !check(rec, seq, 200) {
					t.Fatalf("new consumer, seq %d: %v", seq, err)
				}
			}
		})
	}
}

// The consumer process maps the ring and never advances: Write reports
// full (the caller sheds and counts), quickly, and never blocks.
func TestHostileConsumerNeverAdvances(t *testing.T) {
	const payload, attempts = 256, 200000
	p := newRing(t, 1<<16)
	ch := startChild(t, p, "stall", "")
	if got := ch.line(t); got != "ready" {
		t.Fatalf("child said %q", got)
	}
	rec := make([]byte, payload)
	var written, shed int
	start := time.Now()
	for range attempts {
		ok, err := p.Write(rec)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			written++
		} else {
			shed++
		}
	}
	elapsed := time.Since(start)
	ch.wait(t)
	if fit := p.Size() / int(align8(RecordHeaderSize+payload)); written != fit || shed != attempts-fit {
		t.Fatalf("written %d, shed %d; the ring holds %d", written, shed, fit)
	}
	if elapsed > 5*time.Second {
		t.Fatalf("%d writes took %v", attempts, elapsed)
	}
	if p.Wakes() != 0 {
		t.Fatalf("%d wakes for a consumer that never slept", p.Wakes())
	}
	t.Logf("%d written, %d shed in %v (%.0f ns per refused write)", written, shed, elapsed,
		float64(elapsed.Nanoseconds())/attempts)
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " | ")
}
