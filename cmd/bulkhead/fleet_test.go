package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/pipeline/export/exporttest"
	"github.com/nats-io/nats.go"
)

// exportConfig is a configuration with the credaccess detector and an
// export: section for host, its spool in a temporary directory.
func exportConfig(t *testing.T, host string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("detectors: [{name: cred, backend: inproc, builtin: credaccess}]\nexport: {host: %s, spool: {dir: %s}}\n", host, filepath.Join(dir, "spool"))), 0o644)
	return cfg
}

// ocsfUIDs are the finding_info.uid of the OCSF findings in out.
func ocsfUIDs(t *testing.T, out string) map[string]bool {
	t.Helper()
	uids := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var f struct {
			FindingInfo struct {
				UID string `json:"uid"`
			} `json:"finding_info"`
		}
		if err := json.Unmarshal([]byte(line), &f); err != nil || f.FindingInfo.UID == "" {
			t.Fatalf("not an OCSF finding: %q (%v)", line, err)
		}
		uids[f.FindingInfo.UID] = true
	}
	return uids
}

// The findings of a replayed recording reach JetStream exactly once, each
// with the uid the OCSF output gives it; replaying again adds nothing
// (the duplicate window), and fleet tail prints them all.
func TestReplayExportExactlyOnce(t *testing.T) {
	srv := exporttest.Start(t)
	const n = 2000
	rec := writeRecording(t, n)
	cfg := exportConfig(t, "web-1.example.com")
	code, out, errs := replayArgs(t, rec, "--config", cfg, "--export", srv.URL, "--findings-format", "ocsf", "--log-level", "warn")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	if !strings.Contains(errs, fmt.Sprintf("%d findings and 0 events exported, %d acknowledged", n, n)) {
		t.Errorf("summary:\n%s", errs)
	}
	want := ocsfUIDs(t, out)
	if len(want) != n {
		t.Fatalf("%d distinct uids in the OCSF output, want %d", len(want), n)
	}
	check := func() {
		ids, _ := exporttest.Messages(t, srv.URL, "BULKHEAD", "bulkhead.web-1_example_com.findings.>", n, 10*time.Second)
		seen := map[string]bool{}
		for _, id := range ids {
			uid, ok := strings.CutPrefix(id, "web-1_example_com:")
			if seen[id] || !ok || !want[uid] {
				t.Fatalf("message id %q: duplicated or not a finding of the replay", id)
			}
			seen[id] = true
		}
		if len(seen) != n {
			t.Fatalf("%d findings in the stream, want %d", len(seen), n)
		}
	}
	check()
	// Again, from another spool: the server drops every one as a duplicate.
	code, _, errs = replayArgs(t, rec, "--config", exportConfig(t, "web-1.example.com"), "--export", srv.URL, "--log-level", "warn")
	if code != 0 || !strings.Contains(errs, fmt.Sprintf("%d acknowledged (%d already stored)", n, n)) {
		t.Fatalf("second replay: exit %d\n%s", code, errs)
	}
	check()

	var tail, tailErr bytes.Buffer
	if code := realMain([]string{"fleet", "tail", "--server", srv.URL, "--all", "--count", fmt.Sprint(n), "--host", "web-1.example.com", "--severity", "high+"}, &tail, &tailErr); code != 0 {
		t.Fatalf("fleet tail: exit %d\n%s", code, tailErr.String())
	}
	lines := strings.Split(strings.TrimSpace(tail.String()), "\n")
	if len(lines) != n || !strings.HasPrefix(lines[0], "web-1_example_com") || !strings.Contains(lines[0], "high     cred/password-hash-access: cat") {
		t.Fatalf("%d lines, first %q", len(lines), lines[0])
	}
}

