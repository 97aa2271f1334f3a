package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-sec/bulkhead/test/testenv"
)

// Without the privileges BPF needs, run says so before it starts any
// plugin, and record before it creates its output (an empty file would
// refuse the retry). As root the test drops to nobody with setpriv.
func TestNoPrivilegesSaysSoFirst(t *testing.T) {
	out := filepath.Join(t.TempDir(), "rec.bhrec")
	os.Chmod(filepath.Dir(out), 0o777)
	for _, args := range [][]string{
		{"run", "--config", "../../configs/detectors.yaml"},
		{"record", "--output", out},
	} {
		var stdout, stderr bytes.Buffer
		var code int
		if os.Geteuid() == 0 {
			setpriv, err := exec.LookPath("setpriv")
			if err != nil {
				t.Skip("as root this test needs setpriv to drop privileges")
			}
			cmd := exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", testenv.Binary(t)}, args...)...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				code = cmd.ProcessState.ExitCode()
			}
		} else {
			code = realMain(args, &stdout, &stderr)
		}
		if code == 0 || !strings.Contains(stderr.String(), "privileges: bulkhead loads BPF programs and needs root") {
			t.Errorf("%s: exit %d, stderr:\n%s", args[0], code, stderr.String())
		}
		if strings.Contains(stderr.String(), "detector started") || strings.Count(stderr.String(), "\n") > 2 {
			t.Errorf("%s: logged before saying it needs root:\n%s", args[0], stderr.String())
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("record left %s behind (%v)", out, err)
	}
}
