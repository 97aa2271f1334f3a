package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// load is Load with the builtins the tests name.
func load(path string) (File, error) { return Load(path, []string{"example", "credaccess"}) }

// A bad configuration is refused with a message that names the detector
// and the problem, in the file's words, every problem at once.
func TestBadConfigExplains(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown backend", "detectors: [{name: d1, backend: docker, plugin: /x}]",
			`detector #1 (d1): unknown backend "docker": use inproc, goplugin, goplugin-unary or wasm`},
		{"wasm without module", "detectors: [{name: d1, backend: wasm}]",
			"detector #1 (d1): backend wasm needs module: the path of the .wasm file"},
		{"wasm with a plugin's settings", "detectors: [{name: d1, backend: wasm, module: /x.wasm, plugin: /x, transport: shm}]",
			"detector #1 (d1): plugin (the binary of backend goplugin; a wasm detector's is module:) is not for backend wasm"},
		{"wasm memory", "detectors: [{name: d1, backend: wasm, module: /x.wasm, memory_mib: 5000}]",
			"detector #1 (d1): memory_mib 5000: want 1 to 4096"},
		{"unknown transport", "detectors: [{name: d1, backend: goplugin, plugin: /x, transport: udp}]",
			`detector #1 (d1): transport "udp": use shm or grpc`},
		{"ring too small", "dispatch: {batch_size: 512}\ndetectors: [{name: d1, backend: goplugin, plugin: /x, transport: shm, ring_mib: 1}]",
			"detector #1 (d1): shm ring of 1024 KiB cannot hold a batch of up to 512 events (2048 KiB at 4096 bytes an event): make the ring at least 2 MiB or the batches smaller"},
		{"ring for bigger batches", "dispatch: {batch_size: 2048}\ndetectors: [{name: d1, backend: goplugin, plugin: /x, ring_mib: 4}]",
			"detector #1 (d1): shm ring of 4096 KiB cannot hold a batch of up to 2048 events"},
		{"unknown key", "detectors:\n  - name: d1\n    plugn: /x\n",
			`line 3: unknown key "plugn" in a detector (under detectors:) (did you mean "plugin"?); valid keys: backend,`},
		{"unknown dispatch key", "dispatch:\n  queue_event: 5\n",
			`line 2: unknown key "queue_event" in dispatch: (did you mean "queue_events"?)`},
		{"bad indentation", "detectors:\n  - name: d1\n   backend: goplugin\n",
			"line 3: the indentation of this line matches no key above it"},
		{"ring without shm", "detectors: [{name: d1, backend: goplugin, plugin: /x, transport: grpc, ring_mib: 32}]",
			"detector #1 (d1): ring_mib is for transport: shm"},
		{"shm and unary", "detectors: [{name: d1, backend: goplugin-unary, plugin: /x, transport: shm}]",
			"detector #1 (d1): transport shm is for backend goplugin"},
		{"missing plugin path", "detectors: [{name: d1, backend: goplugin}]",
			"detector #1 (d1): backend goplugin needs plugin: the path of the plugin binary"},
		{"unknown builtin", "detectors: [{name: d1, backend: inproc, builtin: nope}]",
			`detector #1 (d1): backend inproc needs builtin: one of`},
		{"same name twice", "detectors: [{name: d1, backend: inproc, builtin: example}, {name: d1, backend: inproc, builtin: example}]",
			"detector #2 (d1): the name is used twice"},
		{"unknown field", "detectors: [{name: d1, backend: inproc, builtin: example, configg: {}}]",
			`unknown key "configg" in a detector (under detectors:) (did you mean "config"?)`},
		{"enclave too small", "enclave: {memory_mb: 8}\ndetectors: [{name: d1, backend: goplugin, plugin: /x}]",
			"enclave: memory_mb 8 is too small for a Go plugin; give it at least 32"},
		{"enclave read path relative", "detectors: [{name: d1, backend: goplugin, plugin: /x, enclave: {read: [etc]}}]",
			`detector #1 (d1): enclave: read path "etc" must be absolute`},
		{"recover_panics on a plugin", "detectors: [{name: d1, backend: goplugin, plugin: /x, recover_panics: true}]",
			"detector #1 (d1): recover_panics is for backend inproc; a plugin's crash is already contained"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bulkhead.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := load(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error lacks\n  %s\ngot\n  %v", tc.want, err)
			}
		})
	}
}

// A configuration file past maxBytes is refused before it is
// parsed, naming the file, its size and the bound; one just under loads.
func TestHugeConfigRefusedBeforeParsing(t *testing.T) {
	dir := t.TempDir()
	huge := filepath.Join(dir, "huge.yaml")
	// 10 MB of YAML, as in the report: a list of one-character strings.
	var b strings.Builder
	b.WriteString("detectors: []\nx:\n")
	for b.Len() < 10<<20 {
		b.WriteString("  - a\n")
	}
	if err := os.WriteFile(huge, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := load(huge)
	want := fmt.Sprintf("config: %s is %d bytes, more than the %d bytes a configuration may have", huge, b.Len(), maxBytes)
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
	// Just under the bound: loaded (comments pad it).
	ok := filepath.Join(dir, "ok.yaml")
	pad := "detectors: []\n" + strings.Repeat("#"+strings.Repeat(" ", 98)+"\n", (maxBytes-64)/100)
	if err := os.WriteFile(ok, []byte(pad), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := load(ok); err != nil {
		t.Errorf("a %d-byte config: %v", len(pad), err)
	}
	if _, err := load(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory as config: %v", err)
	}
}

// A relative plugin path is read against the config file's directory, so
// configs/detectors.yaml works from any working directory.
func TestRelativePluginPathIsRelativeToTheFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "conf", "bulkhead.yaml")
	os.MkdirAll(filepath.Dir(cfg), 0o755)
	os.WriteFile(cfg, []byte("detectors: [{name: a, backend: goplugin, plugin: ../bin/p}, {name: b, backend: goplugin, plugin: /abs/p}]"), 0o644)
	c, err := load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Detectors[0].Plugin; got != filepath.Join(dir, "bin", "p") {
		t.Errorf("relative plugin resolved to %s", got)
	}
	if got := c.Detectors[1].Plugin; got != "/abs/p" {
		t.Errorf("absolute plugin changed to %s", got)
	}
}
