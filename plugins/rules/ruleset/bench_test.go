package ruleset

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
)

// hundredRules writes 100 rules of the kinds operators write: on exec, on
// open, on connect and on privilege changes, with lists and macros.
func hundredRules(t testing.TB) string {
	var b strings.Builder
	b.WriteString("- list: shells\n  items: [sh, bash, dash, zsh, ksh]\n")
	b.WriteString("- list: sensitive\n  items: [/etc/shadow, /etc/gshadow, /etc/sudoers]\n")
	b.WriteString("- macro: opened_for_write\n  condition: kind == \"open\" && flags % 4 != 0\n")
	for i := 0; i < 100; i++ {
		var cond string
		switch i % 5 {
		case 0:
			cond = fmt.Sprintf(`kind == "exec" && comm in shells && parent_comm == "svc%d"`, i)
		case 1:
			cond = fmt.Sprintf(`kind == "open" && path.startsWith("/srv/app%d/") && ret >= 0`, i)
		case 2:
			cond = fmt.Sprintf(`opened_for_write && path == "/etc/conf%d"`, i)
		case 3:
			cond = fmt.Sprintf(`kind == "connect" && port == %d && !addr.startsWith("127.")`, 10000+i)
		case 4:
			cond = fmt.Sprintf(`kind in ["exec", "open"] && exe.endsWith("/tool%d") && uid != 0`, i)
		}
		fmt.Fprintf(&b, "- rule: r%d\n  condition: '%s'\n  output: \"{comm} {path}\"\n  priority: medium\n", i, cond)
	}
	file := filepath.Join(t.TempDir(), "hundred.yaml")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// recorded is the library recording's events: a real, mixed stream.
func recorded(t testing.TB) []*event.Event {
	return sdktest.Events(t, "../../../testdata/recordings/library.bhrec")
}

func TestHundredRulesLoad(t *testing.T) {
	s := load(t, hundredRules(t))
	if len(s.Rules) != 100 {
		t.Fatalf("%d rules", len(s.Rules))
	}
	e := s.NewEvaluator()
	for _, ev := range recorded(t) {
		e.Eval(ev, nil)
	}
	if e.Errors != 0 {
		t.Fatalf("%d evaluation errors", e.Errors)
	}
}

// BenchmarkEval100Rules: the recorded mixed stream through 100 rules, one
// goroutine (one core); events/s and allocations per event.
func BenchmarkEval100Rules(b *testing.B) {
	s, problems, err := Load(hundredRules(b))
	if err != nil || len(problems) > 0 {
		b.Fatal(err, problems)
	}
	evs := recorded(b)
	e := s.NewEvaluator()
	var out []Match
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out = e.Eval(evs[i%len(evs)], out[:0])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// Guards only skip rules whose condition is false: with and without them,
// every event matches the same rules.
func TestGuardsNeverChangeResults(t *testing.T) {
	s := load(t, hundredRules(t), "testdata/good.yaml")
	unguarded := *s
	unguarded.Rules = nil
	unguarded.byKind = [event.KindCount][]*Rule{}
	for _, r := range s.Rules {
		c := *r
		c.guards = nil
		unguarded.Rules = append(unguarded.Rules, &c)
		for _, k := range c.Kinds.Kinds() {
			unguarded.byKind[k] = append(unguarded.byKind[k], &c)
		}
	}
	evs := recorded(t)
	// Events that do match some of the rules.
	tool := cat.Child(40, "/opt/bin/tool4", "tool4")
	tool.UID = 1000
	evs = append(evs, cat.Open("/srv/app1/data", 0, 3), cat.Open("/etc/conf2", 1, 3), tool.Exec(), cat.Open("/etc/shadow", 0, 3))
	a, b := s.NewEvaluator(), unguarded.NewEvaluator()
	matched := 0
	for i := range evs {
		x, y := ids(a.Eval(evs[i], nil)), ids(b.Eval(evs[i], nil))
		if x != y {
			t.Fatalf("event %d (%s): guarded %q, unguarded %q", i, evs[i].Kind, x, y)
		}
		if x != "" {
			matched++
		}
	}
	if matched < 4 {
		t.Fatalf("only %d events matched: the comparison shows nothing", matched)
	}
}
