package sinks

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
)

// OCSFVersion is the OCSF schema version the findings follow.
const OCSFVersion = "1.3.0"

// OCSF writes findings as OCSF Detection Finding events (class 2004), one
// JSON object per line, so a SIEM that speaks OCSF takes them unchanged.
// Events, if written at all, go to the wrapped sink in its own format.
type OCSF struct {
	events  FindingSink
	out     *Output
	tb      event.Timebase
	product ocsfProduct
	host    string
}

// NewOCSF writes findings in OCSF to w; events go to events. When events
// has an Output (JSON, Text), findings go through that same Output, in
// order with the events; otherwise through an Output of their own on w.
func NewOCSF(events FindingSink, w io.Writer, tb event.Timebase, version, host string) *OCSF {
	var out *Output
	if o, ok := events.(interface{ Output() *Output }); ok {
		out = o.Output()
	} else {
		out = NewOutput(w, 0, DefaultRetry)
	}
	return &OCSF{events: events, out: out, tb: tb, host: host,
		product: ocsfProduct{Name: "bulkhead", VendorName: "bulkhead", Version: version}}
}

func (o *OCSF) Write(ev *event.Event) error { return o.events.Write(ev) }
func (o *OCSF) Flush() error                { return errors.Join(o.events.Flush(), o.out.Flush()) }

// Output is where findings go.
func (o *OCSF) Output() *Output { return o.out }

// WriteFinding writes f as one OCSF Detection Finding. Strings are escaped
// as encoding/json does, and what it leaves raw (DEL, characters that are
// not printable) as \uXXXX; bytes that are not UTF-8 become U+FFFD.
func (o *OCSF) WriteFinding(f *detect.Finding) error {
	raw, err := json.Marshal(o.Finding(f))
	if err != nil {
		return err
	}
	start := o.out.begin()
	o.out.buf = AppendSanitizedJSON(o.out.buf, raw)
	o.out.buf = append(o.out.buf, '\n')
	return o.out.finding(start)
}

// The OCSF objects bulkhead fills. Field names and enumerations follow
// https://schema.ocsf.io/1.3.0/classes/detection_finding.
type (
	ocsfFinding struct {
		ActivityID   int             `json:"activity_id"`
		ActivityName string          `json:"activity_name"`
		CategoryUID  int             `json:"category_uid"`
		CategoryName string          `json:"category_name"`
		ClassUID     int             `json:"class_uid"`
		ClassName    string          `json:"class_name"`
		TypeUID      int             `json:"type_uid"`
		TypeName     string          `json:"type_name"`
		SeverityID   int             `json:"severity_id"`
		Severity     string          `json:"severity"`
		StatusID     int             `json:"status_id"`
		Status       string          `json:"status"`
		Time         int64           `json:"time"` // ms since the epoch: the first triggering event's
		StartTime    int64           `json:"start_time,omitempty"`
		EndTime      int64           `json:"end_time,omitempty"`
		Message      string          `json:"message"`
		IsAlert      bool            `json:"is_alert"`
		Metadata     ocsfMetadata    `json:"metadata"`
		FindingInfo  ocsfFindingInfo `json:"finding_info"`
		Evidences    []ocsfEvidence  `json:"evidences,omitempty"`
		Device       *ocsfDevice     `json:"device,omitempty"`
		Unmapped     map[string]any  `json:"unmapped,omitempty"`
	}
	ocsfMetadata struct {
		Version string      `json:"version"`
		Product ocsfProduct `json:"product"`
		LogName string      `json:"log_name,omitempty"`
	}
	ocsfProduct struct {
		Name       string `json:"name"`
		VendorName string `json:"vendor_name"`
		Version    string `json:"version,omitempty"`
	}
	ocsfFindingInfo struct {
		UID         string        `json:"uid"`
		Title       string        `json:"title"`
		Desc        string        `json:"desc,omitempty"`
		Types       []string      `json:"types,omitempty"`
		CreatedTime int64         `json:"created_time"`
		Analytic    ocsfAnalytic  `json:"analytic"`
		Attacks     []ocsfAttack  `json:"attacks,omitempty"`
		DataSources []string      `json:"data_sources,omitempty"`
		FirstSeen   int64         `json:"first_seen_time,omitempty"`
		LastSeen    int64         `json:"last_seen_time,omitempty"`
		Related     []ocsfRelated `json:"related_events,omitempty"`
	}
	ocsfAnalytic struct {
		Name   string `json:"name"`
		UID    string `json:"uid"`
		TypeID int    `json:"type_id"` // 1: Rule
		Type   string `json:"type"`
	}
	ocsfAttack struct {
		Technique ocsfTechnique `json:"technique"`
	}
	ocsfTechnique struct {
		UID    string `json:"uid"`
		SrcURL string `json:"src_url"`
	}
	ocsfRelated struct {
		UID  string `json:"uid"`
		Type string `json:"type"`
		Time int64  `json:"time"`
	}
	ocsfEvidence struct {
		Actor       *ocsfActor     `json:"actor,omitempty"`
		Process     *ocsfProcess   `json:"process,omitempty"`
		File        *ocsfFile      `json:"file,omitempty"`
		DstEndpoint *ocsfEndpoint  `json:"dst_endpoint,omitempty"`
		Data        map[string]any `json:"data,omitempty"`
	}
	ocsfActor struct {
		Process *ocsfProcess `json:"process,omitempty"`
		User    *ocsfUser    `json:"user,omitempty"`
	}
	ocsfUser struct {
		UID string `json:"uid"`
	}
	ocsfProcess struct {
		PID           uint32         `json:"pid"`
		Name          string         `json:"name,omitempty"`
		CmdLine       string         `json:"cmd_line,omitempty"`
		File          *ocsfFile      `json:"file,omitempty"`
		User          *ocsfUser      `json:"user,omitempty"`
		ParentProcess *ocsfProcess   `json:"parent_process,omitempty"`
		Container     *ocsfContainer `json:"container,omitempty"`
		CreatedTime   int64          `json:"created_time,omitempty"`
	}
	ocsfFile struct {
		Name   string `json:"name"`
		Path   string `json:"path,omitempty"`
		TypeID int    `json:"type_id"` // 1: Regular File, 0: Unknown
	}
	ocsfContainer struct {
		UID string `json:"uid"`
	}
	ocsfEndpoint struct {
		IP   string `json:"ip"`
		Port uint16 `json:"port"`
	}
	ocsfDevice struct {
		Hostname string `json:"hostname"`
		TypeID   int    `json:"type_id"` // 0: Unknown
		OS       struct {
			Name   string `json:"name"`
			TypeID int    `json:"type_id"` // 200: Linux
		} `json:"os"`
	}
)

