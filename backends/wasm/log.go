package wasm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// maxLogText bounds one message or field of the module's log.
const maxLogText = 1 << 10

// safeText is s fit for a log read on a terminal: Go-quoted if it has any
// control character or bytes that are not UTF-8, and cut to maxLogText.
func safeText(s string) string {
	for i, r := range s {
		if r == utf8.RuneError || !strconv.IsPrint(r) && r != ' ' {
			s = strconv.Quote(s[:min(len(s), 4*maxLogText)])
			break
		}
		if i > 4*maxLogText {
			break
		}
	}
	if len(s) > maxLogText {
		cut := maxLogText
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…[" + strconv.Itoa(len(s)-cut) + " bytes cut]"
	}
	return s
}

// moduleLog is the module's stdout and stderr: lines re-logged at their
// level (the SDK writes JSON lines; the Go runtime's panic text is plain),
// within a line rate and a byte budget; the rest is dropped and counted.
// It keeps the last lines, to name what a crash said.
type moduleLog struct {
	log     *zap.Logger
	onFlood func() // a protocol violation: once per flood

	mu       sync.Mutex
	partial  []byte
	lines    float64 // token buckets
	bytes    float64
	last     time.Time
	rate     float64
	burst    float64
	byteRate float64
	flooding bool
	tail     [4]string
	ntail    int
	dropped  atomic.Uint64
	reported time.Time
}

func newModuleLog(log *zap.Logger, linesPerSecond, burst, bytesPerSecond int, onFlood func()) *moduleLog {
	return &moduleLog{log: log, onFlood: onFlood, rate: float64(linesPerSecond), burst: float64(burst),
		byteRate: float64(bytesPerSecond), lines: float64(burst), bytes: 16 * float64(bytesPerSecond)}
}

// maxLine: a longer line is cut here (its rest dropped).
const maxLine = 16 << 10

func (l *moduleLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if room := maxLine - len(l.partial); room > 0 {
				l.partial = append(l.partial, p[:min(room, len(p))]...)
			}
			break
		}
		if room := maxLine - len(l.partial); room > 0 {
			l.partial = append(l.partial, p[:min(room, i)]...)
		}
		l.line(l.partial)
		l.partial = l.partial[:0]
		p = p[i+1:]
	}
	return n, nil
}

// flush logs a line left without its newline (the module died).
func (l *moduleLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.line(l.partial)
		l.partial = l.partial[:0]
	}
	if d := l.dropped.Load(); d > 0 && !l.reported.IsZero() {
		l.log.Warn("log lines of the wasm module were dropped over the rate limit", zap.Uint64("dropped_so_far", d))
	}
}

// lastLines is what the module last wrote, for a crash's log line.
func (l *moduleLog) lastLines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, l.ntail)
	for i := max(0, l.ntail-len(l.tail)); i < l.ntail; i++ {
		out = append(out, l.tail[i%len(l.tail)])
	}
	return out
}

func (l *moduleLog) line(b []byte) {
	if len(bytes.TrimSpace(b)) == 0 {
		return
	}
	l.tail[l.ntail%len(l.tail)] = safeText(string(b[:min(len(b), maxLogText)]))
	l.ntail++
	now := time.Now()
	if !l.last.IsZero() {
		dt := now.Sub(l.last).Seconds()
		l.lines = min(l.burst, l.lines+dt*l.rate)
		l.bytes = min(16*l.byteRate, l.bytes+dt*l.byteRate)
	}
	l.last = now
	if l.lines < 1 || l.bytes < float64(len(b)) {
		l.dropped.Add(1)
		if !l.flooding {
			l.flooding = true
			l.onFlood()
		}
		if now.Sub(l.reported) > 10*time.Second {
			l.reported = now
			l.log.Warn("the wasm module logs over its rate limit: lines dropped (counted; reported at most every 10s)",
				zap.Uint64("dropped_so_far", l.dropped.Load()))
		}
		return
	}
	l.flooding = false
	l.lines--
	l.bytes -= float64(len(b))
	level, msg, fields := parseLine(b)
	if ce := l.log.Check(level, msg); ce != nil {
		ce.Write(fields...)
	}
}

// parseLine reads one of the SDK's JSON lines (level, msg, logger and at
// most 16 more fields, each cut and escaped); any other line is logged as
// it is, cut and escaped, at warn (the Go runtime's panic text).
func parseLine(b []byte) (zapcore.Level, string, []zap.Field) {
	var m map[string]any
	if len(b) == 0 || b[0] != '{' || json.Unmarshal(b, &m) != nil {
		return zapcore.WarnLevel, "wasm module: " + safeText(string(b)), nil
	}
	level := zapcore.InfoLevel
	if s, ok := m["level"].(string); ok {
		if err := level.UnmarshalText([]byte(s)); err != nil || level > zapcore.ErrorLevel {
			level = zapcore.ErrorLevel // never fatal or panic from a module's word
		}
	}
	msg, _ := m["msg"].(string)
	delete(m, "level")
	delete(m, "msg")
	var fields []zap.Field
	for k, v := range m {
		if len(fields) == 16 {
			fields = append(fields, zap.Int("fields_cut", len(m)-16))
			break
		}
		s, ok := v.(string)
		if !ok {
			s = fmt.Sprint(v)
		}
		switch k {
		case "logger", "ts", "caller", "stacktrace", "detector":
			k = "module_" + k // the monitor's own keys: never two of one name in a line
		}
		fields = append(fields, zap.String(safeText(k), safeText(s)))
	}
	return level, "wasm module: " + safeText(msg), fields
}
