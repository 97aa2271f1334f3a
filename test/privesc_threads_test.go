package test

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/bulkhead-sec/bulkhead/test/testenv"
)

// A program that changes credentials on one thread, or whose other threads
// keep the old ones, is not a process turning root without a setid call:
// credentials are per thread in the kernel. test/progs/threadcreds does it
// the ways C and Go programs do (raw setresuid on one thread, Go's
// all-threads syscall.Setresuid and Setgid, threads that start later) while
// its other threads act as root; privesc must report none of it, on either
// backend.
func TestPrivescPerThreadCredentials(t *testing.T) {
	testenv.RequireBPF(t)
	helper := testenv.Build(t, testenv.Module+"/test/progs/threadcreds")
	cfg := writeConfig(t, fmt.Sprintf(`
detectors:
  - {name: privesc-inproc, backend: inproc, builtin: privesc}
  - {name: privesc-goplugin, backend: goplugin, plugin: %s}
`, testenv.Plugin(t, "privesc")))
	m := startMonitor(t, "--config", cfg, "--events", "on")
	cmd := exec.Command(helper)
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("threadcreds: %v\n%s", err, out)
	}
	pid := float64(cmd.Process.Pid)
	events := m.stop(t)

	// The monitor saw each step from the thread and with the euid the
	// step says: the test shows what it claims to.
	tids := map[string]float64{}
	for _, ev := range events {
		if ev["type"] != "event" || ev["kind"] != "memfd" || ev["pid"] != pid {
			continue
		}
		memfd, _ := ev["memfd"].(map[string]any)
		step := strings.TrimPrefix(fmt.Sprint(memfd["name"]), "threadcreds-")
		want := 0.0
		if strings.HasSuffix(step, "-nobody") || strings.HasSuffix(step, "-nobody-thread") {
			want = 65534
		}
		if ev["euid"] != want {
			t.Errorf("step %s: euid %v, want %v", step, ev["euid"], want)
		}
		tids[step] = ev["tid"].(float64)
	}
	for _, pair := range [][2]string{{"impersonate-nobody", "impersonate-other-thread-root"}, {"drop-nobody", "drop-other-thread-root"}} {
		a, aok := tids[pair[0]]
		b, bok := tids[pair[1]]
		if !aok || !bok || a == b {
			t.Fatalf("steps %s and %s not seen from two threads: %v", pair[0], pair[1], tids)
		}
	}
	if len(tids) != 15 {
		t.Fatalf("saw %d of the 15 steps: %v", len(tids), tids)
	}

	for _, ev := range events {
		if ev["type"] != "finding" || !strings.HasPrefix(fmt.Sprint(ev["detector"]), "privesc-") {
			continue
		}
		if e := firstEvent(ev); e != nil && (e["pid"] == pid || e["ppid"] == pid) {
			t.Errorf("%s %s: %s", ev["detector"], ev["rule"], ev["summary"])
		}
	}
}
