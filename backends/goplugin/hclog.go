package goplugin

import (
	"io"
	"log"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapHCLog lets go-plugin log through zap: its own messages, and every line
// a plugin writes to stderr (go-plugin parses the plugin's JSON log lines and
// re-logs them here). One bridge per detector, tagged with its name.
type zapHCLog struct {
	z     *zap.Logger
	name  string
	args  []any
	level hclog.Level
}

func newHCLog(z *zap.Logger) hclog.Logger {
	return &zapHCLog{z: z, level: hclog.Debug}
}

func (l *zapHCLog) fields(args []any) []zap.Field {
	all := append(append([]any(nil), l.args...), args...)
	fs := make([]zap.Field, 0, len(all)/2+1)
	for i := 0; i+1 < len(all); i += 2 {
		key, ok := all[i].(string)
		if !ok {
			key = "arg"
		}
		fs = append(fs, zap.Any(key, all[i+1]))
	}
	if len(all)%2 == 1 {
		fs = append(fs, zap.Any("extra", all[len(all)-1]))
	}
	return fs
}

func (l *zapHCLog) Log(level hclog.Level, msg string, args ...any) {
	if level < l.level {
		return
	}
	var zl zapcore.Level
	switch level {
	case hclog.Trace, hclog.Debug:
		zl = zapcore.DebugLevel
	case hclog.Info, hclog.NoLevel, hclog.DefaultLevel:
		zl = zapcore.InfoLevel
	case hclog.Warn:
		zl = zapcore.WarnLevel
	default:
		zl = zapcore.ErrorLevel
	}
	if ce := l.z.Check(zl, msg); ce != nil {
		ce.Write(l.fields(args)...)
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
