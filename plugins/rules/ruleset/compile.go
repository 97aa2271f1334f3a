package ruleset

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	exprpb "google.golang.org/genproto/googleapis/api/expr/v1alpha1"
)

// Rule is a compiled rule.
type Rule struct {
	ID         string
	Desc       string
	Severity   detect.Severity
	Techniques []string // the tags that are MITRE ATT&CK ids
	Tags       []string
	Kinds      event.KindSet // the kinds its condition can match
	guards     []guard
	prg        cel.Program
	except     []cel.Program
	output     []outputPart
	at         source
}

type outputPart struct {
	text  string
	field int // index into Fields, or -1 for text
}

// Set is a compiled rule set, immutable, safe for one evaluating goroutine
// at a time (see Evaluator).
type Set struct {
	Rules  []*Rule
	byKind [event.KindCount][]*Rule
	lists  map[string]ref.Val
	// Disabled counts rules turned off with enabled: false.
	Disabled int
}

// Load reads files in order and compiles the result. Rules that do not
// compile are left out and reported in problems (each an *Error with file,
// line and rule id); err is for files that cannot be read at all.
func Load(files ...string) (set *Set, problems []error, err error) {
	sources, err := readFiles(files)
	if err != nil {
		return nil, nil, err
	}
	return LoadSources(sources...)
}

// LoadSources is Load for rule files already in memory (embedded defaults).
func LoadSources(sources ...Source) (set *Set, problems []error, err error) {
	s, problems, err := read(sources)
	if err != nil {
		return nil, nil, err
	}
	files := make([]string, len(sources))
	for i, src := range sources {
		files[i] = src.Name
	}
	env, err := newEnv(s)
	if err != nil {
		return nil, nil, err
	}
	set = &Set{lists: map[string]ref.Val{}}
	for name, items := range s.lists {
		set.lists[name] = types.NewStringList(types.DefaultTypeAdapter, items)
	}
	for _, rs := range s.rules {
		if !rs.enabled {
			set.Disabled++
			continue
		}
		r, err := compile(env, s, rs)
		if err != nil {
			problems = append(problems, &Error{File: rs.condAt.file, Line: rs.condAt.line, Rule: rs.id, Msg: err.Error()})
			continue
		}
		set.Rules = append(set.Rules, r)
		for _, k := range r.Kinds.Kinds() {
			set.byKind[k] = append(set.byKind[k], r)
		}
	}
	sortProblems(files, problems)
	return set, problems, nil
}

// sortProblems orders problems as the files were given, then by line.
func sortProblems(files []string, problems []error) {
	order := map[string]int{}
	for i, f := range files {
		order[f] = i
	}
	key := func(err error) (int, int) {
		var e *Error
		if errors.As(err, &e) {
			return order[e.File], e.Line
		}
		return len(files), 0
	}
	sort.SliceStable(problems, func(i, j int) bool {
		fi, li := key(problems[i])
		fj, lj := key(problems[j])
		return fi < fj || fi == fj && li < lj
	})
}

func newEnv(s *spec) (*cel.Env, error) {
	var opts []cel.EnvOption
	for _, f := range Fields {
		opts = append(opts, cel.Variable(f.Name, f.Type))
	}
	for name := range s.lists {
		opts = append(opts, cel.Variable(name, cel.ListType(cel.StringType)))
	}
	return cel.NewEnv(opts...)
}

var techniqueRE = regexp.MustCompile(`^T\d{4}(\.\d{3})?$`)

func compile(env *cel.Env, s *spec, rs *ruleSpec) (*Rule, error) {
	sev, err := priority(rs.priority)
	if err != nil {
		return nil, err
	}
	prg, checked, err := program(env, s, rs.condition)
	if err != nil {
		return nil, err
	}
	r := &Rule{ID: rs.id, Desc: rs.desc, Severity: sev, Tags: rs.tags, prg: prg, at: rs.at}
	kinds, err := kindsOf(checked.Expr)
	if err != nil {
		return nil, err
	}
	r.Kinds = kinds
	r.guards = guardsOf(checked.Expr, s.lists)
	for _, t := range rs.tags {
		if techniqueRE.MatchString(t) {
			r.Techniques = append(r.Techniques, t)
		}
	}
	for _, ex := range rs.exceptions {
		p, _, err := program(env, s, ex.Condition)
		if err != nil {
			return nil, fmt.Errorf("exception %q: %w", ex.Name, err)
		}
		r.except = append(r.except, p)
	}
	if r.output, err = parseOutput(rs.output); err != nil {
		return nil, err
	}
	return r, nil
}

