package rules_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/bulkhead-sec/bulkhead/plugins/rules"
	"gopkg.in/yaml.v3"
)

// docs/rules.md's table of the default rules is default.yaml's rules, in
// order, with their tags and descriptions: a rule changed in one and not
// the other fails, printing the row the table should have.
func TestDefaultRulesTableMatchesDocs(t *testing.T) {
	var items []struct {
		Rule string   `yaml:"rule"`
		Desc string   `yaml:"desc"`
		Tags []string `yaml:"tags"`
	}
	if err := yaml.Unmarshal(rules.DefaultRules, &items); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, it := range items {
		if it.Rule != "" {
			want = append(want, fmt.Sprintf("| `%s` | %s | %s |", it.Rule, strings.Join(it.Tags, ", "), it.Desc))
		}
	}
	raw, err := os.ReadFile("../../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	i := strings.Index(doc, "## The default rules")
	if i < 0 {
		t.Fatal("docs/rules.md has no ## The default rules section")
	}
	var got []string
	for _, line := range strings.Split(doc[i:], "\n") {
		if strings.HasPrefix(line, "| `") {
			got = append(got, line)
		}
	}
	if !strings.Contains(doc[i:], fmt.Sprintf(": %d rules", len(want))) {
		t.Errorf("docs/rules.md does not say default.yaml has %d rules", len(want))
	}
	for j := range max(len(got), len(want)) {
		switch {
		case j >= len(want):
			t.Errorf("docs/rules.md has a row for no rule: %s", got[j])
		case j >= len(got):
			t.Errorf("docs/rules.md lacks the row:\n%s", want[j])
		case got[j] != want[j]:
			t.Errorf("docs/rules.md row %d is\n%s\nwant\n%s", j+1, got[j], want[j])
		}
	}
}
