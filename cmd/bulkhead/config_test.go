package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/bulkhead-sec/bulkhead/backends/goplugin/wire"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
	"github.com/bulkhead-sec/bulkhead/test/testenv"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
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
// exit code 1 and a message that names the detector and the problem.
func TestBadConfigExplains(t *testing.T) {
	example := testenv.Plugin(t, "example")
	old := testenv.Build(t, testenv.Module+"/backends/goplugin/testdata/oldprotocol")
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
		{"wasm module missing", "detectors: [{name: d1, backend: wasm, module: /no/such.wasm}]",
			"detector #1 (d1, backend wasm): wasm module /no/such.wasm: open /no/such.wasm: no such file or directory"},
		{"wasm not a module", "detectors: [{name: d1, backend: wasm, module: /bin/true}]",
			"detector #1 (d1, backend wasm): wasm module /bin/true: not a WebAssembly module wazero can compile"},
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
		{"enclave too small", "enclave: {memory_mb: 8}\ndetectors: [{name: d1, backend: goplugin, plugin: /x}]",
			"enclave: memory_mb 8 is too small for a Go plugin; give it at least 32"},
		{"enclave read path relative", "detectors: [{name: d1, backend: goplugin, plugin: /x, enclave: {read: [etc]}}]",
			`detector #1 (d1): enclave: read path "etc" must be absolute`},
		{"recover_panics on a plugin", "detectors: [{name: d1, backend: goplugin, plugin: /x, recover_panics: true}]",
			"detector #1 (d1): recover_panics is for backend inproc; a plugin's crash is already contained"},
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

// A relative plugin path is read against the config file's directory, so
// configs/detectors.yaml works from any working directory.
// A configuration file past maxConfigBytes is refused before it is
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
	_, err := loadConfig(huge)
	want := fmt.Sprintf("config: %s is %d bytes, more than the %d bytes a configuration may have", huge, b.Len(), maxConfigBytes)
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
	// Just under the bound: loaded (comments pad it).
	ok := filepath.Join(dir, "ok.yaml")
	pad := "detectors: []\n" + strings.Repeat("#"+strings.Repeat(" ", 98)+"\n", (maxConfigBytes-64)/100)
	if err := os.WriteFile(ok, []byte(pad), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(ok); err != nil {
		t.Errorf("a %d-byte config: %v", len(pad), err)
	}
	if _, err := loadConfig(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory as config: %v", err)
	}
}

func TestRelativePluginPathIsRelativeToTheFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "conf", "bulkhead.yaml")
	os.MkdirAll(filepath.Dir(cfg), 0o755)
	os.WriteFile(cfg, []byte("detectors: [{name: a, backend: goplugin, plugin: ../bin/p}, {name: b, backend: goplugin, plugin: /abs/p}]"), 0o644)
	c, err := loadConfig(cfg)
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

// The shipped library config loads, and names every library detector.
func TestShippedConfigLoads(t *testing.T) {
	c, err := loadConfig("../../configs/detectors.yaml")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, d := range c.Detectors {
		names[d.Name] = true
		if _, ok := builtinDetectors()[d.Name]; !ok {
			t.Errorf("%s is not a builtin: it could not run on inproc", d.Name)
		}
	}
	for _, want := range []string{"webshell", "credaccess", "tmpexec", "privesc", "kernelload", "ptrace", "outbound", "persistence", "rules"} {
		if !names[want] {
			t.Errorf("configs/detectors.yaml lacks %s", want)
		}
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

// A plugin chooses its version: whatever bytes it holds (terminal
// escapes, a C1 CSI, DEL, bytes that are not UTF-8, a forged log line)
// reach neither the JSON log nor a terminal's console log raw.
func TestStartedLogEscapesThePluginsVersion(t *testing.T) {
	hostile := "1.0\x1b]0;pwned\x07\u009b2J\x7f\xff\n{\"level\":\"info\",\"msg\":\"forged\"}"
	for _, console := range []bool{false, true} {
		var buf bytes.Buffer
		log, err := newLogger("info", &buf)
		if err != nil {
			t.Fatal(err)
		}
		if console {
			encCfg := zap.NewProductionEncoderConfig()
			log = zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(encCfg), zapcore.AddSync(&buf), zapcore.InfoLevel))
		}
		logStarted(log, "x", "goplugin", detect.Definition{Name: "x", Version: hostile}, 42, nil)
		log.Sync()
		out := buf.String()
		if strings.Count(out, "\n") != 1 {
			t.Errorf("console=%v: the version forged a line:\n%s", console, out)
		}
		for i, r := range strings.TrimSuffix(out, "\n") {
			if r == utf8.RuneError || (!unicode.IsPrint(r) && r != '\t') {
				t.Fatalf("console=%v: %U raw at byte %d of %q", console, r, i, out)
			}
		}
		if !strings.Contains(out, `1.0\\x1b]0;pwned\\a\\u009b2J\\x7f\\xff\\n{`) && !strings.Contains(out, `1.0\x1b]0;pwned\a\u009b2J\x7f\xff\n{`) {
			t.Errorf("console=%v: the version is not there, escaped:\n%s", console, out)
		}
	}
}
