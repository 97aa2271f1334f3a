package wire

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"

	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

// DefinitionToProto converts a definition for the wire.
func DefinitionToProto(d detection.Definition) *Definition {
	p := &Definition{Name: []byte(d.Name), Version: []byte(d.Version), Description: []byte(d.Description),
		Comms: toBytes(d.Filter.Comms), ExcludeComms: toBytes(d.Filter.ExcludeComms), PathPrefixes: toBytes(d.Filter.PathPrefixes)}
	for _, k := range d.Kinds {
		p.Kinds = append(p.Kinds, uint32(k))
	}
	return p
}

// Bounds on a definition from the wire: it is read once per plugin start,
// and what it names ends up in logs and filters.
const (
	maxDefinitionText = 1 << 10 // name, version, description: cut to this
	maxKinds          = 1 << 10 // the rest are dropped
)

// DefinitionFromProto converts a definition from the wire, cutting what is
// over its bounds, in a way that Validate then refuses: a name that was
// cut, a kind that does not fit an event.Kind, a filter list or entry over
// detection's bounds (kept one entry or byte over them, no more).
func DefinitionFromProto(p *Definition) detection.Definition {
	var ref Refused
	d := detection.Definition{Name: string(clip(p.Name, maxDefinitionText, &ref)), Version: string(clip(p.Version, maxDefinitionText, &ref)),
		Description: string(clip(p.Description, maxDefinitionText, &ref)),
		Filter:      detection.Filter{Comms: filterList(p.Comms), ExcludeComms: filterList(p.ExcludeComms), PathPrefixes: filterList(p.PathPrefixes)}}
	for _, k := range p.Kinds[:min(len(p.Kinds), maxKinds)] {
		d.Kinds = append(d.Kinds, event.Kind(min(k, math.MaxUint16))) // not truncated into a valid kind
	}
	return d
}

// filterList is a filter list from the wire, one entry and one byte an
// entry over detection's bounds at most: enough for Validate to refuse it.
func filterList(bs [][]byte) []string {
	if bs == nil {
		return nil
	}
	out := make([]string, 0, min(len(bs), detection.MaxFilterEntries+1))
	for _, b := range bs[:min(len(bs), detection.MaxFilterEntries+1)] {
		out = append(out, string(b[:min(len(b), detection.MaxFilterEntry+1)]))
	}
	return out
}

