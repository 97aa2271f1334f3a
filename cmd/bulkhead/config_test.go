package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bulkhead-sec/bulkhead/backends/goplugin/wire"
	"github.com/bulkhead-sec/bulkhead/test/testenv"
)

// TestMain removes the plugin binaries the tests built.
func TestMain(m *testing.M) {
	// The monitor under test launches plugin enclaves through this binary.
	launchEnclave()
	code := m.Run()
	testenv.Cleanup()
	os.Exit(code)
}

// A bad configuration stops the monitor before it touches the kernel, with
// exit code 1 and a message that names the detector and the problem. The
// file's own problems are internal/config's tests; here are two of them,
// and those found when the detectors start.
func TestBadConfigExplains(t *testing.T) {
	example := testenv.Plugin(t, "example")
	old := testenv.Build(t, testenv.Module+"/backends/goplugin/testdata/oldprotocol")
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown backend", "detectors: [{name: d1, backend: docker, plugin: /x}]",
			`detector #1 (d1): unknown backend "docker": use inproc, goplugin, goplugin-unary or wasm`},
		{"unknown key", "detectors:\n  - name: d1\n    plugn: /x\n",
			`line 3: unknown key "plugn" in a detector (under detectors:) (did you mean "plugin"?); valid keys: backend,`},
		{"wasm module missing", "detectors: [{name: d1, backend: wasm, module: /no/such.wasm}]",
			"detector #1 (d1, backend wasm): wasm module /no/such.wasm: open /no/such.wasm: no such file or directory"},
		{"wasm not a module", "detectors: [{name: d1, backend: wasm, module: /bin/true}]",
			"detector #1 (d1, backend wasm): wasm module /bin/true: not a WebAssembly module wazero can compile"},
		{"missing binary", "detectors: [{name: d1, backend: goplugin, plugin: /no/such/plugin}]",
			"detector #1 (d1, backend goplugin): plugin binary /no/such/plugin: stat /no/such/plugin: no such file or directory"},
		{"not a plugin", "detectors: [{name: d1, backend: goplugin, plugin: /bin/true}]",
			"detector #1 (d1, backend goplugin): plugin /bin/true: not a bulkhead detector plugin"},
		{"protocol mismatch", fmt.Sprintf("detectors: [{name: d1, backend: goplugin, plugin: %s}]", old),
			"detector #1 (d1, backend goplugin): plugin " + old + ": not a bulkhead detector plugin, or one built for another protocol version (this monitor speaks version " + strconv.Itoa(wire.ProtocolVersion) + "): incompatible API version with plugin. Plugin version: " + strconv.Itoa(wire.ProtocolVersion-1)},
		{"init refuses the config", fmt.Sprintf("detectors: [{name: d1, backend: goplugin, plugin: %s, config: {paths: [relative]}}]", example),
			`detector #1 (d1, backend goplugin): plugin ` + example + `: init: path "relative": use an absolute path`},
		{"binary changed", fmt.Sprintf("detectors: [{name: d1, backend: goplugin, plugin: %s, sha256: %s}]", example, strings.Repeat("0", 64)),
			"detector #1 (d1, backend goplugin): plugin binary " + example + ": SHA-256 is "},
		{"not a sha256", fmt.Sprintf("detectors: [{name: d1, backend: goplugin, plugin: %s, sha256: abc}]", example),
			`detector #1 (d1, backend goplugin): sha256 "abc" is not a SHA-256 in hex (64 hex digits, as sha256sum prints)`},
		{"inproc init refuses the config", "detectors: [{name: d1, backend: inproc, builtin: example, config: {paths: [relative]}}]",
			`detector #1 (d1, backend inproc): detector example: init: path "relative": use an absolute path`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if os.Geteuid() != 0 && (strings.Contains(tc.want, ", backend goplugin)") || strings.Contains(tc.want, ", backend inproc)")) {
				t.Skip("this error comes from starting the detector; without root run stops before, at its privilege check")
			}
			path := filepath.Join(t.TempDir(), "bulkhead.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			if code := realMain([]string{"run", "--config", path, "--log-level", "error"}, &stdout, &stderr); code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr lacks\n  %s\ngot\n  %s", tc.want, stderr.String())
			}
		})
	}
}

// The service files agree with each other and with the program: the
// example configuration loads and runs every library detector from where
// `make install` puts them, and the unit starts and reloads bulkhead the
// way its flags and SIGHUP handling expect.
func TestDeployFiles(t *testing.T) {
	c, err := loadConfig("../../deploy/bulkhead.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range c.Detectors {
		got[d.Name] = d.Plugin
	}
	for _, name := range []string{"webshell", "credaccess", "tmpexec", "privesc", "kernelload", "ptrace", "outbound", "persistence", "rules"} {
		if want := "/usr/local/lib/bulkhead/bulkhead-plugin-" + name; got[name] != want {
			t.Errorf("deploy/bulkhead.yaml: %s runs %q, want %q", name, got[name], want)
		}
	}
	unit, err := os.ReadFile("../../deploy/bulkhead.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ExecStart=/usr/local/bin/bulkhead run --config /etc/bulkhead/bulkhead.yaml --output /var/log/bulkhead/findings.json --metrics-addr 127.0.0.1:9090\n",
		"ExecReload=/bin/kill -HUP $MAINPID\n", "LogsDirectory=bulkhead\n", "WantedBy=multi-user.target\n",
	} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("deploy/bulkhead.service lacks %q", want)
		}
	}
	// The flags the unit passes exist.
	var stderr bytes.Buffer
	if code := realMain([]string{"run", "-h"}, &bytes.Buffer{}, &stderr); code != 0 {
		t.Fatal(code)
	}
	for _, flag := range []string{"-config", "-output", "-metrics-addr"} {
		if !strings.Contains(stderr.String(), flag) {
			t.Errorf("bulkhead run has no %s flag", flag)
		}
	}
}
