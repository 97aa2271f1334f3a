package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/enclave"
	"github.com/bulkhead-sec/bulkhead/backends/inproc"
	"github.com/bulkhead-sec/bulkhead/backends/restart"
	"github.com/bulkhead-sec/bulkhead/backends/wasm"
	"github.com/bulkhead-sec/bulkhead/pipeline/dispatch"
	"github.com/bulkhead-sec/bulkhead/pipeline/export"
	"github.com/bulkhead-sec/bulkhead/pipeline/sinks"
	"github.com/bulkhead-sec/bulkhead/plugins/chaos"
	"github.com/bulkhead-sec/bulkhead/plugins/credaccess"
	"github.com/bulkhead-sec/bulkhead/plugins/example"
	"github.com/bulkhead-sec/bulkhead/plugins/kernelload"
	"github.com/bulkhead-sec/bulkhead/plugins/outbound"
	"github.com/bulkhead-sec/bulkhead/plugins/persistence"
	"github.com/bulkhead-sec/bulkhead/plugins/privesc"
	"github.com/bulkhead-sec/bulkhead/plugins/probe"
	"github.com/bulkhead-sec/bulkhead/plugins/ptrace"
	"github.com/bulkhead-sec/bulkhead/plugins/rules"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
	"github.com/bulkhead-sec/bulkhead/plugins/tmpexec"
	"github.com/bulkhead-sec/bulkhead/plugins/webshell"
	"go.uber.org/zap"
	"gopkg.in/yaml.v3"
)

// builtinDetectors are the detectors compiled into bulkhead, for the
// inproc backend. Each also has a plugin binary for goplugin.
func builtinDetectors() map[string]func() detect.Detector {
	return map[string]func() detect.Detector{
		"example":     func() detect.Detector { return example.New() },
		"webshell":    func() detect.Detector { return webshell.New() },
		"credaccess":  func() detect.Detector { return credaccess.New() },
		"tmpexec":     func() detect.Detector { return tmpexec.New() },
		"privesc":     func() detect.Detector { return privesc.New() },
		"kernelload":  func() detect.Detector { return kernelload.New() },
		"ptrace":      func() detect.Detector { return ptrace.New() },
		"outbound":    func() detect.Detector { return outbound.New() },
		"persistence": func() detect.Detector { return persistence.New() },
		"rules":       func() detect.Detector { return rules.New() },
		"chaos":       func() detect.Detector { return chaos.New() }, // TEST ONLY: fails on command
		"probe":       func() detect.Detector { return probe.New() }, // BENCHMARKS: reports a sample of events
	}
}

// fileConfig is the configuration file.
type fileConfig struct {
	Dispatch dispatchConfig `yaml:"dispatch"`
	// Enclave is the default for every plugin; a detector's own enclave:
	// overrides it field by field.
	Enclave   enclaveConfig    `yaml:"enclave"`
	Detectors []detectorConfig `yaml:"detectors"`
	// Export sends findings to NATS JetStream (docs/export.md); nil: not.
	Export *export.Config `yaml:"export"`
	// WasmCacheDir keeps wasm modules compiled (backend wasm): default
	// the user's cache directory; "none" compiles them at every start.
	WasmCacheDir string `yaml:"wasm_cache_dir"`
}

// enclaveConfig is how a goplugin detector's process is confined.
type enclaveConfig struct {
	Enabled        *bool `yaml:"enabled"` // default true
	MTLS           *bool `yaml:"mtls"`    // go-plugin's AutoMTLS; default true
	enclave.Config `yaml:",inline"`
}

// over is c with the fields o sets; read paths add up.
func (c enclaveConfig) over(o *enclaveConfig) enclaveConfig {
	if o == nil {
		return c
	}
	if o.Enabled != nil {
		c.Enabled = o.Enabled
	}
	if o.MTLS != nil {
		c.MTLS = o.MTLS
	}
	if o.User != "" {
		c.User = o.User
	}
	c.Read = append(append([]string(nil), c.Read...), o.Read...)
	for _, f := range []struct {
		dst *int
		src int
	}{{&c.MemoryMB, o.MemoryMB}, {&c.CPUPercent, o.CPUPercent},
		{&c.CPUSeconds, o.CPUSeconds}, {&c.OpenFiles, o.OpenFiles}, {&c.Processes, o.Processes}, {&c.DiskMB, o.DiskMB}} {
		if f.src != 0 {
			*f.dst = f.src
		}
	}
	return c
}

func (c enclaveConfig) enabled() bool { return c.Enabled == nil || *c.Enabled }
func (c enclaveConfig) mtls() bool    { return c.MTLS == nil || *c.MTLS }

