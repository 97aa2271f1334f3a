package detection

import (
	"errors"
	"strings"
	"testing"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

// Validate refuses a filter over its bounds, in either backend.
func TestValidateFilterBounds(t *testing.T) {
	n := func(k int, s string) []string {
		out := make([]string, k)
		for i := range out {
			out[i] = s
		}
		return out
	}
	for _, c := range []struct {
		name string
		f    Filter
		want string // "" valid
	}{
		{"empty", Filter{}, ""},
		{"at the bounds", Filter{Comms: n(64, "c"), ExcludeComms: n(64, "x"), PathPrefixes: n(64, "/"+strings.Repeat("p", 200))}, ""},
		{"65 comms", Filter{Comms: n(65, "c")}, "more than 64 comms"},
		{"65 excluded comms", Filter{ExcludeComms: n(65, "c")}, "more than 64 excluded comms"},
		{"65 prefixes", Filter{PathPrefixes: n(65, "/")}, "more than 64 path prefixes"},
		{"a prefix over PATH_MAX", Filter{PathPrefixes: []string{strings.Repeat("/", 4097)}}, "over 4096 bytes"},
		{"too many bytes in all", Filter{PathPrefixes: n(5, strings.Repeat("/", 4000))}, "20000 bytes, over 16384"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Definition{Name: "d", Kinds: []event.Kind{event.KindOpen}, Filter: c.f}.Validate()
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrFilterBounds) {
				t.Fatalf("err %v, want ErrFilterBounds saying %q", err, c.want)
			}
		})
	}
}

// FuzzMatcherAgrees: a compiled filter answers as the filter does.
func FuzzMatcherAgrees(f *testing.F) {
	f.Add("/etc/cron\n/etc/\n/home/\n/etc/shadow", "", "", "/etc/cron.d/x", "/tmp/x", uint32(1), false)
	f.Add("/a\n/ab\n/b", "cat\nsh", "sh", "/ab", "/b/c", uint32(2), true)
	f.Add("\n/x", "", "", "/y", "", uint32(1), true)
	f.Fuzz(func(t *testing.T, prefixes, comms, exclude, path, kernelPath string, nlink uint32, exec bool) {
		split := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(s, "\n")
		}
		flt := Filter{Comms: split(comms), ExcludeComms: split(exclude), PathPrefixes: split(prefixes)}
		m := flt.Compile()
		for _, comm := range append(split(comms), "cat", "", path) {
			ev := &event.Event{Header: event.Header{Kind: event.KindOpen, Comm: comm},
				Open: event.Open{Resolved: path, FilePath: kernelPath, Nlink: nlink, FileMode: 0o100644}}
			if exec {
				ev.Kind, ev.Exec.Exe = event.KindExec, path
			}
			if got, want := m.Wants(ev), flt.Wants(ev); got != want {
				t.Fatalf("%+v on comm %q path %q kernel path %q: matcher %v, filter %v", flt, comm, path, kernelPath, got, want)
			}
		}
	})
}
