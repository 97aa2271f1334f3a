package suite

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/bulkhead-sec/bulkhead/internal/bench"
	"github.com/bulkhead-sec/bulkhead/internal/config"
	"github.com/bulkhead-sec/bulkhead/internal/monitor"
	"github.com/bulkhead-sec/bulkhead/internal/procstat"
	"github.com/bulkhead-sec/bulkhead/pipeline/dispatch"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
	"go.uber.org/zap"
)

// captureRound is one unmonitored and one monitored storm.
type captureRound struct {
	UnmonitoredPerSec float64 `json:"unmonitored_per_sec"`
	MonitoredPerSec   float64 `json:"monitored_per_sec"`
	Ratio             float64 `json:"ratio"`
	Generated         uint64  `json:"generated"` // opens the storm made while monitored
	Delivered         uint64  `json:"delivered"` // of those, decoded in user space
	Lost              uint64  `json:"lost"`
	KernelDropped     uint64  `json:"kernel_dropped"`
	MonitorCPUNsPerEv float64 `json:"monitor_cpu_ns_per_event"`
	PeakRSSBytes      uint64  `json:"peak_rss_bytes"`
	AnonRSSBytes      uint64  `json:"anon_rss_bytes"` // heap and stacks, without the ring's shared mapping
	Wakeups           uint64  `json:"kernel_wakeups"`
	Polls             uint64  `json:"deadline_polls"`
	// With --config: what the detectors got, shed and found, and the CPU
	// their plugin processes used per captured event.
	Detectors        int     `json:"detectors,omitempty"`
	DetDelivered     uint64  `json:"detector_delivered,omitempty"`
	DetDropped       uint64  `json:"detector_dropped"`
	Findings         uint64  `json:"findings"`
	PluginCPUNsPerEv float64 `json:"plugin_cpu_ns_per_event"`
	// The plugin processes' peak RSS, summed, and the monitored phase's length.
	PluginsPeakRSSBytes uint64  `json:"plugins_peak_rss_bytes,omitempty"`
	Seconds             float64 `json:"-"`
}

// CaptureReport is `bulkhead bench capture`: every round and their summary.
type CaptureReport struct {
	Workload   string         `json:"workload"`
	Duration   string         `json:"duration_per_phase"`
	RingMiB    int            `json:"ring_mib"`
	WakeupKiB  int            `json:"wakeup_kib"`
	Kernel     string         `json:"kernel"`
	CPUs       int            `json:"cpus"`
	Version    string         `json:"bulkhead_version"`
	GoVersion  string         `json:"go_version"`
	Rounds     []captureRound `json:"rounds"`
	Unmon      float64        `json:"unmonitored_per_sec"`
	Mon        float64        `json:"monitored_per_sec"`
	Ratio      float64        `json:"ratio"`
	Lost       uint64         `json:"lost"`
	CPUNsPerEv float64        `json:"monitor_cpu_ns_per_event"`
	PeakRSS    uint64         `json:"peak_rss_bytes"`
	AnonRSS    uint64         `json:"anon_rss_bytes"`
}

