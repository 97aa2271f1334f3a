// Package wasmtest builds the library's detectors as wasm modules for
// tests and benchmarks, once per test process, and gives them a
// compilation cache on disk shared by every test run (a module of 20 MiB
// takes seconds to compile on a busy host; from the cache, a fraction of
// one). Both live in one directory of the temp dir, bounded: a module
// per detector, replaced by each build, and compiled code, pruned.
package wasmtest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
)

var (
	mu       sync.Mutex
	built    = map[string]string{}
	cache    wazero.CompilationCache
	cacheErr error
)

// Build compiles plugins/NAME/wasm for wasip1 and returns the module's
// path, the same for every test process: the module is built beside it
// and renamed into place, so that test processes running at once each
// see a whole module.
func Build(t testing.TB, name string) string {
	t.Helper()
	return BuildPackage(t, "./plugins/"+name+"/wasm", name)
}

// BuildPackage is Build for the main package in dir (relative to the
// module's root), written as bulkhead-plugin-NAME.wasm.
func BuildPackage(t testing.TB, dir, name string) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if p, ok := built[name]; ok {
		return p
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(Dir(), "modules")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(out, name+"-*.tmp")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	tmp := f.Name()
	out = filepath.Join(out, "bulkhead-plugin-"+name+".wasm")
	defer os.Remove(tmp)
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-ldflags=-s -w", "-o", tmp, dir)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the %s wasm module: %v\n%s", name, err, b)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, out); err != nil {
		t.Fatal(err)
	}
	built[name] = out
	return out
}

// Cache is a compilation cache in the temp directory, kept across test
// runs (CacheDir).
func Cache(t testing.TB) wazero.CompilationCache {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if cache == nil && cacheErr == nil {
		prune(CacheDir())
		cache, cacheErr = wazero.NewCompilationCacheWithDir(CacheDir())
	}
	if cacheErr != nil {
		t.Fatal(cacheErr)
	}
	return cache
}

// Dir holds the modules and the cache.
func Dir() string { return filepath.Join(os.TempDir(), "bulkhead-wasm-test") }

// CacheDir is where Cache keeps compiled modules.
func CacheDir() string { return filepath.Join(Dir(), "cache") }

// maxCache bounds the compiled code kept: every change of a detector makes
// new entries (about 80 MiB each).
const maxCache = 2 << 30

// prune removes compiled code unused for a day, and everything if what is
// left is over maxCache.
func prune(dir string) {
	var total int64
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		if time.Since(info.ModTime()) > 24*time.Hour {
			os.Remove(p)
			return nil
		}
		total += info.Size()
		return nil
	})
	if total > maxCache {
		os.RemoveAll(dir)
	}
}

// Cleanup closes the cache.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	built = map[string]string{}
	if cache != nil {
		cache.Close(context.Background())
		cache = nil
	}
}

func moduleRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("no go.mod above the working directory")
		}
		d = parent
	}
}
