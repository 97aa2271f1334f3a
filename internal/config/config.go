package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends/goplugin"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/enclave"
	"github.com/bulkhead-sec/bulkhead/backends/wasm"
	"github.com/bulkhead-sec/bulkhead/pipeline/dispatch"
	"github.com/bulkhead-sec/bulkhead/pipeline/export"
	"gopkg.in/yaml.v3"
)

// File is the configuration file.
type File struct {
	Dispatch Dispatch `yaml:"dispatch"`
	// Enclave is the default for every plugin; a detector's own enclave:
	// overrides it field by field.
	Enclave   Enclave    `yaml:"enclave"`
	Detectors []Detector `yaml:"detectors"`
	// Export sends findings to NATS JetStream (docs/export.md); nil: not.
	Export *export.Config `yaml:"export"`
	// WasmCacheDir keeps wasm modules compiled (backend wasm): default
	// the user's cache directory; "none" compiles them at every start.
	WasmCacheDir string `yaml:"wasm_cache_dir"`
}

// Enclave is how a goplugin detector's process is confined.
type Enclave struct {
	Enabled        *bool `yaml:"enabled"` // default true
	MTLS           *bool `yaml:"mtls"`    // go-plugin's AutoMTLS; default true
	enclave.Config `yaml:",inline"`
}

// Over is c with the fields o sets; read paths add up.
func (c Enclave) Over(o *Enclave) Enclave {
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

// Confined says whether the plugin runs in its enclave (the default).
func (c Enclave) Confined() bool { return c.Enabled == nil || *c.Enabled }

// MutualTLS says whether the plugin connection uses AutoMTLS (the default).
func (c Enclave) MutualTLS() bool { return c.MTLS == nil || *c.MTLS }

// Dispatch is the dispatcher's batches and per-detector queues.
type Dispatch struct {
	BatchSize int `yaml:"batch_size"`
	// A detector's queue: beyond queue_events events, queue_mib MiB of
	// batches or queue_batches batches, what comes is shed and counted.
	QueueEvents  int           `yaml:"queue_events"`
	QueueMiB     int           `yaml:"queue_mib"`
	QueueBatches int           `yaml:"queue_batches"`
	DrainTimeout time.Duration `yaml:"drain_timeout"` // at shutdown, per the whole drain
}

// Options are the dispatcher's options for d. block makes full queues
// wait instead of shed (replay: the source can wait, the kernel cannot).
func (d Dispatch) Options(block bool) dispatch.Options {
	return dispatch.Options{BatchSize: d.BatchSize, QueueEvents: d.QueueEvents, QueueBytes: int64(d.QueueMiB) << 20,
		QueueBatches: d.QueueBatches, DrainTimeout: d.DrainTimeout, Block: block}
}

// Detector is one detector: its backend and what that backend needs.
type Detector struct {
	Name    string `yaml:"name"`
	Backend string `yaml:"backend"` // inproc | goplugin | goplugin-unary | wasm
	Builtin string `yaml:"builtin"` // inproc: one of the builtins given to Load
	// RecoverPanics (inproc): a panic in OnEvent is caught and counted as
	// an error instead of ending the monitor. Nothing else can be caught.
	RecoverPanics bool           `yaml:"recover_panics"`
	Plugin        string         `yaml:"plugin"`  // goplugin: the binary; a relative path is relative to the config file
	SHA256        string         `yaml:"sha256"`  // goplugin: the binary's SHA-256 (sha256sum); another binary is refused
	Enclave       *Enclave       `yaml:"enclave"` // goplugin: overrides the top-level enclave:
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
	// Backend wasm: the module, its memory, and the one host directory it
	// may read.
	Module    string `yaml:"module"`
	MemoryMiB int    `yaml:"memory_mib"`
	ReadDir   string `yaml:"read_dir"`
}

// maxBytes bounds a configuration file: one far past any real
// configuration is refused before it is parsed (a 10 MB YAML file cost
// 486 MB of memory to decode).
const maxBytes = 1 << 20

// Load reads and checks a configuration file: unset dispatch settings
// take the dispatcher's defaults, relative plugin and module paths become
// relative to the file, and every problem found is reported at once.
// builtins are the names backend inproc accepts (builtin:).
func Load(path string, builtins []string) (File, error) {
	var c File
	raw, err := readBounded(path, maxBytes)
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
			if !slices.Contains(builtins, d.Builtin) {
				errs = append(errs, fmt.Errorf("%s: backend inproc needs builtin: one of %v (got %q)", where, builtins, d.Builtin))
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
			if err := c.Enclave.Over(d.Enclave).Check(); d.Enclave != nil && err != nil {
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

// TransportOptions sets o's transport from the detector's configuration.
func (d Detector) TransportOptions(o *goplugin.Options, batchSize int) {
	o.Transport = d.Transport
	if d.Transport != goplugin.TransportGRPC {
		o.RingBytes, o.BatchEvents = d.RingMiB<<20, batchSize
	}
}

// checkTransport refuses a transport that is not one, or a ring that
// cannot hold the batches in flight, before anything starts.
func (d Detector) checkTransport(batchSize int) error {
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
	d.TransportOptions(&o, batchSize)
	return goplugin.CheckTransport(o)
}

// checkWasm checks a wasm detector's entry: its module is given, and
// what only another backend reads is not set. Relative paths become
// relative to the config file.
func checkWasm(d *Detector, path, where string) []error {
	var errs []error
	if d.Module == "" {
		errs = append(errs, fmt.Errorf("%s: backend wasm needs module: the path of the .wasm file (make build writes bin/bulkhead-plugin-NAME.wasm)", where))
	} else if !filepath.IsAbs(d.Module) {
		d.Module = filepath.Join(filepath.Dir(path), d.Module)
	}
	for _, f := range []struct {
		set  bool
		what string
	}{
		{d.Plugin != "", "plugin (the binary of backend goplugin; a wasm detector's is module:)"},
		{d.Builtin != "", "builtin"}, {d.RecoverPanics, "recover_panics (a module's crash is already contained)"},
		{d.SHA256 != "", "sha256"}, {d.Enclave != nil, "enclave (a module has no process to confine: it is sandboxed by wazero)"},
		{d.Transport != "", "transport"}, {d.RingMiB != 0, "ring_mib"},
	} {
		if f.set {
			errs = append(errs, fmt.Errorf("%s: %s is not for backend wasm", where, f.what))
		}
	}
	if d.MemoryMiB < 0 || d.MemoryMiB > 4096 {
		errs = append(errs, fmt.Errorf("%s: memory_mib %d: want 1 to 4096 (default %d)", where, d.MemoryMiB, wasm.DefaultMemoryPages>>4))
	}
	if d.ReadDir != "" && !filepath.IsAbs(d.ReadDir) {
		errs = append(errs, fmt.Errorf("%s: read_dir %q: use an absolute path", where, d.ReadDir))
	}
	return errs
}
