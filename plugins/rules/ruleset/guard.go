package ruleset

import (
	"strings"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	exprpb "google.golang.org/genproto/googleapis/api/expr/v1alpha1"
)

// A guard is one conjunct of a rule's condition simple enough to check in
// Go before CEL runs: a field equal to, starting with, ending with,
// containing or in a set of constants, or a disjunction (||) each of whose
// sides has guards of its own (path == "/a" || path.startsWith("/b/")).
// Guards only ever skip rules whose condition is false, so they change
// speed, never results.
type guard struct {
	field int
	op    guardOp
	s     string
	n     int64
	set   map[string]struct{}
	any   [][]guard // guardAny: passes when every guard of one of these does
}

type guardOp uint8

const (
	guardEq guardOp = iota
	guardPrefix
	guardSuffix
	guardContains
	guardIn
	guardEqInt
	guardAny
)

func (g *guard) ok(ev *event.Event) bool {
	if g.op == guardAny {
		for _, alt := range g.any {
			if allOK(alt, ev) {
				return true
			}
		}
		return false
	}
	f := &Fields[g.field]
	if g.op == guardEqInt {
		return f.num(ev) == g.n
	}
	v := f.str(ev)
	switch g.op {
	case guardEq:
		return v == g.s
	case guardPrefix:
		return strings.HasPrefix(v, g.s)
	case guardSuffix:
		return strings.HasSuffix(v, g.s)
	case guardContains:
		return strings.Contains(v, g.s)
	case guardIn:
		_, ok := g.set[v]
		return ok
	}
	return true
}

// guardsOf collects the guards of e's top-level conjunction.
func guardsOf(e *exprpb.Expr, lists map[string][]string) []guard {
	call := e.GetCallExpr()
	if call == nil {
		return nil
	}
	args := call.GetArgs()
	switch fn := call.GetFunction(); fn {
	case "_&&_":
		return append(guardsOf(args[0], lists), guardsOf(args[1], lists)...)
	case "_||_":
		// Whichever side is true passes its own guards; a side without
		// any could be true for anything.
		var alts [][]guard
		for _, a := range args {
			g := guardsOf(a, lists)
			if len(g) == 0 {
				return nil
			}
			alts = append(alts, g)
		}
		return []guard{{op: guardAny, any: alts}}
	case "_==_":
		for i := 0; i < 2; i++ {
			f, ok := fieldOf(args[i])
			c := args[1-i].GetConstExpr()
			if !ok || c == nil || Fields[f].Name == "kind" {
				continue
			}
			if Fields[f].str != nil {
				if v, isStr := c.GetConstantKind().(*exprpb.Constant_StringValue); isStr {
					return []guard{{field: f, op: guardEq, s: v.StringValue}}
				}
			}
			if Fields[f].num != nil {
				if v, isInt := c.GetConstantKind().(*exprpb.Constant_Int64Value); isInt {
					return []guard{{field: f, op: guardEqInt, n: v.Int64Value}}
				}
			}
		}
	case "@in":
		f, ok := fieldOf(args[0])
		if !ok || Fields[f].str == nil || Fields[f].Name == "kind" {
			return nil
		}
		var items []string
		if l := args[1].GetListExpr(); l != nil {
			for _, el := range l.GetElements() {
				c := el.GetConstExpr()
				if c == nil {
					return nil
				}
				items = append(items, c.GetStringValue())
			}
		} else if named, ok := lists[args[1].GetIdentExpr().GetName()]; ok {
			items = named
		} else {
			return nil
		}
		set := make(map[string]struct{}, len(items))
		for _, it := range items {
			set[it] = struct{}{}
		}
		return []guard{{field: f, op: guardIn, set: set}}
	case "startsWith", "endsWith", "contains":
		f, ok := fieldOf(call.GetTarget())
		if !ok || Fields[f].str == nil || len(args) != 1 || args[0].GetConstExpr() == nil {
			return nil
		}
		op := map[string]guardOp{"startsWith": guardPrefix, "endsWith": guardSuffix, "contains": guardContains}[fn]
		return []guard{{field: f, op: op, s: args[0].GetConstExpr().GetStringValue()}}
	}
	return nil
}

func allOK(gs []guard, ev *event.Event) bool {
	for i := range gs {
		if !gs[i].ok(ev) {
			return false
		}
	}
	return true
}

// fieldOf is the field an expression names, if it is one.
func fieldOf(e *exprpb.Expr) (int, bool) {
	if e == nil || e.GetIdentExpr() == nil {
		return 0, false
	}
	i, ok := fieldIndex[e.GetIdentExpr().GetName()]
	return i, ok
}