// program compiles a boolean condition (macros expanded).
func program(env *cel.Env, s *spec, condition string) (cel.Program, *exprpb.CheckedExpr, error) {
	expr, err := s.expandMacros(condition, 0)
	if err != nil {
		return nil, nil, err
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, nil, errors.New(strings.TrimSpace(iss.Err().Error()))
	}
	if ast.OutputType() != cel.BoolType {
		return nil, nil, fmt.Errorf("the condition is a %s, not a bool", ast.OutputType())
	}
	est, err := env.EstimateCost(ast, sizeEstimator{s.lists})
	if err != nil {
		return nil, nil, fmt.Errorf("estimating the condition's cost: %w", err)
	}
	if est.Max > CostBudget {
		return nil, nil, errTooCostly(est)
	}
	checked, err := cel.AstToCheckedExpr(ast)
	if err != nil {
		return nil, nil, err
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.CostLimit(CostBudget))
	return prg, checked, err
}

// kindsOf is the set of kinds an expression can be true for: from
// kind == "x" and kind in [...], through && (intersection) and ||
// (union); anything else could match every kind.
func kindsOf(e *exprpb.Expr) (event.KindSet, error) {
	all := event.AllKindSet()
	call := e.GetCallExpr()
	if call == nil {
		return all, nil
	}
	args := call.GetArgs()
	switch call.GetFunction() {
	case "_&&_":
		a, err := kindsOf(args[0])
		if err != nil {
			return 0, err
		}
		b, err := kindsOf(args[1])
		return a & b, err
	case "_||_":
		a, err := kindsOf(args[0])
		if err != nil {
			return 0, err
		}
		b, err := kindsOf(args[1])
		return a | b, err
	case "_==_":
		for i := 0; i < 2; i++ {
			if args[i].GetIdentExpr().GetName() == "kind" {
				if c := args[1-i].GetConstExpr(); c != nil {
					k, err := event.ParseKind(c.GetStringValue())
					return event.KindSet(0).With(k), err
				}
			}
		}
	case "@in":
		if args[0].GetIdentExpr().GetName() == "kind" && args[1].GetListExpr() != nil {
			var set event.KindSet
			for _, el := range args[1].GetListExpr().GetElements() {
				c := el.GetConstExpr()
				if c == nil {
					return all, nil
				}
				k, err := event.ParseKind(c.GetStringValue())
				if err != nil {
					return 0, err
				}
				set = set.With(k)
			}
			return set, nil
		}
	}
	return all, nil
}

// priority reads our severities and Falco's priorities.
func priority(p string) (detect.Severity, error) {
	switch strings.ToLower(p) {
	case "emergency", "alert":
		return detect.SeverityCritical, nil
	case "error":
		return detect.SeverityHigh, nil
	case "warning":
		return detect.SeverityMedium, nil
	case "notice":
		return detect.SeverityLow, nil
	case "informational", "debug":
		return detect.SeverityInfo, nil
	}
	s, err := detect.ParseSeverity(p)
	if err != nil {
		return 0, fmt.Errorf("priority %q: use info, low, medium, high or critical (or a Falco priority)", p)
	}
	return s, nil
}

var placeholderRE = regexp.MustCompile(`\{([a-z_]+)\}`)

// parseOutput splits "shell {exe} under {parent_exe}" into text and fields.
func parseOutput(tmpl string) ([]outputPart, error) {
	var out []outputPart
	last := 0
	for _, m := range placeholderRE.FindAllStringSubmatchIndex(tmpl, -1) {
		name := tmpl[m[2]:m[3]]
		i, ok := fieldIndex[name]
		if !ok {
			known := make([]string, 0, len(Fields))
			for _, f := range Fields {
				known = append(known, f.Name)
			}
			sort.Strings(known)
			return nil, fmt.Errorf("output: unknown field {%s}; fields: %s", name, strings.Join(known, ", "))
		}
		out = append(out, outputPart{text: tmpl[last:m[0]], field: -1}, outputPart{field: i})
		last = m[1]
	}
	return append(out, outputPart{text: tmpl[last:], field: -1}), nil
}
