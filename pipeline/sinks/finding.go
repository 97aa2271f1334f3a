package sinks

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
)

// AppendFindingJSON appends f as one JSON object: "type":"finding", the
// detector, rule, severity, summary, fields, and the triggering events in
// full with their process context.
func AppendFindingJSON(b []byte, f *detect.Finding, tb event.Timebase) []byte {
	b = append(b, `{"type":"finding","time":"`...)
	b = findingTime(f, tb).UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","detector":`...)
	b = appendString(b, f.Detector)
	b = append(b, `,"rule":`...)
	b = appendString(b, f.Rule)
	b = append(b, `,"severity":"`...)
	b = append(b, f.Severity.String()...)
	b = append(b, `","summary":`...)
	b = appendString(b, f.Summary)
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
		if fields, err := json.Marshal(f.Fields); err == nil {
			b = append(b, `,"fields":`...)
			b = append(b, fields...)
		}
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
func findingTime(f *detect.Finding, tb event.Timebase) time.Time {
	if len(f.Events) > 0 && f.Events[0].KernelTimeNs != 0 {
		return tb.Wall(f.Events[0].KernelTimeNs)
	}
	return time.Now()
}

// WriteFinding encodes f.
func (j *JSON) WriteFinding(f *detect.Finding) error {
	j.buf = AppendFindingJSON(j.buf[:0], f, j.tb)
	j.buf = append(j.buf, '\n')
	_, err := j.w.Write(j.buf)
	return err
}

// WriteFinding formats f as one line, marked FINDING.
func (t *Text) WriteFinding(f *detect.Finding) error {
	b := findingTime(f, t.tb).AppendFormat(t.buf[:0], "15:04:05.000000 ")
	b = append(b, "FINDING  "...)
	b = append(b, f.Severity.String()...)
	b = append(b, ' ')
	b = append(b, f.Detector...)
	b = append(b, '/')
	b = append(b, f.Rule...)
	b = append(b, ": "...)
	b = append(b, f.Summary...)
	if len(f.Techniques) > 0 {
		b = append(b, " ["...)
		for i, t := range f.Techniques {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, t...)
		}
		b = append(b, ']')
	}
	if len(f.Events) > 0 {
		b = append(b, " pid="...)
		b = strconv.AppendUint(b, uint64(f.Events[0].PID), 10)
	}
	b = append(b, '\n')
	t.buf = b
	_, err := t.w.Write(b)
	return err
}
