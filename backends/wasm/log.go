package wasm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/bulkhead-sec/bulkhead/backends/pluginlog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// moduleLog is the module's stdout and stderr: lines re-logged at their
// level (the SDK writes JSON lines; the Go runtime's panic text is plain),
// within a line rate and a byte budget; the rest is dropped and counted.
// It keeps the last lines, to name what a crash said.
type moduleLog struct {
	log   *zap.Logger
	limit *pluginlog.Limiter

	mu      sync.Mutex
	partial []byte
	tail    [4]string
	ntail   int
}

func newModuleLog(log *zap.Logger, linesPerSecond, burst, bytesPerSecond int, onFlood func()) *moduleLog {
	return &moduleLog{log: log, limit: pluginlog.NewLimiter(log, "wasm module", linesPerSecond, burst, bytesPerSecond, onFlood)}
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
	l.limit.Flush()
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
	l.tail[l.ntail%len(l.tail)] = pluginlog.SafeText(string(b[:min(len(b), pluginlog.MaxText)]))
	l.ntail++
	if !l.limit.Allow(len(b)) {
		return
	}
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
		return zapcore.WarnLevel, "wasm module: " + pluginlog.SafeText(string(b)), nil
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
		fields = append(fields, zap.String(pluginlog.SafeText(k), pluginlog.SafeText(s)))
	}
	return level, "wasm module: " + pluginlog.SafeText(msg), fields
}
