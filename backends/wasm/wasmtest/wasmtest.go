// Package wasmtest builds the library's detectors as wasm modules for
// tests and benchmarks, once per test process, and gives them a
// compilation cache on disk shared by every test run (a module of 20 MiB
// takes seconds to compile on a busy host; from the cache, a fraction of
// one).
package wasmtest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tetratelabs/wazero"
)

var (
	mu       sync.Mutex
	dir      string
	built    = map[string]string{}
	cache    wazero.CompilationCache
	cacheErr error
)

// Build compiles plugins/NAME/wasm for wasip1 and returns the module's
// path. Call Cleanup from TestMain.
func Build(t testing.TB, name string) string {
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
	if dir == "" {
		if dir, err = os.MkdirTemp("", "bulkhead-wasm-test"); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "bulkhead-plugin-"+name+".wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-ldflags=-s -w", "-o", out, "./plugins/"+name+"/wasm")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the %s wasm module: %v\n%s", name, err, b)
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
		cache, cacheErr = wazero.NewCompilationCacheWithDir(CacheDir())
	}
	if cacheErr != nil {
		t.Fatal(cacheErr)
	}
	return cache
}

// CacheDir is where Cache keeps compiled modules.
func CacheDir() string { return filepath.Join(os.TempDir(), "bulkhead-wasm-test-cache") }

// Cleanup removes the modules Build built (not the cache).
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
		dir, built = "", map[string]string{}
	}
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
