package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/test/testenv"
)

// A path variant: how a process names a watched file, and as whom.
type pathVariant struct {
	name string
	cwd  string // "" for the test's own
	path string
	// nobody runs the open as uid 65534: it is refused, and only the name
	// passed can tell which file was meant.
	nobody bool
	// matchedBy is how the detector must have recognised the file.
	matchedBy string
}

// sameFSDir is a directory on the filesystem of ref where the test may
// create files: a hard link cannot cross filesystems.
func sameFSDir(t *testing.T, ref string) string {
	t.Helper()
	var want syscall.Stat_t
	if err := syscall.Stat(ref, &want); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{os.TempDir(), "/var/tmp", "/var/lib", "/root"} {
		var st syscall.Stat_t
		if syscall.Stat(d, &st) == nil && st.Dev == want.Dev {
			return d
		}
	}
	t.Skipf("no scratch directory on the filesystem of %s: a hard link cannot be made", ref)
	return ""
}

// openAs opens path from a fresh python3 process (read, or append for a
// write) in cwd and returns its pid. A refused open is not an error here.
func openAs(t *testing.T, v pathVariant, write bool) int {
	t.Helper()
	mode := "r"
	if write {
		mode = "a"
	}
	cmd := exec.Command(python, "-c", `import sys
try:
    open(sys.argv[1], sys.argv[2]).close()
except OSError as e:
    print(e)`, v.path, mode)
	cmd.Dir = v.cwd
	if v.nobody {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", v.name, err, out)
	}
	return cmd.Process.Pid
}