type dispatchConfig struct {
	BatchSize int `yaml:"batch_size"`
	// A detector's queue: beyond queue_events events, queue_mib MiB of
	// batches or queue_batches batches, what comes is shed and counted.
	QueueEvents  int           `yaml:"queue_events"`
	QueueMiB     int           `yaml:"queue_mib"`
	QueueBatches int           `yaml:"queue_batches"`
	DrainTimeout time.Duration `yaml:"drain_timeout"` // at shutdown, per the whole drain
}

type detectorConfig struct {
	Name    string `yaml:"name"`
	Backend string `yaml:"backend"` // inproc | goplugin | goplugin-unary | wasm
	Builtin string `yaml:"builtin"` // inproc: one of builtinDetectors
	// RecoverPanics (inproc): a panic in OnEvent is caught and counted as
	// an error instead of ending the monitor. Nothing else can be caught.
	RecoverPanics bool           `yaml:"recover_panics"`
	Plugin        string         `yaml:"plugin"`  // goplugin: the binary; a relative path is relative to the config file
	SHA256        string         `yaml:"sha256"`  // goplugin: the binary's SHA-256 (sha256sum); another binary is refused
	Enclave       *enclaveConfig `yaml:"enclave"` // goplugin: overrides the top-level enclave:
	Config        map[string]any `yaml:"config"`
	// goplugin supervision; zero values keep the defaults.
	BatchDeadline   time.Duration `yaml:"batch_deadline"`
	BreakerCrashes  int           `yaml:"breaker_crashes"`
	BreakerCooldown time.Duration `yaml:"breaker_cooldown"`
	// Transport (backend goplugin): how batches reach the plugin, shm (a
	// sealed shared-memory ring per plugin process, RingMiB MiB, default
	// 4; the default) or grpc (messages on the gRPC stream).
	Transport string `yaml:"transport"`
	RingMiB   int    `yaml:"ring_mib"`
	// Backend wasm (wasm.go): the module, its memory, and the one host
	// directory it may read.
	Module    string `yaml:"module"`
	MemoryMiB int    `yaml:"memory_mib"`
	ReadDir   string `yaml:"read_dir"`
}

// maxConfigBytes bounds a configuration file: one far past any real
// configuration is refused before it is parsed (a 10 MB YAML file cost
// 486 MB of memory to decode).
const maxConfigBytes = 1 << 20

// loadConfig reads and checks a configuration file.
func loadConfig(path string) (fileConfig, error) {
	var c fileConfig
	raw, err := readBounded(path, maxConfigBytes)
	if err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return c, yamlError(path, raw, err)
	}
	def := dispatch.DefaultOptions()
	if c.Dispatch.BatchSize == 0 {
		c.Dispatch.BatchSize = def.BatchSize
	}
	if c.Dispatch.QueueEvents == 0 {
		c.Dispatch.QueueEvents = def.QueueEvents
	}
	if c.Dispatch.QueueMiB == 0 {
		c.Dispatch.QueueMiB = int(def.QueueBytes >> 20)
	}
	if c.Dispatch.QueueBatches == 0 {
		c.Dispatch.QueueBatches = def.QueueBatches
	}
	if c.Dispatch.DrainTimeout == 0 {
		c.Dispatch.DrainTimeout = def.DrainTimeout
	}
	var errs []error
	if err := c.Enclave.Check(); err != nil {
		errs = append(errs, err)
	}
	if c.Dispatch.BatchSize < 1 || c.Dispatch.BatchSize > 65536 || c.Dispatch.QueueBatches < 1 || c.Dispatch.QueueEvents < 1 ||
		c.Dispatch.QueueMiB < 1 || c.Dispatch.QueueMiB > 1<<20 || c.Dispatch.DrainTimeout < 0 {
		errs = append(errs, fmt.Errorf("dispatch: batch_size must be 1 to 65536, queue_events, queue_mib (at most 1048576) and queue_batches at least 1, and drain_timeout not negative"))
	}
	if c.Export != nil {
		if err := c.Export.WithDefaults().Check(); err != nil {
			errs = append(errs, err)
		}
	}
	names := map[string]bool{}
	builtins := builtinDetectors()
	for i, d := range c.Detectors {
		where := fmt.Sprintf("detector #%d", i+1)
		if d.Name != "" {
			where += fmt.Sprintf(" (%s)", d.Name)
			if names[d.Name] {
				errs = append(errs, fmt.Errorf("%s: the name is used twice; give each detector its own name", where))
			}
			names[d.Name] = true
		}
		switch d.Backend {
		case "inproc":
			if _, ok := builtins[d.Builtin]; !ok {
				errs = append(errs, fmt.Errorf("%s: backend inproc needs builtin: one of %v (got %q)", where, keys(builtins), d.Builtin))
			}
		case "goplugin", "goplugin-unary":
			if d.RecoverPanics {
				errs = append(errs, fmt.Errorf("%s: recover_panics is for backend inproc; a plugin's crash is already contained", where))
			}
			if d.Plugin == "" {
				errs = append(errs, fmt.Errorf("%s: backend %s needs plugin: the path of the plugin binary", where, d.Backend))
			} else if !filepath.IsAbs(d.Plugin) {
				// Relative to the file, so a config works from any directory.
				c.Detectors[i].Plugin = filepath.Join(filepath.Dir(path), d.Plugin)
			}
			if err := c.Enclave.over(d.Enclave).Check(); d.Enclave != nil && err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			}
			if err := d.checkTransport(c.Dispatch.BatchSize); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			}
		case "wasm":
			errs = append(errs, checkWasm(&c.Detectors[i], path, where)...)
		default:
			errs = append(errs, fmt.Errorf("%s: unknown backend %q: use inproc, goplugin, goplugin-unary or wasm", where, d.Backend))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("config %s:\n%w", path, err)
	}
	return c, nil
}

