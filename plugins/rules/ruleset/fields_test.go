package ruleset

import (
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/event/eventtest"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/traits"
)

// path is the file that was opened: a symlink to /etc/shadow matches the
// default credential rule by the kernel's path, and requested_path keeps
// the name that was passed.
func TestPathIsTheOpenedFile(t *testing.T) {
	raw, err := os.ReadFile("../default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := LoadSources(Source{Name: "default.yaml", Data: raw}, Source{Name: "extra.yaml", Data: []byte(`
- rule: requested_in_tmp
  desc: d
  condition: 'kind == "open" && requested_path.startsWith("/tmp/")'
  output: o
  priority: low
`)})
	if err != nil {
		t.Fatal(err)
	}
	ev := sdktest.Proc{PID: 20, Exe: "/usr/bin/cat"}.Open("/tmp/s", 0, 3)
	ev.Open.FilePath, ev.Open.Ino, ev.Open.Nlink = "/etc/shadow", 7, 1
	if got := ids(s.NewEvaluator().Eval(ev, nil)); got != "credential_file_read,requested_in_tmp" {
		t.Errorf("matched %q", got)
	}
	// A refused open has no kernel path: path is the requested one.
	ev = sdktest.Proc{PID: 20, Exe: "/usr/bin/cat"}.Open("/etc/shadow", 0, -13)
	if got := ids(s.NewEvaluator().Eval(ev, nil)); got != "credential_file_read" {
		t.Errorf("refused open matched %q", got)
	}
}

// value is field name's value on ev, as a condition sees it.
func value(t *testing.T, name string, ev *event.Event) any {
	t.Helper()
	i, ok := fieldIndex[name]
	if !ok {
		t.Fatalf("no field %q", name)
	}
	v := Fields[i].get(ev)
	if l, ok := v.(traits.Lister); ok {
		native, err := l.ConvertToNative(reflect.TypeFor[[]string]())
		if err != nil {
			t.Fatal(err)
		}
		return native
	}
	return v.Value()
}

// The fields of the new kinds, and the ones extended to them, read what
// kinds.md names, on every kind's event.
func TestNewKindFields(t *testing.T) {
	ev := eventtest.Of
	symlink := ev(event.KindFile)
	symlink.File = event.File{Op: event.FileSymlink, Syscall: "symlinkat", Path: "../etc/shadow", NewPath: "s", NewDir: "/tmp/d", NewResolved: "/tmp/d/s"}
	absLink := ev(event.KindFile)
	absLink.File = event.File{Op: event.FileSymlink, Syscall: "symlink", Path: "/etc/shadow", NewResolved: "/tmp/s"}
	fchown := ev(event.KindFile)
	fchown.File = event.File{Op: event.FileChown, Syscall: "fchown", FilePath: "/etc/passwd", UID: 0, GID: event.NoID}
	chroot := ev(event.KindNamespace)
	chroot.Namespace = event.Namespace{Syscall: "chroot", Target: "/srv/../jail"}
	setns := ev(event.KindNamespace)
	setns.Namespace = event.Namespace{Syscall: "setns", Fd: 4, Flags: 0x40020000, NsFile: "net:[4026531840]", Target: "x"}
	ptrace := ev(event.KindPtrace)
	bindRaw := ev(event.KindSocket)
	bindRaw.Socket = event.Socket{Syscall: "socket", Family: 17, Type: 0x80003, Protocol: 768, Ret: 3}
	kill := ev(event.KindSignal)
	kill.Signal = event.Signal{Syscall: "kill", TargetPID: -1, Signal: 15}
	capset := ev(event.KindSys)
	capset.Sys = event.Sys{Syscall: "capset", Args: [3]uint64{1 << 21, 1<<40 - 1, 0}}

	tests := []struct {
		field string
		ev    *event.Event
		want  any
	}{
		{"kind", ev(event.KindNamespace), "namespace"},
		{"syscall", ev(event.KindOpen), "openat"}, {"syscall", ev(event.KindSetID), "setresuid"}, {"syscall", ev(event.KindModule), "finit_module"},
		{"syscall", ev(event.KindFile), "renameat2"}, {"syscall", ev(event.KindNamespace), "mount"}, {"syscall", ev(event.KindSignal), "tgkill"},
		{"syscall", ev(event.KindSocket), "accept4"}, {"syscall", ev(event.KindSys), "prctl"}, {"syscall", ev(event.KindExec), ""},
		{"path", ev(event.KindFile), "/tmp/a"}, {"path", symlink, "/tmp/etc/shadow"}, {"path", absLink, "/etc/shadow"}, {"path", fchown, "/etc/passwd"},
		{"path", ev(event.KindNamespace), "/root/mnt"}, {"path", chroot, "/srv/../jail"}, {"path", setns, ""}, {"path", ev(event.KindExec), "/usr/bin/dash"},
		{"path", ev(event.KindSignal), ""},
		{"file_op", ev(event.KindFile), "rename"}, {"file_op", ev(event.KindOpen), ""},
		{"new_path", ev(event.KindFile), "/usr/bin/b"}, {"new_path", symlink, "/tmp/d/s"},
		{"mode", ev(event.KindFile), int64(0o4755)}, {"mode", ev(event.KindOpen), int64(0)},
		{"mode_bits", ev(event.KindFile), []string{"setuid"}}, {"mode_bits", ev(event.KindOpen), []string{}},
		{"owner_uid", fchown, int64(0)}, {"owner_gid", fchown, int64(-1)}, {"owner_uid", ev(event.KindFile), int64(-1)}, {"owner_uid", ev(event.KindExec), int64(-1)},
		{"length", ev(event.KindFile), int64(9)}, {"at_flags", ev(event.KindFile), int64(1)},
		{"ns_flags", setns, int64(0x40020000)}, {"namespaces", setns, []string{"mnt", "net"}}, {"namespaces", ev(event.KindNamespace), []string{}},
		{"mount_source", ev(event.KindNamespace), "/dev/sda1"}, {"fstype", ev(event.KindNamespace), "ext4"}, {"ns_file", setns, "net:[4026531840]"},
		{"signal", ev(event.KindSignal), int64(9)}, {"signal", ev(event.KindExit), int64(0)},
		{"target_pid", ev(event.KindSignal), int64(10)}, {"target_pid", kill, int64(-1)}, {"target_pid", ptrace, int64(10)},
		{"target_comm", ev(event.KindSignal), "sshd"},
		{"addr", ev(event.KindSocket), "::ffff:192.168.1.2"}, {"port", ev(event.KindSocket), int64(4444)},
		{"addr", ev(event.KindConnect), "10.0.0.1"}, {"port", ev(event.KindConnect), int64(4444)},
		{"addr", bindRaw, ""}, {"peer_addr", ev(event.KindSocket), "2001:db8::1"}, {"peer_port", ev(event.KindSocket), int64(50000)},
		{"family", bindRaw, int64(17)}, {"sock_type", bindRaw, int64(3)}, {"protocol", bindRaw, int64(768)}, {"backlog", ev(event.KindSocket), int64(5)},
		{"op", ev(event.KindSys), int64(15)}, {"sys_arg0", capset, int64(1 << 21)}, {"sys_arg1", capset, int64(1<<40 - 1)}, {"sys_arg2", ev(event.KindSys), int64(-1 << 63)},
		{"name", ev(event.KindSys), "[kworker/0:1]"}, {"name", ev(event.KindMemfd), "payload"}, {"name", ev(event.KindBPFProg), "sneaky"}, {"name", ev(event.KindFile), ""},
		{"env", ev(event.KindExec), []string{"LD_PRELOAD=/tmp/evil.so", "HTTPS_PROXY=http://10.0.0.9:3128"}}, {"env", ev(event.KindOpen), []string{}},
		{"script", ev(event.KindExec), "/dev/shm/x.sh"},
		{"ret", ev(event.KindFile), int64(-2)}, {"ret", ev(event.KindNamespace), int64(-1)}, {"ret", ev(event.KindSignal), int64(-3)},
		{"ret", ev(event.KindSocket), int64(4)}, {"ret", ev(event.KindSys), int64(-22)}, {"ret", bindRaw, int64(3)},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.field] = true
		got := value(t, tt.field, tt.ev)
		if l, ok := got.([]string); ok && len(l) == 0 {
			got = []string{}
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s on %s %+v: %#v, want %#v", tt.field, tt.ev.Kind, eventtest.Payload(tt.ev).Interface(), got, tt.want)
		}
	}
	for _, name := range []string{"syscall", "file_op", "new_path", "mode", "mode_bits", "owner_uid", "owner_gid", "length", "at_flags",
		"ns_flags", "namespaces", "mount_source", "fstype", "ns_file", "signal", "target_pid", "target_comm", "addr", "port", "peer_addr",
		"peer_port", "family", "sock_type", "protocol", "backlog", "op", "sys_arg0", "sys_arg1", "sys_arg2", "name", "env", "script", "ret", "path", "kind"} {
		if !covered[name] {
			t.Errorf("field %s is not tested", name)
		}
	}
}

// Every field reads every kind's event (hostile bytes included) without
// failing, its CEL type matches its value, and the activation's cache (64
// slots, one bit each) holds every field.
func TestEveryFieldOnEveryKind(t *testing.T) {
	if len(Fields) > 64 {
		t.Fatalf("%d fields: the activation caches 64 (eval.go)", len(Fields))
	}
	for _, ev := range append(eventtest.EveryKind(), func() *event.Event {
		e := eventtest.Of(event.KindFile)
		eventtest.SetStrings(e, "\x00\xff\x1b[2J")
		return e
	}()) {
		for _, f := range Fields {
			v := f.get(ev)
			if types.IsError(v) {
				t.Errorf("%s on %s: %v", f.Name, ev.Kind, v)
				continue
			}
			want := map[string]string{"string": "string", "int": "int"}[f.Type.String()]
			if want != "" && v.Type().TypeName() != want {
				t.Errorf("%s is declared %s, reads a %s", f.Name, f.Type, v.Type().TypeName())
			}
		}
	}
}

// docs/rules.md's field table names every field, and nothing else.
func TestFieldsDocumented(t *testing.T) {
	raw, err := os.ReadFile("../../../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	start := strings.Index(doc, "## Fields\n")
	end := strings.Index(doc[start+1:], "\n## ")
	if start < 0 || end < 0 {
		t.Fatal("docs/rules.md has no ## Fields section")
	}
	section := doc[start : start+1+end]
	documented := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cell := strings.Split(line, "|")[1]
		for _, m := range regexp.MustCompile("`([a-z_0-9]+)`").FindAllStringSubmatch(cell, -1) {
			documented[m[1]] = true
		}
	}
	for _, f := range Fields {
		if !documented[f.Name] {
			t.Errorf("field %s is not in docs/rules.md's ## Fields table", f.Name)
		}
		delete(documented, f.Name)
	}
	for name := range documented {
		t.Errorf("docs/rules.md documents %s, which is no field", name)
	}
}

// Rules on the new fields compile within the cost budget and match.
func TestNewFieldsInRules(t *testing.T) {
	s, problems, err := LoadSources(Source{Name: "new.yaml", Data: []byte(`
- rule: ld_preload
  desc: d
  condition: 'kind == "exec" && env.exists(e, e.startsWith("LD_PRELOAD="))'
  output: '{exe} preloads {env}'
  priority: high
- rule: setuid_chmod
  desc: d
  condition: 'kind == "file" && file_op == "chmod" && "setuid" in mode_bits'
  output: o
  priority: high
- rule: mount_ns
  desc: d
  condition: 'kind == "namespace" && "mnt" in namespaces'
  output: o
  priority: high
- rule: listener
  desc: d
  condition: 'kind == "socket" && syscall == "listen" && port == 4444'
  output: o
  priority: high
`)})
	if err != nil || len(problems) > 0 {
		t.Fatal(err, problems)
	}
	ev := eventtest.Of(event.KindExec)
	if got := s.NewEvaluator().Eval(ev, nil); ids(got) != "ld_preload" || got[0].Output != "/usr/bin/dash preloads LD_PRELOAD=/tmp/evil.so HTTPS_PROXY=http://10.0.0.9:3128" {
		t.Errorf("exec matched %q: %+v", ids(got), got)
	}
	chmod := eventtest.Of(event.KindFile)
	chmod.File.Op = event.FileChmod
	unshare := eventtest.Of(event.KindNamespace)
	unshare.Namespace = event.Namespace{Syscall: "unshare", Flags: 0x20000}
	listen := eventtest.Of(event.KindSocket)
	listen.Socket = event.Socket{Syscall: "listen", Addr: netip.IPv4Unspecified(), Port: 4444}
	for ev, want := range map[*event.Event]string{chmod: "setuid_chmod", unshare: "mount_ns", listen: "listener", eventtest.Of(event.KindSocket): ""} {
		if got := ids(s.NewEvaluator().Eval(ev, nil)); got != want {
			t.Errorf("%s %+v matched %q, want %q", ev.Kind, eventtest.Payload(ev).Interface(), got, want)
		}
	}
}
