package test

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/test/testenv"
)

// rawString is the bytes of a JSON record's string field: the sink writes
// bytes that are not UTF-8 as U+FFFD with the original in "<key>_b64".
func rawString(t *testing.T, m map[string]any, key string) string {
	t.Helper()
	if b64, ok := m[key+"_b64"].(string); ok {
		b, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatalf("%s_b64: %v", key, err)
		}
		return string(b)
	}
	s, _ := m[key].(string)
	return s
}

// Issue 14, class 4: a file name is any bytes. A real program whose file
// name is not UTF-8, or is full of control bytes (so its comm, exe and
// argv are), reads /etc/shadow. credaccess reports it exactly once on each
// backend, with the bytes intact in the event, the summary and the
// fields; the plugin is not counted as crashed, nothing is quarantined,
// and the breaker stays closed.
func TestNonUTF8ProgramNamesReachEveryDetector(t *testing.T) {
	testenv.RequireBPF(t)
	if _, err := os.Stat("/etc/shadow"); err != nil {
		t.Skipf("no /etc/shadow here: %v", err)
	}
	dir := scratch(t, "/var/tmp")
	names := []string{
		"x\xff\xfe",                 // the name
		"\xc0\xaf\xed\xa0\x80ab",    // overlong '/', a UTF-16 surrogate
		"n\n\x1b[2J\x07\r\x01\x7f",  // newline, terminal escapes, controls
		"c1\xc2\x9b31m\xe2\x80\xae", // C1 CSI, a bidi override
	}
	var yaml strings.Builder
	fmt.Fprintf(&yaml, "detectors:\n  - name: cred-inproc\n    backend: inproc\n    builtin: credaccess\n")
	fmt.Fprintf(&yaml, "  - name: cred-goplugin\n    backend: goplugin\n    plugin: %s\n", testenv.Plugin(t, "credaccess"))
	m := startMonitor(t, "--config", writeConfig(t, yaml.String()))

	pids := map[int]string{}
	for _, name := range names {
		exe := filepath.Join(dir, name)
		copyFile(t, "/bin/cat", exe, 0o755)
		for range 3 { // three tries each: a failed batch would be retried and show as a crash
			cmd := exec.Command(exe, "/etc/shadow")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%q: %v\n%s", name, err, out)
			}
			pids[cmd.Process.Pid] = name
		}
	}
	time.Sleep(300 * time.Millisecond)
	events := m.stop(t)
	stderr := m.stderr.String()

	for pid, name := range pids {
		exe := filepath.Join(dir, name)
		comm := name[:min(len(name), 15)]
		for _, det := range []string{"cred-inproc", "cred-goplugin"} {
			var got []map[string]any
			for _, ev := range events {
				if ev["type"] == "finding" && ev["detector"] == det && pidOf(ev) == pid {
					got = append(got, ev)
				}
			}
			if len(got) != 1 {
				t.Errorf("%s: %d findings for %q (pid %d), want exactly 1", det, len(got), name, pid)
				continue
			}
			f, ev := got[0], firstEvent(got[0])
			if f["rule"] != "password-hash-access" {
				t.Errorf("%s %q: rule %v", det, name, f["rule"])
			}
			proc, _ := ev["process"].(map[string]any)
			for what, pair := range map[string][2]string{
				"event comm":   {rawString(t, ev, "comm"), comm},
				"event exe":    {rawString(t, proc, "exe"), exe},
				"fields exe":   {rawString(t, fields(f), "exe"), exe},
				"fields path":  {rawString(t, fields(f), "path"), "/etc/shadow"},
				"summary comm": {strings.SplitN(rawString(t, f, "summary"), " (pid", 2)[0], comm},
			} {
				if pair[0] != pair[1] {
					t.Errorf("%s %q: %s is %q, want %q", det, name, what, pair[0], pair[1])
				}
			}
		}
	}
	row := summaryRow(t, stderr, "cred-goplugin")
	for _, col := range []string{"crashes", "quarantine", "failed", "errors"} {
		if row[col] != "0" {
			t.Errorf("the plugin: %s = %s, want 0", col, row[col])
		}
	}
	if row["breaker"] != "closed" {
		t.Errorf("the plugin's breaker: %s", row["breaker"])
	}
	if strings.Contains(stderr, "poison event quarantined") || strings.Contains(stderr, "detector plugin failed") {
		t.Errorf("the plugin failed on a name:\n%s", tail(stderr, 30))
	}
	t.Logf("%d programs, %d runs; the plugin's summary row: %v", len(names), len(pids), row)
}
