package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/enclave"
	"github.com/bulkhead-sec/bulkhead/backends/inproc"
	"github.com/bulkhead-sec/bulkhead/backends/restart"
	"github.com/bulkhead-sec/bulkhead/backends/wasm"
	"github.com/bulkhead-sec/bulkhead/internal/config"
	"github.com/bulkhead-sec/bulkhead/pipeline/dispatch"
	"github.com/bulkhead-sec/bulkhead/pipeline/sinks"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
	"github.com/tetratelabs/wazero"
	"go.uber.org/zap"
)

// startDetectors starts every configured detector: plugins are launched,
// checked and initialised. On error, the ones already started are stopped.
func startDetectors(ctx context.Context, c config.File, log *zap.Logger) ([]dispatch.Detector, error) {
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
			run, err = inproc.NewWith(ctx, Builtins()[dc.Builtin](), cfgJSON, inproc.Options{Recover: dc.RecoverPanics}, dlog)
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
			restartPolicy(dc, &o.Policy)
			dc.TransportOptions(&o, c.Dispatch.BatchSize)
			ec := c.Enclave.Over(dc.Enclave)
			o.SHA256, o.MTLS = dc.SHA256, ec.MutualTLS()
			if ec.Confined() {
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

// StartDispatch starts the configured detectors behind a dispatcher; nil
// when none are configured. block makes full queues wait instead of shed
// (replay: the source can wait, the kernel cannot).
func StartDispatch(fc config.File, block bool, out dispatch.FindingFunc, log *zap.Logger) (*dispatch.Dispatcher, error) {
	if len(fc.Detectors) == 0 {
		return nil, nil
	}
	dets, err := startDetectors(context.Background(), fc, log.Named("detectors"))
	if err != nil {
		return nil, err
	}
	return dispatch.New(context.Background(), fc.Dispatch.Options(block), dets, out, log.Named("dispatch")), nil
}

// startWasm starts a wasm detector.
func startWasm(ctx context.Context, dc config.Detector, cfgJSON []byte, cache *wasm.SharedCache, log *zap.Logger) (backends.Backend, []string, error) {
	o := wasm.DefaultOptions(dc.Module)
	o.Config, o.ReadDir = cfgJSON, dc.ReadDir
	if dc.MemoryMiB > 0 {
		o.MemoryPages = uint32(dc.MemoryMiB) << 4
	}
	if dc.BatchDeadline > 0 {
		o.BatchDeadline = dc.BatchDeadline
	}
	restartPolicy(dc, &o.Policy)
	o.Shared = cache
	b, err := wasm.New(ctx, o, log)
	if err != nil {
		return nil, nil, err
	}
	protections := []string{
		"wasm sandbox in the monitor's process (wazero): traps end the instance, not the monitor; no access to the monitor's memory",
		fmt.Sprintf("memory capped at %d MiB; batch deadline %v (the instance is ended, the batch resent)", o.MemoryPages>>4, o.BatchDeadline),
	}
	if o.ReadDir != "" {
		protections = append(protections, "reads "+o.ReadDir+" (read-only); no other file, no network")
	} else {
		protections = append(protections, "no filesystem, network or environment")
	}
	return b, protections, nil
}

// sharedWasmCache is the compilation cache of a configuration's wasm
// detectors: in dir, or in memory if that is not usable (logged). The
// detectors share the compiled code.
func sharedWasmCache(dir string, log *zap.Logger) *wasm.SharedCache {
	c, err := wasmCache(dir)
	if err != nil {
		log.Warn("wasm modules are compiled at every start: the compilation cache directory is not usable", zap.Error(err))
	}
	if c == nil {
		c = wazero.NewCompilationCache()
	}
	return wasm.NewSharedCache(c)
}

// wasmCache is the compilation cache in dir ("": the user's cache
// directory; "none": nil, no cache on disk). Compiled code from it runs
// in the monitor: the directory must be the monitor's user's own and
// writable by no one else.
func wasmCache(dir string) (wazero.CompilationCache, error) {
	switch dir {
	case "none":
		return nil, nil
	case "":
		base, err := os.UserCacheDir()
		if err != nil {
			return nil, err
		}
		dir = filepath.Join(base, "bulkhead", "wasm")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return nil, err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !st.IsDir() || !ok || int(sys.Uid) != os.Geteuid() || st.Mode().Perm()&0o022 != 0 {
		return nil, errors.New("wasm_cache_dir " + dir + ": must be a directory of the monitor's user, writable by no one else (the code compiled there runs in the monitor)")
	}
	return wazero.NewCompilationCacheWithDir(dir)
}

// needsEnclave reports whether any detector runs in an enclave.
func needsEnclave(c config.File) bool {
	for _, d := range c.Detectors {
		if d.Backend != "inproc" && d.Backend != "wasm" && c.Enclave.Over(d.Enclave).Confined() {
			return true
		}
	}
	return false
}

// restartPolicy applies the detector's breaker settings, where given,
// to a backend's restart policy.
func restartPolicy(d config.Detector, p *restart.Policy) {
	if d.BreakerCrashes > 0 {
		p.BreakerCrashes = d.BreakerCrashes
	}
	if d.BreakerCooldown > 0 {
		p.BreakerCooldown = d.BreakerCooldown
	}
}
