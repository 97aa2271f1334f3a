package ruleset

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
)

// Match is a rule that matched an event, with its output rendered.
type Match struct {
	Rule   *Rule
	Output string
}

// Evaluator evaluates events against a Set. It reuses its memory from one
// event to the next: use one per goroutine.
type Evaluator struct {
	set *Set
	act activation
	// Errors counts evaluations that failed at run time (the rule is then
	// taken as not matching).
	Errors uint64
}

// NewEvaluator evaluates against set.
func (s *Set) NewEvaluator() *Evaluator {
	return &Evaluator{set: s, act: activation{lists: s.lists}}
}

// Kinds is every kind some rule can match.
func (s *Set) Kinds() event.KindSet {
	var k event.KindSet
	for _, r := range s.Rules {
		k |= r.Kinds
	}
	return k
}

// activation resolves a condition's names from the event, each at most
// once per event.
type activation struct {
	ev    *event.Event
	have  uint64 // bit i: cache[i] is this event's
	cache [64]ref.Val
	lists map[string]ref.Val
}

func (a *activation) ResolveName(name string) (any, bool) {
	if i, ok := fieldIndex[name]; ok {
		if a.have&(1<<i) == 0 {
			a.cache[i] = Fields[i].get(a.ev)
			a.have |= 1 << i
		}
		return a.cache[i], true
	}
	v, ok := a.lists[name]
	return v, ok
}

func (a *activation) Parent() interpreter.Activation { return nil }

// Eval appends to out the rules ev matches. Only the rules whose
// condition can match ev's kind are evaluated.
func (e *Evaluator) Eval(ev *event.Event, out []Match) []Match {
	rules := e.set.byKind[ev.Kind%event.KindCount]
	if len(rules) == 0 {
		return out
	}
	e.act.ev, e.act.have = ev, 0
	for _, r := range rules {
		if !r.guarded(ev) || !e.matches(r.prg) || e.excepted(r) {
			continue
		}
		out = append(out, Match{Rule: r, Output: r.render(&e.act)})
	}
	e.act.ev = nil
	return out
}

// guarded reports whether ev passes every guard of r (and so whether its
// condition is worth evaluating).
func (r *Rule) guarded(ev *event.Event) bool {
	for i := range r.guards {
		if !r.guards[i].ok(ev) {
			return false
		}
	}
	return true
}

// matches evaluates one condition on the current event.
func (e *Evaluator) matches(p cel.Program) bool {
	v, _, err := p.Eval(&e.act)
	if err != nil {
		e.Errors++
		return false
	}
	return v == types.True
}

func (e *Evaluator) excepted(r *Rule) bool {
	for _, p := range r.except {
		if e.matches(p) {
			return true
		}
	}
	return false
}

// render fills the rule's output template from the event.
func (r *Rule) render(a *activation) string {
	if len(r.output) == 1 && r.output[0].field < 0 && r.output[0].text == "" {
		return r.Desc
	}
	var b strings.Builder
	for _, p := range r.output {
		if p.field < 0 {
			b.WriteString(p.text)
			continue
		}
		v, _ := a.ResolveName(Fields[p.field].Name)
		switch x := v.(type) {
		case types.String:
			b.WriteString(string(x))
		case types.Int:
			fmt.Fprint(&b, int64(x))
		default:
			if l, ok := v.(ref.Val); ok {
				if native, err := l.ConvertToNative(stringSliceType); err == nil {
					b.WriteString(strings.Join(native.([]string), " "))
					continue
				}
			}
			fmt.Fprint(&b, v)
		}
	}
	return b.String()
}

var stringSliceType = reflect.TypeOf([]string(nil))

// Set is the rule set the evaluator evaluates.
func (e *Evaluator) Set() *Set { return e.set }