// readBounded reads a file of at most limit bytes; a larger one is
// refused before anything is parsed, with its size and the bound.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return nil, err
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	} else if st.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d bytes a configuration may have", path, st.Size(), limit)
	}
	raw, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) > limit { // it grew after Stat
		return nil, fmt.Errorf("%s is more than the %d bytes a configuration may have", path, limit)
	}
	return raw, nil
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// startDetectors starts every configured detector: plugins are launched,
// checked and initialised. On error, the ones already started are stopped.
func startDetectors(ctx context.Context, c fileConfig, log *zap.Logger) ([]dispatch.Detector, error) {
	var out []dispatch.Detector
	support := enclave.Probe()
	var host *enclave.Host
	if needsEnclave(c) {
		log.Info("plugin enclaves", zap.String("kernel_and_monitor_support", support.String()))
		h, cleaned, err := enclave.Open(support)
		for _, what := range cleaned {
			log.Warn("removed what a monitor that is gone left behind", zap.String("removed", what))
		}
		if err != nil {
			return nil, err
		}
		// The plugin uid range stays claimed until the last enclave closes.
		host = h
		defer host.Close()
		if first, last := host.UIDs(); first >= 0 {
			log.Info("plugin uids claimed for this monitor", zap.Int("first", first), zap.Int("last", last))
		}
	}
	fail := func(err error) ([]dispatch.Detector, error) {
		for _, d := range out {
			d.Run.Close(ctx)
		}
		return nil, err
	}
	var sharedCache *wasm.SharedCache // made with the first wasm detector
	for i, dc := range c.Detectors {
		cfgJSON, err := json.Marshal(dc.Config)
		if err != nil {
			return fail(fmt.Errorf("detector #%d: config: %w", i+1, err))
		}
		name := dc.Name
		if name == "" {
			name = dc.Builtin
		}
		label := name
		if label == "" {
			label = filepath.Base(dc.Plugin + dc.Module)
		}
		dlog := log.With(zap.String("detector", label))
		var run backends.Backend
		var protections []string
		switch dc.Backend {
		case "inproc":
			run, err = inproc.NewWith(ctx, builtinDetectors()[dc.Builtin](), cfgJSON, inproc.Options{Recover: dc.RecoverPanics}, dlog)
		case "wasm":
			if sharedCache == nil {
				sharedCache = sharedWasmCache(c.WasmCacheDir, log)
			}
			run, protections, err = startWasm(ctx, dc, cfgJSON, sharedCache, dlog)
		default:
			o := goplugin.DefaultOptions(dc.Plugin)
			o.Config, o.Unary = cfgJSON, dc.Backend == "goplugin-unary"
			if dc.BatchDeadline > 0 {
				o.BatchDeadline = dc.BatchDeadline
			}
			dc.restartPolicy(&o.Policy)
			dc.transportOptions(&o, c.Dispatch.BatchSize)
			ec := c.Enclave.over(dc.Enclave)
			o.SHA256, o.MTLS = dc.SHA256, ec.mtls()
			if ec.enabled() {
				if o.Launcher, err = os.Executable(); err == nil {
					o.Enclave, err = host.Prepare(label, i, ec.Config)
				}
			}
			if err == nil {
				run, err = goplugin.New(o, dlog)
			}
			protections = protectionsOf(o)
		}
		if err != nil {
			return fail(fmt.Errorf("detector #%d (%s, backend %s): %w", i+1, name, dc.Backend, err))
		}
		def := run.Definition()
		if name == "" {
			// Chosen by the plugin: any bytes (cut to 1 KiB by wire). The
			// name goes to every log line and the status file: escaped.
			name = sinks.TextEscape(def.Name)
		}
		out = append(out, dispatch.Detector{Name: name, Backend: dc.Backend, Run: run, Protections: protections})
		logStarted(log, name, dc.Backend, def, run.Stats().PID, protections)
	}
	return out, nil
}

