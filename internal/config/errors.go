package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// yamlError rewrites what the YAML decoder says about a configuration file
// in the user's words: an unknown key is named with the section it is in,
// the nearest valid key and the valid ones; a syntax error points at the
// line whose indentation is off when the decoder names an earlier one.
func yamlError(path string, raw []byte, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, len(te.Errors))
		for i, e := range te.Errors {
			msgs[i] = explainField(e)
		}
		return fmt.Errorf("config %s:\n  %s", path, strings.Join(msgs, "\n  "))
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	reported := 0
	if m := reportedLine.FindStringSubmatch(msg); m != nil {
		reported, _ = strconv.Atoi(m[1])
	}
	if line := badIndent(raw); line > 0 && line >= reported {
		return fmt.Errorf("config %s, line %d: the indentation of this line matches no key above it (%s):\n  %d | %s",
			path, line, msg, line, lineText(raw, line))
	}
	return fmt.Errorf("config %s: %s", path, msg)
}

var reportedLine = regexp.MustCompile(`^line (\d+):`)

var fieldNotFound = regexp.MustCompile(`^line (\d+): field (.+) not found in type (\S+)$`)

// explainField rewrites one of the decoder's type errors.
func explainField(e string) string {
	m := fieldNotFound.FindStringSubmatch(e)
	if m == nil {
		return e
	}
	line, key, typ := m[1], m[2], m[3]
	section, keys := sectionKeys(typ)
	msg := fmt.Sprintf("line %s: unknown key %q in %s", line, key, section)
	if near := nearest(key, keys); near != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", near)
	}
	if len(keys) > 0 {
		msg += "; valid keys: " + strings.Join(keys, ", ")
	}
	return msg
}

// sectionKeys is the configuration section a Go type is decoded from, in
// the file's words, and its keys.
func sectionKeys(typ string) (string, []string) {
	var found reflect.Type
	walkTypes(reflect.TypeOf(File{}), map[reflect.Type]bool{}, func(t reflect.Type) {
		if t.String() == typ {
			found = t
		}
	})
	if found == nil {
		return "the configuration", nil
	}
	var keys []string
	for f := range found.Fields() {
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	slices.Sort(keys)
	sections := map[string]string{
		"config.File": "the top level", "config.Detector": "a detector (under detectors:)",
		"config.Dispatch": "dispatch:", "config.Enclave": "enclave:",
	}
	section, ok := sections[typ]
	if !ok {
		section = "section " + strings.TrimPrefix(typ, "config.")
	}
	return section, keys
}

// walkTypes calls fn on t and every struct type reachable from it.
func walkTypes(t reflect.Type, seen map[reflect.Type]bool, fn func(reflect.Type)) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] {
		return
	}
	seen[t] = true
	fn(t)
	for f := range t.Fields() {
		walkTypes(f.Type, seen, fn)
	}
}

// nearest is the key closest to k (at most two edits away), or "".
func nearest(k string, keys []string) string {
	best, bestD := "", 3
	for _, c := range keys {
		if d := editDistance(k, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// badIndent is the first line (1-based) indented to a level no enclosing
// key or list item has, 0 if none: where an indentation mistake is.
func badIndent(raw []byte) int {
	stack := []int{0}
	for i, line := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimLeft(line, " ")
		if trimmed == "" || strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, "---") {
			continue
		}
		indent := len(line) - len(trimmed)
		if indent > stack[len(stack)-1] {
			stack = append(stack, indent)
		} else {
			for len(stack) > 1 && stack[len(stack)-1] > indent {
				stack = stack[:len(stack)-1]
			}
			if stack[len(stack)-1] != indent {
				return i + 1
			}
		}
		// A list item's keys continue at the item's content.
		for strings.HasPrefix(trimmed, "- ") {
			indent += 2
			trimmed = strings.TrimLeft(trimmed[2:], " ")
			stack = append(stack, indent)
		}
	}
	return 0
}

func lineText(raw []byte, n int) string {
	lines := strings.Split(string(raw), "\n")
	if n < 1 || n > len(lines) {
		return ""
	}
	q := strconv.Quote(lines[n-1]) // the file may hold anything: escaped
	return q[1 : len(q)-1]
}