// ocsfSeverities are OCSF's severity_id captions, indexed by id; a
// detect.Severity's id is one more than its value (1 Informational … 5
// Critical).
var ocsfSeverities = [...]string{"Unknown", "Informational", "Low", "Medium", "High", "Critical"}

// Finding maps f to an OCSF Detection Finding.
func (o *OCSF) Finding(f *detect.Finding) any {
	when := findingTime(f, o.tb)
	sevID := int(f.Severity) + 1
	if sevID >= len(ocsfSeverities) {
		sevID = 0
	}
	out := ocsfFinding{
		ActivityID: 1, ActivityName: "Create", CategoryUID: 2, CategoryName: "Findings",
		ClassUID: 2004, ClassName: "Detection Finding", TypeUID: 200401, TypeName: "Detection Finding: Create",
		SeverityID: sevID, Severity: ocsfSeverities[sevID], StatusID: 1, Status: "New",
		Time: when.UnixMilli(), Message: f.Summary, IsAlert: true,
		Metadata: ocsfMetadata{Version: OCSFVersion, Product: o.product, LogName: "findings"},
		FindingInfo: ocsfFindingInfo{
			UID: findingUID(f), Title: f.Detector + "/" + f.Rule, Desc: f.Summary, Types: []string{f.Rule},
			CreatedTime: time.Now().UnixMilli(),
			Analytic:    ocsfAnalytic{Name: f.Rule, UID: f.Detector + "/" + f.Rule, TypeID: 1, Type: "Rule"},
			DataSources: []string{"bulkhead eBPF"},
		},
		Unmapped: f.Fields,
	}
	if o.host != "" {
		out.Device = &ocsfDevice{Hostname: o.host}
		out.Device.OS.Name, out.Device.OS.TypeID = "Linux", 200
	}
	for _, t := range f.Techniques {
		out.FindingInfo.Attacks = append(out.FindingInfo.Attacks, ocsfAttack{Technique: ocsfTechnique{UID: t,
			SrcURL: "https://attack.mitre.org/techniques/" + strings.ReplaceAll(t, ".", "/") + "/"}})
	}
	for i, ev := range f.Events {
		t := o.tb.Wall(ev.KernelTimeNs).UnixMilli()
		if i == 0 || t < out.FindingInfo.FirstSeen {
			out.FindingInfo.FirstSeen = t
		}
		out.FindingInfo.LastSeen = max(out.FindingInfo.LastSeen, t)
		out.FindingInfo.Related = append(out.FindingInfo.Related, ocsfRelated{UID: fmt.Sprintf("%d-%d-%d", ev.KernelTimeNs, ev.PID, ev.TID), Type: ev.Kind.String(), Time: t})
		out.Evidences = append(out.Evidences, o.evidence(ev))
	}
	out.StartTime, out.EndTime = out.FindingInfo.FirstSeen, out.FindingInfo.LastSeen
	return out
}

