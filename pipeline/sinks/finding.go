package sinks

import (
	"strconv"
	"time"

	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

// AppendFindingJSON appends f as one JSON object: "type":"finding", the
// detector, rule, severity, summary, fields, and the triggering events in
// full with their process context. The detector's strings are escaped like
// an event's (a summary that is not UTF-8 gets "summary_b64"; so does a
// string field, as "<key>_b64").
func AppendFindingJSON(b []byte, f *detection.Finding, tb event.Timebase) []byte {
	b = append(b, `{"type":"finding","time":"`...)
	b = findingTime(f, tb).UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `",`...)
	b = appendField(b, "detector", f.Detector)
	b = append(b, ',')
	b = appendField(b, "rule", f.Rule)
	b = append(b, `,"severity":"`...)
	b = append(b, f.Severity.String()...)
	b = append(b, `",`...)
	b = appendField(b, "summary", f.Summary)
	if len(f.Techniques) > 0 {
		b = append(b, `,"techniques":[`...)
		for i, t := range f.Techniques {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, t)
		}
		b = append(b, ']')
	}
	if len(f.Fields) > 0 {
		b = append(b, `,"fields":`...)
		b = appendJSONObject(b, f.Fields, 0)
	}
	b = append(b, `,"events":[`...)
	for i, ev := range f.Events {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendEventJSON(b, ev, tb)
	}
	return append(b, "]}"...)
}

// findingTime is when the first triggering event happened, or now.
func findingTime(f *detection.Finding, tb event.Timebase) time.Time {
	if len(f.Events) > 0 && f.Events[0].KernelTimeNs != 0 {
		return tb.Wall(f.Events[0].KernelTimeNs)
	}
	return time.Now()
}

// WriteFinding encodes f. It returns an error only when f was dropped
// (ErrLost).
func (j *JSON) WriteFinding(f *detection.Finding) error {
	start := j.out.begin()
	j.out.buf = AppendFindingJSON(j.out.buf, f, j.tb)
	j.out.buf = append(j.out.buf, '\n')
	return j.out.finding(start)
}

// WriteFinding formats f as one line, marked FINDING. The detector's
// strings are escaped (appendTextEscaped): a summary cannot end the line or
// forge another.
func (t *Text) WriteFinding(f *detection.Finding) error {
	start := t.out.begin()
	b := findingTime(f, t.tb).AppendFormat(t.out.buf, "15:04:05.000000 ")
	b = append(b, "FINDING  "...)
	b = append(b, f.Severity.String()...)
	b = append(b, ' ')
	b = appendTextEscaped(b, f.Detector)
	b = append(b, '/')
	b = appendTextEscaped(b, f.Rule)
	b = append(b, ": "...)
	b = appendTextEscaped(b, f.Summary)
	if len(f.Techniques) > 0 {
		b = append(b, " ["...)
		for i, t := range f.Techniques {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendTextEscaped(b, t)
		}
		b = append(b, ']')
	}
	if len(f.Events) > 0 {
		b = append(b, " pid="...)
		b = strconv.AppendUint(b, uint64(f.Events[0].PID), 10)
	}
	t.out.buf = append(b, '\n')
	return t.out.finding(start)
}
