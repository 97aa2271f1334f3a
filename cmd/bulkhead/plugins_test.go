package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/bulkhead-sec/bulkhead/internal/monitor/status"
)

// hostileStatus is a status file whose texts hold what a plugin or a
// monitored process could put there: a C1 CSI (U+009B), DEL, ESC, a
// bidirectional override, a byte that is not UTF-8, a character beyond
// the BMP that is not printable (a tag character), and a newline.
func hostileStatus(pid int) string {
	return fmt.Sprintf(`{"pid": %d, "updated": "2026-11-26T10:00:00Z", "unknown": "\u009b31m",
 "detectors": [{"name": "a`+"\u009b"+`2Jb`+"\x7f"+`c\u001b[31md`+"\u202e"+`e`+"\xff"+`f`+"\U000E0041"+`g\nh", "backend": "goplugin", "state": "running",
   "protections": ["tmpfs `+"\u009b"+`0m"]}]}`, pid)
}

// `bulkhead plugins --json` writes nothing raw that is not printable:
// every such character as \uXXXX, and the JSON still decodes to the
// same texts.
func TestPluginsJSONEscapes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "status.json")
	if err := os.WriteFile(p, []byte(hostileStatus(os.Getpid())), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := pluginsCommand([]string{"--status", p, "--json"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !utf8.Valid(out.Bytes()) {
		t.Fatalf("not UTF-8:\n%q", out.String())
	}
	for i, r := range out.String() {
		if r == '\n' {
			continue
		}
		if !unicode.IsPrint(r) {
			t.Fatalf("%U raw at byte %d of:\n%s", r, i, out.String())
		}
	}
	var s status.Monitor
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out.String())
	}
	want := "a\u009b2Jb\x7fc\x1b[31md\u202ee\ufffdf\U000E0041g\nh"
	if len(s.Detectors) != 1 || s.Detectors[0].Name != want || s.Detectors[0].Protections[0] != "tmpfs \u009b0m" {
		t.Errorf("decoded %+v, want name %q", s.Detectors, want)
	}
	for _, esc := range []string{`\u009b2J`, `\u007f`, `\u001b`, `\u202e`, `\udb40\udc41`} {
		if !strings.Contains(out.String(), esc) {
			t.Errorf("no %s in:\n%s", esc, out.String())
		}
	}
	if strings.Contains(out.String(), "unknown") {
		t.Errorf("a field a monitor never writes was passed through:\n%s", out.String())
	}

	// The table is escaped too (plain).
	out.Reset()
	if err := pluginsCommand([]string{"--status", p}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(out.String(), "\u009b\x7f\x1b\u202e") {
		t.Errorf("the table has raw controls:\n%q", out.String())
	}
}

// A status file someone else could have written is not shown: a link, a
// file others can write, another user's file.
func TestPluginsRefusesAPlantedStatus(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(hostileStatus(os.Getpid())), 0o644)
	for _, tc := range []struct {
		name, want string
		make       func(t *testing.T, p string) error
	}{
		{"a symbolic link", "is a symbolic link", func(t *testing.T, p string) error { return os.Symlink(good, p) }},
		{"writable by all", "others can write it", func(t *testing.T, p string) error {
			if err := os.WriteFile(p, []byte(hostileStatus(os.Getpid())), 0o600); err != nil {
				return err
			}
			return os.Chmod(p, 0o666)
		}},
		{"a fifo", "not a regular file", func(t *testing.T, p string) error { return mkfifo(p) }},
		{"another user's", "belongs to uid 65534", func(t *testing.T, p string) error {
			if os.Geteuid() != 0 {
				t.Skip("needs root to give a file to another user")
			}
			if err := os.WriteFile(p, []byte(hostileStatus(os.Getpid())), 0o644); err != nil {
				return err
			}
			return os.Chown(p, 65534, 65534)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := tc.make(t, p); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			err := pluginsCommand([]string{"--status", p, "--json"}, &out, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q; printed:\n%s", err, tc.want, out.String())
			}
		})
	}
}

func mkfifo(p string) error { return syscall.Mkfifo(p, 0o600) }

// Each monitor keeps a status file of its own; `bulkhead plugins` with no
// --status shows every running monitor's, and leaves out a file whose
// monitor is gone.
func TestPluginsShowsEveryRunningMonitor(t *testing.T) {
	if err := os.MkdirAll(filepath.Dir(status.Path(1)), 0o711); err != nil {
		t.Skipf("run-time directory: %v", err)
	}
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{os.Getpid(), child.Process.Pid, gone.Process.Pid} {
		s := fmt.Sprintf(`{"pid": %d, "updated": "2026-11-26T10:00:00Z", "detectors": [{"name": "det-%d", "backend": "goplugin", "state": "running"}]}`, pid, pid)
		if err := os.WriteFile(status.Path(pid), []byte(s), 0o644); err != nil {
			t.Skipf("cannot write a status file: %v", err)
		}
		defer os.Remove(status.Path(pid))
	}
	var out bytes.Buffer
	if err := pluginsCommand(nil, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{os.Getpid(), child.Process.Pid} {
		if !strings.Contains(out.String(), fmt.Sprintf("monitor pid %d", pid)) || !strings.Contains(out.String(), fmt.Sprintf("det-%d", pid)) {
			t.Errorf("monitor %d not shown:\n%s", pid, out.String())
		}
	}
	if strings.Contains(out.String(), fmt.Sprintf("det-%d", gone.Process.Pid)) {
		t.Errorf("a gone monitor shown:\n%s", out.String())
	}
}
