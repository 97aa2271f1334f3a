package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/recording"
	"github.com/bulkhead-sec/bulkhead/test/testenv"
)

// writeRecording records n opens of /etc/shadow by cat into a file.
func writeRecording(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "r.bhrec")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := recording.NewWriter(f, recording.Header{Host: "test"})
	if err != nil {
		t.Fatal(err)
	}
	proc := &event.Process{PID: 7, Exe: "/usr/bin/cat", Comm: "cat"}
	for i := 0; i < n; i++ {
		ev := event.Event{Header: event.Header{Kind: event.KindOpen, PID: 7, TID: 7, Comm: "cat", KernelTimeNs: uint64(i + 1)}, Process: proc}
		ev.Open = event.Open{Syscall: "openat", Path: "/etc/shadow", Resolved: "/etc/shadow", Ret: 3}
		w.Write(&ev)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return path
}

func replayArgs(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := realMain(append([]string{"replay"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// A whole recording replays through a builtin detector, flags after the
// file, every event counted.
func TestReplayThroughDetector(t *testing.T) {
	rec := writeRecording(t, 3000)
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfg, []byte("detectors: [{name: cred, backend: inproc, builtin: credaccess}]"), 0o644)
	code, out, errs := replayArgs(t, rec, "--config", cfg, "--log-level", "warn")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	if n := strings.Count(out, `"type":"finding"`); n != 3000 {
		t.Errorf("%d findings, want 3000", n)
	}
	if !strings.Contains(errs, "replayed 3000 events of the recording") {
		t.Errorf("summary:\n%s", errs)
	}
}

// The same through the credaccess plugin on each transport (in its
// enclave when root: the default): every event answered, none lost.
func TestReplayThroughPluginTransports(t *testing.T) {
	rec := writeRecording(t, 3000)
	bin := testenv.Plugin(t, "credaccess")
	for _, tr := range []string{"grpc", "shm"} {
		t.Run(tr, func(t *testing.T) {
			enc := "true"
			if os.Geteuid() != 0 {
				enc = "false"
			}
			cfg := filepath.Join(t.TempDir(), "c.yaml")
			os.WriteFile(cfg, []byte(fmt.Sprintf("enclave: {enabled: %s}\ndetectors: [{name: cred, backend: goplugin, plugin: %s, transport: %s}]", enc, bin, tr)), 0o644)
			code, out, errs := replayArgs(t, rec, "--config", cfg, "--log-level", "warn")
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, errs)
			}
			if n := strings.Count(out, `"type":"finding"`); n != 3000 {
				t.Errorf("%d findings, want 3000\n%s", n, errs)
			}
		})
	}
}

// A cut recording replays up to the cut, then exits 1 saying where.
func TestReplayTruncated(t *testing.T) {
	rec := writeRecording(t, 3000)
	b, _ := os.ReadFile(rec)
	os.WriteFile(rec, b[:len(b)-40], 0o644) // into the last frame
	code, out, errs := replayArgs(t, rec, "--events", "on", "--log-level", "warn")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, errs)
	}
	if n := strings.Count(out, "\n"); n != 2048 {
		t.Errorf("%d events written before the damage, want the 2048 of the two whole frames", n)
	}
	want := fmt.Sprintf("bulkhead replay: %s: damaged at byte ", rec)
	if !strings.Contains(errs, want) || !strings.Contains(errs, "(frame 3, after 2048 events): the file ends inside a frame: truncated; the 2048 events before the damage were replayed") {
		t.Errorf("stderr lacks the damage report:\n%s", errs)
	}
}

// A recording from a newer bulkhead is refused, with both versions named.
func TestReplayNewerVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.bhrec")
	hb, _ := json.Marshal(map[string]any{"format": 2, "schema": recording.Schema, "bulkhead_version": "v3.0.0"})
	b := binary.LittleEndian.AppendUint32([]byte("BHREC\x00\r\n"), uint32(len(hb)))
	os.WriteFile(path, append(b, hb...), 0o644)
	code, _, errs := replayArgs(t, path)
	want := fmt.Sprintf("bulkhead replay: %s: this recording was made by a newer bulkhead (v3.0.0): format 2, event schema %d; this bulkhead reads format 1 and schema %d or older: replay it with that version or newer\n",
		path, recording.Schema, recording.Schema)
	if code != 1 || errs != want {
		t.Fatalf("exit %d\n got %q\nwant %q", code, errs, want)
	}
	os.WriteFile(path, []byte(`{"type":"event"}`), 0o644)
	if code, _, errs := replayArgs(t, path); code != 1 || !strings.Contains(errs, "not a bulkhead recording") {
		t.Fatalf("a JSON file: exit %d: %s", code, errs)
	}
}
