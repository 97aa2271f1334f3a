package ruleset

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
	"golang.org/x/sys/unix"
)

// unguarded is s with every rule's guards taken away: CEL alone decides.
func unguarded(s *Set) *Set {
	u := *s
	u.Rules, u.byKind = nil, [event.KindCount][]*Rule{}
	for _, r := range s.Rules {
		c := *r
		c.guards = nil
		u.Rules = append(u.Rules, &c)
		for _, k := range c.Kinds.Kinds() {
			u.byKind[k] = append(u.byKind[k], &c)
		}
	}
	return &u
}

// sameMatches fails unless s matches each event as it would without its
// guards, and returns how many events matched some rule.
func sameMatches(t *testing.T, s *Set, evs []*event.Event) int {
	t.Helper()
	a, b := s.NewEvaluator(), unguarded(s).NewEvaluator()
	matched := 0
	for i, ev := range evs {
		x, y := ids(a.Eval(ev, nil)), ids(b.Eval(ev, nil))
		if x != y {
			t.Fatalf("event %d (%s %s): guarded %q, unguarded %q", i, ev.Kind, ev.Open.Path, x, y)
		}
		if x != "" {
			matched++
		}
	}
	return matched
}

// A disjunction guards a rule when each of its sides has guards of its
// own, and then turns away exactly the events no side can match.
func TestDisjunctionGuards(t *testing.T) {
	file := filepath.Join(t.TempDir(), "or.yaml")
	os.WriteFile(file, []byte(`
- rule: or_paths
  condition: kind == "open" && (path == "/a" || path.startsWith("/b/") || (comm == "vi" && path.endsWith(".conf")))
- rule: or_unguardable
  condition: kind == "open" && (path == "/c" || path.matches("^/d[0-9]$"))
`), 0o644)
	s := load(t, file)
	if g := s.Rules[0].guards; len(g) != 1 || g[0].op != guardAny || len(g[0].any) != 2 {
		t.Fatalf("or_paths guards: %+v", g)
	}
	if g := s.Rules[1].guards; len(g) != 0 {
		t.Fatalf("a side with no guard (a regex) must leave the disjunction unguarded: %+v", g)
	}
	vi := sdktest.Proc{PID: 5, Exe: "/usr/bin/vi"}
	var evs []*event.Event
	for _, p := range []string{"/a", "/ab", "/b/x", "/b", "/x.conf", "/c", "/d1", "/dd", "/"} {
		evs = append(evs, cat.Open(p, unix.O_RDONLY, 3), vi.Open(p, unix.O_RDONLY, 3))
	}
	if n := sameMatches(t, s, evs); n != 9 {
		t.Fatalf("%d events matched, want 9", n)
	}
}

// The default rules match the same with and without their guards, on a
// real stream and on events made to hit and miss each path of theirs.
func TestDefaultRulesGuards(t *testing.T) {
	s := load(t, "../default.yaml")
	evs := recorded(t)
	w := uint64(unix.O_WRONLY | unix.O_CREAT)
	for _, p := range []string{"/etc/shadow", "/etc/sudoers", "/etc/ld.so.preload", "/etc/crontab", "/etc/cron.d/x",
		"/var/spool/cron/crontabs/root", "/etc/systemd/system/x.service", "/usr/lib/systemd/system/y.service",
		"/root/.bashrc", "/home/u/.profile", "/home/u/sub/.bashrc", "/home/u/.zshrc.bak", "/root/.ssh/id_rsa",
		"/home/u/.ssh/id_ed25519", "/home/u/.ssh/id_rsa.pub", "/srv/.ssh/id_rsa", "/dev/null", "/etc/passwd"} {
		evs = append(evs, cat.Open(p, unix.O_RDONLY, 3), cat.Open(p, w, 3))
	}
	if n := sameMatches(t, s, evs); n < 20 {
		t.Fatalf("only %d events matched: the comparison shows little", n)
	}
	for _, r := range s.Rules {
		if r.Kinds.Has(event.KindOpen) && len(r.guards) == 0 {
			t.Errorf("%s takes opens but has no guard: CEL would run on every open", r.ID)
		}
	}
}
