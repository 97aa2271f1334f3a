package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-sec/bulkhead/test/testenv"
)

// TestMain removes the plugin binaries the tests built.
func TestMain(m *testing.M) {
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
			`detector #1 (d1): unknown backend "docker": use inproc, goplugin or goplugin-unary`},
		{"missing plugin path", "detectors: [{name: d1, backend: goplugin}]",
			"detector #1 (d1): backend goplugin needs plugin: the path of the plugin binary"},
		{"unknown builtin", "detectors: [{name: d1, backend: inproc, builtin: nope}]",
			`detector #1 (d1): backend inproc needs builtin: one of`},
		{"same name twice", "detectors: [{name: d1, backend: inproc, builtin: example}, {name: d1, backend: inproc, builtin: example}]",
			"detector #2 (d1): the name is used twice"},
		{"unknown field", "detectors: [{name: d1, backend: inproc, builtin: example, configg: {}}]",
			"field configg not found"},
		{"missing binary", "detectors: [{name: d1, backend: goplugin, plugin: /no/such/plugin}]",
			"detector #1 (d1, backend goplugin): plugin binary /no/such/plugin: stat /no/such/plugin: no such file or directory"},
		{"not a plugin", "detectors: [{name: d1, backend: goplugin, plugin: /bin/true}]",
			"detector #1 (d1, backend goplugin): plugin /bin/true: not a bulkhead detector plugin"},
		{"protocol mismatch", fmt.Sprintf("detectors: [{name: d1, backend: goplugin, plugin: %s}]", old),
			"detector #1 (d1, backend goplugin): plugin " + old + ": not a bulkhead detector plugin, or one built for another protocol version (this monitor speaks version 2): incompatible API version with plugin. Plugin version: 1"},
		{"init refuses the config", fmt.Sprintf("detectors: [{name: d1, backend: goplugin, plugin: %s, config: {paths: [relative]}}]", example),
			`detector #1 (d1, backend goplugin): plugin ` + example + `: init: path "relative": use an absolute path`},
		{"inproc init refuses the config", "detectors: [{name: d1, backend: inproc, builtin: example, config: {paths: [relative]}}]",
			`detector #1 (d1, backend inproc): detector example: init: path "relative": use an absolute path`},
	} {
		t.Run(tc.name, func(t *testing.T) {
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
