package main

// Backend wasm: a detector compiled to WebAssembly, run by wazero in the
// monitor's own process (backends/wasm).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/backends/wasm"
	"github.com/tetratelabs/wazero"
	"go.uber.org/zap"
)

// checkWasm checks a wasm detector's entry: its module is given, and
// what only another backend reads is not set. Relative paths become
// relative to the config file.
func checkWasm(d *detectorConfig, path, where string) []error {
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

// startWasm starts a wasm detector.
func startWasm(ctx context.Context, dc detectorConfig, cfgJSON []byte, cache *wasm.SharedCache, log *zap.Logger) (backends.Backend, []string, error) {
	o := wasm.DefaultOptions(dc.Module)
	o.Config, o.ReadDir = cfgJSON, dc.ReadDir
	if dc.MemoryMiB > 0 {
		o.MemoryPages = uint32(dc.MemoryMiB) << 4
	}
	if dc.BatchDeadline > 0 {
		o.BatchDeadline = dc.BatchDeadline
	}
	dc.restartPolicy(&o.Policy)
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
