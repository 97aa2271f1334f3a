package sdk

import (
	"context"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
)

// The detector contract (see package detect for the full documentation).
type (
	Detector   = detect.Detector
	Definition = detect.Definition
	Filter     = detect.Filter
	Config     = detect.Config
	Finding    = detect.Finding
	Severity   = detect.Severity
)

// Severities, lowest first.
const (
	SeverityInfo     = detect.SeverityInfo
	SeverityLow      = detect.SeverityLow
	SeverityMedium   = detect.SeverityMedium
	SeverityHigh     = detect.SeverityHigh
	SeverityCritical = detect.SeverityCritical
)

// The events a detector receives (see package event for every field).
type (
	Event    = event.Event
	Kind     = event.Kind
	Process  = event.Process
	Ancestor = event.Ancestor
	FileID   = event.FileID
)

// Event kinds.
const (
	KindExec    = event.KindExec
	KindFork    = event.KindFork
	KindExit    = event.KindExit
	KindOpen    = event.KindOpen
	KindConnect = event.KindConnect
	KindSetID   = event.KindSetID
	KindPtrace  = event.KindPtrace
	KindModule  = event.KindModule
	KindBPFProg = event.KindBPFProg
	KindMemfd   = event.KindMemfd
	// File changes, mounts and namespaces, signals to other processes,
	// the inbound network and unusual sockets, rare privileged calls.
	KindFile      = event.KindFile
	KindNamespace = event.KindNamespace
	KindSignal    = event.KindSignal
	KindSocket    = event.KindSocket
	KindSys       = event.KindSys
)

// Redelivered reports whether the events OnEvent is handling were sent
// before, to a process of the plugin that died or hung with them (delivery
// is at least once). See detect.Redelivered.
func Redelivered(ctx context.Context) bool { return detect.Redelivered(ctx) }

// NewFinding is a finding triggered by ev, evidence of the given MITRE
// ATT&CK techniques (e.g. "T1003.008").
//
// Run as a plugin, a detector's findings are bounded by the monitor (see
// docs/faults.md): a batch of n events may have max(64, 4n) findings; a
// summary is cut at 4 KiB, a rule at 128 bytes, a technique at 32; fields
// over 64 KiB of JSON are replaced by a note; a severity must be one of
// the Severity constants; and a finding's Events must be events of the
// batch being handled (the event OnEvent was given, or another of the
// same batch), or the finding is refused. Strings may hold any bytes.
func NewFinding(ev *Event, rule string, sev Severity, summary string, techniques ...string) Finding {
	return detect.NewFinding(ev, rule, sev, summary, techniques...)
}
