package detect

import (
	"context"

	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

// Detector is a security detector. The same value runs in the monitor's
// process (backend inproc), in a plugin process (backend goplugin) or in
// a wasm module (backend wasm).
//
// OnEvent is called from one goroutine at a time, in event order. The
// event, and every string in it, is only valid until OnEvent returns: keep
// ev.Clone() if you need it later. Findings may point at the event itself.
//
// Its methods:
//
//   - Definition() Definition says what the detector is and which events
//     it wants. It is asked before Init and again after, so a detector may
//     narrow its Kinds and Filter to what its configuration needs.
//   - Init(ctx, cfg Config, log *zap.Logger) error is called once before
//     any event, with the detector's configuration from the monitor's
//     config file.
//   - OnEvent(ctx, ev *event.Event) ([]Finding, error) looks at one event
//     and returns what it found, if anything. An error is logged and
//     counted; it does not stop the stream.
//   - Close(ctx) error is called once at shutdown.
type Detector = detection.Detector

// Definition declares a detector: Name (unique, [a-z0-9_-]+), Version,
// Description, the event Kinds it wants and a Filter. The monitor sends a
// detector only the events its Kinds and Filter let through. Validate
// reports what is wrong with one; KindSet is its kinds as a set.
type Definition = detection.Definition

// Filter narrows the events a detector receives, before they leave the
// monitor. Empty fields let everything through.
//
//   - Comms: only these command names.
//   - ExcludeComms: never these command names.
//   - PathPrefixes: only open events whose path starts with one of these,
//     and exec events whose binary does; other kinds pass. An open
//     matches by the path as passed (made absolute) or by the kernel's
//     path of the file it opened (symlinks followed, no ".."). A regular
//     file with several names (Nlink > 1) passes whatever its name: it may
//     be a watched file under a hard link's name, which only its identity
//     (Open.ID) tells; the detector decides.
//
// A filter is bounded (MaxFilterEntries, MaxFilterEntry, MaxFilterBytes):
// the monitor tests it against every event of the detector's kinds.
// Wants reports whether it lets an event through; Compile makes a Matcher
// that answers the same, faster.
type Filter = detection.Filter

// Matcher is a Filter compiled to test events fast (Filter.Compile). Its
// Wants answers as the Filter's does; it does not change once built, so
// any number of goroutines may share one.
type Matcher = detection.Matcher

// Bounds on a Filter; Definition.Validate refuses a filter over them. The
// persistence detector, the largest here, lists 17 prefixes in 224 bytes.
const (
	MaxFilterEntries = detection.MaxFilterEntries // entries in each of Comms, ExcludeComms and PathPrefixes
	MaxFilterEntry   = detection.MaxFilterEntry   // bytes in one entry: PATH_MAX
	MaxFilterBytes   = detection.MaxFilterBytes   // bytes in all the entries of the three lists
)

// ErrFilterBounds is a filter over MaxFilterEntries, MaxFilterEntry or
// MaxFilterBytes (the same error as detection.ErrFilterBounds, so
// errors.Is matches either).
var ErrFilterBounds = detection.ErrFilterBounds

// Config is a detector's configuration, as JSON. Decode unmarshals it
// into a value, refusing unknown fields; an empty configuration leaves
// the value as it is, so it can hold the defaults.
type Config = detection.Config

// Severity ranks findings. It reads and writes as its name ("info",
// "low", "medium", "high", "critical").
type Severity = detection.Severity

// Severities, lowest first.
const (
	SeverityInfo     = detection.SeverityInfo
	SeverityLow      = detection.SeverityLow
	SeverityMedium   = detection.SeverityMedium
	SeverityHigh     = detection.SeverityHigh
	SeverityCritical = detection.SeverityCritical
)

// ParseSeverity reads "info", "low", "medium", "high" or "critical".
func ParseSeverity(name string) (Severity, error) { return detection.ParseSeverity(name) }

// Finding is something a detector reports:
//
//   - Detector: set by the monitor.
//   - Rule: the detector's rule id, e.g. "shell-from-web-server".
//   - Severity.
//   - Summary: one line for a person.
//   - Techniques: the MITRE ATT&CK technique ids the finding is evidence
//     of, e.g. "T1059.004" (https://attack.mitre.org/techniques/).
//   - Events that triggered the finding. A detector may return the event
//     it was given; the monitor copies it before the event's buffer is
//     reused.
//   - Fields: structured details; values must encode as JSON.
type Finding = detection.Finding

// NewFinding is a finding triggered by ev, evidence of the given MITRE
// ATT&CK techniques.
func NewFinding(ev *event.Event, rule string, sev Severity, summary string, techniques ...string) Finding {
	return detection.NewFinding(ev, rule, sev, summary, techniques...)
}

// Redelivered reports whether the events OnEvent is handling were sent
// before: to a process of the plugin that died or hung with them in
// flight, or in a batch split to find a poison event. Delivery is at least
// once; a detector that must not act twice on one event (count it, alert
// on it) checks this. Run in process, events are never redelivered.
func Redelivered(ctx context.Context) bool { return detection.Redelivered(ctx) }

// WithRedelivered returns ctx marked as carrying redelivered events (the
// SDK does this for a batch the monitor sent again; tests may too).
func WithRedelivered(ctx context.Context) context.Context {
	return detection.WithRedelivered(ctx)
}
