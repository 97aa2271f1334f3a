package goplugin

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"path/filepath"
	"sync"

	"github.com/bulkhead-sec/bulkhead/backends/pluginlog"
	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Bounds on what a plugin's log line can put in the monitor's log.
const (
	maxLogFields = 16 // fields per line: the rest are dropped
	maxLogKey    = 64 // a field name
)

// zapHCLog lets go-plugin log through zap: its own messages about the
// plugin (which can quote the plugin, so they are bounded and escaped too).
// The plugin's stderr does not come through here: the logger go-plugin
// names after the plugin's binary (stderrName) is off, which stops
// go-plugin from parsing the lines (its parser panics on a line such as
// {"@message":1}); it hands each raw line to pluginLog instead.
type zapHCLog struct {
	z          *zap.Logger
	name       string
	stderrName string
	// go-plugin names the program it ran: in an enclave, the launcher.
	// Its messages name the plugin's binary instead.
	program, plugin string
	args            []any
	level           hclog.Level
}

// newHCLog is go-plugin's logger for a plugin whose binary is plugin, run
// as program (the plugin itself, or the enclave launcher).
func newHCLog(z *zap.Logger, program, plugin string) hclog.Logger {
	return &zapHCLog{z: z, level: hclog.Debug, stderrName: filepath.Base(program), program: program, plugin: plugin}
}

func (l *zapHCLog) fields(args []any) []zap.Field {
	all := append(append([]any(nil), l.args...), args...)
	fs := make([]zap.Field, 0, min(len(all)/2+1, maxLogFields))
	for i := 0; i+1 < len(all) && len(fs) < maxLogFields; i += 2 {
		key, ok := all[i].(string)
		if !ok {
			key = "arg"
		}
		v := all[i+1]
		if p, ok := v.(string); ok && p == l.program && l.program != l.plugin {
			v = l.plugin
		}
		fs = append(fs, logField(key, v))
	}
	if len(all)%2 == 1 && len(fs) < maxLogFields {
		fs = append(fs, logField("extra", all[len(all)-1]))
	}
	return fs
}

func (l *zapHCLog) Log(level hclog.Level, msg string, args ...any) {
	if level < l.level || l.level == hclog.Off {
		return
	}
	if ce := l.z.Check(zapLevel(level), pluginlog.SafeText(msg)); ce != nil {
		ce.Write(l.fields(args)...)
	}
}

func zapLevel(level hclog.Level) zapcore.Level {
	switch level {
	case hclog.Trace, hclog.Debug:
		return zapcore.DebugLevel
	case hclog.Info, hclog.NoLevel, hclog.DefaultLevel:
		return zapcore.InfoLevel
	case hclog.Warn:
		return zapcore.WarnLevel
	default:
		return zapcore.ErrorLevel
	}
}

func (l *zapHCLog) Trace(msg string, args ...any) { l.Log(hclog.Trace, msg, args...) }
func (l *zapHCLog) Debug(msg string, args ...any) { l.Log(hclog.Debug, msg, args...) }
func (l *zapHCLog) Info(msg string, args ...any)  { l.Log(hclog.Info, msg, args...) }
func (l *zapHCLog) Warn(msg string, args ...any)  { l.Log(hclog.Warn, msg, args...) }
func (l *zapHCLog) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }
func (l *zapHCLog) IsTrace() bool                 { return l.level <= hclog.Trace }
func (l *zapHCLog) IsDebug() bool                 { return l.level <= hclog.Debug }
func (l *zapHCLog) IsInfo() bool                  { return l.level <= hclog.Info }
func (l *zapHCLog) IsWarn() bool                  { return l.level <= hclog.Warn }
func (l *zapHCLog) IsError() bool                 { return l.level <= hclog.Error }
func (l *zapHCLog) ImpliedArgs() []any            { return l.args }
func (l *zapHCLog) Name() string                  { return l.name }
func (l *zapHCLog) SetLevel(level hclog.Level)    { l.level = level }
func (l *zapHCLog) GetLevel() hclog.Level         { return l.level }

func (l *zapHCLog) With(args ...any) hclog.Logger {
	c := *l
	c.args = append(append([]any(nil), l.args...), args...)
	return &c
}

func (l *zapHCLog) Named(name string) hclog.Logger {
	c := *l
	if (name == l.stderrName || name == "stdio") && l.name == "" {
		// go-plugin's reader of the plugin's stderr: off, see zapHCLog.
		// Its stdio client, whose stream the monitor refuses
		// (wire.DialOptions), would say so at every start: off too.
		c.level = hclog.Off
	}
	if c.name != "" {
		name = c.name + "." + name
	}
	c.name = name
	c.z = l.z.Named(name)
	return &c
}

func (l *zapHCLog) ResetNamed(name string) hclog.Logger {
	c := *l
	c.name = name
	c.z = l.z.Named(name)
	return &c
}

func (l *zapHCLog) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return zap.NewStdLog(l.z)
}

