package sinks

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/event/eventtest"
)

// jsonKeys is, for the payloads the JSON sink writes whole, the key of
// each field. A field added to one of these payloads fails
// TestJSONEveryFieldOfTheNewKinds until it is written and listed here.
var jsonKeys = map[event.Kind]map[string]string{
	event.KindFile: {"Op": "op", "Syscall": "syscall", "Path": "path", "Dir": "dir", "Resolved": "resolved", "NewPath": "new_path",
		"NewDir": "new_dir", "NewResolved": "new_resolved", "FilePath": "file_path", "Dev": "file_dev", "Ino": "file_ino",
		"FileMode": "file_mode", "Mode": "mode", "UID": "owner_uid", "GID": "owner_gid", "Length": "length", "AtFlags": "at_flags", "Ret": "ret"},
	event.KindNamespace: {"Syscall": "syscall", "Flags": "flags", "Fd": "fd", "NsFile": "ns_file", "Source": "source", "Target": "target",
		"FSType": "fstype", "Dir": "dir", "Ret": "ret"},
	event.KindSignal: {"Syscall": "syscall", "TargetPID": "target_pid", "TargetTID": "target_tid", "TargetComm": "target_comm", "Signal": "signal", "Ret": "ret"},
	event.KindSocket: {"Syscall": "syscall", "Fd": "fd", "Family": "family", "Type": "type", "Protocol": "protocol", "Addr": "addr", "Port": "port",
		"Peer": "peer_addr", "PeerPort": "peer_port", "Backlog": "backlog", "Ret": "ret"},
	event.KindSys: {"Syscall": "syscall", "Op": "op", "Args": "args", "Name": "name", "Ret": "ret"},
}

// jsonValue is how the JSON sink writes a payload field's value (as
// encoding/json reads it back), and, for a string, its bytes.
func jsonValue(v reflect.Value) any {
	switch x := v.Interface().(type) {
	case netip.Addr:
		return x.String()
	case [3]uint64:
		return []any{float64(x[0]), float64(x[1]), float64(x[2])}
	case uint32:
		if x == event.NoID {
			return float64(-1) // owner_uid, owner_gid
		}
	}
	switch v.Kind() {
	case reflect.String:
		return v.String()
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(v.Int())
	default:
		return float64(v.Uint())
	}
}

