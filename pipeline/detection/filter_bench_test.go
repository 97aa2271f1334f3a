package detection

import (
	"fmt"
	"strings"
	"testing"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

// hostileFilter is a filter of n entries in each list, as costly to test
// against an open of path (kernel path path+"x") by comm as it can be:
// comms of comm's length and prefixes of path's that differ from them in
// their last byte, so that each is compared to its end; the last comm is
// comm and the last prefix path+"x", so that the event passes after every
// list was read twice over (by the name as passed, by the kernel's path).
func hostileFilter(n int, comm, path string) Filter {
	var f Filter
	for i := range n {
		last := string(rune('0' + i%10)) // comm and path end in letters
		f.Comms = append(f.Comms, comm[:len(comm)-1]+last)
		f.ExcludeComms = append(f.ExcludeComms, comm[:len(comm)-1]+last)
		f.PathPrefixes = append(f.PathPrefixes, path[:len(path)-1]+last)
	}
	f.Comms[n-1], f.PathPrefixes[n-1] = comm, path+"x"
	return f
}

// The monitor runs Filter.Wants for every event of a kind a detector
// wants (its lane, and the reader goroutine for all filters). ns/op is
// per event. "honest" is the persistence detector's filter; "at the cap"
// is every list at MaxFilterEntries; "old cap" the 1,024 the wire let
// through before. "compiled" is the same through Filter.Compile.
func BenchmarkFilterWants(b *testing.B) {
	open := func(path string) *event.Event {
		ev := &event.Event{Header: event.Header{Kind: event.KindOpen, Comm: "kworker/u8:1-ev"}}
		ev.Open = event.Open{Resolved: path, FilePath: path + "x", Nlink: 1, FileMode: 0o100644}
		return ev
	}
	typical := "/usr/lib/x86_64-linux-gnu/libc.so.6"
	long := "/" + strings.Repeat("d/", MaxFilterEntry/2-1) // +"x": MaxFilterEntry bytes
	// 64 prefixes of a path this long (and its kernel path) fill MaxFilterBytes.
	mid := "/" + strings.Repeat("d/", (MaxFilterBytes-2*MaxFilterEntries*16)/MaxFilterEntries/2-1)
	honest := Filter{PathPrefixes: []string{"/etc/ld.so.preload", "/etc/cron", "/etc/anacrontab", "/etc/systemd/",
		"/etc/profile", "/etc/bash.bashrc", "/etc/zsh/", "/etc/environment", "/var/spool/cron/",
		"/usr/lib/systemd/", "/lib/systemd/", "/root/.bash", "/root/.profile", "/root/.zsh", "/root/.zprofile",
		"/root/.config/systemd/", "/home/"}}
	for _, c := range []struct {
		name string
		f    Filter
		ev   *event.Event
	}{
		{"none", Filter{}, open(typical)},
		{"honest", honest, open("/home/user/.bashrc")},
		{fmt.Sprintf("at the cap (%d), %d-byte path", MaxFilterEntries, len(typical)), hostileFilter(MaxFilterEntries, "kworker/u8:1-ev", typical), open(typical)},
		{fmt.Sprintf("at the cap (%d), %d-byte path", MaxFilterEntries, len(mid)), hostileFilter(MaxFilterEntries, "kworker/u8:1-ev", mid), open(mid)},
		{fmt.Sprintf("at the cap (%d), %d-byte path", 4, len(long)), hostileFilter(4, "kworker/u8:1-ev", long), open(long)},
		{fmt.Sprintf("%d entries, %d-byte path (over MaxFilterBytes)", MaxFilterEntries, len(long)), hostileFilter(MaxFilterEntries, "kworker/u8:1-ev", long), open(long)},
		{fmt.Sprintf("old cap (1024), %d-byte path", len(typical)), hostileFilter(1024, "kworker/u8:1-ev", typical), open(typical)},
		{fmt.Sprintf("old cap (1024), %d-byte path", len(long)), hostileFilter(1024, "kworker/u8:1-ev", long), open(long)},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			if !c.f.Wants(c.ev) && c.name != "honest" {
				b.Fatal("the event does not pass: the lists are not all read")
			}
			for b.Loop() {
				c.f.Wants(c.ev)
			}
		})
		b.Run(c.name+", compiled", func(b *testing.B) {
			b.ReportAllocs()
			m := c.f.Compile()
			for b.Loop() {
				m.Wants(c.ev)
			}
		})
	}
}
