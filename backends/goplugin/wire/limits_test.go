package wire

import (
	"bytes"
	"strings"
	"testing"

	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"google.golang.org/protobuf/proto"
)

func marshal(t testing.TB, r *Result) []byte {
	t.Helper()
	b, err := proto.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// seq is the indexes 0 to n-1.
func seq(n int) []uint32 {
	out := make([]uint32, n)
	for i := range out {
		out[i] = uint32(i)
	}
	return out
}

// evidenceFlood is n findings each naming events 0 to per-1.
func evidenceFlood(n, per int) []*Finding {
	out := make([]*Finding, n)
	for i := range out {
		out[i] = &Finding{Rule: []byte("r"), EventIndexes: seq(per)}
	}
	return out
}

func TestParseResultBounds(t *testing.T) {
	ok := func() *Finding {
		return &Finding{Rule: []byte("r"), Severity: 3, Summary: []byte("s"), EventIndexes: []uint32{0}}
	}
	many := func(n int) []*Finding {
		out := make([]*Finding, n)
		for i := range out {
			out[i] = ok()
		}
		return out
	}
	with := func(f func(*Finding)) []*Finding { x := ok(); f(x); return []*Finding{x} }
	for _, c := range []struct {
		name   string
		res    *Result
		events int
		kept   int
		want   Refused
	}{
		{"honest", &Result{Seq: 1, Findings: many(3), Errors: 1, LastError: []byte("e")}, 3, 3, Refused{}},
		{"too many for a small batch", &Result{Findings: many(100)}, 3, 64, Refused{TooMany: 36}},
		{"4 per event for a big batch", &Result{Findings: many(1100)}, 256, 1024, Refused{TooMany: 76}},
		{"bad severity", &Result{Findings: with(func(f *Finding) { f.Severity = 5 })}, 1, 0, Refused{BadSeverity: 1}},
		{"index past the batch", &Result{Findings: with(func(f *Finding) { f.EventIndexes = []uint32{0, 1} })}, 1, 0, Refused{BadIndex: 1}},
		{"other events", &Result{Findings: with(func(f *Finding) { f.OtherEvents = []byte{2, 0}; f.OtherCount = 1 })}, 1, 0, Refused{Fabricated: 1}},
		{"other count alone", &Result{Findings: with(func(f *Finding) { f.OtherCount = 1 })}, 1, 0, Refused{Fabricated: 1}},
		{"no rule", &Result{Findings: with(func(f *Finding) { f.Rule = nil })}, 1, 0, Refused{Malformed: 1}},
		{"long summary", &Result{Findings: with(func(f *Finding) { f.Summary = make([]byte, 5000) })}, 1, 1, Refused{Clipped: 1}},
		{"long rule and summary", &Result{Findings: with(func(f *Finding) { f.Summary = make([]byte, 5000); f.Rule = make([]byte, 200) })}, 1, 1, Refused{Clipped: 2}},
		{"big fields", &Result{Findings: with(func(f *Finding) { f.FieldsJson = make([]byte, 70000) })}, 1, 1, Refused{Clipped: 1}},
		{"many techniques", &Result{Findings: with(func(f *Finding) { f.Techniques = make([][]byte, 20) })}, 1, 1, Refused{Clipped: 1}},
		{"one event named 100 times", &Result{Findings: with(func(f *Finding) { f.EventIndexes = make([]uint32, 100) })}, 1, 1, Refused{Evidence: 99}},
		{"much evidence", &Result{Findings: with(func(f *Finding) { f.EventIndexes = seq(100) })}, 100, 1, Refused{Evidence: 36}},
		{"evidence over the result's bound", &Result{Findings: evidenceFlood(1024, 64)}, 256, 1024, Refused{Evidence: 1024*64 - 4*256}},
		{"evidence of a refused finding is not spent", &Result{Findings: append(with(func(f *Finding) { f.EventIndexes = append(seq(16), 99) }), evidenceFlood(4, 16)...)}, 16, 4, Refused{BadIndex: 1}},
		{"errors above the events", &Result{Errors: 10}, 3, 0, Refused{ErrorCount: true}},
		{"long last error", &Result{LastError: make([]byte, 2000)}, 3, 0, Refused{Clipped: 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, ref, err := ParseResult(marshal(t, c.res), c.events, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Findings) != c.kept || ref != c.want {
				t.Errorf("kept %d, refused %+v; want %d, %+v", len(res.Findings), ref, c.kept, c.want)
			}
			if int(res.Errors) > c.events || len(res.LastError) > 1100 {
				t.Errorf("errors %d, last error %d bytes", res.Errors, len(res.LastError))
			}
			for _, f := range res.Findings {
				if len(f.Summary) > 4200 || len(f.Rule) > 200 || len(f.FieldsJson) > 64<<10 || len(f.Techniques) > 16 || len(f.EventIndexes) > 64 {
					t.Errorf("a finding over its bounds was kept")
				}
			}
		})
	}
	if _, _, err := ParseResult([]byte{0xff, 0xff, 0xff}, 1, DefaultLimits()); err == nil {
		t.Error("garbage parsed")
	}
}

// A string that is not UTF-8 in a finding's fields comes back as the
// same bytes; JSON alone would have replaced them.
func TestFieldsKeepBytes(t *testing.T) {
	batch := []event.Event{{}}
	f := detection.Finding{Rule: "r", Summary: "x\xff\xfe", Events: []*event.Event{&batch[0]},
		Fields: map[string]any{"path": "/tmp/x\xff\xfe", "argv": []string{"a", "\x80b"}, "n": 3, "ok": "plain",
			"nested": map[string]any{"k": "\xc0"}, BytesKey: "looks like ours"}}
	p, err := FindingToProto(f, batch)
	if err != nil {
		t.Fatal(err)
	}
	res, ref, err := ParseResult(marshal(t, &Result{Findings: []*Finding{p}}), 1, DefaultLimits())
	if err != nil || ref.Any() || len(res.Findings) != 1 {
		t.Fatalf("%v %+v", err, ref)
	}
	back, err := FindingFromProto(res.Findings[0], []*event.Event{&batch[0]})
	if err != nil {
		t.Fatal(err)
	}
	argv, _ := back.Fields["argv"].([]any)
	nested, _ := back.Fields["nested"].(map[string]any)
	if back.Summary != f.Summary || back.Fields["path"] != "/tmp/x\xff\xfe" || len(argv) != 2 || argv[1] != "\x80b" ||
		nested["k"] != "\xc0" || back.Fields["ok"] != "plain" || back.Fields["n"] != 3.0 || back.Fields[BytesKey] != "looks like ours" {
		t.Errorf("fields came back as %q", back.Fields)
	}
	if f.Fields["path"] != "/tmp/x\xff\xfe" {
		t.Error("the detector's own fields were changed")
	}
}

func TestForeignEvidenceIsRefusedAtTheSource(t *testing.T) {
	batch, other := []event.Event{{}}, event.Event{}
	if _, err := FindingToProto(detection.Finding{Rule: "r", Events: []*event.Event{&other}}, batch); err == nil || !strings.Contains(err.Error(), "events of the batch") {
		t.Errorf("err %v", err)
	}
}

// FuzzParseResult: any bytes are refused or read within the bounds, and
// every finding ParseResult keeps converts (FindingFromProto) or is
// refused without a panic: the monitor runs both on every answer.
func FuzzParseResult(f *testing.F) {
	f.Add(marshal(f, &Result{Seq: 1, Findings: []*Finding{{Rule: []byte("r"), EventIndexes: []uint32{0}, FieldsJson: []byte(`{"a":1}`)}}}), 2)
	f.Add([]byte{0x12, 0x02, 0x22, 0x00}, 1)
	for _, fields := range []string{`{"bulkhead.bytes":"aGk="}`, `{"a":{"bulkhead.bytes":"/w=="}}`, `[{"bulkhead.bytes":"aGk="}]`, `null`, `"x"`} {
		f.Add(marshal(f, &Result{Seq: 1, Findings: []*Finding{{Rule: []byte("r"), EventIndexes: []uint32{0, 0, 1}, FieldsJson: []byte(fields)}}}), 2)
	}
	f.Fuzz(func(t *testing.T, b []byte, events int) {
		events = max(0, min(events, 4096))
		res, _, err := ParseResult(b, events, DefaultLimits())
		if err != nil {
			return
		}
		if len(res.Findings) > DefaultLimits().MaxFindings(events) || int(res.Errors) > events {
			t.Fatalf("%d findings, %d errors for %d events", len(res.Findings), res.Errors, events)
		}
		sent := make([]*event.Event, events)
		for i := range sent {
			sent[i] = &event.Event{}
		}
		evidence := 0
		for _, p := range res.Findings {
			seen := map[uint32]bool{}
			for _, i := range p.EventIndexes {
				if int(i) >= events || seen[i] {
					t.Fatalf("index %d of %d kept (twice: %v)", i, events, seen[i])
				}
				seen[i] = true
			}
			if evidence += len(p.EventIndexes); evidence > DefaultLimits().MaxEvidence(events) {
				t.Fatalf("%d pieces of evidence for %d events", evidence, events)
			}
			got, err := FindingFromProto(p, sent)
			if err != nil {
				continue
			}
			if len(got.Events) != len(p.EventIndexes) || (len(p.FieldsJson) > 0 && got.Fields == nil && string(bytes.TrimSpace(p.FieldsJson)) != "null") {
				t.Fatalf("finding %q: %d events of %d indexes, fields %q read as %v", got.Rule, len(got.Events), len(p.EventIndexes), p.FieldsJson, got.Fields)
			}
		}
	})
}
