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

	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"golang.org/x/sys/unix"
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
func (o *OCSF) WriteFinding(f *detection.Finding) error {
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
		SrcEndpoint *ocsfEndpoint  `json:"src_endpoint,omitempty"`
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
// detection.Severity's id is one more than its value (1 Informational … 5
// Critical).
var ocsfSeverities = [...]string{"Unknown", "Informational", "Low", "Medium", "High", "Critical"}

// Finding maps f to an OCSF Detection Finding.
func (o *OCSF) Finding(f *detection.Finding) any {
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
	// The OCSF event class and activity the event is (see OCSFActivity).
	a := OCSFActivity(ev)
	e.Data["class_uid"], e.Data["class_name"], e.Data["activity_id"], e.Data["activity_name"] = a.ClassUID, a.ClassName, a.ActivityID, a.ActivityName
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
		if ev.Exec.Script != "" {
			e.Data["script"] = ev.Exec.Script
		}
		if env := ev.Exec.EnvList(); env != nil {
			e.Data["env"] = env
		}
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
	case event.KindFile:
		f := &ev.File
		p := f.Resolved
		if p == "" {
			p = f.FilePath
		}
		if p == "" {
			p = f.Path
		}
		if f.Op == event.FileSymlink { // Path is the link's target; the file made is the new name
			p, e.Data["target"] = f.NewResolved, f.Path
			if p == "" {
				p = f.NewPath
			}
		}
		if p != "" {
			e.File = &ocsfFile{Name: path.Base(p), Path: p, TypeID: ocsfFileType(f)}
		}
		e.Data["op"], e.Data["syscall"], e.Data["ret"] = string(f.Op), string(f.Syscall), f.Ret
		if f.NewResolved != "" && f.Op != event.FileSymlink {
			e.Data["new_path"] = f.NewResolved
		}
		switch f.Op {
		case event.FileChmod, event.FileMkdir:
			e.Data["mode"] = f.Mode
			if bits := f.SpecialBits(); bits != nil {
				e.Data["mode_bits"] = bits
			}
		case event.FileChown:
			e.Data["owner_uid"], e.Data["owner_gid"] = int32(f.UID), int32(f.GID)
		case event.FileTruncate:
			e.Data["length"] = f.Length
		}
	case event.KindNamespace:
		n := &ev.Namespace
		e.Data["syscall"], e.Data["flags"], e.Data["ret"] = string(n.Syscall), n.Flags, n.Ret
		if ns := n.Namespaces(); ns != nil {
			e.Data["namespaces"] = ns
		}
		for k, v := range map[string]string{"ns_file": n.NsFile, "source": n.Source, "target": n.Target, "fstype": n.FSType, "dir": n.Dir} {
			if v != "" {
				e.Data[k] = v
			}
		}
	case event.KindSignal:
		s := &ev.Signal
		e.Data["syscall"], e.Data["target_pid"], e.Data["signal"], e.Data["ret"] = string(s.Syscall), s.TargetPID, SignalName(s.Signal), s.Ret
		if s.TargetComm != "" {
			e.Data["target_comm"] = s.TargetComm
		}
	case event.KindSocket:
		s := &ev.Socket
		// The local side is where an inbound connection goes: the
		// destination; an accepted connection's peer is its source.
		if s.Addr.IsValid() {
			e.DstEndpoint = &ocsfEndpoint{IP: s.Addr.String(), Port: s.Port}
		}
		if s.Peer.IsValid() {
			e.SrcEndpoint = &ocsfEndpoint{IP: s.Peer.String(), Port: s.PeerPort}
		}
		e.Data["syscall"], e.Data["family"], e.Data["type"], e.Data["protocol"], e.Data["ret"] = string(s.Syscall), SocketFamilyName(s.Family), s.Type, s.Protocol, s.Ret
	case event.KindSys:
		s := &ev.Sys
		e.Data["syscall"], e.Data["op"], e.Data["args"], e.Data["ret"] = string(s.Syscall), s.Op, s.Args, s.Ret
		if name := SysOpName(s.Syscall, s.Op); name != "" {
			e.Data["op_name"] = name
		}
		if s.Name != "" {
			e.Data["name"] = s.Name
		}
		if s.Syscall == "kexec_file_load" && s.Name != "" {
			e.File = &ocsfFile{Name: path.Base(s.Name), Path: s.Name, TypeID: 1}
		}
	}
	return e
}

// ocsfFileType is the OCSF file type_id of the file a file event made or
// changed: 2 a folder (mkdir, rmdir), 3 a symbolic link, 1 a regular
// file where its mode says so or the operation implies one, 0 unknown.
func ocsfFileType(f *event.File) int {
	switch {
	case f.Op == event.FileMkdir || f.Op == event.FileRmdir || f.FileMode&0o170000 == 0o040000:
		return 2
	case f.Op == event.FileSymlink || f.FileMode&0o170000 == 0o120000:
		return 3
	case f.FileMode&0o170000 == 0o100000 || f.Op == event.FileTruncate:
		return 1
	}
	return 0
}

// OCSFClassActivity is the OCSF 1.3.0 event class an event is, and its
// activity within it.
type OCSFClassActivity struct {
	ClassUID     int
	ClassName    string
	ActivityID   int
	ActivityName string
}

// The OCSF classes bulkhead's events are.
const (
	ocsfClassFileSystem      = 1001
	ocsfClassKernelExtension = 1002
	ocsfClassKernel          = 1003
	ocsfClassProcess         = 1007
	ocsfClassNetwork         = 4001
	ocsfOther                = 99 // the activity id of "Other": activity_name says what
)

