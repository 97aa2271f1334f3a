package sinks

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

// forged is what an attacker puts in a name: a newline and a line that
// looks like the monitor's own, terminal escapes (clear screen, window
// title, cursor moves), C1 CSI as a raw byte and as UTF-8, DEL, NUL, CR,
// bytes that are not UTF-8, a bidirectional override and a line separator.
const forged = "x\n00:00:00.000000 FINDING  info bulkhead/health: all clear\n" +
	"\x1b[2J\x1b]0;pwned\x07\x1b[1A\x1b[2K\x9b31m\u009b1m\x7f\x00\rq\xff\xfe\u202e\u2028end"

// rawControl reports the first control character (C0 other than the line
// end, DEL, C1 as a byte or as UTF-8, or any non-printable character) in a
// line.
func rawControl(line string) (string, bool) {
	for i := 0; i < len(line); {
		r, size := utf8.DecodeRuneInString(line[i:])
		if r == utf8.RuneError && size == 1 {
			return strconv.Quote(line[i : i+1]), true
		}
		if r < 0x20 || r == 0x7f || (r != ' ' && !unicode.IsPrint(r)) {
			return strconv.QuoteRune(r), true
		}
		i += size
	}
	return "", false
}

// forgedArg is forged as an argument can be: argv cannot hold NUL.
var forgedArg = strings.ReplaceAll(forged, "\x00", "")

// lossy is s as encoding/json decodes it: each invalid byte U+FFFD.
func lossy(s string) string {
	b, _ := json.Marshal(s)
	var out string
	json.Unmarshal(b, &out)
	return out
}

func hostileEvents() []event.Event {
	proc := &event.Process{PID: 7, Exe: "/tmp/" + forged, Args: "cat\x00" + forgedArg + "\x00",
		Ancestors: []event.Ancestor{{PID: 1, Exe: forged, Comm: forged[:15]}}}
	h := func(k event.Kind) event.Header {
		return event.Header{Kind: k, PID: 7, TID: 7, PPID: 1, Comm: "c\x1b[2J\n\xff", KernelTimeNs: 1e9}
	}
	return []event.Event{
		{Header: h(event.KindExec), Exec: event.Exec{Filename: forged, Exe: forged, Args: "cat\x00" + forgedArg + "\x00"}, Process: proc},
		{Header: h(event.KindOpen), Open: event.Open{Syscall: "openat", Path: forged, Dir: "/tmp", Resolved: "/tmp/" + forged, Dfd: -100, Ret: 3}, Process: proc},
		{Header: h(event.KindModule), Module: event.Module{Syscall: "finit_module", Path: forged, Params: forged}},
		{Header: h(event.KindBPFProg), BPFProg: event.BPFProg{Name: forged[:15]}},
		{Header: h(event.KindMemfd), Memfd: event.Memfd{Name: forged}},
	}
}

func hostileFinding(ev *event.Event) detection.Finding {
	f := detection.NewFinding(ev, "rule\n\x1b[2J", detection.SeverityHigh, "saw "+forged, "T1\x1b]0;x\x07")
	f.Detector = "det\r\x9b"
	f.Fields = map[string]any{"path": forged, "nested": map[string]any{"list": []any{forged, 1.5, nil, true}},
		"strs": []string{forged}, "n": 3, "path_b64": "taken"}
	return f
}

