package wire

import (
	"encoding/json"
	"fmt"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
)

// DefinitionToProto converts a definition for the wire.
func DefinitionToProto(d detect.Definition) *Definition {
	p := &Definition{Name: d.Name, Version: d.Version, Description: d.Description,
		Comms: d.Filter.Comms, ExcludeComms: d.Filter.ExcludeComms, PathPrefixes: d.Filter.PathPrefixes}
	for _, k := range d.Kinds {
		p.Kinds = append(p.Kinds, uint32(k))
	}
	return p
}

// DefinitionFromProto converts a definition from the wire.
func DefinitionFromProto(p *Definition) detect.Definition {
	d := detect.Definition{Name: p.Name, Version: p.Version, Description: p.Description,
		Filter: detect.Filter{Comms: p.Comms, ExcludeComms: p.ExcludeComms, PathPrefixes: p.PathPrefixes}}
	for _, k := range p.Kinds {
		d.Kinds = append(d.Kinds, event.Kind(k))
	}
	return d
}

// FindingToProto converts a plugin's finding. Events from batch travel as
// indexes; any other event is encoded whole.
func FindingToProto(f detect.Finding, batch []event.Event) (*Finding, error) {
	p := &Finding{Rule: f.Rule, Severity: uint32(f.Severity), Summary: f.Summary, Techniques: f.Techniques}
	var other *Encoder
	for _, ev := range f.Events {
		if i, ok := indexIn(batch, ev); ok {
			p.EventIndexes = append(p.EventIndexes, uint32(i))
			continue
		}
		if other == nil {
			other = NewEncoder()
		}
		other.Add(ev)
	}
	if other != nil {
		p.OtherEvents = append([]byte(nil), other.Bytes()...)
		p.OtherCount = other.Count()
	}
	if len(f.Fields) > 0 {
		b, err := json.Marshal(f.Fields)
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

// FindingFromProto converts a finding from the plugin; sent are the events
// of the batch it answers, in the order they were encoded.
func FindingFromProto(p *Finding, sent []*event.Event) (detect.Finding, error) {
	f := detect.Finding{Rule: p.Rule, Severity: detect.Severity(p.Severity), Summary: p.Summary, Techniques: p.Techniques}
	for _, i := range p.EventIndexes {
		if int(i) >= len(sent) {
			return f, fmt.Errorf("finding %s points at event %d of a %d-event batch", p.Rule, i, len(sent))
		}
		f.Events = append(f.Events, sent[i])
	}
	if p.OtherCount > 0 {
		others, err := Decode(p.OtherEvents)
		if err != nil {
			return f, fmt.Errorf("finding %s: %w", p.Rule, err)
		}
		for i := range others {
			f.Events = append(f.Events, &others[i])
		}
	}
	if len(p.FieldsJson) > 0 {
		if err := json.Unmarshal(p.FieldsJson, &f.Fields); err != nil {
			return f, fmt.Errorf("finding %s: fields: %w", p.Rule, err)
		}
	}
	return f, nil
}