// logStarted says a detector started. Its version is the plugin's choice
// (any bytes, cut to 1 KiB): escaped, like everything from a plugin that
// reaches the log.
func logStarted(log *zap.Logger, name, backend string, def detect.Definition, pid int, protections []string) {
	log.Info("detector started", zap.String("detector", name), zap.String("backend", backend),
		zap.String("version", sinks.TextEscape(def.Version)), zap.Int("pid", pid), zap.Strings("protections", protections))
}

// needsEnclave reports whether any detector runs in an enclave.
func needsEnclave(c fileConfig) bool {
	for _, d := range c.Detectors {
		if d.Backend != "inproc" && d.Backend != "wasm" && c.Enclave.over(d.Enclave).enabled() {
			return true
		}
	}
	return false
}

// protectionsOf lists what protects the monitor from a plugin, and the
// plugin from others.
func protectionsOf(o goplugin.Options) []string {
	out := []string{"own process, supervised (restarted on crash or hang)"}
	sha := "SHA-256 checked before launch"
	if o.Enclave != nil {
		out = append(out, o.Enclave.Protections()...)
		sha = "SHA-256 checked on the very file executed"
	} else {
		out = append(out, "NO enclave: the plugin has the monitor's user and privileges")
	}
	if o.SHA256 != "" {
		out = append(out, sha)
	}
	if o.MTLS {
		out = append(out, "mutual TLS on the connection (go-plugin AutoMTLS)")
	}
	if o.Transport != goplugin.TransportGRPC && !o.Unary {
		out = append(out, "events through a sealed shared-memory ring, read-only to the plugin (its consumer position validated)")
	}
	return out
}

// restartPolicy applies the detector's breaker settings, where given,
// to a backend's restart policy.
func (d detectorConfig) restartPolicy(p *restart.Policy) {
	if d.BreakerCrashes > 0 {
		p.BreakerCrashes = d.BreakerCrashes
	}
	if d.BreakerCooldown > 0 {
		p.BreakerCooldown = d.BreakerCooldown
	}
}

// transportOptions sets o's transport from the detector's configuration.
func (d detectorConfig) transportOptions(o *goplugin.Options, batchSize int) {
	o.Transport = d.Transport
	if d.Transport != goplugin.TransportGRPC {
		o.RingBytes, o.BatchEvents = d.RingMiB<<20, batchSize
	}
}

// checkTransport refuses a transport that is not one, or a ring that
// cannot hold the batches in flight, before anything starts.
func (d detectorConfig) checkTransport(batchSize int) error {
	if d.Transport == goplugin.TransportGRPC || d.Transport == "" && d.Backend == "goplugin-unary" {
		if d.RingMiB != 0 {
			return errors.New("ring_mib is for transport: shm")
		}
		return nil
	}
	if d.Transport == goplugin.TransportShm && d.Backend == "goplugin-unary" {
		return errors.New("transport shm is for backend goplugin (goplugin-unary sends one RPC per batch)")
	}
	if d.RingMiB < 0 || d.RingMiB > 1024 {
		return fmt.Errorf("ring_mib %d: want 1 to 1024 (a power of two)", d.RingMiB)
	}
	o := goplugin.DefaultOptions(d.Plugin)
	d.transportOptions(&o, batchSize)
	return goplugin.CheckTransport(o)
}

// startDispatch starts the configured detectors behind a dispatcher; nil
// when none are configured. block makes full queues wait instead of shed
// (replay: the source can wait, the kernel cannot).
func startDispatch(fc fileConfig, block bool, out dispatch.FindingFunc, log *zap.Logger) (*dispatch.Dispatcher, error) {
	if len(fc.Detectors) == 0 {
		return nil, nil
	}
	dets, err := startDetectors(context.Background(), fc, log.Named("detectors"))
	if err != nil {
		return nil, err
	}
	opts := dispatch.Options{BatchSize: fc.Dispatch.BatchSize, QueueEvents: fc.Dispatch.QueueEvents, QueueBytes: int64(fc.Dispatch.QueueMiB) << 20,
		QueueBatches: fc.Dispatch.QueueBatches, DrainTimeout: fc.Dispatch.DrainTimeout, Block: block}
	return dispatch.New(context.Background(), opts, dets, out, log.Named("dispatch")), nil
}
