package wire

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/sinks"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// The attacks in this file are the bytes a hostile plugin writes on the
// stream, built field by field (as plugins/rogue does), read the way the
// monitor reads them: gRPC's codec into an InResult, ParseResult against
// the batch, the batch decoded again and every finding converted by
// FindingFromProto (goplugin's Backend.result and findingsOf).

// rawFinding is one finding as a hostile plugin encodes it.
type rawFinding struct {
	rule    string
	indexes []uint64 // sent unpacked, one field each, duplicates and all
	fields  string   // fields_json as sent; "" for none
}

// rawResult encodes a Result answering batch seq.
func rawResult(seq uint64, fs ...rawFinding) []byte {
	b := protowire.AppendTag(nil, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, seq)
	for _, f := range fs {
		m := protowire.AppendTag(nil, 1, protowire.BytesType)
		m = protowire.AppendString(m, f.rule)
		for _, i := range f.indexes {
			m = protowire.AppendTag(m, 4, protowire.VarintType)
			m = protowire.AppendVarint(m, i)
		}
		if f.fields != "" {
			m = protowire.AppendTag(m, 7, protowire.BytesType)
			m = protowire.AppendString(m, f.fields)
		}
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, m)
	}
	return b
}

// monitorReads reads a plugin's answer to batch as the monitor does. A
// finding FindingFromProto refuses is counted as BadFields, as findingsOf
// counts it.
func monitorReads(t testing.TB, raw []byte, batch []*event.Event, lim Limits) ([]detection.Finding, Refused) {
	t.Helper()
	var in InResult
	if err := Codec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(raw)}, &in); err != nil {
		t.Fatal(err)
	}
	res, ref, err := ParseResult(in.Raw, len(batch), lim)
	if err != nil {
		t.Fatalf("the result was not read: %v", err)
	}
	events, err := Decode(encode(batch))
	if err != nil {
		t.Fatal(err)
	}
	sent := ptrs(events)
	var out []detection.Finding
	for _, p := range res.Findings {
		f, err := FindingFromProto(p, sent)
		if err != nil {
			ref.BadFields++
			continue
		}
		out = append(out, f)
	}
	return out, ref
}

// Fields that are, at their top level, in the form that carries bytes
// that are not UTF-8 ({"bulkhead.bytes": "<base64>"}) crashed the monitor
// (an unchecked type assertion on what restoring them returned). The
// object is the finding's fields: it is kept as a field of that name.
func TestAttackFieldsInBytesFormDoNotCrash(t *testing.T) {
	batch := benchBatch(2)
	for _, c := range []struct {
		name, fields string
		refused      bool
		want         map[string]any
	}{
		{"top-level bytes form", `{"bulkhead.bytes":"aGk="}`, false, map[string]any{BytesKey: "aGk="}},
		{"top-level, not base64", `{"bulkhead.bytes":"!!"}`, false, map[string]any{BytesKey: "!!"}},
		{"top-level, not a string", `{"bulkhead.bytes":7}`, false, map[string]any{BytesKey: 7.0}},
		{"nested bytes form", `{"p":{"bulkhead.bytes":"/3g="}}`, false, map[string]any{"p": "\xffx"}},
		{"nested in a list", `{"p":[{"bulkhead.bytes":"/w=="},1]}`, false, map[string]any{"p": []any{"\xff", 1.0}}},
		{"null", `null`, false, map[string]any(nil)},
		{"a string", `"aGk="`, true, nil},
		{"a list", `[{"bulkhead.bytes":"aGk="}]`, true, nil},
		{"not JSON", `{"bulkhead.bytes":`, true, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			raw := rawResult(1, rawFinding{rule: "hostile", indexes: []uint64{0}, fields: c.fields},
				rawFinding{rule: "honest", indexes: []uint64{1}})
			fs, ref := monitorReads(t, raw, batch, DefaultLimits())
			if c.refused {
				if len(fs) != 1 || fs[0].Rule != "honest" || ref != (Refused{BadFields: 1}) {
					t.Fatalf("kept %d findings, refused %+v: want the hostile one refused as BadFields, the honest one kept", len(fs), ref)
				}
				return
			}
			if len(fs) != 2 || ref.Any() {
				t.Fatalf("kept %d findings, refused %+v: want both kept", len(fs), ref)
			}
			if !reflect.DeepEqual(fs[0].Fields, c.want) {
				t.Errorf("fields %#v, want %#v", fs[0].Fields, c.want)
			}
		})
	}
}

