package ruleset

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
	"golang.org/x/sys/unix"
)

func load(t *testing.T, files ...string) *Set {
	t.Helper()
	s, problems, err := Load(files...)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("unexpected problem: %v", p)
	}
	return s
}

var (
	nginx = sdktest.Proc{PID: 10, Exe: "/usr/sbin/nginx"}
	cat   = sdktest.Proc{PID: 20, Exe: "/usr/bin/cat", Ancestors: []string{"/usr/bin/bash"}}
	sshd  = sdktest.Proc{PID: 30, Exe: "/usr/sbin/sshd"}
)

func ids(ms []Match) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Rule.ID)
	}
	return strings.Join(out, ",")
}

func TestGoodFile(t *testing.T) {
	s := load(t, "testdata/good.yaml")
	if len(s.Rules) != 3 {
		t.Fatalf("%d rules", len(s.Rules))
	}
	byID := map[string]*Rule{}
	for _, r := range s.Rules {
		byID[r.ID] = r
	}
	if k := byID["shell_under_web_server"].Kinds; k != event.KindSet(0).With(event.KindExec) {
		t.Errorf("kinds of a rule on exec: %v", k.Kinds())
	}
	if r := byID["shadow_read"]; r.Severity != detect.SeverityMedium || strings.Join(r.Techniques, ",") != "T1003.008" {
		t.Errorf("shadow_read: severity %s (WARNING is medium), techniques %v", r.Severity, r.Techniques)
	}
	if r := byID["shell_under_web_server"]; strings.Join(r.Techniques, ",") != "T1059.004" || strings.Join(r.Tags, ",") != "T1059.004,web" {
		t.Errorf("tags %v, techniques %v", r.Tags, r.Techniques)
	}
	e := s.NewEvaluator()
	sh := nginx.Child(11, "/bin/sh", "sh", "-c", "id")
	sh.Comm = "sh"
	for _, c := range []struct {
		ev   *event.Event
		want string
	}{
		{sh.Exec(), "shell_under_web_server"},
		{cat.Open("/etc/shadow", unix.O_RDONLY, 3), "shadow_read"},
		{cat.Open("/etc/shadow", unix.O_RDONLY, -13), ""},
		{sshd.Open("/etc/shadow", unix.O_RDONLY, 3), ""}, // the exception
		{cat.Open("/etc/passwd", unix.O_RDONLY, 3), ""},
		{cat.Exit(), ""},
	} {
		if got := ids(e.Eval(c.ev, nil)); got != c.want {
			t.Errorf("%s %s: matched %q, want %q", c.ev.Kind, c.ev.Open.Resolved, got, c.want)
		}
	}
	m := e.Eval(sh.Exec(), nil)
	if want := "shell /bin/sh (sh -c id) under /usr/sbin/nginx"; m[0].Output != want {
		t.Errorf("output %q, want %q", m[0].Output, want)
	}
	if e.Errors != 0 {
		t.Errorf("%d evaluation errors", e.Errors)
	}
}

// Later files change earlier rules, disable them and extend lists.
func TestOverride(t *testing.T) {
	s := load(t, "testdata/good.yaml", "testdata/override.yaml")
	if len(s.Rules) != 2 || s.Disabled != 1 {
		t.Fatalf("%d rules, %d disabled", len(s.Rules), s.Disabled)
	}
	for _, r := range s.Rules {
		if r.ID == "shadow_read" && r.Severity != detect.SeverityCritical {
			t.Errorf("priority not overridden: %s", r.Severity)
		}
	}
	fish := nginx.Child(11, "/usr/bin/fish", "fish")
	if got := ids(s.NewEvaluator().Eval(fish.Exec(), nil)); got != "shell_under_web_server" {
		t.Errorf("appended list: matched %q", got)
	}
}

