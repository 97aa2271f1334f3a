package event

import (
	"fmt"
	"strings"
)

// Kind is what an event is about.
type Kind uint16

// The kinds bulkhead captures. The numbers are the kernel side's.
const (
	KindExec    Kind = 1
	KindFork    Kind = 2
	KindExit    Kind = 3
	KindOpen    Kind = 4
	KindConnect Kind = 5
	KindSetID   Kind = 6
	KindPtrace  Kind = 7
	KindModule  Kind = 8
	KindBPFProg Kind = 9
	KindMemfd   Kind = 10
	// KindFile is a change to a file's name, content length or
	// attributes: unlink, rmdir, rename, link, symlink, mkdir, chmod,
	// chown, truncate (see File).
	KindFile Kind = 11
	// KindNamespace is a mount, an unmount, a root change or a move into
	// or out of namespaces: mount, umount2, pivot_root, chroot, setns,
	// unshare, and clone/clone3 with CLONE_NEW* flags (see Namespace).
	KindNamespace Kind = 12
	// KindSignal is a signal sent to another process: kill, tkill, tgkill.
	KindSignal Kind = 13
	// KindSocket is the inbound side of the network and unusual sockets:
	// bind, listen, accept/accept4, and socket() for raw and packet
	// sockets (see Socket; connect is KindConnect).
	KindSocket Kind = 14
	// KindSys is one of a few rare, security-relevant calls with a small
	// fixed shape: capset, prctl(PR_SET_NAME), userfaultfd,
	// io_uring_setup, kexec_load, kexec_file_load, and bpf() commands
	// that attach programs or reach into other programs' objects (see Sys).
	KindSys Kind = 15
	// KindCount bounds kind numbers; arrays indexed by Kind use it.
	KindCount = 16
)

var kindNames = [KindCount]string{
	KindExec: "exec", KindFork: "fork", KindExit: "exit", KindOpen: "open",
	KindConnect: "connect", KindSetID: "setid", KindPtrace: "ptrace",
	KindModule: "module", KindBPFProg: "bpf_prog", KindMemfd: "memfd",
	KindFile: "file", KindNamespace: "namespace", KindSignal: "signal", KindSocket: "socket", KindSys: "sys",
}

// AllKinds lists every kind, in kernel order.
func AllKinds() []Kind {
	return []Kind{KindExec, KindFork, KindExit, KindOpen, KindConnect, KindSetID, KindPtrace, KindModule, KindBPFProg, KindMemfd,
		KindFile, KindNamespace, KindSignal, KindSocket, KindSys}
}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint16(k))
}

// Valid reports whether k is a kind bulkhead knows.
func (k Kind) Valid() bool { return int(k) < len(kindNames) && kindNames[k] != "" }

// ParseKind turns a name such as "open" into a Kind.
func ParseKind(s string) (Kind, error) {
	for k, name := range kindNames {
		if name != "" && name == s {
			return Kind(k), nil
		}
	}
	return 0, fmt.Errorf("unknown event kind %q; known kinds: %s", s, strings.Join(kindNamesList(), ", "))
}

func kindNamesList() []string {
	var names []string
	for _, k := range AllKinds() {
		names = append(names, k.String())
	}
	return names
}

// KindSet is a set of kinds.
type KindSet uint32

// Has reports whether k is in the set.
func (s KindSet) Has(k Kind) bool { return k < KindCount && s&(1<<k) != 0 }

// With returns the set with k added.
func (s KindSet) With(k Kind) KindSet { return s | 1<<k }

// Kinds lists the set's members in kernel order.
func (s KindSet) Kinds() []Kind {
	var out []Kind
	for _, k := range AllKinds() {
		if s.Has(k) {
			out = append(out, k)
		}
	}
	return out
}

// AllKindSet contains every kind.
func AllKindSet() KindSet {
	var s KindSet
	for _, k := range AllKinds() {
		s = s.With(k)
	}
	return s
}

// ParseKindSet parses a comma-separated list of kind names; "all" or ""
// means every kind.
func ParseKindSet(list string) (KindSet, error) {
	if list == "" || list == "all" {
		return AllKindSet(), nil
	}
	var s KindSet
	for _, name := range strings.Split(list, ",") {
		k, err := ParseKind(strings.TrimSpace(name))
		if err != nil {
			return 0, err
		}
		s = s.With(k)
	}
	return s, nil
}