// An honest detector may name a field "bulkhead.bytes", at any level: its
// fields come back as they were, through the SDK's encoding (FindingToProto)
// and the monitor's path.
func TestFieldsNamedLikeTheBytesFormRoundTrip(t *testing.T) {
	batch := benchBatch(1)
	for _, fields := range []map[string]any{
		{BytesKey: "aGk="},
		{BytesKey: "\xff"},
		{BytesKey: map[string]any{BytesKey: "aGk="}},
		{"nested": map[string]any{BytesKey: "aGk="}},
		{"nested": map[string]string{BytesKey: "/w=="}},
		{"list": []any{map[string]any{BytesKey: "aGk="}, "\x80"}},
		{BytesKey: "aGk=", "other": 1.0},
	} {
		b, _ := json.Marshal(keepBytes(fields))
		t.Run(string(b), func(t *testing.T) {
			own := []event.Event{*batch[0]}
			p, err := FindingToProto(detection.Finding{Rule: "r", Events: []*event.Event{&own[0]}, Fields: fields}, own)
			if err != nil {
				t.Fatal(err)
			}
			raw := rawResult(1, rawFinding{rule: "r", indexes: []uint64{0}, fields: string(p.FieldsJson)})
			fs, ref := monitorReads(t, raw, batch, DefaultLimits())
			if len(fs) != 1 || ref.Any() {
				t.Fatalf("kept %d, refused %+v", len(fs), ref)
			}
			if want := jsonView(fields); !reflect.DeepEqual(fs[0].Fields, want) {
				t.Errorf("fields came back as %#v, want %#v", fs[0].Fields, want)
			}
		})
	}
}

// jsonView is fields as JSON gives them back (numbers as float64, maps as
// map[string]any), with strings that are not UTF-8 kept as they are.
func jsonView(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonView(e)
		}
		return out
	case map[string]string:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = e
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonView(e)
		}
		return out
	}
	return v
}

// jsonBytes is how much the JSON sink writes for fs.
func jsonBytes(fs []detection.Finding) int {
	var b []byte
	n := 0
	for i := range fs {
		b = sinks.AppendFindingJSON(b[:0], &fs[i], event.Timebase{})
		n += len(b) + 1
	}
	return n
}

// One batch of 256 events answered with findings that each name many
// events, or the same event many times: the sinks write every piece of
// evidence in full, so each index of a byte or two became a kilobyte of
// output (1,024 findings × 64 indexes, a 70 KB answer: 313 MB of JSON).
// Each finding names an event once, the result 4 × 256 events in all;
// what is over is dropped and counted, the findings are kept. The honest
// answer beside it, one finding per event, is the yardstick.
func TestAttackEvidenceAmplification(t *testing.T) {
	const n = 256
	batch := benchBatch(n)
	lim := DefaultLimits()
	honest := make([]rawFinding, n)
	for i := range honest {
		honest[i] = rawFinding{rule: "honest", indexes: []uint64{uint64(i)}}
	}
	fs, ref := monitorReads(t, rawResult(1, honest...), batch, lim)
	if len(fs) != n || ref.Any() {
		t.Fatalf("honest answer: kept %d, refused %+v", len(fs), ref)
	}
	yardstick := jsonBytes(fs)

	spread := func(first int) []uint64 { // 64 distinct events from first on
		out := make([]uint64, 64)
		for i := range out {
			out[i] = uint64((first + i) % n)
		}
		return out
	}
	for _, c := range []struct {
		name    string
		finding func(i int) rawFinding
	}{
		{"64 distinct events per finding", func(i int) rawFinding { return rawFinding{rule: "amp", indexes: spread(i)} }},
		{"one event 64 times per finding", func(i int) rawFinding { return rawFinding{rule: "amp", indexes: make([]uint64, 64)} }},
		{"one event 10,000 times in one finding", func(i int) rawFinding {
			if i > 0 {
				return rawFinding{rule: "amp", indexes: []uint64{uint64(i % n)}}
			}
			return rawFinding{rule: "amp", indexes: make([]uint64, 10_000)}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			hostile := make([]rawFinding, lim.MaxFindings(n))
			sent := 0
			for i := range hostile {
				hostile[i] = c.finding(i)
				sent += len(hostile[i].indexes)
			}
			raw := rawResult(1, hostile...)
			fs, ref := monitorReads(t, raw, batch, lim)
			evidence := 0
			for _, f := range fs {
				seen := map[*event.Event]bool{}
				for _, ev := range f.Events {
					if seen[ev] {
						t.Fatalf("finding names an event twice")
					}
					seen[ev] = true
				}
				evidence += len(f.Events)
			}
			out := jsonBytes(fs)
			t.Logf("answer %d bytes, %d indexes: kept %d findings naming %d events, refused %s; JSON %d bytes (honest answer %d)",
				len(raw), sent, len(fs), evidence, ref, out, yardstick)
			if len(fs) != len(hostile) {
				t.Errorf("kept %d of %d findings: want them kept, their evidence cut", len(fs), len(hostile))
			}
			if evidence > lim.MaxEvidence(n) || ref.Evidence != sent-evidence || ref.Kinds() != 1 {
				t.Errorf("%d pieces of evidence kept (bound %d), refused %+v: want the %d others counted", evidence, lim.MaxEvidence(n), ref, sent-evidence)
			}
			if out > 5*yardstick {
				t.Errorf("%d bytes of JSON: over 5× the honest answer's %d", out, yardstick)
			}
		})
	}
}

// The SDK sends an event a detector names twice once: an honest plugin
// is never counted for it.
func TestSDKSendsEvidenceOnce(t *testing.T) {
	batch := make([]event.Event, 3)
	p, err := FindingToProto(detection.Finding{Rule: "r", Events: []*event.Event{&batch[1], &batch[1], &batch[0], &batch[1]}}, batch)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(p.EventIndexes) != "[1 0]" {
		t.Fatalf("indexes %v, want [1 0]", p.EventIndexes)
	}
}
