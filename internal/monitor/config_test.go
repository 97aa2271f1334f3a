package monitor

import (
	"bytes"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/bulkhead-sec/bulkhead/internal/config"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// The shipped library config loads, and names every library detector.
func TestShippedConfigLoads(t *testing.T) {
	c, err := config.Load("../../configs/detectors.yaml", BuiltinNames())
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, d := range c.Detectors {
		names[d.Name] = true
		if _, ok := Builtins()[d.Name]; !ok {
			t.Errorf("%s is not a builtin: it could not run on inproc", d.Name)
		}
	}
	for _, want := range []string{"webshell", "credaccess", "tmpexec", "privesc", "kernelload", "ptrace", "outbound", "persistence", "rules"} {
		if !names[want] {
			t.Errorf("configs/detectors.yaml lacks %s", want)
		}
	}
}

// A plugin chooses its version: whatever bytes it holds (terminal
// escapes, a C1 CSI, DEL, bytes that are not UTF-8, a forged log line)
// reach neither the JSON log nor a terminal's console log raw.
func TestStartedLogEscapesThePluginsVersion(t *testing.T) {
	hostile := "1.0\x1b]0;pwned\x07\u009b2J\x7f\xff\n{\"level\":\"info\",\"msg\":\"forged\"}"
	for _, console := range []bool{false, true} {
		var buf bytes.Buffer
		// As bulkhead logs when stderr is not a terminal: JSON.
		encCfg := zap.NewProductionEncoderConfig()
		encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
		log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(encCfg), zapcore.AddSync(&buf), zapcore.InfoLevel))
		if console {
			encCfg := zap.NewProductionEncoderConfig()
			log = zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(encCfg), zapcore.AddSync(&buf), zapcore.InfoLevel))
		}
		logStarted(log, "x", "goplugin", detect.Definition{Name: "x", Version: hostile}, 42, nil)
		log.Sync()
		out := buf.String()
		if strings.Count(out, "\n") != 1 {
			t.Errorf("console=%v: the version forged a line:\n%s", console, out)
		}
		for i, r := range strings.TrimSuffix(out, "\n") {
			if r == utf8.RuneError || (!unicode.IsPrint(r) && r != '\t') {
				t.Fatalf("console=%v: %U raw at byte %d of %q", console, r, i, out)
			}
		}
		if !strings.Contains(out, `1.0\\x1b]0;pwned\\a\\u009b2J\\x7f\\xff\\n{`) && !strings.Contains(out, `1.0\x1b]0;pwned\a\u009b2J\x7f\xff\n{`) {
			t.Errorf("console=%v: the version is not there, escaped:\n%s", console, out)
		}
	}
}
