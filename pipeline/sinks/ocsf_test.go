package sinks

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"

	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

// ocsfRequired is what OCSF 1.3.0 requires of a Detection Finding (class
// 2004) and of the objects bulkhead fills, from the schema's definitions
// (events/base_event.json, events/findings/finding.json and
// detection_finding.json, objects/metadata.json, product.json,
// finding_info.json, attack.json, technique.json, process.json, file.json,
// network_endpoint.json, user.json): attribute paths, "[]" for each element
// of an array.
var ocsfRequired = []string{
	"activity_id", "category_uid", "class_uid", "type_uid", "severity_id", "time",
	"metadata", "metadata.version", "metadata.product",
	"finding_info", "finding_info.uid", "finding_info.title",
	"finding_info.attacks[].technique.uid",
	"evidences[].process.pid", "evidences[].actor.process.pid",
	"evidences[].file.name", "evidences[].file.type_id",
}

// get walks a dotted path ("a.b[].c") and returns every value found.
func get(v any, path string) []any {
	if path == "" {
		return []any{v}
	}
	key, rest, _ := cutPath(path)
	arr := len(key) > 2 && key[len(key)-2:] == "[]"
	if arr {
		key = key[:len(key)-2]
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	x, ok := m[key]
	if !ok {
		return nil
	}
	if !arr {
		return get(x, rest)
	}
	var out []any
	for _, e := range x.([]any) {
		out = append(out, get(e, rest)...)
	}
	return out
}

func cutPath(p string) (string, string, bool) {
	for i := 0; i < len(p); i++ {
		if p[i] == '.' {
			return p[:i], p[i+1:], true
		}
	}
	return p, "", false
}

// A finding in OCSF has every attribute the schema requires, with the
// class's numbers and enumerations right.
func TestOCSFDetectionFinding(t *testing.T) {
	evs := sampleEvents() // exec, open, connect …, with process context
	f := detection.NewFinding(&evs[1], "password-hash-access", detection.SeverityHigh, "cat opened /etc/shadow", "T1003.008")
	f.Detector, f.Fields = "credaccess", map[string]any{"path": "/etc/hostname"}
	var buf bytes.Buffer
	o := NewOCSF(NewJSON(&buf, event.Timebase{}), &buf, event.TimebaseAt(1_700_000_000e9), "v1.2.3", "host1")
	if err := o.WriteFinding(&f); err != nil {
		t.Fatal(err)
	}
	o.Flush()
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, buf.Bytes())
	}
	for _, path := range ocsfRequired {
		vals := get(got, path)
		if len(vals) == 0 {
			t.Errorf("required %s is missing", path)
		}
		for _, v := range vals {
			if v == nil || v == "" {
				t.Errorf("required %s is empty", path)
			}
		}
	}
	num := func(p string) float64 { v, _ := get(got, p)[0].(float64); return v }
	if num("class_uid") != 2004 || num("category_uid") != 2 || num("activity_id") != 1 ||
		num("type_uid") != num("class_uid")*100+num("activity_id") || num("severity_id") != 4 || num("status_id") != 1 {
		t.Errorf("class numbers: %v", got)
	}
	if ms := num("time"); ms != 1_700_000_000_000+1_000 { // boot epoch + the event's 1s
		t.Errorf("time %v: want epoch milliseconds of the event", ms)
	}
	for _, tech := range get(got, "finding_info.attacks[].technique.uid") {
		if !regexp.MustCompile(`^T\d{4}(\.\d{3})?$`).MatchString(tech.(string)) {
			t.Errorf("technique %v is not a MITRE ATT&CK id", tech)
		}
	}
	if get(got, "evidences[].process.parent_process.file.path")[0] != "/sbin/init" ||
		get(got, "evidences[].process.container.uid")[0] != "abc" ||
		get(got, "evidences[].file.path")[0] != "/etc/hostname" ||
		get(got, "device.hostname")[0] != "host1" || get(got, "metadata.product.version")[0] != "v1.2.3" ||
		get(got, "unmapped.path")[0] != "/etc/hostname" {
		t.Errorf("process, file, device or fields not filled: %s", buf.Bytes())
	}
	// The same finding on the same events has the same uid.
	if findingUID(&f) != get(got, "finding_info.uid")[0] {
		t.Error("finding uid is not stable")
	}
	if _, err := WithFindings(NewJSON(&buf, event.Timebase{}), "cef", &buf, event.Timebase{}, "", ""); err == nil {
		t.Error("an unknown findings format must be refused")
	}
}
