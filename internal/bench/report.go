package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// Schema is the version of the JSON layout; Compare refuses other ones.
const Schema = 1

// Report is everything one `bulkhead bench` run measured.
type Report struct {
	Schema   int       `json:"schema"`
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"` // how long the whole run took
	Command  string    `json:"command"`
	Machine  Machine   `json:"machine"`
	Settings Settings  `json:"settings"`
	// Skipped names each section that did not run, and why.
	Skipped    map[string]string `json:"skipped,omitempty"`
	Capture    *Capture          `json:"capture,omitempty"`
	Throughput []ThroughputCell  `json:"throughput,omitempty"`
	Latency    []LatencyCell     `json:"latency,omitempty"`
	// HostRoundTrip is the latency section's control: a byte's round trip
	// between two processes over pipes, one every 2 ms with both idle in
	// between, as a monitor and a plugin are at the latency section's
	// rate (µs). A plugin's finding makes that trip once.
	HostRoundTrip *Percentiles `json:"host_round_trip_us,omitempty"`
	Resilience    []FaultCell  `json:"resilience,omitempty"`
	Floors        []Floor      `json:"floors,omitempty"`
	// Errors are measurements that failed; the rest of the run went on.
	Errors []string `json:"errors,omitempty"`
}

// Machine is what the figures were measured on.
type Machine struct {
	Kernel    string `json:"kernel"`
	CPUModel  string `json:"cpu_model"`
	Cores     int    `json:"cores"`
	MemoryMiB uint64 `json:"memory_mib"`
	GoVersion string `json:"go_version"`
	Bulkhead  string `json:"bulkhead_version"`
	Root      bool   `json:"root"`
}

// Settings are the knobs of the run.
type Settings struct {
	Quick        bool     `json:"quick"`
	Sections     []string `json:"sections"`
	CellSeconds  float64  `json:"cell_seconds"`  // each throughput cell
	FaultSeconds float64  `json:"fault_seconds"` // each resilience cell
	FaultEvery   float64  `json:"fault_every_seconds"`
	FaultRate    float64  `json:"fault_load_events_per_sec"`
	LatencyRate  float64  `json:"latency_events_per_sec"` // offered, before the per-backend cap
	Flush        string   `json:"flush_interval"`         // partial batches are flushed this often
	Detectors    []int    `json:"detectors"`
	Batches      []int    `json:"batches"`
	// GopluginProtections are what a goplugin detector ran with.
	Enclave bool `json:"enclave"`
	MTLS    bool `json:"mtls"`
}

// Capture is the kernel capture overhead: the same syscall storm with the
// monitor off and on.
type Capture struct {
	Workload             string  `json:"workload"`
	UnmonitoredPerSec    float64 `json:"unmonitored_per_sec"`
	MonitoredPerSec      float64 `json:"monitored_per_sec"`
	Ratio                float64 `json:"ratio"`
	Generated            uint64  `json:"generated"`
	Delivered            uint64  `json:"delivered"`
	Lost                 uint64  `json:"lost"`
	MonitorCPUNsPerEvent float64 `json:"monitor_cpu_ns_per_event"`
	PeakRSSBytes         uint64  `json:"peak_rss_bytes"`
}

// Backends the bench runs detectors on.
const (
	InProc        = "inproc"
	InProcRecover = "inproc-recover" // inproc, recovering panics in OnEvent
	GoPlugin      = "goplugin"       // the default: batches through the shared-memory ring
	GoPluginGRPC  = "goplugin-grpc"  // batches as messages on the gRPC stream
	GoPluginNaive = "goplugin-naive" // one RPC per event
	Wasm          = "wasm"           // a wasm module in the monitor's process (wazero)
)

// Sources of events.
const (
	Replay = "replay" // pre-decoded events injected into the dispatcher
	Kernel = "kernel" // real kernel events from a load generator
)

// ThroughputCell is events through the pipeline into N detectors.
type ThroughputCell struct {
	Source    string  `json:"source"`
	Backend   string  `json:"backend"`
	Detectors int     `json:"detectors"`
	Batch     int     `json:"batch"`
	Seconds   float64 `json:"seconds"`
	// Events entered the dispatcher (replay) or were captured (kernel).
	Events       uint64  `json:"events"`
	EventsPerSec float64 `json:"events_per_sec"`
	// Delivered counts every detector's deliveries; Lost is what some
	// detector wanted and did not get (shed, failed) plus, for kernel, what
	// the kernel could not hand over.
	Delivered uint64 `json:"delivered"`
	Lost      uint64 `json:"lost"`
	// Generated is what the load generator did (kernel only).
	Generated            uint64  `json:"generated,omitempty"`
	MonitorCPUNsPerEvent float64 `json:"monitor_cpu_ns_per_event"`
	PluginCPUNsPerEvent  float64 `json:"plugin_cpu_ns_per_event"`
	MonitorPeakRSSBytes  uint64  `json:"monitor_peak_rss_bytes"`
	PluginsPeakRSSBytes  uint64  `json:"plugins_peak_rss_bytes"` // summed over the plugin processes
}

