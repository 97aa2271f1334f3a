package progress

import (
	"bytes"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPlainLinesPerStep(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, false, 4*time.Second)
	b.Step("first", time.Second)
	b.Step("second", 3*time.Second)
	b.Printf("a note\n")
	b.Finish()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("want 4 lines, got %q", lines)
	}
	if !strings.HasPrefix(lines[0], "[  0% 0:00] first") || !strings.Contains(lines[1], " 25% ") || !strings.HasSuffix(lines[1], "second") {
		t.Errorf("steps not reported by expected work: %q", lines[:2])
	}
	if lines[2] != "a note" || !strings.HasPrefix(lines[3], "done: 2 steps") {
		t.Errorf("got %q", lines[2:])
	}
	if strings.Contains(buf.String(), "\x1b") {
		t.Error("escape codes off a terminal")
	}
}

func TestTerminalRedrawsInPlace(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, true, time.Second)
	b.Step("only", time.Second)
	b.Finish()
	out := buf.String()
	if !strings.Contains(out, "\r\x1b[K[") || !strings.Contains(out, "only") || !strings.HasSuffix(out, "done: 1 steps in 0:00\n") {
		t.Errorf("got %q", out)
	}
}

// A measured bar shows the share its measure gives, on a terminal only.
func TestMeasured(t *testing.T) {
	var done atomic.Int64
	var buf bytes.Buffer
	b := NewMeasured(&buf, true, "replaying x", func() float64 { return float64(done.Load()) / 100 })
	done.Store(40)
	b.Printf("a note\n") // redraws the bar
	b.Finish()
	if out := buf.String(); !strings.Contains(out, "a note\n") || !strings.Contains(out, " 40%") || !strings.Contains(out, "replaying x") || !strings.HasSuffix(out, "\r\x1b[K") {
		t.Errorf("got %q", out)
	}
	buf.Reset()
	b = NewMeasured(&buf, false, "replaying x", func() float64 { return 1 })
	b.Finish()
	if buf.Len() != 0 {
		t.Errorf("off a terminal: %q", buf.String())
	}
}