// Issue 14, class 5: the detectors see the file that was opened, not only
// the string passed. Each variant's open is one real process; on each
// backend exactly one finding must name it, for the watched file.
func TestOpenedFileUnderAnyName(t *testing.T) {
	testenv.RequireBPF(t)
	if _, err := os.Stat("/etc/shadow"); err != nil {
		t.Skipf("no /etc/shadow here: %v", err)
	}
	if _, err := os.Stat("/etc/cron.d"); err != nil {
		t.Skipf("no /etc/cron.d here: %v", err)
	}
	dir := scratch(t, sameFSDir(t, "/etc"))

	// credaccess: /etc/shadow.
	mustDo(t, os.Symlink("/etc", filepath.Join(dir, "etc-link")))
	mustDo(t, os.Symlink("/etc/shadow", filepath.Join(dir, "shadow-link")))
	mustDo(t, os.Mkdir(filepath.Join(dir, "other"), 0o700))
	hardShadow := filepath.Join(dir, "other", "innocent")
	mustDo(t, os.Link("/etc/shadow", hardShadow))
	t.Cleanup(func() { os.Remove(hardShadow) })

	// persistence: a file of /etc/cron.d, there before the monitor starts
	// (so the detector knows its identity), with harmless content.
	cronName := filepath.Base(dir) // bulkhead-test-NNN: cron ignores nothing by this name, so a comment only
	cronFile := filepath.Join("/etc/cron.d", cronName)
	mustDo(t, os.WriteFile(cronFile, []byte("# bulkhead test: no job\n"), 0o644))
	t.Cleanup(func() { os.Remove(cronFile) })
	mustDo(t, os.Symlink("/etc/cron.d", filepath.Join(dir, "crond-link")))
	mustDo(t, os.Symlink(cronFile, filepath.Join(dir, "cron-link")))
	hardCron := filepath.Join(dir, "other", "notes")
	mustDo(t, os.Link(cronFile, hardCron))

	// In its enclave a plugin cannot list /etc/cron.d (Landlock) unless
	// granted: without the grant, persistence knows the files there by name
	// and kernel path only, and a hard link to one goes unseen (it says so
	// at Init). /etc/shadow is a literal path: stat works without a grant.
	var yaml strings.Builder
	yaml.WriteString("detectors:\n")
	for _, d := range []string{"credaccess", "persistence"} {
		fmt.Fprintf(&yaml, "  - name: %s-inproc\n    backend: inproc\n    builtin: %s\n", d, d)
		fmt.Fprintf(&yaml, "  - name: %s-goplugin\n    backend: goplugin\n    plugin: %s\n", d, testenv.Plugin(t, d))
	}
	yaml.WriteString("    enclave: {read: [/etc/cron.d]}\n")
	m := startMonitor(t, "--config", writeConfig(t, yaml.String()))

	type run struct {
		detector, rule, want string
		v                    pathVariant
		pid                  int
	}
	var runs []run
	shadow := []pathVariant{
		{name: "plain", path: "/etc/shadow", matchedBy: "kernel_path"},
		{name: "dot-dot", path: "/etc/../etc/shadow", matchedBy: "kernel_path"},
		{name: "double slash", path: "/etc//shadow", matchedBy: "kernel_path"},
		{name: "dot", path: "/etc/./shadow", matchedBy: "kernel_path"},
		{name: "symlink to /etc", path: filepath.Join(dir, "etc-link", "shadow"), matchedBy: "kernel_path"},
		{name: "symlink to the file", path: filepath.Join(dir, "shadow-link"), matchedBy: "kernel_path"},
		{name: "hard link elsewhere", path: hardShadow, matchedBy: "file_identity"},
		{name: "relative from /etc", cwd: "/etc", path: "shadow", matchedBy: "kernel_path"},
		{name: "refused, dot-dot, as nobody", cwd: "/", path: "/etc/../etc/./shadow", nobody: true, matchedBy: "path"},
	}
	for _, v := range shadow {
		runs = append(runs, run{"credaccess", "password-hash-access", "/etc/shadow", v, openAs(t, v, false)})
	}
	cron := []pathVariant{
		{name: "plain", path: cronFile, matchedBy: "kernel_path"},
		{name: "dot-dot", path: "/etc/cron.d/../cron.d/" + cronName, matchedBy: "kernel_path"},
		{name: "symlink to the directory", path: filepath.Join(dir, "crond-link", cronName), matchedBy: "kernel_path"},
		{name: "symlink to the file", path: filepath.Join(dir, "cron-link"), matchedBy: "kernel_path"},
		{name: "hard link elsewhere", path: hardCron, matchedBy: "file_identity"},
		{name: "relative from /etc/cron.d", cwd: "/etc/cron.d", path: "./" + cronName, matchedBy: "kernel_path"},
	}
	for _, v := range cron {
		runs = append(runs, run{"persistence", "cron-write", cronFile, v, openAs(t, v, true)})
	}
	time.Sleep(300 * time.Millisecond) // the last batches reach the plugins
	events := m.stop(t)

	var table []string
	for _, r := range runs {
		for _, backend := range []string{"inproc", "goplugin"} {
			name := r.detector + "-" + backend
			t.Run(r.detector+"/"+r.v.name+"/"+backend, func(t *testing.T) {
				var got []map[string]any
				for _, ev := range events {
					if ev["type"] == "finding" && ev["detector"] == name && pidOf(ev) == r.pid {
						got = append(got, ev)
					}
				}
				table = append(table, fmt.Sprintf("%-12s %-30s %-8s findings=%d", r.detector, r.v.name, backend, len(got)))
				if len(got) != 1 {
					t.Fatalf("%s: %d findings for pid %d (%s), want exactly 1: %v", name, len(got), r.pid, r.v.path, got)
				}
				f := fields(got[0])
				if got[0]["rule"] != r.rule || f["path"] != r.want || f["matched_by"] != r.v.matchedBy {
					t.Errorf("finding %v: want rule %s on %s matched by %s", got[0], r.rule, r.want, r.v.matchedBy)
				}
			})
		}
	}
	sort.Strings(table)
	t.Logf("findings per variant and backend:\n%s", strings.Join(table, "\n"))
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
