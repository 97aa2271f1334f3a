package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
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
	"github.com/bulkhead-sec/bulkhead/internal/procstat"
	"github.com/bulkhead-sec/bulkhead/pipeline/dispatch"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
	"go.uber.org/zap"
)

func benchCommand(args []string, stdout, stderr io.Writer) error {
	const subcommands = "all, capture, throughput, resilience or compare"
	const benchUsage = "Usage:\n  bulkhead bench all [--quick]                          every section: JSON + Markdown report with charts\n  bulkhead bench capture|throughput|resilience [flags]  one section\n  bulkhead bench compare A.json B.json                  what changed between two runs\n\nRun 'bulkhead bench <subcommand> -h' for its flags.\n"
	if ok, err := subcommandHelp("bench", args, benchUsage, stderr); ok {
		return err
	}
	switch args[0] {
	case "all", "throughput", "resilience":
		return benchRunCommand(args[0], args[1:], stdout, stderr)
	case "capture":
		return benchCaptureCommand(args[1:], stdout, stderr)
	case "compare":
		return benchCompareCommand(args[1:], stdout, stderr)
	case "storm":
		// Internal: the load generator bench capture starts as a child.
		return stormCommand(args[1:], stdout)
	case "fault-cell":
		// Internal: one resilience cell, in its own process.
		return faultCellCommand(args[1:], stdout, stderr)
	}
	return usageErr("unknown bench subcommand %q: use %s", args[0], subcommands)
}

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

type captureReport struct {
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

func benchCaptureCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench capture", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf captureFlags
	cf.register(fs)
	duration := fs.Duration("duration", 3*time.Second, "length of each storm phase")
	rounds := fs.Int("rounds", 3, "unmonitored/monitored pairs to run")
	jsonOut := fs.String("json", "", "also write the results as JSON to this file")
	configPath := fs.String("config", "", "run these detectors during the monitored phase (YAML, as for bulkhead run): what the detector library costs")
	workload := fs.String("workload", "open", "open: openat+close of /dev/null (captured events); getppid: a syscall the monitor does not trace (its cost on everything else)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: bulkhead bench capture [flags]\n\nRuns openat+close of /dev/null in a tight loop from one process, with the monitor off and on,\nand reports both rates, their ratio, events delivered and lost, the monitor's CPU per event and peak RSS.\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := cf.config()
	if err != nil {
		return err
	}
	if *workload != "open" && *workload != "getppid" {
		return usageErr("--workload %q: use open or getppid", *workload)
	}
	if *duration < 100*time.Millisecond || *rounds < 1 {
		return usageErr("--duration must be at least 100ms and --rounds at least 1")
	}
	var fc fileConfig
	if *configPath != "" {
		if fc, err = loadConfig(*configPath); err != nil {
			return err
		}
	}
	log, err := newLogger(cf.logLevel, stderr)
	if err != nil {
		return err
	}
	defer log.Sync()

	rep := captureReport{
		Workload: workloadNames[*workload], Duration: duration.String(),
		RingMiB: cfg.RingMiB, WakeupKiB: cfg.WakeupKiB, Kernel: kernelRelease(), CPUs: runtime.NumCPU(),
		Version: versionString(), GoVersion: runtime.Version(),
	}
	fmt.Fprintf(stderr, "bench capture: %d round(s) of %s unmonitored + %s monitored\n", *rounds, duration, duration)
	for i := 0; i < *rounds; i++ {
		r, err := captureRoundRun(log, cfg, fc, *workload, *duration)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "  round %d: ratio %.3f, lost %d\n", i+1, r.Ratio, r.Lost)
		if r.Detectors > 0 {
			fmt.Fprintf(stderr, "    %d detectors: %d events delivered to them, %d dropped, %d findings, plugins %.0f ns CPU per captured event\n",
				r.Detectors, r.DetDelivered, r.DetDropped, r.Findings, r.PluginCPUNsPerEv)
		}
		rep.Rounds = append(rep.Rounds, r)
	}
	sum := summariseRounds(*workload, rep.Rounds)
	rep.Unmon, rep.Mon, rep.Ratio, rep.Lost, rep.CPUNsPerEv, rep.PeakRSS = sum.UnmonitoredPerSec, sum.MonitoredPerSec, sum.Ratio, sum.Lost, sum.MonitorCPUNsPerEvent, sum.PeakRSSBytes
	for _, r := range rep.Rounds {
		rep.AnonRSS = max(rep.AnonRSS, r.AnonRSSBytes)
	}
	printCaptureReport(stdout, rep)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write --json: %w", err)
		}
	}
	return nil
}

func printCaptureReport(w io.Writer, rep captureReport) {
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

func captureRoundRun(log *zap.Logger, cfg captureConfig, fc fileConfig, workload string, d time.Duration) (captureRound, error) {
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
func monitoredStorm(log *zap.Logger, cfg captureConfig, fc fileConfig, workload string, d time.Duration, onFinding dispatch.FindingFunc) (captureRound, error) {
	var r captureRound
	counter := &stormCounter{}
	resetPeakRSS()
	var findings atomic.Uint64
	disp, err := startDispatch(fc, false, func(f detect.Finding) {
		findings.Add(1)
		if onFinding != nil {
			onFinding(f)
		}
	}, log)
	if err != nil {
		return r, err
	}
	m, err := startMonitor(log.Named("monitor"), cfg, counter, disp)
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
	s, stopErr := m.stop()
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

// stormCommand waits for a line on stdin, then makes the workload's
// syscalls for the given duration and prints "ITERATIONS NANOSECONDS".
func stormCommand(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench storm", flag.ContinueOnError)
	d := fs.Duration("duration", 3*time.Second, "how long to storm")
	workload := fs.String("workload", "open", "open or getppid")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	bufio.NewReader(os.Stdin).ReadString('\n')
	path, _ := syscall.BytePtrFromString(stormPath)
	fdcwd := atFdcwd
	dirfd := uintptr(fdcwd)
	runtime.LockOSThread()
	var n uint64
	start := time.Now()
	deadline := start.Add(*d)
	for {
		if *workload == "getppid" {
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
