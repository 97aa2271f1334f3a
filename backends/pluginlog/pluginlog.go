package pluginlog

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
)

// MaxText bounds a message or a string field a detector logs, once
// escaped.
const MaxText = 1 << 10

// SafeText is s fit for a log read on a terminal: if it has any control
// character (C0, DEL, C1), or bytes that are not UTF-8, it is quoted with
// Go escapes (strconv.Quote); and it is cut to MaxText bytes.
func SafeText(s string) string {
	for i, r := range s {
		if r == utf8.RuneError || !strconv.IsPrint(r) && r != ' ' {
			s = strconv.Quote(s[:min(len(s), 4*MaxText)])
			break
		}
		if i > 4*MaxText {
			break
		}
	}
	if len(s) > MaxText {
		cut := MaxText
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…[" + strconv.Itoa(len(s)-cut) + " bytes cut]"
	}
	return s
}

// ReportEvery is how often a flood's dropped lines are reported.
const ReportEvery = 10 * time.Second

// BurstSeconds: a detector may log this many seconds' worth of bytes at
// once.
const BurstSeconds = 16

// Limiter rate-limits one detector's log lines, in lines and in bytes:
// over either rate a line is dropped and counted, the start of a flood is
// a protocol violation (flooded), and what was dropped is reported every
// ReportEvery. One per detector, across its restarts; safe for concurrent
// use.
type Limiter struct {
	log       *zap.Logger
	who       string // "plugin", "wasm module": the messages' subject
	rate      float64
	burst     float64
	byteRate  float64
	byteBurst float64
	flooded   func()

	mu          sync.Mutex
	tokens      float64
	byteTokens  float64
	last        time.Time
	suppressed  uint64 // since the last report
	lastReport  time.Time
	floodActive bool

	dropped atomic.Uint64 // in all
}

// NewLimiter allows perSecond lines (burst at once) and bytesPerSecond
// bytes (BurstSeconds' worth at once); flooded is called as a flood
// begins.
func NewLimiter(log *zap.Logger, who string, perSecond, burst, bytesPerSecond int, flooded func()) *Limiter {
	bb := float64(bytesPerSecond) * BurstSeconds
	return &Limiter{log: log, who: who, rate: float64(perSecond), burst: float64(burst), tokens: float64(burst),
		byteRate: float64(bytesPerSecond), byteBurst: bb, byteTokens: bb, flooded: flooded}
}

// Allow reports whether a line of n bytes may be logged now; if not it is
// counted as dropped.
func (l *Limiter) Allow(n int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	since := now.Sub(l.last).Seconds()
	l.tokens = min(l.burst, l.tokens+since*l.rate)
	l.byteTokens = min(l.byteBurst, l.byteTokens+since*l.byteRate)
	l.last = now
	cost := min(float64(n), l.byteBurst)
	if l.tokens < 1 || l.byteTokens < cost {
		l.suppressed++
		l.dropped.Add(1)
		if !l.floodActive {
			l.floodActive = true
			l.lastReport = now
			l.flooded()
			l.log.Warn("the "+l.who+" floods its log: its lines over the rate limit are dropped, counted and reported every 10s",
				zap.Float64("lines_per_second", l.rate), zap.Float64("burst", l.burst), zap.Float64("bytes_per_second", l.byteRate))
		}
		l.report(now, false)
		return false
	}
	l.tokens--
	l.byteTokens -= cost
	l.report(now, false)
	return true
}

// report logs the lines dropped since the last report, every ReportEvery
// or at once if final.
func (l *Limiter) report(now time.Time, final bool) {
	if l.suppressed == 0 {
		if !final && now.Sub(l.lastReport) >= ReportEvery {
			l.floodActive = false
		}
		return
	}
	if !final && now.Sub(l.lastReport) < ReportEvery {
		return
	}
	l.log.Warn(l.who+" log lines dropped over the rate limit", zap.Uint64("dropped", l.suppressed), zap.Uint64("dropped_in_all", l.dropped.Load()))
	l.suppressed, l.lastReport = 0, now
}

// Flush reports what was dropped since the last report.
func (l *Limiter) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.report(time.Now(), true)
}

// Dropped is how many lines were dropped in all.
func (l *Limiter) Dropped() uint64 { return l.dropped.Load() }
