package ruleset

import (
	"strings"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	exprpb "google.golang.org/genproto/googleapis/api/expr/v1alpha1"
)

// A guard is one conjunct of a rule's condition simple enough to check in
// Go before CEL runs: a field equal to, starting with, ending with,
// containing or in a set of constants. Guards only ever skip rules whose
// condition is false, so they change speed, never results.
type guard struct {
	field int
	op    guardOp
	s     string
	n     int64
	set   map[string]struct{}
}

type guardOp uint8

const (
	guardEq guardOp = iota
	guardPrefix
	guardSuffix
	guardContains
	guardIn
	guardEqInt
)

func (g *guard) ok(ev *event.Event) bool {
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

// fieldOf is the field an expression names, if it is one.
func fieldOf(e *exprpb.Expr) (int, bool) {
	if e == nil || e.GetIdentExpr() == nil {
		return 0, false
	}
	i, ok := fieldIndex[e.GetIdentExpr().GetName()]
	return i, ok
}