var ocsfClassNames = map[int]string{
	ocsfClassFileSystem: "File System Activity", ocsfClassKernelExtension: "Kernel Extension Activity",
	ocsfClassKernel: "Kernel Activity", ocsfClassProcess: "Process Activity", ocsfClassNetwork: "Network Activity",
}

// OCSFActivity maps an event to the OCSF class and activity it is:
// files (open, memfd, unlink, rename, chmod …, mount, umount2) to File
// System Activity; processes (exec, fork, exit, setid, ptrace, signals,
// setns, unshare, clone, chroot, capset, prctl) to Process Activity;
// connect, bind, listen, accept and raw sockets to Network Activity;
// modules, BPF programs and kexec to Kernel Extension Activity; the other
// bpf() commands, userfaultfd and io_uring to Kernel Activity.
func OCSFActivity(ev *event.Event) OCSFClassActivity {
	c := func(class, id int, name string) OCSFClassActivity {
		return OCSFClassActivity{ClassUID: class, ClassName: ocsfClassNames[class], ActivityID: id, ActivityName: name}
	}
	switch ev.Kind {
	case event.KindExec, event.KindFork:
		return c(ocsfClassProcess, 1, "Launch")
	case event.KindExit:
		return c(ocsfClassProcess, 2, "Terminate")
	case event.KindSetID:
		return c(ocsfClassProcess, 5, "Set User ID")
	case event.KindPtrace:
		switch ev.Ptrace.Request {
		case unix.PTRACE_POKETEXT, unix.PTRACE_POKEDATA, unix.PTRACE_POKEUSR, unix.PTRACE_SETREGS, unix.PTRACE_SETREGSET:
			return c(ocsfClassProcess, 4, "Inject")
		case unix.PTRACE_TRACEME:
			return c(ocsfClassProcess, ocsfOther, "Trace Me")
		}
		return c(ocsfClassProcess, 3, "Open") // a hold on another process, to act on it
	case event.KindOpen:
		return c(ocsfClassFileSystem, 14, "Open")
	case event.KindMemfd:
		return c(ocsfClassFileSystem, 1, "Create")
	case event.KindConnect:
		return c(ocsfClassNetwork, 1, "Open")
	case event.KindModule, event.KindBPFProg:
		return c(ocsfClassKernelExtension, 1, "Load")
	case event.KindFile:
		switch ev.File.Op {
		case event.FileUnlink, event.FileRmdir:
			return c(ocsfClassFileSystem, 4, "Delete")
		case event.FileRename:
			return c(ocsfClassFileSystem, 5, "Rename")
		case event.FileLink, event.FileSymlink, event.FileMkdir:
			return c(ocsfClassFileSystem, 1, "Create")
		case event.FileChmod, event.FileChown:
			return c(ocsfClassFileSystem, 7, "Set Security")
		case event.FileTruncate:
			return c(ocsfClassFileSystem, 3, "Update")
		}
		return c(ocsfClassFileSystem, ocsfOther, string(ev.File.Op))
	case event.KindNamespace:
		switch ev.Namespace.Syscall {
		case "mount":
			return c(ocsfClassFileSystem, 12, "Mount")
		case "umount2":
			return c(ocsfClassFileSystem, 13, "Unmount")
		case "clone", "clone3":
			return c(ocsfClassProcess, 1, "Launch")
		}
		return c(ocsfClassProcess, ocsfOther, string(ev.Namespace.Syscall)) // setns, unshare, chroot, pivot_root
	case event.KindSignal:
		switch ev.Signal.Signal {
		case uint32(unix.SIGKILL), uint32(unix.SIGTERM), uint32(unix.SIGINT), uint32(unix.SIGQUIT), uint32(unix.SIGHUP), uint32(unix.SIGABRT):
			return c(ocsfClassProcess, 2, "Terminate")
		}
		return c(ocsfClassProcess, ocsfOther, "Signal")
	case event.KindSocket:
		switch ev.Socket.Syscall {
		case "listen":
			return c(ocsfClassNetwork, 7, "Listen")
		case "accept", "accept4":
			return c(ocsfClassNetwork, 1, "Open")
		}
		return c(ocsfClassNetwork, ocsfOther, string(ev.Socket.Syscall)) // bind, socket
	case event.KindSys:
		switch ev.Sys.Syscall {
		case "kexec_load", "kexec_file_load":
			return c(ocsfClassKernelExtension, 1, "Load")
		case "capset", "prctl":
			return c(ocsfClassProcess, ocsfOther, string(ev.Sys.Syscall))
		case "bpf":
			switch ev.Sys.Op {
			case unix.BPF_PROG_GET_FD_BY_ID, unix.BPF_MAP_GET_FD_BY_ID, unix.BPF_OBJ_GET:
				return c(ocsfClassKernel, 2, "Read")
			}
			return c(ocsfClassKernel, 1, "Create") // an attachment or a link
		}
		return c(ocsfClassKernel, 1, "Create") // userfaultfd, io_uring_setup: a kernel object
	}
	return OCSFClassActivity{ActivityID: ocsfOther, ActivityName: ev.Kind.String()}
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
func findingUID(f *detection.Finding) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s", f.Detector, f.Rule, f.Summary)
	for _, ev := range f.Events {
		fmt.Fprintf(h, "\x00%d/%d/%d", ev.KernelTimeNs, ev.PID, ev.TID)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
