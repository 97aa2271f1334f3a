package ruleset

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// A file holds any number of these, as a YAML list; each item is one of a
// rule, a list or a macro.
type item struct {
	Rule      *string      `yaml:"rule"`
	List      *string      `yaml:"list"`
	Macro     *string      `yaml:"macro"`
	Desc      *string      `yaml:"desc"`
	Condition *string      `yaml:"condition"`
	Output    *string      `yaml:"output"`
	Priority  *string      `yaml:"priority"`
	Tags      []string     `yaml:"tags"`
	Enabled   *bool        `yaml:"enabled"`
	Items     []string     `yaml:"items"`
	Append    bool         `yaml:"append"`
	Except    []exceptItem `yaml:"exceptions"`
}

type exceptItem struct {
	Name      string `yaml:"name"`
	Condition string `yaml:"condition"`
}

// source says where something was written.
type source struct {
	file string
	line int
}

func (s source) String() string { return fmt.Sprintf("%s:%d", s.file, s.line) }

// ruleSpec is a rule as the files define it, later files merged in.
type ruleSpec struct {
	id, desc, condition, output, priority string
	tags                                  []string
	enabled                               bool
	exceptions                            []exceptItem
	at, condAt                            source
}

type macroSpec struct {
	expr string
	at   source
}

// spec is every file read, merged in order.
type spec struct {
	rules  []*ruleSpec // in first-definition order
	byID   map[string]*ruleSpec
	lists  map[string][]string
	macros map[string]macroSpec
}

// Error is one problem in the rule files, where it is.
type Error struct {
	File string
	Line int
	Rule string // empty for problems outside a rule
	Msg  string
}

func (e *Error) Error() string {
	if e.Rule != "" {
		return fmt.Sprintf("%s:%d: rule %q: %s", e.File, e.Line, e.Rule, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

var nameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// Source is one rule file's name and contents.
type Source struct {
	Name string
	Data []byte
}

// readFiles reads files into sources.
func readFiles(files []string) ([]Source, error) {
	var out []Source
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, Source{f, b})
	}
	return out, nil
}

// read parses sources in order into one spec. A source that is not YAML
// stops everything (err); problems with single items are collected in
// problems and the item is skipped.
func read(sources []Source) (s *spec, problems []error, err error) {
	s = &spec{byID: map[string]*ruleSpec{}, lists: map[string][]string{}, macros: map[string]macroSpec{}}
	for _, src := range sources {
		file := src.Name
		var doc yaml.Node
		if err := yaml.Unmarshal(src.Data, &doc); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", file, err)
		}
		if len(doc.Content) == 0 {
			continue // empty file
		}
		top := doc.Content[0]
		if top.Kind != yaml.SequenceNode {
			return nil, nil, fmt.Errorf("%s:%d: a rules file is a YAML list of rules, lists and macros", file, top.Line)
		}
		for _, n := range top.Content {
			problems = append(problems, s.add(file, n)...)
		}
	}
	return s, problems, nil
}

func (s *spec) add(file string, n *yaml.Node) []error {
	at := source{file, n.Line}
	var it item
	if err := n.Decode(&it); err != nil {
		return []error{&Error{File: file, Line: n.Line, Msg: err.Error()}}
	}
	if it.Rule != nil {
		return s.addRule(at, n, &it)
	}
	bad := func(format string, args ...any) []error {
		return []error{&Error{File: file, Line: n.Line, Msg: fmt.Sprintf(format, args...)}}
	}
	switch {
	case it.List != nil:
		if _, isField := fieldIndex[*it.List]; !nameRE.MatchString(*it.List) || isField {
			return bad("list %q: use a lower-case name that is not a field", *it.List)
		}
		if it.Append {
			s.lists[*it.List] = append(s.lists[*it.List], it.Items...)
		} else {
			s.lists[*it.List] = append([]string(nil), it.Items...)
		}
	case it.Macro != nil:
		if _, isField := fieldIndex[*it.Macro]; !nameRE.MatchString(*it.Macro) || isField {
			return bad("macro %q: use a lower-case name that is not a field", *it.Macro)
		}
		if it.Condition == nil {
			return bad("macro %q has no condition", *it.Macro)
		}
		s.macros[*it.Macro] = macroSpec{*it.Condition, at}
	default:
		return bad("an item needs one of rule:, list: or macro:")
	}
	return nil
}

// addRule defines a rule, or changes one an earlier file defined: the
// fields given replace the earlier ones (enabled: false alone disables it).
func (s *spec) addRule(at source, n *yaml.Node, it *item) []error {
	id := *it.Rule
	r := s.byID[id]
	if r == nil {
		if it.Condition == nil {
			return []error{&Error{File: at.file, Line: at.line, Rule: id, Msg: "no condition (and no earlier rule of that id to change)"}}
		}
		r = &ruleSpec{id: id, enabled: true, priority: "medium", at: at}
		s.byID[id] = r
		s.rules = append(s.rules, r)
	}
	if it.Desc != nil {
		r.desc = *it.Desc
	}
	if it.Condition != nil {
		r.condition, r.at, r.condAt = *it.Condition, at, at
		if v := valueNode(n, "condition"); v != nil {
			r.condAt = source{at.file, v.Line}
		}
	}
	if it.Output != nil {
		r.output = *it.Output
	}
	if it.Priority != nil {
		r.priority = *it.Priority
	}
	if it.Tags != nil {
		r.tags = it.Tags
	}
	if it.Enabled != nil {
		r.enabled = *it.Enabled
	}
	if it.Except != nil {
		r.exceptions = append(r.exceptions, it.Except...)
	}
	return nil
}

// valueNode is the value of key in mapping node n.
func valueNode(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// expandMacros replaces each macro name in expr (outside string literals)
// by its parenthesised expression, recursively; a macro that uses itself
// is an error.
func (s *spec) expandMacros(expr string, depth int) (string, error) {
	if depth > 16 {
		return "", errors.New("macros nest more than 16 deep (a macro that uses itself?)")
	}
	var out strings.Builder
	changed := false
	for i := 0; i < len(expr); {
		c := expr[i]
		if c == '"' || c == '\'' { // copy a string literal as it is
			j := i + 1
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j+1, len(expr))
			out.WriteString(expr[i:j])
			i = j
			continue
		}
		if isIdentStart(c) && (i == 0 || !isIdentChar(expr[i-1]) && expr[i-1] != '.') {
			j := i
			for j < len(expr) && isIdentChar(expr[j]) {
				j++
			}
			if m, ok := s.macros[expr[i:j]]; ok {
				out.WriteString("(" + m.expr + ")")
				changed = true
			} else {
				out.WriteString(expr[i:j])
			}
			i = j
			continue
		}
		out.WriteByte(c)
		i++
	}
	if !changed {
		return expr, nil
	}
	return s.expandMacros(out.String(), depth+1)
}

func isIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isIdentChar(c byte) bool  { return isIdentStart(c) || c >= '0' && c <= '9' }
