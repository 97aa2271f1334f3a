package bpf_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/bulkhead-sec/bulkhead/bpf"
	"github.com/bulkhead-sec/bulkhead/test/testenv"
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// BenchmarkOpenCapture measures what capturing one open costs inside the
// kernel: the exit program's run time per run (kernel.bpf_stats), reported
// as bpf-ns/run, beside the storm's own ns/op. The host's load moves ns/op;
// bpf-ns/run is the program alone. Sub-benchmarks: an absolute path (the
// bench capture storm), a relative one (the working directory is walked
// too) and a failed open (no file to walk).
func BenchmarkOpenCapture(b *testing.B) {
	testenv.RequireBPF(b)
	stats, err := ebpf.EnableStats(uint32(unix_BPF_STATS_RUN_TIME))
	if err != nil {
		b.Skipf("bpf_stats: %v", err)
	}
	defer stats.Close()

	k, err := bpf.Load(bpf.Options{RingBytes: 16 << 20, WakeupBytes: 256 << 10})
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	if err := k.Attach([]uint16{bpf.RecordOpen}); err != nil {
		b.Fatal(err)
	}
	prog := findProgram(b, "sys_exit_traced")
	defer prog.Close()

	rd, err := ringbuf.NewReader(k.Events())
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var bytes, records uint64
	wg.Add(1)
	go func() {
		defer wg.Done()
		var rec ringbuf.Record
		for {
			if err := rd.ReadInto(&rec); err != nil {
				if errors.Is(err, ringbuf.ErrClosed) {
					return
				}
				continue
			}
			bytes += uint64(len(rec.RawSample))
			records++
		}
	}()
	defer func() {
		rd.Close()
		wg.Wait()
	}()

	dir := b.TempDir()
	if err := os.WriteFile(dir+"/f", nil, 0o600); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		chdir      bool
		fail       bool
	}{
		{"absolute", "/dev/null", false, false},
		{"relative", "f", true, false},
		{"failed", "/nonexistent/x", false, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if tc.chdir {
				wd, _ := os.Getwd()
				if err := os.Chdir(dir); err != nil {
					b.Fatal(err)
				}
				defer os.Chdir(wd)
			}
			path, _ := syscall.BytePtrFromString(tc.path)
			fdcwd := atFdcwd
			dirfd := uintptr(fdcwd)
			before := progStats(b, prog)
			bytes, records = 0, 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				fd, _, errno := syscall.RawSyscall6(syscall.SYS_OPENAT, dirfd, uintptr(unsafe.Pointer(path)), syscall.O_RDONLY, 0, 0, 0)
				if errno == 0 {
					syscall.RawSyscall(syscall.SYS_CLOSE, fd, 0, 0)
				} else if !tc.fail {
					b.Fatalf("open %s: %v", tc.path, errno)
				}
			}
			b.StopTimer()
			after := progStats(b, prog)
			runs := after.runs - before.runs
			if runs > 0 {
				b.ReportMetric(float64(after.ns-before.ns)/float64(runs), "bpf-ns/run")
			}
			time.Sleep(50 * time.Millisecond) // let the reader drain before the next case
			if records > 0 {
				b.ReportMetric(float64(bytes)/float64(records), "B/record")
			}
		})
	}
}

const atFdcwd = -100

// unix_BPF_STATS_RUN_TIME is enum bpf_stats_type's BPF_STATS_RUN_TIME.
const unix_BPF_STATS_RUN_TIME = 0

type runStats struct{ runs, ns uint64 }

func progStats(b *testing.B, p *ebpf.Program) runStats {
	st, err := p.Stats()
	if err != nil {
		b.Fatal(err)
	}
	return runStats{runs: st.RunCount, ns: uint64(st.Runtime.Nanoseconds())}
}

// findProgram is the most recently loaded program named name.
func findProgram(b testing.TB, name string) *ebpf.Program {
	var best *ebpf.Program
	var bestID ebpf.ProgramID
	id := ebpf.ProgramID(0)
	for i := 0; i < 100000; i++ {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			break
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		info, err := p.Info()
		if err != nil || info.Name != name || id < bestID {
			p.Close()
			continue
		}
		if best != nil {
			best.Close()
		}
		best, bestID = p, id
	}
	if best == nil {
		b.Fatalf("program %s not found", name)
	}
	return best
}

