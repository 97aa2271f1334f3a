package sinks

import (
	"bytes"
	"encoding/json"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"golang.org/x/sys/unix"
)

func sampleEvents() []event.Event {
	proc := &event.Process{PID: 100, Exe: "/usr/bin/cat", Args: "cat\x00/etc/hostname\x00", ContainerID: "abc",
		Ancestors: []event.Ancestor{{PID: 1, Exe: "/sbin/init", Comm: "systemd"}}}
	h := func(k event.Kind) event.Header {
		return event.Header{Kind: k, PID: 100, TID: 100, PPID: 1, Comm: "cat", KernelTimeNs: 1e9}
	}
	return []event.Event{
		{Header: h(event.KindExec), Exec: event.Exec{Filename: "/bin/cat", Exe: "/usr/bin/cat", Args: "cat\x00/etc/hostname\x00"}, Process: proc},
		{Header: h(event.KindOpen), Open: event.Open{Syscall: "openat", Path: "hostname", Dir: "/etc", Resolved: "/etc/hostname", Flags: unix.O_RDONLY | unix.O_CLOEXEC, Dfd: -100, Ret: -2}, Process: proc},
		{Header: h(event.KindConnect), Connect: event.Connect{Addr: netip.MustParseAddr("::1"), Port: 443, Ret: -111}},
		{Header: h(event.KindSetID), SetID: event.SetID{Syscall: "setuid", Old: event.IDs{Effective: 1000}, New: event.IDs{Effective: 0}}},
		{Header: h(event.KindPtrace), Ptrace: event.Ptrace{Request: unix.PTRACE_ATTACH, TargetPID: 5}},
		{Header: h(event.KindMemfd), Memfd: event.Memfd{Name: "x", Ret: 3}},
		{Header: h(event.KindFork), Fork: event.Fork{ChildPID: 101}},
		{Header: h(event.KindExit), Exit: event.Exit{Code: 1}},
		{Header: h(event.KindBPFProg), BPFProg: event.BPFProg{Name: "p", ProgType: 5}},
		{Header: h(event.KindModule), Module: event.Module{Syscall: "finit_module", Path: "/m.ko"}},
	}
}

func TestJSONIsValidAndComplete(t *testing.T) {
	var buf bytes.Buffer
	s := NewJSON(&buf, event.Timebase{})
	for _, ev := range sampleEvents() {
		if err := s.Write(&ev); err != nil {
			t.Fatal(err)
		}
	}
	s.Flush()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != len(sampleEvents()) {
		t.Fatalf("%d lines for %d events", len(lines), len(sampleEvents()))
	}
	for _, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("invalid JSON %q: %v", line, err)
		}
		kind := m["kind"].(string)
		if _, ok := m[kind].(map[string]any); !ok {
			t.Errorf("%s event lacks its %q payload: %s", kind, kind, line)
		}
	}
	var open map[string]any
	json.Unmarshal([]byte(lines[1]), &open)
	o := open["open"].(map[string]any)
	if o["resolved"] != "/etc/hostname" || o["error"] != "ENOENT" || o["flags_text"] != "O_RDONLY|O_CLOEXEC" {
		t.Errorf("open payload %v", o)
	}
	anc := open["process"].(map[string]any)["ancestors"].([]any)
	if anc[0].(map[string]any)["exe"] != "/sbin/init" {
		t.Errorf("ancestors %v", anc)
	}
}

// Paths and argv are bytes, not text: the output must stay parseable.
func TestJSONEscapesHostileStrings(t *testing.T) {
	for _, s := range []string{"a\"b\\c", "tab\there\nnl", "\x00\x01\x7f", "bad\xff\xfeutf8", "ünïcödé ✓", "\u2028"} {
		b := appendString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("appendString(%q) = %s: %v", s, b, err)
		}
		// Same result as encoding/json: each invalid byte becomes U+FFFD.
		std, _ := json.Marshal(s)
		var want string
		json.Unmarshal(std, &want)
		if got != want {
			t.Errorf("round trip of %q gave %q, encoding/json gives %q", s, got, want)
		}
	}
}

func TestAppendOpenFlags(t *testing.T) {
	for flags, want := range map[uint64]string{
		unix.O_RDONLY: "O_RDONLY",
		unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC: "O_WRONLY|O_CREAT|O_TRUNC",
		unix.O_RDWR | unix.O_TMPFILE:                "O_RDWR|O_DIRECTORY|O_TMPFILE",
	} {
		if got := string(AppendOpenFlags(nil, flags)); got != want {
			t.Errorf("flags %#o: %s, want %s", flags, got, want)
		}
	}
}