func (l *zapHCLog) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return zap.NewStdLog(l.z).Writer()
}

// pluginLog turns the lines a plugin writes to stderr into the monitor's
// log: hclog JSON lines ({"@level", "@message", fields}) at their level,
// anything else as text (at error level from a Go panic or fatal error on).
// go-plugin writes each line to the process's stderr writer (config.Stderr),
// then a newline; a line longer than go-plugin's buffer arrives in pieces,
// of which only the first is kept. Every message and field is bounded and escaped (no terminal
// control or invalid UTF-8 reaches the log), and lines are rate-limited per
// plugin, in lines and in bytes: over either rate they are dropped
// unparsed and counted, and the count is logged. One per Backend, across
// the plugin's restarts.
type pluginLog struct {
	z     *zap.Logger
	limit *pluginlog.Limiter

	mu      sync.Mutex
	inPanic bool
}

func newPluginLog(z *zap.Logger, perSecond, burst, bytesPerSecond int, flooded func()) *pluginLog {
	return &pluginLog{z: z, limit: pluginlog.NewLimiter(z, "plugin", perSecond, burst, bytesPerSecond, flooded)}
}

// stderr is the writer for one plugin process's stderr (go-plugin's
// config.Stderr): the processes of one plugin share its pluginLog.
func (p *pluginLog) stderr() io.Writer { return &stderrLines{p: p} }

// stderrLines keeps one process's place in its lines.
type stderrLines struct {
	p      *pluginLog
	inLine bool // a long line's next pieces follow
}

func (w *stderrLines) Write(b []byte) (int, error) {
	n := len(b)
	if n == 1 && b[0] == '\n' {
		w.inLine = false
		return n, nil
	}
	if w.inLine || n == 0 {
		return n, nil // the rest of a line cut by go-plugin's buffer
	}
	w.inLine = true
	w.p.write(b)
	return n, nil
}

// write logs a line, or drops and counts it over the rate. A line costs
// its bytes as read (up to go-plugin's 64 KiB buffer), which bound what it
// puts in the log once cut and escaped.
func (p *pluginLog) write(b []byte) {
	if !p.limit.Allow(len(b)) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.line(b)
}

// flush reports what was dropped since the last report.
func (p *pluginLog) flush() { p.limit.Flush() }

// line logs one line.
func (p *pluginLog) line(b []byte) {
	level := zapcore.DebugLevel
	var (
		msg    string
		fields []zap.Field
	)
	entry := map[string]any{}
	if len(b) > 0 && b[0] == '{' && json.Unmarshal(b, &entry) == nil {
		m, _ := entry["@message"].(string)
		msg = m
		if s, ok := entry["@level"].(string); ok {
			level = zapLevel(hclog.LevelFromString(s))
		}
		if mod, ok := entry["@module"].(string); ok {
			fields = append(fields, zap.String("module", pluginlog.SafeText(mod)))
		}
		delete(entry, "@message")
		delete(entry, "@level")
		delete(entry, "@timestamp")
		delete(entry, "@module")
		for k, v := range entry {
			if len(fields) >= maxLogFields {
				break
			}
			fields = append(fields, logField(k, v))
		}
	} else {
		msg = string(b)
		switch {
		case bytes.HasPrefix(b, []byte("[ERROR]")):
			level = zapcore.ErrorLevel
		case bytes.HasPrefix(b, []byte("[WARN]")):
			level = zapcore.WarnLevel
		case bytes.HasPrefix(b, []byte("[INFO]")):
			level = zapcore.InfoLevel
		case bytes.HasPrefix(b, []byte("panic: ")), bytes.HasPrefix(b, []byte("fatal error: ")):
			p.inPanic = true
		}
		if p.inPanic {
			level = zapcore.ErrorLevel
		}
	}
	if ce := p.z.Check(level, pluginlog.SafeText(msg)); ce != nil {
		ce.Write(fields...)
	}
}

// logField is a field of a plugin's log line, bounded and escaped.
func logField(key string, v any) zap.Field {
	key = pluginlog.SafeText(key)
	if len(key) > maxLogKey {
		key = key[:maxLogKey]
	}
	switch x := v.(type) {
	case string:
		return zap.String(key, pluginlog.SafeText(x))
	case error:
		return zap.String(key, pluginlog.SafeText(x.Error()))
	case bool, float64, int, int64, uint64, nil:
		return zap.Any(key, x)
	}
	raw, err := json.Marshal(v)
	if err != nil || len(raw) > pluginlog.MaxText {
		return zap.String(key, pluginlog.SafeText(string(raw)))
	}
	return zap.Any(key, safeValue(v))
}

// safeValue escapes the strings of a decoded JSON value (whose size is
// already bounded).
func safeValue(v any) any {
	switch x := v.(type) {
	case string:
		return pluginlog.SafeText(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = safeValue(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[pluginlog.SafeText(k)] = safeValue(e)
		}
		return out
	}
	return v
}