// Capture runs rounds unmonitored/monitored storms of workload ("open"
// or "getppid"), each phase d long, with fc's detectors behind the
// monitor; progress lines go to w. kernel and version are the report's.
func Capture(log *zap.Logger, cfg monitor.Capture, fc config.File, workload string, d time.Duration, rounds int, kernel, version string, w io.Writer) (CaptureReport, error) {
	rep := CaptureReport{
		Workload: workloadNames[workload], Duration: d.String(),
		RingMiB: cfg.RingMiB, WakeupKiB: cfg.WakeupKiB, Kernel: kernel, CPUs: runtime.NumCPU(),
		Version: version, GoVersion: runtime.Version(),
	}
	fmt.Fprintf(w, "bench capture: %d round(s) of %s unmonitored + %s monitored\n", rounds, d, d)
	for i := 0; i < rounds; i++ {
		r, err := captureRoundRun(log, cfg, fc, workload, d)
		if err != nil {
			return rep, err
		}
		fmt.Fprintf(w, "  round %d: ratio %.3f, lost %d\n", i+1, r.Ratio, r.Lost)
		if r.Detectors > 0 {
			fmt.Fprintf(w, "    %d detectors: %d events delivered to them, %d dropped, %d findings, plugins %.0f ns CPU per captured event\n",
				r.Detectors, r.DetDelivered, r.DetDropped, r.Findings, r.PluginCPUNsPerEv)
		}
		rep.Rounds = append(rep.Rounds, r)
	}
	sum := summariseRounds(workload, rep.Rounds)
	rep.Unmon, rep.Mon, rep.Ratio, rep.Lost, rep.CPUNsPerEv, rep.PeakRSS = sum.UnmonitoredPerSec, sum.MonitoredPerSec, sum.Ratio, sum.Lost, sum.MonitorCPUNsPerEvent, sum.PeakRSSBytes
	for _, r := range rep.Rounds {
		rep.AnonRSS = max(rep.AnonRSS, r.AnonRSSBytes)
	}
	return rep, nil
}

// Print writes the report as a table.
func (rep CaptureReport) Print(w io.Writer) {
	fmt.Fprintf(w, "capture overhead: %s, %s per phase, ring %d MiB, wake-up at %d KiB, kernel %s, %d CPUs\n\n",
		rep.Workload, rep.Duration, rep.RingMiB, rep.WakeupKiB, rep.Kernel, rep.CPUs)
	fmt.Fprintf(w, "%-6s %14s %14s %7s %12s %12s %6s %14s %10s\n", "round", "unmonitored/s", "monitored/s", "ratio", "generated", "delivered", "lost", "monitor CPU/ev", "peak RSS")
	for i, r := range rep.Rounds {
		fmt.Fprintf(w, "%-6d %14.0f %14.0f %7.3f %12d %12d %6d %11.0f ns %7.1f MiB\n", i+1, r.UnmonitoredPerSec, r.MonitoredPerSec,
			r.Ratio, r.Generated, r.Delivered, r.Lost, r.MonitorCPUNsPerEv, float64(r.PeakRSSBytes)/(1<<20))
	}
	fmt.Fprintf(w, "%-6s %14.0f %14.0f %7.3f %12s %12s %6d %11.0f ns %7.1f MiB\n", "all", rep.Unmon, rep.Mon, rep.Ratio, "", "", rep.Lost, rep.CPUNsPerEv, float64(rep.PeakRSS)/(1<<20))
	fmt.Fprintf(w, "\npeak RSS includes the ring buffer's shared mapping (%d MiB, mapped twice); heap and stacks alone (RssAnon): %.1f MiB\n",
		rep.RingMiB, float64(rep.AnonRSS)/(1<<20))
}

// summariseRounds is the rounds' mean rates, their total counts, the CPU
// per event weighted by events, and the largest peak RSS.
func summariseRounds(workload string, rounds []captureRound) bench.Capture {
	c := bench.Capture{Workload: workloadNames[workload]}
	var cpuNs float64
	for _, r := range rounds {
		c.UnmonitoredPerSec += r.UnmonitoredPerSec / float64(len(rounds))
		c.MonitoredPerSec += r.MonitoredPerSec / float64(len(rounds))
		c.Generated += r.Generated
		c.Delivered += r.Delivered
		c.Lost += r.Lost
		cpuNs += r.MonitorCPUNsPerEv * float64(r.Delivered)
		c.PeakRSSBytes = max(c.PeakRSSBytes, r.PeakRSSBytes)
	}
	c.Ratio = c.MonitoredPerSec / c.UnmonitoredPerSec
	if c.Delivered > 0 {
		c.MonitorCPUNsPerEvent = cpuNs / float64(c.Delivered)
	}
	return c
}