func TestTextWritesEveryKind(t *testing.T) {
	var buf bytes.Buffer
	s := NewText(&buf, event.Timebase{})
	for _, ev := range sampleEvents() {
		s.Write(&ev)
	}
	s.Flush()
	out := buf.String()
	for _, want := range []string{"exec", "exe=/usr/bin/cat", "path=/etc/hostname", "(ENOENT)", "dest=::1:443", "euid 1000->0", "PTRACE_ATTACH"} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
}

func TestNewRejectsUnknownFormat(t *testing.T) {
	if _, err := New("xml", io.Discard, event.Timebase{}); err == nil || !strings.Contains(err.Error(), "json or text") {
		t.Fatalf("New(xml) = %v", err)
	}
}

func BenchmarkJSONOpen(b *testing.B) {
	evs := sampleEvents()
	s := NewJSON(io.Discard, event.Timebase{})
	b.ReportAllocs()
	for b.Loop() {
		s.Write(&evs[1])
	}
}

func TestFindingJSONAndText(t *testing.T) {
	evs := sampleEvents()
	f := detection.NewFinding(&evs[1], "cred-file-read", detection.SeverityHigh, `cat read "x"`, "T1003.008", "T1552.004")
	f.Detector, f.Fields = "credaccess", map[string]any{"path": "/etc/shadow"}
	var buf bytes.Buffer
	j := NewJSON(&buf, event.Timebase{})
	if err := j.WriteFinding(&f); err != nil {
		t.Fatal(err)
	}
	j.Flush()
	var got struct {
		Type, Detector, Rule, Severity, Summary string
		Techniques                              []string
		Fields                                  map[string]any
		Events                                  []map[string]any
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, buf.Bytes())
	}
	if got.Type != "finding" || got.Detector != "credaccess" || got.Rule != "cred-file-read" || got.Severity != "high" ||
		got.Summary != `cat read "x"` || strings.Join(got.Techniques, ",") != "T1003.008,T1552.004" ||
		got.Fields["path"] != "/etc/shadow" || len(got.Events) != 1 {
		t.Fatalf("finding JSON: %+v", got)
	}
	buf.Reset()
	tx := NewText(&buf, event.Timebase{})
	if err := tx.WriteFinding(&f); err != nil {
		t.Fatal(err)
	}
	tx.Flush()
	if line := buf.String(); !strings.Contains(line, "FINDING  high credaccess/cred-file-read: ") || !strings.Contains(line, "[T1003.008,T1552.004] pid=100") {
		t.Fatalf("finding text: %q", line)
	}
}

// A finding reaches the output when it is written, not at the next flush.
func TestLockedFlushesFindings(t *testing.T) {
	var buf bytes.Buffer
	l := NewLocked(NewJSON(&buf, event.Timebase{}))
	evs := sampleEvents()
	f := detection.NewFinding(&evs[0], "r", detection.SeverityLow, "s")
	if err := l.WriteFinding(&f); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"type":"finding"`) {
		t.Fatalf("finding not written through: %q", buf.String())
	}
}

// An open through a hard link: the kernel's path of the opened file and
// its identity come out beside the path as passed, in JSON, text and OCSF.
func TestOpenedFileIdentityIsWritten(t *testing.T) {
	ev := sampleEvents()[1]
	ev.Open.Path, ev.Open.Dir, ev.Open.Resolved, ev.Open.Ret = "/tmp/x/link", "", "/tmp/x/link", 3
	ev.Open.FilePath, ev.Open.Dev, ev.Open.Ino, ev.Open.Nlink, ev.Open.FileMode = "/tmp/x/link", 65024, 4242, 2, 0o100640
	var buf bytes.Buffer
	j := NewJSON(&buf, event.Timebase{})
	j.Write(&ev)
	j.Flush()
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	o := m["open"].(map[string]any)
	if o["file_path"] != "/tmp/x/link" || o["file_dev"] != 65024.0 || o["file_ino"] != 4242.0 || o["file_nlink"] != 2.0 || o["file_mode"] != float64(0o100640) {
		t.Errorf("open payload %v", o)
	}
	buf.Reset()
	ev.Open.FilePath = "/etc/shadow" // a symlink: the kernel's path differs
	tx := NewText(&buf, event.Timebase{})
	tx.Write(&ev)
	tx.Flush()
	if line := buf.String(); !strings.Contains(line, " file=/etc/shadow links=2 ") {
		t.Errorf("text %q lacks the kernel path and link count", line)
	}
	ocsf := NewOCSF(NewJSON(io.Discard, event.Timebase{}), io.Discard, event.Timebase{}, "v", "h")
	e := ocsf.evidence(&ev)
	if e.File.Path != "/etc/shadow" || e.Data["requested_path"] != "/tmp/x/link" || e.Data["inode"] != uint64(4242) {
		t.Errorf("ocsf evidence file %+v data %v", e.File, e.Data)
	}
}