// Every kind of bad rule is refused with its file, line, id and CEL's
// message; the good rules of the same file still load.
func TestBadRules(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bad.yaml")
	os.WriteFile(file, []byte(`- rule: fine
  condition: kind == "exec"
- rule: unknown_field
  condition: kind == "open" && pathname == "/x"
- rule: wrong_type
  condition: kind == "open" && uid == "root"
- rule: not_bool
  condition: path
- rule: syntax
  condition: kind == "exec" &&
- rule: bad_kind
  condition: kind == "opne"
- rule: bad_priority
  condition: kind == "exec"
  priority: urgent
- rule: bad_output
  condition: kind == "exec"
  output: "{nope}"
- rule: no_condition
- list: Bad-Name
  items: []
`), 0o644)
	s, problems, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Rules) != 1 || s.Rules[0].ID != "fine" {
		t.Errorf("the good rule must still load: %d rules", len(s.Rules))
	}
	want := []string{
		file + `:4: rule "unknown_field": ERROR: <input>:1:19: undeclared reference to 'pathname'`,
		file + `:6: rule "wrong_type": ERROR: <input>:1:23: found no matching overload for '_==_' applied to '(int, string)'`,
		file + `:8: rule "not_bool": the condition is a string, not a bool`,
		file + `:10: rule "syntax": ERROR: <input>:1:`,
		file + `:12: rule "bad_kind": unknown event kind "opne"`,
		file + `:14: rule "bad_priority": priority "urgent": use info, low, medium, high or critical (or a Falco priority)`,
		file + `:17: rule "bad_output": output: unknown field {nope}; fields: addr, ancestors, args,`,
		file + `:19: rule "no_condition": no condition (and no earlier rule of that id to change)`,
		file + `:20: list "Bad-Name": use a lower-case name that is not a field`,
	}
	if len(problems) != len(want) {
		t.Errorf("%d problems, want %d:\n%v", len(problems), len(want), problems)
	}
	for i, w := range want {
		if i < len(problems) && !strings.HasPrefix(problems[i].Error(), w) {
			t.Errorf("problem %d:\n got %s\nwant %s…", i, problems[i], w)
		}
	}
	var e *Error
	if len(problems) > 0 && (!errors.As(problems[0], &e) || e.Rule != "unknown_field" || e.Line != 4) {
		t.Errorf("problems are *Error with file, line and rule: %#v", problems[0])
	}
	for _, bad := range []string{"- rule: [", "rule: x\ncondition: y"} {
		os.WriteFile(file, []byte(bad), 0o644)
		if _, _, err := Load(file); err == nil {
			t.Errorf("%q: a file that is not a YAML list of items must fail as a whole", bad)
		}
	}
	if _, _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("a missing file must fail")
	}
}

func TestMacroLoops(t *testing.T) {
	file := filepath.Join(t.TempDir(), "m.yaml")
	os.WriteFile(file, []byte("- macro: a\n  condition: b\n- macro: b\n  condition: a\n- rule: r\n  condition: a\n- rule: literal\n  condition: 'comm == \"a\"'\n"), 0o644)
	s, problems, _ := Load(file)
	if len(problems) != 1 || !strings.Contains(problems[0].Error(), "macros nest more than 16 deep") {
		t.Errorf("problems %v", problems)
	}
	if len(s.Rules) != 1 {
		t.Errorf("a macro name inside a string literal must not be expanded: %d rules", len(s.Rules))
	}
}

func TestKindIndex(t *testing.T) {
	file := filepath.Join(t.TempDir(), "k.yaml")
	os.WriteFile(file, []byte(`- rule: two
  condition: kind in ["open", "exec"] && comm == "x"
- rule: either
  condition: (kind == "open" && ret < 0) || (kind == "connect" && port == 4444)
- rule: any
  condition: comm == "x"
`), 0o644)
	s := load(t, file)
	want := map[string]event.KindSet{
		"two":    event.KindSet(0).With(event.KindOpen).With(event.KindExec),
		"either": event.KindSet(0).With(event.KindOpen).With(event.KindConnect),
		"any":    event.AllKindSet(),
	}
	for _, r := range s.Rules {
		if r.Kinds != want[r.ID] {
			t.Errorf("%s: kinds %v, want %v", r.ID, r.Kinds.Kinds(), want[r.ID].Kinds())
		}
	}
}
