package ruleset

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
)

func writeRules(t *testing.T, yaml string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(f, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// Every default rule fits the budget, with room to spare.
func TestDefaultRulesWithinCostBudget(t *testing.T) {
	raw, err := os.ReadFile("../default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, problems, err := LoadSources(Source{Name: "default.yaml", Data: raw})
	if err != nil || len(problems) > 0 {
		t.Fatalf("default rules: %v %v", err, problems)
	}
	if len(s.Rules) == 0 {
		t.Fatal("no default rules")
	}
}

// The attack: a nested comprehension that `rules check` used to accept and
// that hung every batch on replay. It is refused at load, with the
// estimate and the budget in the error, at the rule's file and line.
func TestCostlyRulesAreRefusedAtLoad(t *testing.T) {
	for name, cond := range map[string]string{
		"nested over argv":       `kind == "exec" && args.exists(a, args.exists(b, args.exists(c, a + b + c == path)))`,
		"nested over long lists": `kind == "open" && big.exists(a, big.exists(b, a + b == path))`,
		"map of a map":           `kind == "exec" && args.map(a, args.map(b, a + b)).exists(l, l.exists(x, x == comm))`,
	} {
		t.Run(name, func(t *testing.T) {
			var items []string
			for i := 0; i < 2000; i++ {
				items = append(items, "/x"+strings.Repeat("y", i%7))
			}
			f := writeRules(t, "- list: big\n  items: ["+strings.Join(items, ", ")+"]\n"+
				"- rule: costly\n  desc: d\n  condition: '"+cond+"'\n  output: o\n  priority: high\n")
			s, problems, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Rules) != 0 || len(problems) != 1 {
				t.Fatalf("rules %d, problems %v: the costly rule was accepted", len(s.Rules), problems)
			}
			msg := problems[0].Error()
			for _, want := range []string{f + ":5", `rule "costly"`, "may cost up to", "over the budget of 1000000"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q lacks %q", msg, want)
				}
			}
		})
	}
}

// A rule within the estimate meets an event larger than the kernel ever
// captures (a crafted recording): the evaluation stops at the budget,
// counts an error, does not match, and the next rule still runs.
func TestRuntimeCostLimitStopsAnEvaluation(t *testing.T) {
	s := load(t, writeRules(t, `
- rule: arg_is_path
  desc: d
  condition: 'kind == "exec" && args.exists(a, a + "/" + comm == path)'
  output: o
  priority: low
- rule: any_exec
  desc: d
  condition: 'kind == "exec"'
  output: o
  priority: low
`))
	// 5,000 items of 1,000 bytes: 5 MB of argv, where the kernel captures
	// at most 1,024 bytes.
	args := make([]string, 5_000)
	for i := range args {
		args[i] = strings.Repeat("a", 1000)
	}
	ev := sdktest.Proc{PID: 1, Exe: "/bin/x"}.Child(2, "/bin/y", args...).Exec()
	e := s.NewEvaluator()
	start := time.Now()
	got := ids(e.Eval(ev, nil))
	took := time.Since(start)
	if got != "any_exec" {
		t.Errorf("matched %q, want only any_exec", got)
	}
	if e.Errors != 1 {
		t.Errorf("errors %d, want 1 (the evaluation over the budget)", e.Errors)
	}
	t.Logf("an evaluation stopped at the budget after %v", took)
	// The same rule on a real-sized event evaluates normally.
	small := sdktest.Proc{PID: 1, Exe: "/bin/x"}.Child(2, "/bin/y", "a", "b").Exec()
	if got := ids(e.Eval(small, nil)); got != "any_exec" || e.Errors != 1 {
		t.Errorf("small event: matched %q, errors %d", got, e.Errors)
	}
}
