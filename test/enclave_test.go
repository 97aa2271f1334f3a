package test

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/test/testenv"
)

// hostileOutcomes is what each attack of the hostile plugin must come to
// inside its enclave: blocked (the call fails and the plugin says so),
// seccomp (the kernel kills the plugin for the call) or limit (the enclave
// kills it at its memory or CPU limit).
var hostileOutcomes = map[string]string{
	"read-shadow":    "blocked",
	"write-outside":  "blocked",
	"write-private":  "succeeded", // the control: its own directory is writable
	"signal-monitor": "blocked",
	"ptrace-monitor": "seccomp",
	"raw-socket":     "seccomp",
	"bpf":            "seccomp",
	"load-module":    "seccomp",
	"fork-bomb":      "seccomp", // clone without CLONE_THREAD
	"memory":         "limit",
	"spin":           "killed",    // at the CPU-time limit; see the note below
	"print-flood":    "succeeded", // 1 MiB to stdout and stderr: must not block
	// The attacks of issue 14 (tiocsti, escape-pdeathsig, outlive,
	// exec-private, fill-disk, connect-other) have tests of their own, in
	// enclave_escape_test.go.
}

// Eleven hostile plugins attack at once, next to a healthy detector. Every
// attack fails or gets its plugin killed; the monitor keeps running, the
// healthy detector gets every event, and each kill is reported and counted.
func TestHostilePluginsAreContained(t *testing.T) {
	testenv.RequireBPF(t)
	dir := t.TempDir()
	hostile := testenv.Plugin(t, "hostile")
	var cfg strings.Builder
	chaos := testenv.Plugin(t, "chaos")
	bin, err := os.ReadFile(chaos)
	if err != nil {
		t.Fatal(err)
	}
	// The healthy plugin's sum is checked by the launcher, on the file it runs.
	fmt.Fprintf(&cfg, "detectors:\n  - {name: healthy, backend: goplugin, plugin: %s, sha256: %x, config: {report_on: %q}}\n", chaos, sha256.Sum256(bin), dir+"/ok-")
	for attack := range hostileOutcomes {
		limits := ""
		switch attack {
		case "memory":
			limits = ", enclave: {memory_mb: 64}"
		case "spin":
			limits = ", enclave: {cpu_seconds: 1}"
		}
		fmt.Fprintf(&cfg, "  - {name: %s, backend: goplugin, plugin: %s, batch_deadline: 5s, config: {attack: %s, on: %q}%s}\n",
			attack, hostile, attack, dir+"/attack", limits)
	}
	statusFile := dir + "/status.json"
	m := startMonitor(t, "--config", writeConfig(t, cfg.String()), "--status", statusFile)
	checkPluginProcesses(t, m.cmd.Process.Pid)
	time.Sleep(1100 * time.Millisecond) // the status file is written every second
	listing, err := exec.Command(testenv.Binary(t), "plugins", "--status", statusFile).CombinedOutput()
	if err != nil {
		t.Fatalf("bulkhead plugins: %v\n%s", err, listing)
	}
	for _, want := range []string{"healthy", "read-shadow", "running", "uid 6", "no_new_privs", "no terminal", "noexec", "seccomp: ", "Landlock ABI", "memory 64 MiB", "mutual TLS"} {
		if !strings.Contains(string(listing), want) {
			t.Errorf("bulkhead plugins lacks %q:\n%s", want, listing)
		}
	}
	openMarkersFrom(t, dir, "ok", 0, 10, 300*time.Millisecond)
	openMarkersFrom(t, dir, "attack", 0, 1, 0)
	openMarkersFrom(t, dir, "ok", 10, 30, 6*time.Second) // the spin takes a few CPU-seconds to be stopped, each time
	events := m.stop(t)
	stderr := m.stderr.String()

	if got := len(markersFound(events, "healthy", dir+"/ok-")); got != 40 {
		t.Errorf("the healthy detector got %d of 40 markers", got)
	}
	attempts := map[string]string{}
	for _, ev := range events {
		if ev["type"] == "finding" && ev["rule"] == "hostile-attempt" {
			f := ev["fields"].(map[string]any)
			attempts[f["attack"].(string)] = f["outcome"].(string) + ": " + f["error"].(string)
		}
	}
	for attack, want := range hostileOutcomes {
		row := summaryRow(t, stderr, attack)
		note := strings.TrimSpace(row["breaker"] + " " + row["note"])
		t.Logf("%-15s attempt %q; summary: crashes %s, quarantined %s; %s", attack, attempts[attack], row["crashes"], row["quarantine"], note)
		switch want {
		case "blocked", "succeeded":
			if !strings.HasPrefix(attempts[attack], want) {
				t.Errorf("%s: attempt reported %q, want %s", attack, attempts[attack], want)
			}
			if row["crashes"] != "0" {
				t.Errorf("%s: %s crashes, want none", attack, row["crashes"])
			}
		case "seccomp":
			if !strings.Contains(note, "enclave killed:") || strings.Contains(note, "killed: 0 for forbidden") {
				t.Errorf("%s: the summary does not report a seccomp kill: %q", attack, note)
			}
			if !logged(stderr, attack, "detector plugin killed by its seccomp filter") {
				t.Errorf("%s: no log line reporting the seccomp kill", attack)
			}
		case "killed":
			// The spinning plugin must be killed. Its death is usually
			// classified as the CPU-time limit, but not always under load
			// (open: the exit status is logged to find out why).
			if row["crashes"] == "0" {
				t.Errorf("%s: the plugin was never killed", attack)
			}
		case "limit":
			if !strings.Contains(note, "enclave killed:") || strings.HasSuffix(note, " 0 at limits") {
				t.Errorf("%s: the summary does not report a limit kill: %q", attack, note)
			}
		}
		if attempts[attack] != "" && strings.HasPrefix(attempts[attack], "succeeded") && want != "succeeded" {
			t.Errorf("%s SUCCEEDED: %s", attack, attempts[attack])
		}
	}
	for attack, msg := range map[string]string{"memory": "killed at its memory limit of 64 MiB"} {
		if !logged(stderr, attack, msg) {
			t.Errorf("%s: no log line saying %q", attack, msg)
		}
	}
	if t.Failed() {
		t.Log(tail(stderr, 40))
	}
}

// logged reports whether a log line of detector contains msg.
func logged(stderr, detector, msg string) bool {
	for _, line := range strings.Split(stderr, "\n") {
		if strings.Contains(line, `"detector":"`+detector+`"`) && strings.Contains(line, msg) {
			return true
		}
	}
	return false
}

// checkPluginProcesses checks from outside what each plugin process is
// left with: not root, no capabilities, no_new_privs, a seccomp filter.
func checkPluginProcesses(t *testing.T, monitor int) {
	t.Helper()
	pids := children(monitor)
	if len(pids) < len(hostileOutcomes)+1 {
		t.Fatalf("%d plugin processes, want %d", len(pids), len(hostileOutcomes)+1)
	}
	for _, pid := range pids {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"CapPrm:\t0000000000000000", "CapEff:\t0000000000000000", "CapBnd:\t0000000000000000",
			"CapAmb:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2"} {
			if !strings.Contains(string(status), want+"\n") {
				t.Errorf("plugin %d: /proc status lacks %q", pid, want)
			}
		}
		if strings.Contains(string(status), "Uid:\t0\t") {
			t.Errorf("plugin %d runs as root", pid)
		}
	}
}
