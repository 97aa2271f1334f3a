// Package testenv holds helpers for tests that need more than a plain
// `go test`: root, BPF, built bulkhead and plugin binaries.
package testenv

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bulkhead-sec/bulkhead/bpf"
)

// RequireBPF skips the test, saying exactly why, unless this process can
// load and attach bulkhead's programs (root, BTF, ring buffer, tracefs).
func RequireBPF(t testing.TB) {
	t.Helper()
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("needs linux/amd64 (the committed BPF objects are built for x86); this is %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to load BPF programs; run `sudo make test` (CI runs as root)")
	}
	if err := bpf.Preflight(); err != nil {
		t.Skipf("this host cannot run BPF programs: %v", err)
	}
}

// Module is this module's import path.
const Module = "github.com/bulkhead-sec/bulkhead"

var (
	buildMu  sync.Mutex
	buildDir string            // one per test process; Cleanup removes it
	built    map[string]string // import path → binary
)

// Build compiles the main package pkg (an import path) once per test
// process and returns the binary's path. Call Cleanup from TestMain.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[pkg]; ok {
		return p
	}
	if buildDir == "" {
		// In the module, not in /tmp: programs run from world-writable
		// directories are what the tmpexec detector reports, and a test run
		// under the monitor should not look like a dropper.
		// A checkout this user cannot write falls back to the temp dir.
		dir, err := "", errors.New("no module root")
		if root, rerr := moduleRoot(); rerr == nil {
			os.MkdirAll(filepath.Join(root, ".testbin"), 0o755)
			dir, err = os.MkdirTemp(filepath.Join(root, ".testbin"), "bulkhead-test-bin")
		}
		if err != nil {
			if dir, err = os.MkdirTemp("", "bulkhead-test-bin"); err != nil {
				t.Fatal(err)
			}
		}
		// Readable by all: some tests run the binaries as an unprivileged user.
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		buildDir, built = dir, map[string]string{}
	}
	out := filepath.Join(buildDir, path.Base(pkg))
	if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
	built[pkg] = out
	return out
}

// moduleRoot is the directory of the go.mod above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Binary builds cmd/bulkhead.
func Binary(t testing.TB) string { return Build(t, Module+"/cmd/bulkhead") }

// Plugin builds plugins/NAME/cmd/bulkhead-plugin-NAME.
func Plugin(t testing.TB, name string) string {
	return Build(t, Module+"/plugins/"+name+"/cmd/bulkhead-plugin-"+name)
}

// PluginNamed is plugin name's binary under the file name as: a hard link
// beside it, for a plugin that reads its own name (rogue's start attacks).
func PluginNamed(t testing.TB, name, as string) string {
	t.Helper()
	bin := Plugin(t, name)
	link := filepath.Join(filepath.Dir(bin), as)
	if err := os.Link(bin, link); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(link) })
	return link
}

// Accepted counts the connections made to l, closing each, until l is
// closed.
func Accepted(l net.Listener) *atomic.Int64 {
	var n atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return &n
}

// Cleanup removes what Build built.
func Cleanup() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir != "" {
		os.RemoveAll(buildDir)
		buildDir, built = "", nil
	}
}