// BenchmarkStorm is bench capture's two storms (openat+close of /dev/null,
// and getppid, which bulkhead does not trace) in a child process, as a
// monitored workload runs (the process that holds the hooks is not a fair
// sample), with no hooks, with the open hooks only, the setid ones only
// (the only sys_enter hooks) and all. child-ns/op is the child's own CPU
// time per iteration: on a busy host, time spent waiting for a CPU is not
// the hooks' cost. Nothing reads the ring: a full ring drops records, and
// a drop costs less than a record, so read ratios with the ring in mind.
func BenchmarkStorm(b *testing.B) {
	testenv.RequireBPF(b)
	all := []uint16{bpf.RecordOpen, bpf.RecordConnect, bpf.RecordSetID, bpf.RecordPtrace, bpf.RecordModule, bpf.RecordBPFProg, bpf.RecordMemfd,
		bpf.RecordFile, bpf.RecordNamespace, bpf.RecordSignal, bpf.RecordSocket, bpf.RecordSys}
	noSetID := []uint16{bpf.RecordOpen, bpf.RecordConnect, bpf.RecordPtrace, bpf.RecordModule, bpf.RecordBPFProg, bpf.RecordMemfd,
		bpf.RecordFile, bpf.RecordNamespace, bpf.RecordSignal, bpf.RecordSocket, bpf.RecordSys}
	for _, tc := range []struct {
		name, workload string
		kinds          []uint16
		btf            bool // the exit program on tp_btf/sys_exit instead of per syscall
	}{
		{"getppid/none", "getppid", nil, false},
		{"getppid/open", "getppid", []uint16{bpf.RecordOpen}, false},
		{"getppid/open-btf", "getppid", []uint16{bpf.RecordOpen}, true},
		{"getppid/setid", "getppid", []uint16{bpf.RecordSetID}, false},
		{"getppid/all-but-setid", "getppid", noSetID, false},
		{"getppid/all-but-setid-btf", "getppid", noSetID, true},
		{"getppid/all", "getppid", all, false},
		{"getppid/all-btf", "getppid", all, true},
		{"open/none", "open", nil, false},
		{"open/all", "open", all, false},
		{"open/all-btf", "open", all, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var rd *ringbuf.Reader
			if tc.kinds != nil {
				k, err := bpf.Load(bpf.Options{RingBytes: 64 << 20, WakeupBytes: 4 << 20, SelfPID: uint32(os.Getpid()), SysExitBTF: tc.btf})
				if err != nil {
					b.Fatal(err)
				}
				defer k.Close()
				if err := k.Attach(tc.kinds); err != nil {
					b.Fatal(err)
				}
				if rd, err = ringbuf.NewReader(k.Events()); err != nil {
					b.Fatal(err)
				}
				defer rd.Close()
			}
			b.ReportMetric(childStorm(b, tc.workload, b.N), "child-ns/op")
			if rd != nil {
				var rec ringbuf.Record
				n := 0
				rd.SetDeadline(time.Now().Add(time.Second))
				for n < b.N && rd.ReadInto(&rec) == nil {
					n++
				}
				b.ReportMetric(float64(n)/float64(b.N), "records/op")
			}
		})
	}
}

// childStorm runs n iterations of workload in a child process (this test
// binary, TestStormChild) and returns its CPU time per iteration.
func childStorm(b *testing.B, workload string, n int) float64 {
	cmd := exec.Command(os.Args[0], "-test.run=^TestStormChild$")
	cmd.Env = append(os.Environ(), "BULKHEAD_STORM_N="+strconv.Itoa(n), "BULKHEAD_STORM="+workload)
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("storm child: %v", err)
	}
	var ns float64
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "storm-ns/op "); ok {
			ns, err = strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			return ns
		}
	}
	b.Fatalf("storm child printed %q", out)
	return 0
}

// TestStormChild is BenchmarkStorm's child: it only runs with
// BULKHEAD_STORM_N set.
func TestStormChild(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv("BULKHEAD_STORM_N"))
	if err != nil {
		t.Skip("only a child of BenchmarkStorm")
	}
	path, _ := syscall.BytePtrFromString("/dev/null")
	fdcwd := atFdcwd
	dirfd := uintptr(fdcwd)
	open := os.Getenv("BULKHEAD_STORM") == "open"
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// The thread's CPU time, not the wall clock: time the child spends
	// runnable behind other work on a busy host is not the hooks' cost.
	var t0, t1 unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &t0)
	for i := 0; i < n; i++ {
		if !open {
			syscall.RawSyscall(syscall.SYS_GETPPID, 0, 0, 0)
			continue
		}
		fd, _, errno := syscall.RawSyscall6(syscall.SYS_OPENAT, dirfd, uintptr(unsafe.Pointer(path)), syscall.O_RDONLY, 0, 0, 0)
		if errno != 0 {
			t.Fatalf("open /dev/null: %v", errno)
		}
		syscall.RawSyscall(syscall.SYS_CLOSE, fd, 0, 0)
	}
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &t1)
	fmt.Printf("storm-ns/op %.2f\n", float64(t1.Nano()-t0.Nano())/float64(n))
}

// TestHoldHooks keeps every hook attached (BULKHEAD_HOLD_NO_SETID: all but
// the setid ones, the only sys_enter hooks) for BULKHEAD_HOLD, so a storm
// or a profile in another process can be taken against them (a manual aid).
func TestHoldHooks(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("BULKHEAD_HOLD"))
	if err != nil {
		t.Skip("set BULKHEAD_HOLD=10s")
	}
	testenv.RequireBPF(t)
	k, err := bpf.Load(bpf.Options{RingBytes: 1 << 20, WakeupBytes: 4096, SelfPID: uint32(os.Getpid())})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	kinds := []uint16{bpf.RecordOpen, bpf.RecordConnect, bpf.RecordSetID, bpf.RecordPtrace, bpf.RecordModule, bpf.RecordBPFProg, bpf.RecordMemfd,
		bpf.RecordFile, bpf.RecordNamespace, bpf.RecordSignal, bpf.RecordSocket, bpf.RecordSys}
	if os.Getenv("BULKHEAD_HOLD_NO_SETID") != "" {
		kinds = append(kinds[:2], kinds[3:]...)
	}
	if err := k.Attach(kinds); err != nil {
		t.Fatal(err)
	}
	time.Sleep(d)
}
