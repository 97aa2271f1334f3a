package wire

import (
	"fmt"
	"strings"

	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"google.golang.org/protobuf/encoding/protowire"
)

// Limits bound what a plugin's answer can make the monitor hold. The
// plugin is hostile input: its result is read field by field and nothing
// beyond a bound is ever materialised.
type Limits struct {
	// ResultBytes caps one encoded result (and every other message the
	// monitor receives from the plugin). A bigger one breaks the stream:
	// the plugin is killed for it, as a protocol violation.
	ResultBytes int
	// A batch of n events may have max(FindingsPerBatch, FindingsPerEvent×n)
	// findings; the rest are dropped.
	FindingsPerBatch, FindingsPerEvent int
	// Text fields are cut to these many bytes (the finding is kept: a long
	// path in a summary must not hide it).
	RuleBytes, SummaryBytes, TechniqueBytes, LastErrorBytes int
	// FieldsBytes bounds a finding's fields (JSON); bigger fields are
	// replaced by a note saying so.
	FieldsBytes int
	// Techniques and Evidence (event indexes) per finding; the rest are
	// dropped.
	Techniques, Evidence int
	// A result for a batch of n events may name max(Evidence,
	// EvidencePerEvent×n) events in all its findings, each event at most
	// once per finding: the sinks write every piece of evidence in full,
	// so an index of one byte must not turn into a kilobyte of output
	// thousands of times over. Evidence past that is dropped (the
	// findings are kept).
	EvidencePerEvent int
}

// DefaultLimits are generous for any honest detector.
func DefaultLimits() Limits {
	return Limits{
		ResultBytes:      8 << 20,
		FindingsPerBatch: 64, FindingsPerEvent: 4,
		RuleBytes: 128, SummaryBytes: 4 << 10, TechniqueBytes: 32, LastErrorBytes: 1 << 10,
		FieldsBytes: 64 << 10,
		Techniques:  16, Evidence: 64, EvidencePerEvent: 4,
	}
}

// orDefault fills the zero fields of l from DefaultLimits.
func (l Limits) orDefault() Limits {
	d := DefaultLimits()
	for _, f := range []struct {
		v   *int
		def int
	}{
		{&l.ResultBytes, d.ResultBytes}, {&l.FindingsPerBatch, d.FindingsPerBatch}, {&l.FindingsPerEvent, d.FindingsPerEvent},
		{&l.RuleBytes, d.RuleBytes}, {&l.SummaryBytes, d.SummaryBytes}, {&l.TechniqueBytes, d.TechniqueBytes},
		{&l.LastErrorBytes, d.LastErrorBytes}, {&l.FieldsBytes, d.FieldsBytes}, {&l.Techniques, d.Techniques}, {&l.Evidence, d.Evidence},
		{&l.EvidencePerEvent, d.EvidencePerEvent},
	} {
		if *f.v <= 0 {
			*f.v = f.def
		}
	}
	return l
}

// MaxFindings is how many findings a batch of n events may have.
func (l Limits) MaxFindings(n int) int {
	l = l.orDefault()
	return max(l.FindingsPerBatch, l.FindingsPerEvent*n)
}

// MaxEvidence is how many events all the findings of a batch of n events
// may name together.
func (l Limits) MaxEvidence(n int) int {
	l = l.orDefault()
	return max(l.Evidence, l.EvidencePerEvent*n)
}

// Refused counts what the monitor refused in one result: each is a
// protocol violation of the plugin.
type Refused struct {
	// Findings dropped, by reason.
	TooMany     int // over MaxFindings
	BadSeverity int // not one of detection's severities
	Fabricated  int // evidence that is not an event of the batch
	BadIndex    int // an event index outside the batch
	BadFields   int // fields that are not valid JSON
	Malformed   int // a finding that is not valid protobuf, or has no rule
	// Clipped counts fields cut to their bound, or dropped past a count
	// bound, in findings that were kept.
	Clipped int
	// Evidence counts event indexes dropped from findings that were kept:
	// one the finding already named, one past Limits.Evidence, or one past
	// the result's MaxEvidence.
	Evidence int
	// ErrorCount: the result claimed more errors than the batch had events.
	ErrorCount bool
}