// CPUNsPerEvent is the monitor's and the plugins' CPU together.
func (c ThroughputCell) CPUNsPerEvent() float64 {
	return c.MonitorCPUNsPerEvent + c.PluginCPUNsPerEvent
}

// LatencyCell is the latency of sampled events at a steady offered rate.
type LatencyCell struct {
	Source     string  `json:"source"`
	Backend    string  `json:"backend"`
	RatePerSec float64 `json:"rate_per_sec"` // offered (kernel: achieved by the storm)
	Samples    int     `json:"samples"`
	Dropped    uint64  `json:"dropped"`
	// KernelToDetector: event timestamp → the detector had it.
	// KernelToFinding: event timestamp → its finding reached the monitor's
	// output.
	KernelToDetector Percentiles `json:"kernel_to_detector_us"`
	KernelToFinding  Percentiles `json:"kernel_to_finding_us"`
}

// FaultCell is one fault on one backend, under steady load.
type FaultCell struct {
	Fault   string `json:"fault"`
	Backend string `json:"backend"`
	Crash   bool   `json:"crash"` // a crash-type fault: the detector's process dies
	// Verdict: Survived, Died (the monitor), or Refused (did not start).
	Verdict string  `json:"verdict"`
	Exit    string  `json:"exit,omitempty"` // how the monitor ended, when it died
	Seconds float64 `json:"seconds"`
	Faults  int     `json:"faults"` // injected
	// The faulty detector's events: offered, delivered, and lost (wanted
	// and not delivered: shed, quarantined, unavailable, or never answered
	// because the monitor died).
	Sent        uint64 `json:"sent"`
	Delivered   uint64 `json:"delivered"`
	Lost        uint64 `json:"lost"`
	Redelivered uint64 `json:"redelivered"`
	Quarantined uint64 `json:"quarantined"`
	Crashes     uint64 `json:"crashes"`
	Hangs       uint64 `json:"hangs"`
	Restarts    uint64 `json:"restarts"`
	// Per fault, milliseconds from the fault to the monitor noticing it and
	// to the detector taking events again; absent if it never did.
	DetectMs  []float64 `json:"detect_ms,omitempty"`
	RecoverMs []float64 `json:"recover_ms,omitempty"`
	// Findings the faulty detector should have reported, and missed.
	FindingsExpected uint64 `json:"findings_expected"`
	FindingsMissed   uint64 `json:"findings_missed"`
	// The healthy detector next to it, on the same backend.
	OtherLost           uint64   `json:"other_lost"`
	OtherFindingsMissed uint64   `json:"other_findings_missed"`
	OthersAffected      bool     `json:"others_affected"`
	Timeline            []Sample `json:"timeline,omitempty"`
	Marks               []Mark   `json:"marks,omitempty"`
	Note                string   `json:"note,omitempty"`
}

// Verdicts of a fault cell.
const (
	Survived = "survived"
	Died     = "died"
	Refused  = "refused to start"
)

// Sample is one point of a resilience timeline.
type Sample struct {
	T              float64 `json:"t"` // seconds from the start of load
	FaultyPerSec   float64 `json:"faulty_per_sec"`
	OtherPerSec    float64 `json:"other_per_sec"`
	FindingsPerSec float64 `json:"findings_per_sec"`
}

// Mark is a moment on a resilience timeline.
type Mark struct {
	T    float64 `json:"t"`
	Kind string  `json:"kind"` // fault, detected, recovered, died
}

// Floor is one of the project's stated floors, checked on this run.
type Floor struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Pass bool   `json:"pass"`
}

// Write saves r as indented JSON.
func (r *Report) Write(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Read loads a report written by Write.
func Read(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: not a bench report: %w", path, err)
	}
	if r.Schema != Schema {
		return nil, fmt.Errorf("%s: bench report schema %d, this bulkhead reads %d: rerun the bench with this version", path, r.Schema, Schema)
	}
	return &r, nil
}

// Find returns the throughput cell with these coordinates, if it ran.
func (r *Report) Find(source, backend string, detectors, batch int) (ThroughputCell, bool) {
	for _, c := range r.Throughput {
		if c.Source == source && c.Backend == backend && c.Detectors == detectors && (batch == 0 || c.Batch == batch) {
			return c, true
		}
	}
	return ThroughputCell{}, false
}