// What fleet tail prints came from other hosts: a hostile summary cannot
// move the cursor, color the terminal or forge a line.
func TestFleetTailEscapes(t *testing.T) {
	srv := exporttest.Start(t)
	cfg := exportConfig(t, "h")
	// Create the stream through a replay of nothing.
	if code, _, errs := replayArgs(t, writeRecording(t, 1), "--config", cfg, "--export", srv.URL, "--log-level", "warn"); code != 0 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	nc, err := nats.Connect(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	body := `{"type":"finding","detector":"x\u001b]0;pwned\u0007","rule":"r","severity":"critical","summary":"a\nFAKE LINE \u001b[2J\u009b","events":[{"pid":1}]}`
	if err := nc.Publish("bulkhead.evil\x1b.findings.critical", []byte(body)); err != nil {
		t.Fatal(err)
	}
	nc.Publish("bulkhead.evil.findings.critical", []byte("\x1b[31mnot json"))
	nc.Flush()
	var out, errs bytes.Buffer
	if code := realMain([]string{"fleet", "tail", "--server", srv.URL, "--all", "--count", "3"}, &out, &errs); code != 0 {
		t.Fatalf("exit %d\n%s", code, errs.String())
	}
	s := out.String()
	if strings.Count(s, "\n") != 3 || strings.ContainsAny(s, "\x1b\x07\u009b") {
		t.Fatalf("not escaped:\n%q", s)
	}
	if !strings.Contains(s, `a\nFAKE LINE \x1b[2J\u009b`) {
		t.Errorf("summary not shown escaped:\n%s", s)
	}
}

// The monitor (a replay) is SIGKILLed while its findings wait in the
// export spool (the server is away); the next start sends them, once.
func TestExportMonitorSIGKILLedResumes(t *testing.T) {
	srv := exporttest.Start(t)
	srv.Kill()
	const n = 1500
	rec := writeRecording(t, n)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("detectors: [{name: cred, backend: inproc, builtin: credaccess}]\nexport: {host: h1, drain_timeout: 1m, spool: {dir: %s}}\n", filepath.Join(dir, "spool"))), 0o644)
	cmd := exec.Command(os.Args[0], "-test.run=^TestMonitorChild$")
	cmd.Env = append(os.Environ(), "BULKHEAD_TEST_MONITOR=replay\x1f"+rec+"\x1f--config\x1f"+cfg+"\x1f--export\x1f"+srv.URL+"\x1f--log-level\x1fwarn\x1f--output\x1f"+filepath.Join(dir, "out"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	var seen []string
	for sc.Scan() {
		seen = append(seen, sc.Text())
		if strings.Contains(sc.Text(), fmt.Sprintf("replayed %d events of the recording", n)) {
			break // every finding is in the spool; the exporter drains, in vain
		}
	}
	cmd.Process.Kill() // SIGKILL, by pid
	cmd.Wait()
	if !strings.Contains(strings.Join(seen, "\n"), "replayed") {
		t.Fatalf("the monitor did not replay:\n%s", strings.Join(seen, "\n"))
	}
	srv.Restart()
	// The next start: a replay of nothing sends what the spool holds.
	code, _, errs := replayArgs(t, writeRecording(t, 0), "--config", cfg, "--export", srv.URL, "--log-level", "warn")
	if code != 0 || !strings.Contains(errs, fmt.Sprintf("%d recovered at start", n)) {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	ids, _ := exporttest.Messages(t, srv.URL, "BULKHEAD", "bulkhead.h1.findings.>", n, 10*time.Second)
	uniq := map[string]bool{}
	for _, id := range ids {
		uniq[id] = true
	}
	if len(ids) != n || len(uniq) != n {
		t.Fatalf("%d messages, %d distinct, want %d", len(ids), len(uniq), n)
	}
}

// TestMonitorChild runs the command in BULKHEAD_TEST_MONITOR (arguments
// separated by US, 0x1f) as the bulkhead process; only as a child of a test.
func TestMonitorChild(t *testing.T) {
	args := os.Getenv("BULKHEAD_TEST_MONITOR")
	if args == "" {
		t.Skip("run by TestExportMonitorSIGKILLedResumes")
	}
	os.Exit(realMain(strings.Split(args, "\x1f"), os.Stdout, os.Stderr))
}

// fleet status shows an exporter that ended with findings in its spool
// (the server away), and one that delivered everything.
func TestFleetStatus(t *testing.T) {
	srv := exporttest.Start(t)
	rec := writeRecording(t, 300)
	okCfg := exportConfig(t, "ok-host")
	if code, _, errs := replayArgs(t, rec, "--config", okCfg, "--export", srv.URL, "--log-level", "warn"); code != 0 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	srv.Kill()
	dir := t.TempDir()
	downCfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(downCfg, []byte(fmt.Sprintf("detectors: [{name: cred, backend: inproc, builtin: credaccess}]\nexport: {host: down-host, drain_timeout: 100ms, spool: {dir: %s}}\n", filepath.Join(dir, "spool"))), 0o644)
	if code, _, errs := replayArgs(t, rec, "--config", downCfg, "--export", srv.URL, "--log-level", "warn"); code != 0 || !strings.Contains(errs, "300 records") {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	var out, errs bytes.Buffer
	if code := realMain([]string{"fleet", "status", "--spool", filepath.Join(filepath.Dir(okCfg), "spool"), "--spool", filepath.Join(dir, "spool")}, &out, &errs); code != 0 {
		t.Fatalf("exit %d\n%s", code, errs.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 4 {
		t.Fatalf("status:\n%s", out.String())
	}
	ok, down := strings.Fields(lines[1]), strings.Fields(lines[2])
	// HOST STATE PID UPDATED EXPORTED ACKED WAITING DROPPED RECONNECTS SERVER
	if ok[0] != "ok-host" || ok[1] != "stopped" || ok[4] != "300" || ok[5] != "300" || ok[6] != "0" {
		t.Errorf("ok-host: %q", lines[1])
	}
	if down[0] != "down-host" || down[1] != "stopped" || down[4] != "300" || down[5] != "0" || down[6] != "300" {
		t.Errorf("down-host: %q", lines[2])
	}
	if !strings.Contains(lines[3], "last error: no connection to "+srv.URL) {
		t.Errorf("down-host's last error: %q", lines[3])
	}
	t.Logf("\n%s", out.String())
}

// Without --all, fleet tail shows only what arrives after it starts.
func TestFleetTailFollowsNewFindings(t *testing.T) {
	srv := exporttest.Start(t)
	rec := writeRecording(t, 5)
	if code, _, errs := replayArgs(t, rec, "--config", exportConfig(t, "old"), "--export", srv.URL, "--log-level", "warn"); code != 0 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	var out, errs bytes.Buffer
	done := make(chan int)
	go func() { done <- realMain([]string{"fleet", "tail", "--server", srv.URL, "--count", "5"}, &out, &errs) }()
	time.Sleep(500 * time.Millisecond) // the consumer starts
	if code, _, errs := replayArgs(t, rec, "--config", exportConfig(t, "new"), "--export", srv.URL, "--log-level", "warn"); code != 0 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, errs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("fleet tail did not print 5 new findings within 15 s")
	}
	if n := strings.Count(out.String(), "\nnew "); strings.Count(out.String(), "old ") != 0 || n != 4 || !strings.HasPrefix(out.String(), "new ") {
		t.Errorf("want the 5 findings of host new only:\n%s", out.String())
	}
}
