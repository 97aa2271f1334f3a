package detection

import (
	"testing"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

func TestFilterWantsOpenedFile(t *testing.T) {
	f := Filter{PathPrefixes: []string{"/etc/shadow", "/etc/cron"}}
	open := func(o event.Open) *event.Event {
		return &event.Event{Header: event.Header{Kind: event.KindOpen, Comm: "cat"}, Open: o}
	}
	const reg = 0o100644
	for _, tc := range []struct {
		name string
		ev   *event.Event
		want bool
	}{
		{"plain", open(event.Open{Resolved: "/etc/shadow", FilePath: "/etc/shadow", Nlink: 1, FileMode: reg}), true},
		{"failed, by the name passed", open(event.Open{Resolved: "/etc/shadow", Ret: -13}), true},
		{"symlink: only the kernel path matches", open(event.Open{Resolved: "/tmp/l/shadow", FilePath: "/etc/shadow", Nlink: 1, FileMode: reg}), true},
		{"hard link: another name, several names", open(event.Open{Resolved: "/tmp/hl", FilePath: "/tmp/hl", Nlink: 2, FileMode: reg}), true},
		{"a directory's link count says nothing", open(event.Open{Resolved: "/tmp", FilePath: "/tmp", Nlink: 9, FileMode: 0o040755}), false},
		{"unwatched file", open(event.Open{Resolved: "/tmp/x", FilePath: "/tmp/x", Nlink: 1, FileMode: reg}), false},
		{"a walk cut short is no path", open(event.Open{Resolved: "/tmp/x", FilePath: "etc/shadow", Nlink: 1, FileMode: reg}), false},
		{"exec by binary", &event.Event{Header: event.Header{Kind: event.KindExec}, Exec: event.Exec{Exe: "/etc/cron.daily/x"}}, true},
		{"exec elsewhere", &event.Event{Header: event.Header{Kind: event.KindExec}, Exec: event.Exec{Exe: "/bin/x"}}, false},
		{"other kinds pass", &event.Event{Header: event.Header{Kind: event.KindConnect}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := f.Wants(tc.ev); got != tc.want {
				t.Errorf("Wants = %v, want %v", got, tc.want)
			}
		})
	}
}