// evidence is what the event shows: the acting process (with its parent,
// user and container), and the file or endpoint it touched.
func (o *OCSF) evidence(ev *event.Event) ocsfEvidence {
	proc := ocsfProc(ev)
	e := ocsfEvidence{Actor: &ocsfActor{Process: proc, User: proc.User}, Process: proc,
		Data: map[string]any{"kind": ev.Kind.String()}}
	switch ev.Kind {
	case event.KindOpen:
		o := &ev.Open
		p := o.KernelPath()
		if p == "" {
			p = o.Resolved
		}
		e.File = &ocsfFile{Name: path.Base(p), Path: p, TypeID: 1}
		e.Data["flags"], e.Data["ret"] = o.Flags, o.Ret
		if p != o.Resolved {
			e.Data["requested_path"] = o.Resolved
		}
		if o.Ino != 0 {
			e.Data["device"], e.Data["inode"] = o.Dev, o.Ino
		}
	case event.KindExec:
		e.File = &ocsfFile{Name: path.Base(ev.Exec.Exe), Path: ev.Exec.Exe, TypeID: 1}
	case event.KindConnect:
		e.DstEndpoint = &ocsfEndpoint{IP: ev.Connect.Addr.String(), Port: ev.Connect.Port}
		e.Data["ret"] = ev.Connect.Ret
	case event.KindModule:
		if ev.Module.Path != "" {
			e.File = &ocsfFile{Name: path.Base(ev.Module.Path), Path: ev.Module.Path, TypeID: 1}
		}
	case event.KindPtrace:
		e.Data["target_pid"], e.Data["request"] = ev.Ptrace.TargetPID, ev.Ptrace.Request
	case event.KindSetID:
		e.Data["old"], e.Data["new"], e.Data["syscall"] = ev.SetID.Old, ev.SetID.New, string(ev.SetID.Syscall)
	case event.KindBPFProg:
		e.Data["prog_name"], e.Data["prog_type"] = ev.BPFProg.Name, ev.BPFProg.ProgType
	}
	return e
}

func ocsfProc(ev *event.Event) *ocsfProcess {
	p := &ocsfProcess{PID: ev.PID, Name: ev.Comm, User: &ocsfUser{UID: fmt.Sprint(ev.UID)}}
	ctx := ev.Process
	if ctx == nil {
		return p
	}
	if ctx.Exe != "" {
		p.File = &ocsfFile{Name: path.Base(ctx.Exe), Path: ctx.Exe, TypeID: 1}
	}
	p.CmdLine = strings.TrimSpace(strings.ReplaceAll(ctx.Args, "\x00", " "))
	if ctx.ContainerID != "" {
		p.Container = &ocsfContainer{UID: ctx.ContainerID}
	}
	if len(ctx.Ancestors) > 0 {
		a := ctx.Ancestors[0]
		p.ParentProcess = &ocsfProcess{PID: a.PID, Name: a.Comm}
		if a.Exe != "" {
			p.ParentProcess.File = &ocsfFile{Name: path.Base(a.Exe), Path: a.Exe, TypeID: 1}
		}
	}
	return p
}

// findingUID is the same for the same finding on the same events, so a
// replay or a redelivery can be deduplicated downstream.
func findingUID(f *detect.Finding) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s", f.Detector, f.Rule, f.Summary)
	for _, ev := range f.Events {
		fmt.Fprintf(h, "\x00%d/%d/%d", ev.KernelTimeNs, ev.PID, ev.TID)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
