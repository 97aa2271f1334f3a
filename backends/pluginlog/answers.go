package pluginlog

import (
	"sync/atomic"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/wire"
	"go.uber.org/zap"
)

// Answers counts what a detector's answers carried besides the findings
// kept, and logs each kind at most every 10 seconds: the errors the
// detector reported, and what broke the protocol. Violations also counts
// the backend's other breaches (a bad start, a log line past its bounds).
type Answers struct {
	Errors, Violations, FindingsRefused atomic.Uint64

	errLog, violationLog backends.Every
}

// Errored counts the n errors (events) a result reported, last the last.
func (a *Answers) Errored(n uint32, last []byte, log *zap.Logger) {
	if n == 0 {
		return
	}
	a.Errors.Add(uint64(n))
	if a.errLog.Allow(10 * time.Second) {
		log.Warn("the detector returned errors (counted; logged at most every 10s)", zap.Uint32("in_batch", n),
			zap.String("last", SafeText(string(last))), zap.Uint64("errors_so_far", a.Errors.Load()))
	}
}

// Refused counts what a result broke: one protocol violation per kind of
// breach, and every finding dropped (kept were kept). who names the
// detector as it runs: "detector plugin", "detector's wasm module".
func (a *Answers) Refused(r wire.Refused, kept int, who string, log *zap.Logger) {
	if !r.Any() {
		return
	}
	a.Violations.Add(uint64(r.Kinds()))
	a.FindingsRefused.Add(uint64(r.Findings()))
	if a.violationLog.Allow(10 * time.Second) {
		log.Warn("the "+who+" broke the protocol: what was over its bounds was dropped (counted; logged at most every 10s)",
			zap.String("refused", r.String()), zap.Int("findings_kept", kept),
			zap.Uint64("violations_so_far", a.Violations.Load()), zap.Uint64("findings_refused_so_far", a.FindingsRefused.Load()))
	}
}