// Findings is how many findings were dropped.
func (r Refused) Findings() int {
	return r.TooMany + r.BadSeverity + r.Fabricated + r.BadIndex + r.BadFields + r.Malformed
}

// Any reports whether anything was refused.
func (r Refused) Any() bool {
	return r.Findings() > 0 || r.Clipped > 0 || r.Evidence > 0 || r.ErrorCount
}

// Kinds is how many kinds of violation the result had (each counts once).
func (r Refused) Kinds() int {
	n := 0
	for _, v := range []int{r.TooMany, r.BadSeverity, r.Fabricated, r.BadIndex, r.BadFields, r.Malformed, r.Clipped, r.Evidence} {
		if v > 0 {
			n++
		}
	}
	if r.ErrorCount {
		n++
	}
	return n
}

// String says what was refused, for the log.
func (r Refused) String() string {
	var parts []string
	for _, p := range []struct {
		n    int
		what string
	}{
		{r.TooMany, "findings over the per-batch limit"}, {r.BadSeverity, "with an invalid severity"},
		{r.Fabricated, "with evidence the monitor never sent"}, {r.BadIndex, "pointing outside the batch"},
		{r.BadFields, "with fields that are not JSON"}, {r.Malformed, "malformed"}, {r.Clipped, "fields cut to their bound"},
		{r.Evidence, "evidence indexes dropped (repeated in a finding, or over the bound)"},
	} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
		}
	}
	if r.ErrorCount {
		parts = append(parts, "an error count above the batch's events")
	}
	return strings.Join(parts, ", ")
}

// ParseResult reads an encoded Result that answers a batch of events
// events, keeping only what the limits allow: at most MaxFindings(events)
// findings, each with its text cut to bound and its evidence checked to be
// indexes into the batch, none twice, MaxEvidence(events) in all. What it
// refuses is counted in the Refused. An error means the bytes are not a
// Result at all.
//
// The findings' bytes alias raw.
func ParseResult(raw []byte, events int, lim Limits) (*Result, Refused, error) {
	lim = lim.orDefault()
	var (
		res     = &Result{}
		ref     Refused
		maxF    = lim.MaxFindings(events)
		lastErr []byte
		ev      = evidence{budget: lim.MaxEvidence(events)}
	)
	err := fields(raw, func(num protowire.Number, typ protowire.Type, v uint64, b []byte) error {
		switch {
		case num == 1 && typ == protowire.VarintType:
			res.Seq = v
		case num == 3 && typ == protowire.VarintType:
			if v > uint64(events) {
				ref.ErrorCount = true
				v = uint64(events)
			}
			res.Errors = uint32(v)
		case num == 4 && typ == protowire.BytesType:
			lastErr = b
		case num == 2 && typ == protowire.BytesType:
			if len(res.Findings) >= maxF {
				ref.TooMany++
				return nil
			}
			if f := parseFinding(b, events, lim, &ev, &ref); f != nil {
				res.Findings = append(res.Findings, f)
			}
		}
		return nil
	})
	if err != nil {
		return nil, ref, fmt.Errorf("result: %w", err)
	}
	res.LastError = clip(lastErr, lim.LastErrorBytes, &ref)
	return res, ref, nil
}

// evidence is what the findings of one result have named so far.
type evidence struct {
	seen   []uint64 // bit i: the finding being read names event i
	budget int      // events the result's findings may still name
}

