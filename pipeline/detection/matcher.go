package detection

import (
	"sort"
	"strings"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

// Matcher is a Filter compiled to test events fast: a map look-up per
// comm list and a binary search per path, whatever the filter's size.
// Its Wants answers as the Filter's does. It does not change once built,
// so any number of goroutines may share one.
type Matcher struct {
	comms, exclude map[string]struct{} // nil: the list is empty
	prefixes       []string            // sorted, none a prefix of another
}

// Compile returns f's Matcher.
func (f Filter) Compile() *Matcher {
	set := func(list []string) map[string]struct{} {
		if len(list) == 0 {
			return nil
		}
		m := make(map[string]struct{}, len(list))
		for _, s := range list {
			m[s] = struct{}{}
		}
		return m
	}
	m := &Matcher{comms: set(f.Comms), exclude: set(f.ExcludeComms)}
	if len(f.PathPrefixes) > 0 {
		sorted := append([]string(nil), f.PathPrefixes...)
		sort.Strings(sorted)
		// A prefix that starts with a kept one adds nothing; it sorts
		// right after it (what lies between them starts with it too).
		for _, p := range sorted {
			if n := len(m.prefixes); n == 0 || !strings.HasPrefix(p, m.prefixes[n-1]) {
				m.prefixes = append(m.prefixes, p)
			}
		}
	}
	return m
}

// Wants is Filter.Wants.
func (m *Matcher) Wants(ev *event.Event) bool {
	if m.comms != nil {
		if _, ok := m.comms[ev.Comm]; !ok {
			return false
		}
	}
	if m.exclude != nil {
		if _, ok := m.exclude[ev.Comm]; ok {
			return false
		}
	}
	if len(m.prefixes) > 0 {
		switch ev.Kind {
		case event.KindOpen:
			o := &ev.Open
			return m.hasPrefix(o.Resolved) ||
				(o.FilePath != o.Resolved && m.hasPrefix(o.KernelPath())) ||
				(o.Nlink > 1 && o.Regular())
		case event.KindExec:
			return m.hasPrefix(ev.Exec.Exe)
		}
	}
	return true
}

// hasPrefix: with no prefix a prefix of another, the only one that can
// start path is the greatest not above it.
func (m *Matcher) hasPrefix(path string) bool {
	i := sort.SearchStrings(m.prefixes, path)
	if i < len(m.prefixes) && m.prefixes[i] == path {
		return true
	}
	return i > 0 && strings.HasPrefix(path, m.prefixes[i-1])
}