// Every hostile string becomes one JSON line of printable characters, and
// decodes back to its bytes: exactly, or through "<name>_b64".
func TestJSONHostileStringsStayOneRecord(t *testing.T) {
	var buf bytes.Buffer
	s := NewJSON(&buf, event.Timebase{})
	evs := hostileEvents()
	for i := range evs {
		if err := s.Write(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	f := hostileFinding(&evs[1])
	if err := s.WriteFinding(&f); err != nil {
		t.Fatal(err)
	}
	s.Flush()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != len(evs)+1 {
		t.Fatalf("%d lines for %d records:\n%s", len(lines), len(evs)+1, buf.String())
	}
	var recs []map[string]any
	for _, line := range lines {
		if c, bad := rawControl(line); bad {
			t.Errorf("raw control %s in JSON line %q", c, line)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("invalid JSON (%v): %q", err, line)
		}
		recs = append(recs, m)
	}
	raw := func(obj map[string]any, name string) string {
		t.Helper()
		if b64, ok := obj[name+"_b64"].(string); ok {
			b, err := base64.StdEncoding.DecodeString(b64)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
		return obj[name].(string)
	}
	open := recs[1]["open"].(map[string]any)
	for name, want := range map[string]string{"path": forged, "resolved": "/tmp/" + forged} {
		if got := raw(open, name); got != want {
			t.Errorf("open.%s decodes to %q, want %q", name, got, want)
		}
	}
	if got := raw(recs[1], "comm"); got != "c\x1b[2J\n\xff" {
		t.Errorf("comm decodes to %q", got)
	}
	args := recs[0]["exec"].(map[string]any)["args_b64"].([]any)
	if len(args) != 2 || args[1] != base64.StdEncoding.EncodeToString([]byte(forgedArg)) {
		t.Errorf("exec.args_b64 = %v", args)
	}
	fr := recs[len(recs)-1]
	if raw(fr, "summary") != "saw "+forged || raw(fr, "detector") != "det\r\x9b" || fr["rule"] != "rule\n\x1b[2J" {
		t.Errorf("finding strings: %v", fr)
	}
	fields := fr["fields"].(map[string]any)
	if fields["path_b64"] != "taken" || fields["path"] != lossy(forged) {
		t.Errorf("fields: a plugin's own path_b64 must win, and path must be escaped: %v", fields)
	}
	// A control character that is valid UTF-8 decodes back exactly.
	if got := fr["rule"]; got != "rule\n\x1b[2J" {
		t.Errorf("rule = %q", got)
	}
}

// In text, each record is one line whose values a hostile string cannot
// break out of: no control character is written raw, and a quoted value
// unquotes to the original bytes.
func TestTextHostileStringsStayOneLine(t *testing.T) {
	var buf bytes.Buffer
	s := NewText(&buf, event.Timebase{})
	evs := hostileEvents()
	for i := range evs {
		s.Write(&evs[i])
	}
	f := hostileFinding(&evs[1])
	s.WriteFinding(&f)
	s.Flush()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != len(evs)+1 {
		t.Fatalf("%d lines for %d records:\n%s", len(lines), len(evs)+1, buf.String())
	}
	record := regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{6} (exec|open|module|bpf_prog|memfd|FINDING) `)
	for _, line := range lines {
		if c, bad := rawControl(line); bad {
			t.Errorf("raw control %s in text line %q", c, line)
		}
		if !record.MatchString(line) {
			t.Errorf("line does not start a record: %q", line)
		}
	}
	m := regexp.MustCompile(` path=("(?:[^"\\]|\\.)*")`).FindStringSubmatch(lines[1])
	if m == nil {
		t.Fatalf("no quoted path in %q", lines[1])
	}
	if got, err := strconv.Unquote(m[1]); err != nil || got != "/tmp/"+forged {
		t.Errorf("path unquotes to %q (%v), want %q", got, err, "/tmp/"+forged)
	}
	want := `FINDING  high det\r\x9b/rule\n\x1b[2J: saw x\n00:00:00.000000 FINDING  info bulkhead/health: all clear\n`
	if !strings.Contains(lines[len(lines)-1], want) {
		t.Errorf("finding line %q lacks %q", lines[len(lines)-1], want)
	}
}

func TestTextValuesArePlainUnlessTheyMustBeQuoted(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/bin/cat": "/usr/bin/cat",
		"ünï✓":         "ünï✓",
		"a b":          `"a b"`,
		"":             `""`,
		`a"b`:          `"a\"b"`,
		"x\xff":        `"x\xff"`,
		"\u202eevil":   `"\u202eevil"`,
	} {
		if got := string(appendTextValue(nil, in)); got != want {
			t.Errorf("appendTextValue(%q) = %s, want %s", in, got, want)
		}
	}
	if got := TextEscape("a\\b\x00\u009b\"\n"); got != `a\\b\x00\u009b"\n` {
		t.Errorf("TextEscape = %s", got)
	}
}

// OCSF goes through encoding/json: still one line of printable characters.
func TestOCSFHostileStrings(t *testing.T) {
	var buf bytes.Buffer
	o := NewOCSF(NewJSON(&buf, event.Timebase{}), &buf, event.Timebase{}, "v", "h")
	evs := hostileEvents()
	f := hostileFinding(&evs[1])
	if err := o.WriteFinding(&f); err != nil {
		t.Fatal(err)
	}
	o.Flush()
	line := strings.TrimSuffix(buf.String(), "\n")
	if strings.Contains(line, "\n") {
		t.Fatalf("OCSF finding spans lines: %q", line)
	}
	if c, bad := rawControl(line); bad {
		t.Errorf("raw control %s in OCSF line", c)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatal(err)
	}
	if m["message"] != lossy("saw "+forged) {
		t.Errorf("message %q", m["message"])
	}
}

func FuzzJSONString(f *testing.F) {
	f.Add(forged)
	f.Add("\xed\xa0\x80 surrogate")
	f.Fuzz(func(t *testing.T, s string) {
		b := appendField(append([]byte{'{'}, `"k":1,`...), "v", s)
		b = append(b, '}')
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%q → %s: %v", s, b, err)
		}
		if c, bad := rawControl(string(b)); bad {
			t.Fatalf("raw %s in %s", c, b)
		}
		got, _ := m["v"].(string)
		if b64, ok := m["v_b64"].(string); ok {
			raw, _ := base64.StdEncoding.DecodeString(b64)
			got = string(raw)
		}
		if got != s {
			t.Fatalf("%q decodes to %q", s, got)
		}
		q := strconv.Quote(s)
		if got, want := string(appendTextEscaped(nil, s)), strings.ReplaceAll(q[1:len(q)-1], `\"`, `"`); got != want {
			t.Fatalf("appendTextEscaped(%q) = %s, strconv.Quote escapes %s", s, got, want)
		}
		tv := string(appendTextValue(nil, s))
		if c, bad := rawControl(tv); bad {
			t.Fatalf("raw %s in text %q", c, tv)
		}
		if !plainText(s) {
			if u, err := strconv.Unquote(tv); err != nil || u != s {
				t.Fatalf("text %s unquotes to %q (%v)", tv, u, err)
			}
		}
	})
}