// stormCounter counts the storm's opens of /dev/null as they leave the pipeline.
type stormCounter struct {
	pid       atomic.Uint32
	delivered atomic.Uint64
}

func (c *stormCounter) Write(ev *event.Event) error {
	if ev.Kind == event.KindOpen && ev.PID == c.pid.Load() && ev.Open.Path == stormPath {
		c.delivered.Add(1)
	}
	return nil
}
func (c *stormCounter) Flush() error { return nil }

const stormPath = "/dev/null"

var workloadNames = map[string]string{
	"open":    "openat(/dev/null)+close, one process",
	"getppid": "getppid (not traced), one process",
}

func captureRoundRun(log *zap.Logger, cfg monitor.Capture, fc config.File, workload string, d time.Duration) (captureRound, error) {
	unmon, err := runStorm(workload, d, nil)
	if err != nil {
		return captureRound{}, err
	}
	r, err := monitoredStorm(log, cfg, fc, workload, d, nil)
	r.UnmonitoredPerSec = unmon.rate()
	r.Ratio = r.MonitoredPerSec / r.UnmonitoredPerSec
	return r, err
}

// monitoredStorm runs the storm with the monitor on and fc's detectors
// behind it; onFinding, if set, sees their findings.
func monitoredStorm(log *zap.Logger, cfg monitor.Capture, fc config.File, workload string, d time.Duration, onFinding dispatch.FindingFunc) (captureRound, error) {
	var r captureRound
	counter := &stormCounter{}
	resetPeakRSS()
	var findings atomic.Uint64
	disp, err := monitor.StartDispatch(fc, false, func(f detect.Finding) {
		findings.Add(1)
		if onFinding != nil {
			onFinding(f)
		}
	}, log)
	if err != nil {
		return r, err
	}
	m, err := monitor.Start(log.Named("monitor"), cfg, counter, disp)
	if err != nil {
		if disp != nil {
			disp.Close(context.Background())
		}
		return r, err
	}
	pluginsBefore := pluginCPU(disp)
	before := procstat.CPU(0)
	mon, stormErr := runStorm(workload, d, func(pid int) { counter.pid.Store(uint32(pid)) })
	pluginsUsed := pluginCPU(disp) - pluginsBefore // before stop: the plugins exit at Close
	r.PluginsPeakRSSBytes = pluginsPeakRSS(disp)
	s, stopErr := m.Stop()
	used := procstat.CPU(0) - before
	if stormErr != nil || stopErr != nil {
		return r, fmt.Errorf("monitored storm: %v %v", stormErr, stopErr)
	}
	r.MonitoredPerSec, r.Seconds = mon.rate(), mon.elapsed.Seconds()
	if workload == "open" {
		r.Generated = mon.iterations
	}
	r.Delivered = counter.delivered.Load()
	if r.Generated > r.Delivered {
		r.Lost = r.Generated - r.Delivered
	}
	r.KernelDropped = s.Kernel.DroppedTotal()
	if r.Delivered > 0 {
		r.MonitorCPUNsPerEv = float64(used.Nanoseconds()) / float64(s.Reader.Records)
	}
	r.PeakRSSBytes = procstat.Status("VmHWM")
	r.AnonRSSBytes = procstat.Status("RssAnon")
	r.Wakeups = s.Kernel.Wakeups
	r.Polls = s.Reader.Polls
	r.Detectors, r.Findings = len(s.Detectors), findings.Load()
	for _, l := range s.Detectors {
		r.DetDelivered += l.Backends.Delivered
		r.DetDropped += l.Dropped()
	}
	if s.Reader.Records > 0 {
		r.PluginCPUNsPerEv = float64(pluginsUsed.Nanoseconds()) / float64(s.Reader.Records)
	}
	return r, nil
}

