package test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/test/testenv"
)

// An operator's rule fires on real behaviour through the real monitor, with
// the same findings on both backends.
func TestRuleFiresOnBothBackends(t *testing.T) {
	testenv.RequireBPF(t)
	dir := t.TempDir()
	ruleFile := filepath.Join(dir, "mine.yaml")
	os.WriteFile(ruleFile, []byte(fmt.Sprintf(`- rule: marker_written
  desc: a marker file opened for writing
  condition: kind == "open" && path.startsWith(%q) && flags %% 4 != 0
  output: "{comm} wrote {path}"
  priority: high
  tags: [T1565.001]
`, dir+"/rule-")), 0o644)
	config := fmt.Sprintf(`{files: [%q], no_default_rules: true}`, ruleFile)
	// The plugin's enclave reads only what it is granted, as its own uid.
	os.Chmod(filepath.Dir(dir), 0o755)
	cfg := writeConfig(t, fmt.Sprintf(`
detectors:
  - {name: rules-inproc, backend: inproc, builtin: rules, config: %s}
  - {name: rules-goplugin, backend: goplugin, plugin: %s, config: %s, enclave: {read: [%q]}}
`, config, testenv.Plugin(t, "rules"), config, ruleFile))
	m := startMonitor(t, "--config", cfg)
	openMarkers(t, dir, "rule", 20, 200*time.Millisecond)
	events := m.stop(t)
	for _, name := range []string{"rules-inproc", "rules-goplugin"} {
		n, techniques := 0, 0
		for _, ev := range events {
			if ev["type"] == "finding" && ev["detector"] == name && ev["rule"] == "marker_written" {
				n++
				if tec, _ := ev["techniques"].([]any); len(tec) == 1 && tec[0] == "T1565.001" {
					techniques++
				}
			}
		}
		if n != 20 || techniques != 20 {
			t.Errorf("%s: %d findings (%d with the technique), want 20", name, n, techniques)
		}
	}
}
