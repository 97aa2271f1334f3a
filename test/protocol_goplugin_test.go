package test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/plugins/rogue"
	"github.com/bulkhead-sec/bulkhead/test/testenv"
)

// rogueNamed is the rogue plugin under the name that makes its start attack.
func rogueNamed(t *testing.T, attack, arg string) string {
	return testenv.PluginNamed(t, "rogue", rogue.StartName(attack, arg))
}

// Attacks on go-plugin's layer, under the real monitor, each plugin in its
// enclave, beside a healthy detector: floods on go-plugin's broker and
// stdio streams (which the monitor never opens), a plugin that answers
// neither Close nor go-plugin's Shutdown, one that ends its stream with
// 32 KiB of C1 controls, DEL and escapes as its error, and one that logs
// 17 KiB lines under the line rate. The monitor stays within bounded
// memory, its log escaped and bounded, its stop bounded; the healthy
// detector loses nothing.
func TestGoPluginLayerAttacksAreContained(t *testing.T) {
	testenv.RequireBPF(t)
	dir := t.TempDir()
	rogueBin := testenv.Plugin(t, "rogue")
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "detectors:\n  - {name: healthy, backend: goplugin, plugin: %s, config: {report_on: %q}}\n", testenv.Plugin(t, "chaos"), dir+"/ok-")
	for _, a := range []string{"broker-flood", "stdio-flood"} {
		fmt.Fprintf(&cfg, "  - {name: %s, backend: goplugin, plugin: %q, config: {report_on: %q}}\n", a, rogueNamed(t, a, ""), dir+"/ok-")
	}
	for _, a := range []string{"ignore-close", "stream-error", "stderr-wide"} {
		fmt.Fprintf(&cfg, "  - {name: %s, backend: goplugin, plugin: %s, config: {attack: %s, on: %q, report_on: %q}}\n", a, rogueBin, a, dir+"/attack", dir+"/ok-")
	}
	m := startMonitor(t, "--config", writeConfig(t, cfg.String()), "--comm", "python3")
	pid := m.cmd.Process.Pid
	base := vmHWM(t, pid)
	openMarkersFrom(t, dir, "ok", 0, 20, 300*time.Millisecond)
	openMarkersFrom(t, dir, "attack", 0, 1, 0)
	openMarkersFrom(t, dir, "ok", 20, 20, 4*time.Second) // restarts and the wide lines play out
	peak := vmHWM(t, pid)
	// The stop: ignore-close's Close fails, which the monitor reports in
	// its exit status.
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	m.cmd.Process.Signal(os.Interrupt)
	<-m.copied
	err := m.cmd.Wait()
	took := time.Since(start)
	stderr := m.stderr.String()
	events := parseLines(t, m.stdout.String())
	t.Logf("the monitor's stop: %v; %s", err, lastLine(stderr))
	if err != nil && !strings.Contains(lastLine(stderr), "close detector rogue: rpc error: code = DeadlineExceeded") {
		t.Errorf("the monitor's stop: %v, %s", err, lastLine(stderr))
	}

	t.Logf("monitor peak RSS %.0f MiB before the attacks, %.0f MiB after; stop took %s; log %d bytes", base, peak, took.Round(time.Millisecond), len(stderr))
	if peak > base+100 {
		t.Errorf("the monitor's peak RSS grew from %.0f to %.0f MiB", base, peak)
	}
	if took > 10*time.Second {
		t.Errorf("the monitor's stop took %s", took)
	}
	if got := len(markersFound(events, "healthy", dir+"/ok-")); got != 40 {
		t.Errorf("the healthy detector got %d of 40 markers", got)
	}
	for _, name := range []string{"healthy", "broker-flood", "stdio-flood", "ignore-close", "stream-error", "stderr-wide"} {
		row := summaryRow(t, stderr, name)
		t.Logf("%-13s %v", name, row)
	}
	for _, name := range []string{"broker-flood", "stdio-flood"} {
		if got := len(markersFound(events, name, dir+"/ok-")); got != 40 {
			t.Errorf("%s: %d of 40 markers (the plugin works; only its flood is refused)", name, got)
		}
	}
	if strings.Contains(stderr, "flooding it") {
		t.Error("the monitor opened a go-plugin stream the plugin floods")
	}
	if !strings.Contains(stderr, "never answering") {
		t.Error("ignore-close was never asked to close")
	}
	if !logged(stderr, "stream-error", "pwned") {
		t.Error("stream-error's error text was never logged")
	}
	if row := summaryRow(t, stderr, "stderr-wide"); row["violations"] == "0" {
		t.Logf("stderr-wide: %v", row)
	}
	if strings.ContainsAny(stderr, "\x1b\x07\x7f\u009b") {
		t.Error("a raw terminal control reached the monitor's log")
	}
	if len(stderr) > 2<<20 {
		t.Errorf("the monitor's log is %d bytes", len(stderr))
	}
	if t.Failed() {
		t.Log(tail(stderr, 40))
	}
}

// A plugin's handshake line names where the monitor connects: a TCP
// listener of this test, or (in the enclave) a UNIX socket of this test
// outside the plugin's private directory. The monitor refuses to start
// with a clear error naming the protocol violation, and nothing connects.
// (dial-symlink is not here: in the enclave, seccomp kills a plugin that
// makes a symbolic link; TestHandshakeAddressIsChecked has it without.)
func TestHandshakeAddressRefusedByTheMonitor(t *testing.T) {
	testenv.RequireBPF(t)
	dir := t.TempDir()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	sock := filepath.Join(dir, "elsewhere.sock")
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	tcpConns, unixConns := testenv.Accepted(tcp), testenv.Accepted(ul)
	for _, c := range []struct{ attack, arg, want string }{
		{"dial-tcp", tcp.Addr().String(), "names tcp address " + tcp.Addr().String()},
		{"dial-dns", "", "exfil.example.invalid:443: the monitor connects to a plugin's UNIX socket only"},
		{"dial-unix", sock, "outside the plugin's private directory"},
	} {
		t.Run(c.attack, func(t *testing.T) {
			cfg := writeConfig(t, fmt.Sprintf("detectors:\n  - {name: healthy, backend: goplugin, plugin: %s}\n  - {name: rogue, backend: goplugin, plugin: %q}\n",
				testenv.Plugin(t, "example"), rogueNamed(t, c.attack, c.arg)))
			m := launchMonitor(t, "--config", cfg)
			exited := make(chan error, 1)
			go func() { <-m.copied; exited <- m.cmd.Wait() }()
			select {
			case err := <-exited:
				stderr := m.stderr.String()
				t.Logf("monitor: %v; %s", err, lastLine(stderr))
				if err == nil || !strings.Contains(stderr, c.want) || !strings.Contains(stderr, "protocol violation") {
					t.Errorf("want the monitor to refuse the plugin, saying %q:\n%s", c.want, tail(stderr, 10))
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("the monitor neither started nor refused within 30s:\n%s", m.stderr.String())
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	if n, u := tcpConns.Load(), unixConns.Load(); n != 0 || u != 0 {
		t.Errorf("the monitor connected where the plugin said: %d TCP, %d UNIX", n, u)
	}
}
