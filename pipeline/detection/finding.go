package detection

import (
	"fmt"
	"strings"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

// Severity ranks findings.
type Severity uint8

const (
	SeverityInfo Severity = iota
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = []string{"info", "low", "medium", "high", "critical"}

func (s Severity) String() string {
	if int(s) < len(severityNames) {
		return severityNames[s]
	}
	return fmt.Sprintf("severity(%d)", uint8(s))
}

// MarshalText writes the severity's name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a severity's name.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	*s = v
	return err
}

// ParseSeverity reads "info", "low", "medium", "high" or "critical".
func ParseSeverity(name string) (Severity, error) {
	for i, n := range severityNames {
		if strings.EqualFold(n, name) {
			return Severity(i), nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q: use %s", name, strings.Join(severityNames, ", "))
}

// Finding is something a detector reports.
type Finding struct {
	Detector string // set by the monitor
	Rule     string // the detector's rule id, e.g. "shell-from-web-server"
	Severity Severity
	Summary  string // one line for a person
	// Techniques are the MITRE ATT&CK technique ids the finding is evidence
	// of, e.g. "T1059.004" (https://attack.mitre.org/techniques/).
	Techniques []string
	// Events that triggered the finding. A detector may return the event it
	// was given; the monitor copies it before the event's buffer is reused.
	Events []*event.Event
	// Fields are structured details; values must encode as JSON.
	Fields map[string]any
}

// NewFinding is a finding triggered by ev, evidence of the given MITRE
// ATT&CK techniques.
func NewFinding(ev *event.Event, rule string, sev Severity, summary string, techniques ...string) Finding {
	return Finding{Rule: rule, Severity: sev, Summary: summary, Events: []*event.Event{ev}, Techniques: techniques}
}