// parseFinding reads one finding, or counts why it is refused and
// returns nil.
func parseFinding(raw []byte, events int, lim Limits, ev *evidence, ref *Refused) *Finding {
	f := &Finding{}
	var badSev, fabricated, badIndex, clipped bool
	dropped := 0 // evidence indexes
	if ev.seen == nil {
		ev.seen = make([]uint64, (events+63)/64)
	}
	index := func(i uint64) {
		switch {
		case i >= uint64(events):
			badIndex = true
		case ev.seen[i/64]&(1<<(i%64)) != 0, len(f.EventIndexes) >= lim.Evidence, ev.budget == 0:
			dropped++
		default:
			ev.seen[i/64] |= 1 << (i % 64)
			ev.budget--
			f.EventIndexes = append(f.EventIndexes, uint32(i))
		}
	}
	err := fields(raw, func(num protowire.Number, typ protowire.Type, v uint64, b []byte) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			f.Rule = b
		case num == 2 && typ == protowire.VarintType:
			if v > uint64(detection.SeverityCritical) {
				badSev = true
			}
			f.Severity = uint32(v)
		case num == 3 && typ == protowire.BytesType:
			f.Summary = b
		case num == 4 && typ == protowire.VarintType:
			index(v)
		case num == 4 && typ == protowire.BytesType: // packed
			for len(b) > 0 {
				i, n := protowire.ConsumeVarint(b)
				if n < 0 {
					return protowire.ParseError(n)
				}
				index(i)
				b = b[n:]
			}
		case num == 5 && typ == protowire.BytesType:
			fabricated = fabricated || len(b) > 0
		case num == 6 && typ == protowire.VarintType:
			fabricated = fabricated || v > 0
		case num == 7 && typ == protowire.BytesType:
			if len(b) > lim.FieldsBytes {
				f.FieldsJson = fmt.Appendf(nil, `{%q:"fields of %d bytes dropped (limit %d)"}`, RefusedKey, len(b), lim.FieldsBytes)
				clipped = true
			} else {
				f.FieldsJson = b
			}
		case num == 8 && typ == protowire.BytesType:
			if len(f.Techniques) >= lim.Techniques {
				clipped = true
				return nil
			}
			f.Techniques = append(f.Techniques, b)
		}
		return nil
	})
	for _, i := range f.EventIndexes {
		ev.seen[i/64] = 0 // the next finding starts afresh
	}
	refused := err != nil || len(f.Rule) == 0 || fabricated || badIndex || badSev
	if refused {
		ev.budget += len(f.EventIndexes) // the result's other findings may name them
	} else if dropped > 0 {
		ref.Evidence += dropped
	}
	switch {
	case err != nil, len(f.Rule) == 0:
		ref.Malformed++
		return nil
	case fabricated:
		ref.Fabricated++
		return nil
	case badIndex:
		ref.BadIndex++
		return nil
	case badSev:
		ref.BadSeverity++
		return nil
	}
	before := ref.Clipped
	f.Rule = clip(f.Rule, lim.RuleBytes, ref)
	f.Summary = clip(f.Summary, lim.SummaryBytes, ref)
	for i, t := range f.Techniques {
		f.Techniques[i] = clip(t, lim.TechniqueBytes, ref)
	}
	if clipped && ref.Clipped == before {
		ref.Clipped++
	}
	return f
}

// RefusedKey is the field that replaces a finding's fields the monitor
// refused, saying why.
const RefusedKey = "bulkhead.refused"

// clip cuts b to n bytes, saying how much was cut, and counts it.
func clip(b []byte, n int, ref *Refused) []byte {
	if len(b) <= n {
		return b
	}
	ref.Clipped++
	return fmt.Appendf(append([]byte(nil), b[:n]...), "…[%d bytes cut]", len(b)-n)
}

// fields calls fn for each field of a protobuf message, with a varint's
// value or a length-delimited field's bytes; other wire types are skipped.
func fields(b []byte, fn func(num protowire.Number, typ protowire.Type, v uint64, b []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var (
			v   uint64
			val []byte
		)
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			val, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if typ == protowire.VarintType || typ == protowire.BytesType {
			if err := fn(num, typ, v, val); err != nil {
				return err
			}
		}
	}
	return nil
}

// ResultSeq reads which batch a raw Result answers (its last seq field, as
// protobuf reads it), without parsing the rest; ParseResult then reads it
// against that batch. A result that does not parse is an error.
func ResultSeq(raw []byte) (uint64, error) {
	var seq uint64
	err := fields(raw, func(num protowire.Number, typ protowire.Type, v uint64, _ []byte) error {
		if num == 1 && typ == protowire.VarintType {
			seq = v
		}
		return nil
	})
	return seq, err
}
