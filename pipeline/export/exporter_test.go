package export

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/export/exporttest"
	"github.com/bulkhead-sec/bulkhead/pipeline/sinks"
	"go.uber.org/zap"
)

// finding i: distinct events, so a distinct uid.
func finding(i int) *detection.Finding {
	ev := &event.Event{Header: event.Header{Kind: event.KindOpen, PID: 7, TID: uint32(i), Comm: "cat", KernelTimeNs: uint64(i + 1)}}
	ev.Open = event.Open{Syscall: "openat", Path: "/etc/shadow", Ret: 3}
	sev := detection.Severity(i % 5)
	return &detection.Finding{Detector: "test", Rule: "r", Severity: sev, Summary: "finding \x1b[31m" + strconv.Itoa(i), Events: []*event.Event{ev}}
}

func testConfig(url, spool string) Config {
	return Config{URL: url, Host: "host-a", Spool: SpoolConfig{Dir: spool}, AckTimeout: 2 * time.Second, DrainTimeout: 30 * time.Second}
}

// checkExactlyOnce: the stream holds each of the n findings once.
func checkExactlyOnce(t *testing.T, url string, n int) {
	t.Helper()
	ids, bodies := exporttest.Messages(t, url, "BULKHEAD", "bulkhead.host-a.findings.>", n, 20*time.Second)
	want := map[string]bool{}
	for i := 0; i < n; i++ {
		want[MsgID("host-a", sinks.FindingUID(finding(i)))] = true
	}
	seen := map[string]int{}
	for _, id := range ids {
		seen[id]++
	}
	missing, dup, stray := 0, 0, 0
	for id := range want {
		switch seen[id] {
		case 0:
			missing++
		case 1:
		default:
			dup++
		}
	}
	for id := range seen {
		if !want[id] {
			stray++
		}
	}
	if len(ids) != n || missing+dup+stray > 0 {
		t.Fatalf("%d messages for %d findings: %d missing, %d duplicated, %d unknown", len(ids), n, missing, dup, stray)
	}
	// The body is the file sink's JSON.
	var f struct {
		Type, Severity, Summary string
	}
	if err := json.Unmarshal(bodies[0], &f); err != nil || f.Type != "finding" || f.Summary == "" {
		t.Errorf("body %q: %v", bodies[0], err)
	}
}

// Every finding arrives once, with its uid as Nats-Msg-Id, on its
// severity's subject; the stream is created with the documented limits.
func TestExportExactlyOnce(t *testing.T) {
	srv := exporttest.Start(t)
	e, err := New(testConfig(srv.URL, t.TempDir()), event.NewTimebase(), "test", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	for i := 0; i < n; i++ {
		if err := e.WriteFinding(finding(i)); err != nil {
			t.Fatal(err)
		}
	}
	// The same finding again (a redelivery upstream): dropped by the server.
	e.WriteFinding(finding(0))
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := e.Stats()
	if st.FindingsExported != n+1 || st.Acknowledged != n+1 || st.Duplicates != 1 || st.Spool.Pending != 0 {
		t.Errorf("stats %+v", st)
	}
	checkExactlyOnce(t, srv.URL, n)
	ids, _ := exporttest.Messages(t, srv.URL, "BULKHEAD", "bulkhead.host-a.findings.critical", 0, 0)
	if len(ids) != n/5 {
		t.Errorf("%d critical findings, want %d", len(ids), n/5)
	}
}

// The server is SIGKILLed mid-stream and started again: every finding
// still arrives exactly once.
func TestExportServerKilledMidStream(t *testing.T) {
	srv := exporttest.Start(t)
	e, err := New(testConfig(srv.URL, t.TempDir()), event.NewTimebase(), "test", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	const n = 4000
	for i := 0; i < n; i++ {
		if err := e.WriteFinding(finding(i)); err != nil {
			t.Fatal(err)
		}
		switch i {
		case n / 4:
			srv.Kill()
		case n / 2:
			time.Sleep(time.Second) // some findings are written while it is away
			srv.Restart()
		}
		if i%100 == 0 {
			time.Sleep(5 * time.Millisecond) // a stream, not one burst
		}
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := e.Stats()
	t.Logf("stats: published %d, acknowledged %d (%d duplicates), resends %d, reconnects %d", st.Published, st.Acknowledged, st.Duplicates, st.Resends, st.Reconnects)
	if st.Acknowledged != n || st.Spool.Pending != 0 || st.Reconnects == 0 {
		t.Errorf("stats %+v", st)
	}
	checkExactlyOnce(t, srv.URL, n)
}

// The monitor is SIGKILLed with findings in its spool (the server is
// away); the next start sends them.
func TestExportSpoolSurvivesSIGKILL(t *testing.T) {
	if os.Getenv("EXPORT_TEST_CHILD") != "" {
		return
	}
	srv := exporttest.Start(t)
	srv.Kill() // away while the first monitor runs
	spool := t.TempDir()
	const n = 500
	cmd := exec.Command(os.Args[0], "-test.run=^TestExportChild$", "-test.v")
	cmd.Env = append(os.Environ(), "EXPORT_TEST_CHILD="+srv.URL+" "+spool+" "+strconv.Itoa(n))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	spooled := false
	for sc.Scan() {
		if sc.Text() == "SPOOLED" {
			spooled = true
			break
		}
	}
	cmd.Process.Kill() // SIGKILL, by pid
	cmd.Wait()
	if !spooled {
		t.Fatal("the child did not spool its findings")
	}
	segs, _ := filepath.Glob(filepath.Join(spool, "seg-*.log"))
	if len(segs) == 0 {
		t.Fatal("no spool segment left")
	}
	srv.Restart()
	e, err := New(testConfig(srv.URL, spool), event.NewTimebase(), "test", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st.Spool.Recovered != n {
		t.Errorf("recovered %d records, want %d", st.Spool.Recovered, n)
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, srv.URL, n)
}

// TestExportChild is the monitor that is SIGKILLed (run by
// TestExportSpoolSurvivesSIGKILL only).
func TestExportChild(t *testing.T) {
	arg := os.Getenv("EXPORT_TEST_CHILD")
	if arg == "" {
		t.Skip("run by TestExportSpoolSurvivesSIGKILL")
	}
	var url, spool string
	var n int
	fmt.Sscan(arg, &url, &spool, &n)
	e, err := New(testConfig(url, spool), event.NewTimebase(), "test", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := e.WriteFinding(finding(i)); err != nil {
			t.Fatal(err)
		}
	}
	if st := e.Stats(); st.Spool.Pending != int64(n) {
		t.Fatalf("pending %d", st.Spool.Pending)
	}
	fmt.Println("SPOOLED")
	time.Sleep(time.Minute) // until SIGKILL
}

// Events go to <prefix>.<host>.events.<kind> when asked, not otherwise.
func TestExportEvents(t *testing.T) {
	srv := exporttest.Start(t)
	cfg := testConfig(srv.URL, t.TempDir())
	cfg.Events = true
	e, err := New(cfg, event.NewTimebase(), "test", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2500; i++ {
		e.Write(finding(i).Events[0])
	}
	e.WriteFinding(finding(1))
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	ids, _ := exporttest.Messages(t, srv.URL, "BULKHEAD", "bulkhead.host-a.events.open", 2500, 10*time.Second)
	if len(ids) != 2500 {
		t.Errorf("%d events, want 2500", len(ids))
	}
	if st := e.Stats(); st.EventsExported != 2500 || st.FindingsExported != 1 || st.Acknowledged != 2501 {
		t.Errorf("stats %+v", st)
	}
}
