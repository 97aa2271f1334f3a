package ruleset

import (
	"os"
	"testing"

	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
)

// path is the file that was opened: a symlink to /etc/shadow matches the
// default credential rule by the kernel's path, and requested_path keeps
// the name that was passed.
func TestPathIsTheOpenedFile(t *testing.T) {
	raw, err := os.ReadFile("../default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := LoadSources(Source{Name: "default.yaml", Data: raw}, Source{Name: "extra.yaml", Data: []byte(`
- rule: requested_in_tmp
  desc: d
  condition: 'kind == "open" && requested_path.startsWith("/tmp/")'
  output: o
  priority: low
`)})
	if err != nil {
		t.Fatal(err)
	}
	ev := sdktest.Proc{PID: 20, Exe: "/usr/bin/cat"}.Open("/tmp/s", 0, 3)
	ev.Open.FilePath, ev.Open.Ino, ev.Open.Nlink = "/etc/shadow", 7, 1
	if got := ids(s.NewEvaluator().Eval(ev, nil)); got != "credential_file_read,requested_in_tmp" {
		t.Errorf("matched %q", got)
	}
	// A refused open has no kernel path: path is the requested one.
	ev = sdktest.Proc{PID: 20, Exe: "/usr/bin/cat"}.Open("/etc/shadow", 0, -13)
	if got := ids(s.NewEvaluator().Eval(ev, nil)); got != "credential_file_read" {
		t.Errorf("refused open matched %q", got)
	}
}