// resetPeakRSS returns freed memory to the kernel and restarts VmHWM from
// the current RSS, so a measurement's peak is its own, not an earlier one's.
func resetPeakRSS() {
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// pluginsPeakRSS is the peak RSS of the detectors' plugin processes, summed.
func pluginsPeakRSS(d *dispatch.Dispatcher) uint64 {
	var total uint64
	for _, pid := range pluginPIDs(d) {
		total += procstat.StatusOf(pid, "VmHWM")
	}
	return total
}

// pluginCPU is the CPU time the detectors' plugin processes have used.
func pluginCPU(d *dispatch.Dispatcher) time.Duration {
	var total time.Duration
	for _, pid := range pluginPIDs(d) {
		total += procstat.CPU(pid)
	}
	return total
}

// pluginPIDs are the detectors' running plugin processes.
func pluginPIDs(d *dispatch.Dispatcher) []int {
	if d == nil {
		return nil
	}
	var pids []int
	for _, l := range d.Stats() {
		if l.Backends.PID > 0 {
			pids = append(pids, l.Backends.PID)
		}
	}
	return pids
}

type stormResult struct {
	iterations uint64
	elapsed    time.Duration
}

func (s stormResult) rate() float64 { return float64(s.iterations) / s.elapsed.Seconds() }

// runStorm starts `bulkhead bench storm` and returns what it measured.
// started sees the child's pid before the storm begins.
func runStorm(workload string, d time.Duration, started func(pid int)) (stormResult, error) {
	self, err := os.Executable()
	if err != nil {
		return stormResult{}, err
	}
	cmd := exec.Command(self, "bench", "storm", "--workload", workload, "--duration", d.String())
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return stormResult{}, fmt.Errorf("start the storm: %w", err)
	}
	if started != nil {
		started(cmd.Process.Pid)
	}
	stdin.Write([]byte{'\n'})
	stdin.Close()
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if err := cmd.Wait(); err != nil {
		return stormResult{}, fmt.Errorf("storm: %w", err)
	}
	f := strings.Fields(line)
	if len(f) != 2 {
		return stormResult{}, fmt.Errorf("storm printed %q, want \"ITERATIONS NANOSECONDS\"", line)
	}
	n, err1 := strconv.ParseUint(f[0], 10, 64)
	ns, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return stormResult{}, fmt.Errorf("storm printed %q", line)
	}
	return stormResult{iterations: n, elapsed: time.Duration(ns)}, nil
}

// Storm is the load generator the capture measurements start as a child
// (`bulkhead bench storm`, which the binary must answer by calling it):
// it waits for a line on stdin, then makes the workload's syscalls for d
// and prints "ITERATIONS NANOSECONDS" to stdout.
func Storm(workload string, d time.Duration, stdin io.Reader, stdout io.Writer) error {
	bufio.NewReader(stdin).ReadString('\n')
	path, _ := syscall.BytePtrFromString(stormPath)
	fdcwd := atFdcwd
	dirfd := uintptr(fdcwd)
	runtime.LockOSThread()
	var n uint64
	start := time.Now()
	deadline := start.Add(d)
	for {
		if workload == "getppid" {
			for i := 0; i < 1024; i++ {
				syscall.RawSyscall(syscall.SYS_GETPPID, 0, 0, 0)
			}
		} else {
			for i := 0; i < 1024; i++ {
				fd, _, errno := syscall.RawSyscall6(syscall.SYS_OPENAT, dirfd, uintptr(unsafe.Pointer(path)), syscall.O_RDONLY, 0, 0, 0)
				if errno != 0 {
					return fmt.Errorf("open %s: %v", stormPath, errno)
				}
				syscall.RawSyscall(syscall.SYS_CLOSE, fd, 0, 0)
			}
		}
		n += 1024
		if time.Now().After(deadline) {
			break
		}
	}
	elapsed := time.Since(start)
	_, err := fmt.Fprintf(stdout, "%d %d\n", n, elapsed.Nanoseconds())
	return err
}

const atFdcwd = -100
