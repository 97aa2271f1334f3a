// Package ruleset loads, checks and evaluates bulkhead's operator rules:
// YAML files of rules whose conditions are CEL expressions over an event
// and its process context (Fields lists every name a condition can use).
//
// Rules are compiled and type-checked once, at load time; a rule that does
// not compile is reported with its file, line and id and the others still
// load. Each rule is indexed by the event kinds its condition can match
// (from `kind == "…"` and `kind in [...]` in its top-level conjunction), so
// an event is evaluated only against the rules that can match it.
package ruleset
