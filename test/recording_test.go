package test

import (
	"flag"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/test/testenv"
)

var updateRecordings = flag.Bool("update-recordings", false, "rewrite testdata/recordings/library.bhrec from this run")

// LibraryRecording is where the recorded attack techniques are kept for the
// detectors' unit tests.
const libraryRecording = "../testdata/recordings/library.bhrec"

// Ten seconds of this machine, with every library technique performed in
// it, are recorded; the recording replays through both backends with
// identical findings, every event of it, and the techniques are found in
// it. With -update-recordings the recording is kept in testdata for the
// detectors' unit tests.
func TestRecordReplayBothBackends(t *testing.T) {
	testenv.RequireBPF(t)
	rec := filepath.Join(t.TempDir(), "machine.bhrec")
	if *updateRecordings {
		rec = libraryRecording
	}
	cmd := exec.Command(testenv.Binary(t), "record", "--output", rec, "--force", "--duration", "10s", "--flush-interval", "2ms")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(stderr.String(), `"msg":"recording"`); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("record did not start:\n%s", stderr.String())
		}
	}
	var expect []trigger
	var oks []func(map[string]any) bool
	for _, tr := range triggers() {
		if tr.skip == "" {
			expect = append(expect, tr)
			oks = append(oks, tr.do(t))
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("record: %v\n%s", err, stderr.String())
	}
	recorded := count(t, stderr.String(), `recorded (\d+) events`)
	t.Logf("recorded %d events", recorded)

	findings := map[string][]string{}
	for _, backend := range []string{"inproc", "goplugin"} {
		out, errs, err := replay(t, rec, libraryConfig(t, backend))
		if err != nil {
			t.Fatalf("replay on %s: %v\n%s", backend, err, errs)
		}
		if n := count(t, errs, `replayed (\d+) events of the recording`); n != recorded {
			t.Errorf("%s: replayed %d events, the recording has %d", backend, n, recorded)
		}
		evs := parseLines(t, out)
		for i, tr := range expect {
			found := false
			for _, f := range evs {
				found = found || (f["detector"] == tr.detector+"-"+backend && f["rule"] == tr.rule && oks[i](f))
			}
			if !found {
				t.Errorf("%s: the recorded %s/%s was not found on replay", backend, tr.detector, tr.rule)
			}
		}
		for _, f := range evs {
			name := strings.TrimSuffix(f["detector"].(string), "-"+backend)
			findings[backend] = append(findings[backend], fmt.Sprint(name, " ", f["rule"], " ", f["summary"], " ", firstEvent(f)["time"]))
		}
		sort.Strings(findings[backend])
	}
	if a, b := strings.Join(findings["inproc"], "\n"), strings.Join(findings["goplugin"], "\n"); a != b || a == "" {
		t.Errorf("findings differ between backends (or are empty):\ninproc:\n%s\ngoplugin:\n%s", a, b)
	}
	t.Logf("%d findings on each backend", len(findings["inproc"]))
}

func replay(t *testing.T, rec, yaml string) (stdout, stderr string, err error) {
	cmd := exec.Command(testenv.Binary(t), "replay", rec, "--config", writeConfig(t, yaml), "--log-level", "warn")
	var out, errs strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errs
	err = cmd.Run()
	return out.String(), errs.String(), err
}

func count(t *testing.T, s, pattern string) int {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no %q in:\n%s", pattern, s)
	}
	var n int
	fmt.Sscan(m[1], &n)
	return n
}