func toBytes(ss []string) [][]byte {
	if ss == nil {
		return nil
	}
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

// fromBytes converts byte strings ParseResult has bounded.
func fromBytes(bs [][]byte) []string {
	if bs == nil {
		return nil
	}
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}

// ErrForeignEvidence is a finding whose evidence is not an event of the
// batch it answers: the monitor accepts only those.
var ErrForeignEvidence = errors.New("evidence must be events of the batch being answered")

// FindingToProto converts a plugin's finding. Its events travel as indexes
// into batch, each once (the monitor counts a repeated one as a
// violation); an event that is not one of batch's is refused (the monitor
// would refuse it: it cannot tell it from a fabricated one).
func FindingToProto(f detection.Finding, batch []event.Event) (*Finding, error) {
	p := &Finding{Rule: []byte(f.Rule), Severity: uint32(f.Severity), Summary: []byte(f.Summary), Techniques: toBytes(f.Techniques)}
	for _, ev := range f.Events {
		i, ok := indexIn(batch, ev)
		if !ok {
			return nil, fmt.Errorf("finding %s: %w", f.Rule, ErrForeignEvidence)
		}
		if !slices.Contains(p.EventIndexes, uint32(i)) {
			p.EventIndexes = append(p.EventIndexes, uint32(i))
		}
	}
	if len(f.Fields) > 0 {
		b, err := json.Marshal(keepBytes(f.Fields))
		if err != nil {
			return nil, fmt.Errorf("finding %s: fields do not encode as JSON: %w", f.Rule, err)
		}
		p.FieldsJson = b
	}
	return p, nil
}

// indexIn finds ev's position in batch by address.
func indexIn(batch []event.Event, ev *event.Event) (int, bool) {
	for i := range batch {
		if &batch[i] == ev {
			return i, true
		}
	}
	return 0, false
}

// Findings converts a result's findings (bounded by ParseResult) with
// FindingFromProto; one whose fields cannot be read is left out and counted
// in refused.BadFields.
func Findings(res *Result, refused *Refused, sent []*event.Event) []detection.Finding {
	if len(res.Findings) == 0 {
		return nil
	}
	out := make([]detection.Finding, 0, len(res.Findings))
	for _, p := range res.Findings {
		f, err := FindingFromProto(p, sent)
		if err != nil {
			refused.BadFields++
			continue
		}
		out = append(out, f)
	}
	return out
}

// FindingFromProto converts a finding from the plugin; sent are the events
// of the batch it answers, in the order they were encoded. The monitor
// reads findings through ParseResult first, which bounds them.
func FindingFromProto(p *Finding, sent []*event.Event) (detection.Finding, error) {
	f := detection.Finding{Rule: string(p.Rule), Severity: detection.Severity(p.Severity), Summary: string(p.Summary), Techniques: fromBytes(p.Techniques)}
	if len(p.OtherEvents) > 0 || p.OtherCount > 0 {
		return f, fmt.Errorf("finding %s: %w", f.Rule, ErrForeignEvidence)
	}
	for _, i := range p.EventIndexes {
		if int(i) >= len(sent) {
			return f, fmt.Errorf("finding %s points at event %d of a %d-event batch", f.Rule, i, len(sent))
		}
		f.Events = append(f.Events, sent[i])
	}
	if len(p.FieldsJson) > 0 {
		var fields map[string]any
		if err := json.Unmarshal(p.FieldsJson, &fields); err != nil {
			return f, fmt.Errorf("finding %s: fields: %w", f.Rule, err)
		}
		// The object itself is the fields, never a string in BytesKey form:
		// only its values are restored (a field named BytesKey stays one).
		for k, v := range fields {
			fields[k] = restoreBytes(v)
		}
		f.Fields = fields
	}
	return f, nil
}

// BytesKey marks a string of a finding's fields that is not UTF-8: JSON
// cannot carry it, so it travels as {"bulkhead.bytes": "<base64>"} and the
// monitor turns it back into the same bytes.
const BytesKey = "bulkhead.bytes"

// keepBytes returns v with every string that is not valid UTF-8 (in maps,
// slices and string slices) replaced by its BytesKey form; v itself is not
// changed.
func keepBytes(v any) any {
	switch x := v.(type) {
	case string:
		if !utf8.ValidString(x) {
			return map[string]string{BytesKey: base64.StdEncoding.EncodeToString([]byte(x))}
		}
	case []string:
		for _, s := range x {
			if !utf8.ValidString(s) {
				out := make([]any, len(x))
				for i, s := range x {
					out[i] = keepBytes(s)
				}
				return out
			}
		}
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = keepBytes(e)
		}
		return literal(out)
	case map[string]string:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = keepBytes(e)
		}
		return literal(out)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = keepBytes(e)
		}
		return out
	}
	return v
}

// literal keeps a detector's own map that looks like the BytesKey form
// (one key, BytesKey, a string) from being read back as bytes: its string
// is sent in BytesKey form too, which restoreBytes turns back into it.
func literal(m map[string]any) map[string]any {
	if s, ok := m[BytesKey].(string); ok && len(m) == 1 {
		m[BytesKey] = map[string]string{BytesKey: base64.StdEncoding.EncodeToString([]byte(s))}
	}
	return m
}

// restoreBytes undoes keepBytes in decoded JSON, in place.
func restoreBytes(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 1 {
			if s, ok := x[BytesKey].(string); ok {
				if b, err := base64.StdEncoding.DecodeString(s); err == nil {
					return string(b)
				}
			}
		}
		for k, e := range x {
			x[k] = restoreBytes(e)
		}
	case []any:
		for i, e := range x {
			x[i] = restoreBytes(e)
		}
	}
	return v
}
