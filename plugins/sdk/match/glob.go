package match

import (
	"fmt"
	"strings"
)

// Glob reports whether s matches pattern ('*' any run, '/' included; '?'
// one character). It does not allocate.
func Glob(pattern, s string) bool {
	// Iterative wildcard match with one backtrack point: linear for the
	// patterns detectors use, never exponential.
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// Path reports whether path matches pattern; a pattern without '/'
// matches the path's last element.
func Path(pattern, path string) bool {
	if !strings.Contains(pattern, "/") {
		path = Base(path)
	}
	return Glob(pattern, path)
}

// AnyPath reports whether path matches one of patterns.
func AnyPath(patterns []string, path string) bool {
	for _, p := range patterns {
		if Path(p, path) {
			return true
		}
	}
	return false
}

// Base is the last element of path, without allocating.
func Base(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[i+1:]
	}
	return path
}

// CheckPatterns reports patterns that cannot be what the operator meant:
// empty ones, and path patterns that are neither absolute nor a bare name.
func CheckPatterns(what string, patterns []string) error {
	for _, p := range patterns {
		if p == "" {
			return fmt.Errorf("%s: empty pattern", what)
		}
		if strings.Contains(p, "/") && !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "*") {
			return fmt.Errorf("%s: pattern %q: use an absolute path, a bare name such as \"sshd\", or start it with '*'", what, p)
		}
	}
	return nil
}
