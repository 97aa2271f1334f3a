package test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bulkhead-sec/bulkhead/test/testenv"
)

// fakeRecord is the line an attacker wants the operator to read.
const fakeRecord = "00:00:00.000000 FINDING  info bulkhead\u2215health: all clear" // U+2215 looks like /, which a name cannot hold

// hostileName is a file name (no NUL or slash: the kernel allows neither)
// with a newline and the fake record, a screen clear, a window title (OSC …
// BEL), cursor moves, C1 CSI as a raw byte and as UTF-8, DEL, CR, bytes
// that are not UTF-8 and a bidirectional override.
const hostileName = "x\n" + fakeRecord + "\n\x1b[2J\x1b]0;pwned\x07\x1b[1A\x1b[2K\x9b31m\u009b1m\x7f\rq\xff\xfe\u202eend"

// hostileProgram is the name of the program that opens it: it becomes the
// process's comm and exe.
const hostileProgram = "c\x1b[2J\n\x9b\xff"

// controlIn returns the first control character in line (C0, DEL, C1 as a
// byte or as UTF-8, any non-printable character), quoted, or "".
func controlIn(line string) string {
	for i := 0; i < len(line); {
		r, size := utf8.DecodeRuneInString(line[i:])
		if r == utf8.RuneError && size == 1 {
			return strconv.Quote(line[i : i+1])
		}
		if r < 0x20 || r == 0x7f || (r != ' ' && !unicode.IsPrint(r)) {
			return strconv.QuoteRune(r)
		}
		i += size
	}
	return ""
}

// stopRaw sends SIGINT and returns the monitor's exit code.
func (m *monitorRun) stopRaw(t *testing.T) int {
	t.Helper()
	time.Sleep(200 * time.Millisecond) // let the last events cross the ring and the detectors
	m.cmd.Process.Signal(os.Interrupt)
	<-m.copied
	err := m.cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("monitor: %v", err)
	return -1
}

// A real process, itself named with escapes, opens a file whose name holds
// a newline, a fake "all clear" finding and terminal escapes; a detector on
// each backend echoes the path into its finding's summary and fields. In
// text, no output line is forged and no control character is written raw;
// quoted values unquote to the exact bytes. In JSON, every line parses, has
// no raw control character, and the bytes come back through the _b64
// siblings.
func TestHostileNamesCannotForgeOutput(t *testing.T) {
	testenv.RequireBPF(t)
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	target := filepath.Join(dir, hostileName)
	if err := os.WriteFile(target, []byte("secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	program := filepath.Join(dir, hostileProgram)
	copyFile(t, "/bin/cat", program, 0o755)
	cfg := writeConfig(t, fmt.Sprintf(`
detectors:
  - {name: echo-inproc, backend: inproc, builtin: example, config: {prefixes: [%q]}}
  - {name: echo-goplugin, backend: goplugin, plugin: %s, config: {prefixes: [%q]}}
`, dir+"/", testenv.Plugin(t, "example"), dir+"/"))

	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			m := startMonitor(t, "--config", cfg, "--events", "on", "--format", format, "--kinds", "exec,open")
			cmd := exec.Command(program, target)
			if out, err := cmd.CombinedOutput(); err != nil || string(out) != "secret\n" {
				t.Fatalf("%q %q: %v %q", program, target, err, out)
			}
			pid := cmd.Process.Pid
			if code := m.stopRaw(t); code != 0 {
				t.Fatalf("monitor exited %d:\n%s", code, tail(m.stderr.String(), 20))
			}
			out := m.stdout.String()
			if !strings.HasSuffix(out, "\n") {
				t.Fatalf("output does not end with a whole line: %q", out[max(0, len(out)-200):])
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			for _, line := range lines {
				if c := controlIn(line); c != "" {
					t.Fatalf("raw control character %s in %s output line %q", c, format, line)
				}
			}
			if format == "text" {
				checkText(t, lines, pid, target, program)
			} else {
				checkJSON(t, lines, pid, target, program)
			}
		})
	}
}

