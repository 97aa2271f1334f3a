// Package testenv holds helpers for tests that need more than a plain
// `go test`: root, BPF, a built bulkhead binary.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
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

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildOut  []byte
)

// Plugin builds plugins/NAME/cmd/bulkhead-plugin-NAME next to the bulkhead
// binary and returns its path.
func Plugin(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Dir(Binary(t))
	out := filepath.Join(dir, "bulkhead-plugin-"+name)
	pluginMu.Lock()
	defer pluginMu.Unlock()
	if _, err := os.Stat(out); err == nil {
		return out
	}
	cmd := exec.Command("go", "build", "-o", out, "github.com/bulkhead-sec/bulkhead/plugins/"+name+"/cmd/bulkhead-plugin-"+name)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build plugin %s: %v\n%s", name, err, b)
	}
	return out
}

var pluginMu sync.Mutex

// Cleanup removes what Binary built; call it from TestMain.
func Cleanup() {
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
}

// Binary builds cmd/bulkhead once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bulkhead-test-bin")
		if err != nil {
			buildErr = err
			return
		}
		// Readable by all: some tests run the binary as an unprivileged user.
		if buildErr = os.Chmod(dir, 0o755); buildErr != nil {
			return
		}
		binPath = filepath.Join(dir, "bulkhead")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/bulkhead-sec/bulkhead/cmd/bulkhead")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("build bulkhead: %v\n%s", buildErr, buildOut)
	}
	return binPath
}