// decoded is a JSON string field's bytes: through "<key>_b64" when the
// value was not UTF-8.
func decoded(t *testing.T, obj map[string]any, key string) any {
	t.Helper()
	if b64, ok := obj[key+"_b64"].(string); ok {
		b, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	return obj[key]
}

func jsonLine(t *testing.T, ev *event.Event) map[string]any {
	t.Helper()
	line := AppendEventJSON(nil, ev, event.Timebase{})
	if c, bad := rawControl(string(line)); bad {
		t.Errorf("%s: raw control %s in %s", ev.Kind, c, line)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("%s: invalid JSON (%v): %s", ev.Kind, err, line)
	}
	return m
}

// Every field of the new kinds is in the JSON line, and every string
// decodes back to its bytes, hostile ones included.
func TestJSONEveryFieldOfTheNewKinds(t *testing.T) {
	for _, hostile := range []string{"", forged} {
		for _, ev := range eventtest.EveryKind() {
			keys, ok := jsonKeys[ev.Kind]
			if !ok {
				continue
			}
			if hostile != "" {
				eventtest.SetStrings(ev, hostile)
			}
			m := jsonLine(t, ev)
			payload, _ := m[ev.Kind.String()].(map[string]any)
			if payload == nil {
				t.Fatalf("%s: no payload in %v", ev.Kind, m)
			}
			pv := eventtest.Payload(ev)
			for i := range pv.NumField() {
				name := pv.Type().Field(i).Name
				key, ok := keys[name]
				if !ok {
					t.Errorf("%s.%s: no JSON key listed for it", ev.Kind, name)
					continue
				}
				got, want := any(nil), jsonValue(pv.Field(i))
				if _, isString := want.(string); isString {
					got = decoded(t, payload, key)
				} else {
					got = payload[key]
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s.%s: %q is %#v, want %#v", ev.Kind, name, key, got, want)
				}
			}
		}
	}
}

func TestJSONExecScriptAndEnv(t *testing.T) {
	ev := eventtest.Of(event.KindExec)
	ev.Flags |= event.FlagTruncEnv
	ev.Exec.Env = "LD_PRELOAD=/tmp/\xff.so\x00BASH_ENV=\x1b[2J\x00"
	m := jsonLine(t, ev)
	x := m["exec"].(map[string]any)
	if x["script"] != "/dev/shm/x.sh" || x["env_truncated"] != true {
		t.Errorf("exec payload %v", x)
	}
	env := x["env_b64"].([]any)
	if len(env) != 2 || env[0] != base64.StdEncoding.EncodeToString([]byte("LD_PRELOAD=/tmp/\xff.so")) || x["env"].([]any)[1] != "BASH_ENV=\x1b[2J" {
		t.Errorf("env %v, env_b64 %v", x["env"], env)
	}
	if flags := fmt.Sprint(m["flags"]); !strings.Contains(flags, "trunc_env") {
		t.Errorf("flags %s", flags)
	}
	ev.Exec.Script, ev.Exec.Env, ev.Flags = "", "", 0
	x = jsonLine(t, ev)["exec"].(map[string]any)
	if _, ok := x["script"]; ok || x["env"] != nil || x["env_truncated"] != false {
		t.Errorf("a binary without a selected environment: %v", x)
	}
}

// The text line of each kind says what happened, in the words an operator
// looks for.
func TestTextNewKinds(t *testing.T) {
	var buf bytes.Buffer
	s := NewText(&buf, event.Timebase{})
	evs := eventtest.EveryKind()
	chown := eventtest.Of(event.KindFile)
	chown.File = event.File{Op: event.FileChown, Syscall: "fchown", FilePath: "/etc/shadow", UID: 0, GID: event.NoID}
	symlink := eventtest.Of(event.KindFile)
	symlink.File = event.File{Op: event.FileSymlink, Syscall: "symlinkat", Path: "/etc/shadow", NewPath: "s", NewDir: "/tmp", NewResolved: "/tmp/s"}
	listen := eventtest.Of(event.KindSocket)
	listen.Socket = event.Socket{Syscall: "listen", Fd: 3, Family: 2, Addr: netip.MustParseAddr("0.0.0.0"), Port: 4444, Backlog: 0}
	unshare := eventtest.Of(event.KindNamespace)
	unshare.Namespace = event.Namespace{Syscall: "unshare", Flags: 0x10020000}
	probe := eventtest.Of(event.KindSignal)
	probe.Signal = event.Signal{Syscall: "kill", TargetPID: 1, Signal: 0}
	rt := eventtest.Of(event.KindSignal)
	rt.Signal = event.Signal{Syscall: "kill", TargetPID: 1, Signal: 70}
	for _, ev := range append(evs, chown, symlink, listen, unshare, probe, rt) {
		if err := s.Write(ev); err != nil {
			t.Fatal(err)
		}
	}
	s.Flush()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	want := map[int][]string{
		0:  {"exec     pid=11", "script=/dev/shm/x.sh", `env=["LD_PRELOAD=/tmp/evil.so","HTTPS_PROXY=http://10.0.0.9:3128"]`},
		6:  {"PTRACE_ATTACH target=10"},
		10: {"file     pid=11", "rename(renameat2) path=/tmp/a new=/usr/bin/b mode=04755,setuid owner=1001:-1 length=9 at_flags=0x1 ret=-2 (ENOENT)"},
		11: {"namespace pid=11", "mount source=/dev/sda1 target=mnt dir=/root fstype=ext4 ns=mnt:[4026531841] fd=3 flags=0x1000 ret=-1 (EPERM)"},
		12: {"signal   pid=11", "tgkill sig=SIGKILL target=10 tid=14 target_comm=sshd ret=-3 (ESRCH)"},
		13: {"socket   pid=11", "accept4 fd=3 AF_INET6 SOCK_STREAM proto=6 local=[::ffff:192.168.1.2]:4444 peer=[2001:db8::1]:50000 backlog=5 ret=4"},
		14: {"sys      pid=11", "prctl PR_SET_NAME name=[kworker/0:1] args=0x1,0x2,0x8000000000000000 ret=-22 (EINVAL)"},
		15: {"chown(fchown) file=/etc/shadow owner=0:-1 ret=0"},
		16: {"symlink(symlinkat) target=/etc/shadow new=/tmp/s ret=0"},
		17: {"listen fd=3 AF_INET local=0.0.0.0:4444 backlog=0 ret=0"},
		18: {"unshare flags=0x10020000 namespaces=mnt,user ret=0"},
		19: {"kill sig=0 target=1 ret=0"},
		20: {"kill sig=70 target=1 ret=0"},
	}
	if len(lines) != len(evs)+6 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	for i, subs := range want {
		for _, sub := range subs {
			if !strings.Contains(lines[i], sub) {
				t.Errorf("line %d %q lacks %q", i, lines[i], sub)
			}
		}
	}
}

// Hostile bytes in every string of every kind stay inside their value: one
// record per line, no control character raw, in text and in JSON.
func TestHostileStringsEveryKind(t *testing.T) {
	var buf bytes.Buffer
	s := NewText(&buf, event.Timebase{})
	evs := eventtest.EveryKind()
	for _, ev := range evs {
		eventtest.SetStrings(ev, forged)
		ev.Process.Exe, ev.Process.Args = forged, forgedArg
		if err := s.Write(ev); err != nil {
			t.Fatal(err)
		}
		m := jsonLine(t, ev)
		if got := decoded(t, m, "comm"); got != forged {
			t.Errorf("%s: comm decodes to %q", ev.Kind, got)
		}
	}
	s.Flush()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != len(evs) {
		t.Fatalf("%d lines for %d events:\n%s", len(lines), len(evs), buf.String())
	}
	for i, line := range lines {
		if c, bad := rawControl(line); bad {
			t.Errorf("raw control %s in text line %q", c, line)
		}
		if !strings.Contains(line, " "+evs[i].Kind.String()+" ") {
			t.Errorf("line %d is not a %s record: %q", i, evs[i].Kind, line)
		}
	}
}

// Each kind is the OCSF class and activity it should be, and a finding on
// events of every kind is a valid Detection Finding whose evidences show
// the file or the endpoints.
func TestOCSFEveryKind(t *testing.T) {
	want := map[event.Kind]string{
		event.KindExec: "1007/1 Launch", event.KindFork: "1007/1 Launch", event.KindExit: "1007/2 Terminate", event.KindOpen: "1001/14 Open",
		event.KindConnect: "4001/1 Open", event.KindSetID: "1007/5 Set User ID", event.KindPtrace: "1007/3 Open",
		event.KindModule: "1002/1 Load", event.KindBPFProg: "1002/1 Load", event.KindMemfd: "1001/1 Create",
		event.KindFile: "1001/5 Rename", event.KindNamespace: "1001/12 Mount", event.KindSignal: "1007/2 Terminate",
		event.KindSocket: "4001/1 Open", event.KindSys: "1007/99 prctl",
	}
	evs := eventtest.EveryKind()
	for _, ev := range evs {
		a := OCSFActivity(ev)
		if got := fmt.Sprintf("%d/%d %s", a.ClassUID, a.ActivityID, a.ActivityName); got != want[ev.Kind] || a.ClassName == "" {
			t.Errorf("%s: %s (%s), want %s", ev.Kind, got, a.ClassName, want[ev.Kind])
		}
	}
	for in, want := range map[*event.Event]string{
		{Header: event.Header{Kind: event.KindPtrace}, Ptrace: event.Ptrace{Request: 5}}:                      "1007/4 Inject",
		{Header: event.Header{Kind: event.KindPtrace}, Ptrace: event.Ptrace{Request: 0}}:                      "1007/99 Trace Me",
		{Header: event.Header{Kind: event.KindFile}, File: event.File{Op: event.FileUnlink}}:                  "1001/4 Delete",
		{Header: event.Header{Kind: event.KindFile}, File: event.File{Op: event.FileChmod}}:                   "1001/7 Set Security",
		{Header: event.Header{Kind: event.KindSocket}, Socket: event.Socket{Syscall: "listen"}}:               "4001/7 Listen",
		{Header: event.Header{Kind: event.KindNamespace}, Namespace: event.Namespace{Syscall: "setns"}}:       "1007/99 setns",
		{Header: event.Header{Kind: event.KindSys}, Sys: event.Sys{Syscall: "bpf", Op: 14}}:                   "1003/2 Read",
		{Header: event.Header{Kind: event.KindSys}, Sys: event.Sys{Syscall: "kexec_file_load"}}:               "1002/1 Load",
		{Header: event.Header{Kind: event.KindSignal}, Signal: event.Signal{Syscall: "kill", Signal: 10}}:     "1007/99 Signal",
		{Header: event.Header{Kind: event.KindNamespace}, Namespace: event.Namespace{Syscall: "clone3"}}:      "1007/1 Launch",
		{Header: event.Header{Kind: event.KindSys}, Sys: event.Sys{Syscall: "userfaultfd"}}:                   "1003/1 Create",
		{Header: event.Header{Kind: event.KindFile}, File: event.File{Op: event.FileTruncate, Syscall: "x"}}:  "1001/3 Update",
		{Header: event.Header{Kind: event.KindSocket}, Socket: event.Socket{Syscall: "bind"}}:                 "4001/99 bind",
		{Header: event.Header{Kind: event.KindFile}, File: event.File{Op: event.FileSymlink, Path: "/etc/x"}}: "1001/1 Create",
		{Header: event.Header{Kind: event.KindNamespace}, Namespace: event.Namespace{Syscall: "umount2"}}:     "1001/13 Unmount",
		{Header: event.Header{Kind: event.KindPtrace}, Ptrace: event.Ptrace{Request: 0x4206}}:                 "1007/3 Open",
		{Header: event.Header{Kind: event.KindSys}, Sys: event.Sys{Syscall: "bpf", Op: 0x1c}}:                 "1003/1 Create",
		{Header: event.Header{Kind: event.KindSignal}, Signal: event.Signal{Syscall: "tkill", Signal: 15}}:    "1007/2 Terminate",
		{Header: event.Header{Kind: event.KindSys}, Sys: event.Sys{Syscall: "capset"}}:                        "1007/99 capset",
		{Header: event.Header{Kind: event.KindFile}, File: event.File{Op: event.FileMkdir}}:                   "1001/1 Create",
		{Header: event.Header{Kind: event.KindSocket}, Socket: event.Socket{Syscall: "accept"}}:               "4001/1 Open",
		{Header: event.Header{Kind: event.KindFile}, File: event.File{Op: event.FileLink}}:                    "1001/1 Create",
		{Header: event.Header{Kind: event.KindFile}, File: event.File{Op: event.FileRmdir}}:                   "1001/4 Delete",
		{Header: event.Header{Kind: event.KindFile}, File: event.File{Op: event.FileChown}}:                   "1001/7 Set Security",
		{Header: event.Header{Kind: event.KindNamespace}, Namespace: event.Namespace{Syscall: "chroot"}}:      "1007/99 chroot",
		{Header: event.Header{Kind: event.KindSys}, Sys: event.Sys{Syscall: "io_uring_setup"}}:                "1003/1 Create",
		{Header: event.Header{Kind: event.KindSocket}, Socket: event.Socket{Syscall: "socket", Type: 3}}:      "4001/99 socket",
		{Header: event.Header{Kind: event.KindNamespace}, Namespace: event.Namespace{Syscall: "unshare"}}:     "1007/99 unshare",
		{Header: event.Header{Kind: event.KindSys}, Sys: event.Sys{Syscall: "kexec_load"}}:                    "1002/1 Load",
		{Header: event.Header{Kind: event.KindPtrace}, Ptrace: event.Ptrace{Request: 12}}:                     "1007/3 Open",
		{Header: event.Header{Kind: event.KindSignal}, Signal: event.Signal{Syscall: "kill", Signal: 0}}:      "1007/99 Signal",
		{Header: event.Header{Kind: event.KindNamespace}, Namespace: event.Namespace{Syscall: "pivot_root"}}:  "1007/99 pivot_root",
		{Header: event.Header{Kind: event.KindPtrace}, Ptrace: event.Ptrace{Request: 0x4205}}:                 "1007/4 Inject",
		{Header: event.Header{Kind: event.KindSys}, Sys: event.Sys{Syscall: "bpf", Op: 7}}:                    "1003/2 Read",
	} {
		a := OCSFActivity(in)
		if got := fmt.Sprintf("%d/%d %s", a.ClassUID, a.ActivityID, a.ActivityName); got != want {
			t.Errorf("%s %+v: %s, want %s", in.Kind, eventtest.Payload(in).Interface(), got, want)
		}
	}

	f := detection.NewFinding(evs[0], "r", detection.SeverityHigh, "s", "T1611")
	f.Detector, f.Events = "d", evs
	var buf bytes.Buffer
	o := NewOCSF(NewJSON(&buf, event.Timebase{}), &buf, event.Timebase{}, "v", "h")
	if err := o.WriteFinding(&f); err != nil {
		t.Fatal(err)
	}
	o.Flush()
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for _, path := range ocsfRequired {
		for _, v := range get(got, path) {
			if v == nil || v == "" {
				t.Errorf("required %s is empty", path)
			}
		}
	}
	ev := get(got, "evidences")[0].([]any)
	if len(ev) != len(evs) {
		t.Fatalf("%d evidences for %d events", len(ev), len(evs))
	}
	check := func(i int, path string, want any) {
		t.Helper()
		if v := get(ev[i], path); len(v) != 1 || !reflect.DeepEqual(v[0], want) {
			t.Errorf("%s evidence: %s = %v, want %v", evs[i].Kind, path, v, want)
		}
	}
	check(0, "data.script", "/dev/shm/x.sh")
	check(0, "data.env", []any{"LD_PRELOAD=/tmp/evil.so", "HTTPS_PROXY=http://10.0.0.9:3128"})
	check(10, "file.path", "/tmp/a")
	check(10, "data.new_path", "/usr/bin/b")
	check(10, "data.class_uid", float64(1001))
	check(11, "data.target", "mnt")
	check(12, "data.target_comm", "sshd")
	check(12, "data.signal", "SIGKILL")
	check(13, "dst_endpoint.port", float64(4444))
	check(13, "src_endpoint.ip", "2001:db8::1")
	check(14, "data.name", "[kworker/0:1]")
	check(14, "data.activity_name", "prctl")
}

func TestNames(t *testing.T) {
	for got, want := range map[string]string{
		PtraceRequestName(0): "PTRACE_TRACEME", PtraceRequestName(12): "PTRACE_GETREGS", PtraceRequestName(0x4206): "PTRACE_SEIZE",
		PtraceRequestName(999): "request 999", SignalName(9): "SIGKILL", SignalName(0): "0", SignalName(200): "signal 200",
		SocketFamilyName(17): "AF_PACKET", SocketFamilyName(99): "family 99", SocketTypeName(0x80803): "SOCK_RAW", SocketTypeName(9): "type 9",
		SysOpName("bpf", 8): "BPF_PROG_ATTACH", SysOpName("prctl", 15): "PR_SET_NAME", SysOpName("prctl", 16): "", SysOpName("capset", 8): "",
	} {
		if got != want {
			t.Errorf("%q, want %q", got, want)
		}
	}
}

// Every kind has its payload written: a kind added without its case in
// the JSON and text sinks fails here.
func TestEveryKindHasItsPayload(t *testing.T) {
	for _, ev := range eventtest.EveryKind() {
		payload, _ := jsonLine(t, ev)[ev.Kind.String()].(map[string]any)
		if len(payload) == 0 {
			t.Errorf("%s: JSON payload empty", ev.Kind)
		}
		t0 := NewText(io.Discard, event.Timebase{})
		line := string(t0.appendEvent(nil, ev))
		_, rest, _ := strings.Cut(line, " comm=sh ")
		if rest, _, _ = strings.Cut(rest, " parent="); rest == "" {
			t.Errorf("%s: text line shows nothing of the payload: %q", ev.Kind, line)
		}
	}
}