func checkText(t *testing.T, lines []string, pid int, target, program string) {
	t.Helper()
	record := regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{6} (FINDING  \S+ |[a-z_]+ +pid=\d+ )`)
	quoted := regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	pidField := fmt.Sprintf(" pid=%d ", pid)
	var opens, execs int
	findings := map[string]int{}
	for _, line := range lines {
		if !record.MatchString(line) {
			t.Errorf("line is not a record: %q", line)
		}
		if !strings.Contains(line, "all clear") {
			continue
		}
		// The fake record only ever appears inside a real one, after an
		// escaped newline.
		if strings.HasPrefix(line, fakeRecord) || !strings.Contains(line, `\n`+fakeRecord+`\n\x1b[2J\x1b]0;pwned\a`) {
			t.Errorf("forged record: %q", line)
		}
		switch {
		case strings.Contains(line, " FINDING  high echo-"):
			name := strings.Fields(line)[3]
			findings[name[:strings.IndexByte(name, '/')]]++
			// The summary is escaped, not quoted: the path's escapes show.
			if !strings.Contains(line, `\x9b31m\u009b1m\x7f\rq\xff\xfe\u202eend`) {
				t.Errorf("summary not escaped as expected: %q", line)
			}
		case strings.Contains(line, pidField) && strings.Contains(line, " open "):
			opens++
			m := regexp.MustCompile(` path=("(?:[^"\\]|\\.)*")`).FindStringSubmatch(line)
			if got, err := strconv.Unquote(m[1]); err != nil || got != target {
				t.Errorf("open path unquotes to %q (%v), want %q", got, err, target)
			}
		case strings.Contains(line, pidField) && strings.Contains(line, " exec "):
			execs++
			var vals []string
			for _, q := range quoted.FindAllString(line, -1) {
				s, err := strconv.Unquote(q)
				if err != nil {
					t.Errorf("value %s does not unquote: %v", q, err)
				}
				vals = append(vals, s)
			}
			// comm, exe, then argv.
			if len(vals) < 4 || vals[0] != hostileProgram || vals[1] != program || vals[3] != target {
				t.Errorf("exec values %q", vals)
			}
		}
	}
	if opens != 1 || execs != 1 || findings["echo-inproc"] != 1 || findings["echo-goplugin"] != 1 {
		t.Fatalf("records of the attack: %d opens, %d execs, findings %v; want one of each", opens, execs, findings)
	}
	t.Logf("%d text lines, none forged, no raw control character", len(lines))
}

func checkJSON(t *testing.T, lines []string, pid int, target, program string) {
	t.Helper()
	// raw is a string field's bytes: from name_b64 when the value is not
	// UTF-8, else the value.
	raw := func(obj map[string]any, name string) string {
		t.Helper()
		if b64, ok := obj[name+"_b64"].(string); ok {
			b, err := base64.StdEncoding.DecodeString(b64)
			if err != nil {
				t.Fatalf("%s_b64: %v", name, err)
			}
			return string(b)
		}
		s, _ := obj[name].(string)
		return s
	}
	var opens, execs int
	findings := map[string]int{}
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("invalid JSON line (%v): %q", err, line)
		}
		switch {
		case rec["type"] == "finding":
			det, _ := rec["detector"].(string)
			if !strings.HasPrefix(det, "echo-") {
				continue
			}
			findings[det]++
			if want := "opened " + target; !strings.HasSuffix(raw(rec, "summary"), want) {
				t.Errorf("%s summary decodes to %q, want …%q", det, raw(rec, "summary"), want)
			}
			if got := raw(rec["fields"].(map[string]any), "path"); got != target {
				t.Errorf("%s fields.path decodes to %q, want %q", det, got, target)
			}
		case rec["kind"] == "open" && int(rec["pid"].(float64)) == pid:
			o := rec["open"].(map[string]any)
			if !strings.Contains(raw(o, "path")+raw(o, "resolved"), "all clear") {
				continue // the program's other opens (libc, locale)
			}
			if raw(o, "path") != target && raw(o, "resolved") != target {
				t.Errorf("open path decodes to %q / %q, want %q", raw(o, "path"), raw(o, "resolved"), target)
			}
			if raw(rec, "comm") != hostileProgram {
				t.Errorf("comm decodes to %q, want %q", raw(rec, "comm"), hostileProgram)
			}
			opens++
		case rec["kind"] == "exec" && int(rec["pid"].(float64)) == pid:
			e := rec["exec"].(map[string]any)
			args, _ := e["args_b64"].([]any)
			var argv []string
			for _, a := range args {
				b, _ := base64.StdEncoding.DecodeString(a.(string))
				argv = append(argv, string(b))
			}
			if raw(e, "exe") != program || len(argv) != 2 || argv[1] != target {
				t.Errorf("exec exe %q argv %q", raw(e, "exe"), argv)
			}
			execs++
		}
	}
	if opens != 1 || execs != 1 || findings["echo-inproc"] != 1 || findings["echo-goplugin"] != 1 {
		t.Fatalf("records of the attack: %d opens, %d execs, findings %v; want one of each", opens, execs, findings)
	}
	t.Logf("%d JSON lines, all valid, no raw control character, every byte recovered", len(lines))
}
