package event

import (
	"net/netip"
	"strings"
)

// Flags mark what in an event was cut short or is unusual.
type Flags uint16

const (
	FlagTruncArgs     Flags = 1 << 0 // exec argv longer than captured
	FlagTruncPath     Flags = 1 << 1 // a user-supplied path or name did not fit
	FlagTruncWalk     Flags = 1 << 2 // a kernel-resolved path stopped early
	FlagPseudoPath    Flags = 1 << 3 // the file has no path from a root (memfd, pipe)
	FlagTruncFilename Flags = 1 << 4 // exec filename did not fit
	FlagFileTruncWalk Flags = 1 << 5 // open: the opened file's kernel path stopped early (Open.FilePath is not rooted)
	FlagFilePseudo    Flags = 1 << 6 // open: the opened file has no path from a root (memfd, pipe, socket)
	FlagTruncEnv      Flags = 1 << 7 // exec: the environment was not searched to its end, or a selected variable did not fit
)

var flagNames = []struct {
	f    Flags
	name string
}{
	{FlagTruncArgs, "trunc_args"}, {FlagTruncPath, "trunc_path"}, {FlagTruncWalk, "trunc_walk"},
	{FlagPseudoPath, "pseudo_path"}, {FlagTruncFilename, "trunc_filename"},
	{FlagFileTruncWalk, "file_trunc_walk"}, {FlagFilePseudo, "file_pseudo_path"}, {FlagTruncEnv, "trunc_env"},
}

// Names lists the set flags by name.
func (f Flags) Names() []string {
	var out []string
	for _, n := range flagNames {
		if f&n.f != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

// Header is common to every event.
type Header struct {
	Kind  Kind
	Flags Flags
	// KernelTimeNs is CLOCK_BOOTTIME in nanoseconds when the kernel emitted
	// the event; see Timebase for wall-clock time.
	KernelTimeNs uint64
	PID          uint32 // thread-group id
	TID          uint32
	PPID         uint32
	UID, GID     uint32 // real ids
	EUID, EGID   uint32
	CgroupID     uint64
	Comm         string
}

// Exec is a successful execve/execveat.
type Exec struct {
	Filename string // as passed to execve
	Exe      string // the binary the kernel opened, resolved to a full path
	Args     string // argv, NUL-separated; see ArgList
	ArgsSize uint32 // bytes of argv in the process, captured or not
	ExeNlink uint32 // 0 when the binary has no name left (deleted or memfd)
	// Script is, when the kernel ran an interpreter for a script (#!),
	// the script's path: Filename resolved against the working directory.
	// Empty for a binary.
	Script string
	// Env holds the selected variables of the new program's environment
	// (LD_PRELOAD, LD_LIBRARY_PATH, proxies, BASH_ENV, ... and a
	// configurable list), NUL-separated NAME=value; see EnvList.
	// FlagTruncEnv marks an environment not searched to its end or a
	// value cut short.
	Env string
}

// ArgList splits Args. It allocates; hot paths walk Args directly.
func (e *Exec) ArgList() []string {
	if e.Args == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(e.Args, "\x00"), "\x00")
}

// EnvList splits Env. It allocates.
func (e *Exec) EnvList() []string {
	if e.Env == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(e.Env, "\x00"), "\x00")
}

// Fork is a new process (not a new thread).
type Fork struct {
	ChildPID uint32
	ChildTID uint32
}

// Exit is the end of a whole process.
type Exit struct {
	Code       uint32
	Signal     uint32
	CoreDumped bool
}

// Syscall names the syscall that produced an event within its family.
type Syscall string

// Open is open/openat/openat2.
type Open struct {
	Syscall  Syscall
	Dfd      int32
	Flags    uint64
	Mode     uint64
	Resolve  uint64 // openat2 RESOLVE_* flags
	Path     string // as passed
	Dir      string // the directory a relative Path was resolved against (cwd or dfd)
	Resolved string // Path made absolute (lexically, against Dir) when the kernel let us
	Ret      int64  // fd, or -errno

	// The file the kernel opened, read from the new descriptor at the
	// syscall's exit; all zero when the open failed. FilePath is its path
	// as the kernel holds it, whatever string was passed: symlinks
	// followed, no ".", ".." or "//", and for a file with several names
	// (Nlink > 1) the name it was opened by. A path that does not start
	// with "/" is not a path from the root: a pseudo file (FlagFilePseudo)
	// or a walk cut short (FlagFileTruncWalk). Dev and Ino identify the
	// file under any of its names.
	FilePath string
	Dev      uint64 // st_dev, encoded as stat(2) reports it
	Ino      uint64
	Nlink    uint32
	FileMode uint32 // st_mode: file type and permission bits
}

// FileID is a file's identity: its filesystem's device (st_dev) and its
// inode number. Every name of a file (hard links, symlinks to it, any
// spelling of its path) leads to the same FileID.
type FileID struct {
	Dev, Ino uint64
}

// IsZero reports whether id identifies nothing.
func (id FileID) IsZero() bool { return id == FileID{} }

// ID is the opened file's identity; zero when the open failed.
func (o *Open) ID() FileID { return FileID{Dev: o.Dev, Ino: o.Ino} }

// KernelPath is the opened file's path from the root as the kernel
// resolved it, or "" when there is none (the open failed, a pseudo file,
// a walk cut short): a path that can be compared with a watched name.
func (o *Open) KernelPath() string {
	if len(o.FilePath) > 0 && o.FilePath[0] == '/' {
		return o.FilePath
	}
	return ""
}

// sIFMT and sIFREG are the file type bits of FileMode (as in stat(2)).
const (
	sIFMT  = 0o170000
	sIFREG = 0o100000
)

// Regular reports whether the opened file is a regular file.
func (o *Open) Regular() bool { return o.FileMode&sIFMT == sIFREG }

// Connect is a connect(2) to an IPv4 or IPv6 address.
type Connect struct {
	Fd   int32
	Addr netip.Addr
	Port uint16
	Ret  int64 // 0, or -errno (-115 EINPROGRESS for non-blocking sockets)
}

// IDs are one family of credentials: uids or gids.
type IDs struct {
	Real, Effective, Saved, FS uint32
}

// SetID is one of setuid, setgid, setreuid, setregid, setresuid,
// setresgid, setfsuid, setfsgid.
type SetID struct {
	Syscall Syscall
	Args    [3]uint32
	Old     IDs // before the call
	New     IDs // after the call
	Ret     int64
}

// Ptrace is a ptrace request, any of them: PTRACE_TRACEME, ATTACH, SEIZE,
// POKE*, GETREGS, ...
type Ptrace struct {
	Request   int64
	TargetPID uint32
	Ret       int64
}

// Module is init_module or finit_module.
type Module struct {
	Syscall Syscall
	Len     uint64 // init_module image size
	Flags   uint32 // finit_module flags
	Params  string
	Path    string // finit_module file
	Ret     int64
}

// BPFProg is a bpf(BPF_PROG_LOAD).
type BPFProg struct {
	ProgType  uint32
	InsnCount uint32
	Name      string
	Ret       int64 // program fd, or -errno
}

// Memfd is memfd_create.
type Memfd struct {
	Name  string
	Flags uint32
	Ret   int64
}

// FileOp is what a KindFile event did, whichever syscall of its family
// did it.
type FileOp string

// The file operations.
const (
	FileUnlink   FileOp = "unlink"   // unlink, unlinkat
	FileRmdir    FileOp = "rmdir"    // rmdir, unlinkat(AT_REMOVEDIR)
	FileRename   FileOp = "rename"   // rename, renameat, renameat2
	FileLink     FileOp = "link"     // link, linkat: a hard link
	FileSymlink  FileOp = "symlink"  // symlink, symlinkat
	FileMkdir    FileOp = "mkdir"    // mkdir, mkdirat
	FileChmod    FileOp = "chmod"    // chmod, fchmod, fchmodat, fchmodat2
	FileChown    FileOp = "chown"    // chown, fchown, lchown, fchownat
	FileTruncate FileOp = "truncate" // truncate, ftruncate
)

// File is a change to a file (KindFile). Paths are as passed, with the
// directory a relative one was resolved against (cwd or the dirfd, walked
// by the kernel) and the path made absolute lexically against it.
type File struct {
	Op      FileOp
	Syscall Syscall
	// Path is the file acted on: the old name for rename and link, the
	// link's contents (its target) for symlink. Empty for the fd calls
	// (fchmod, fchown, ftruncate), which set FilePath.
	Path     string
	Dir      string
	Resolved string
	// NewPath is the new name of rename, link and symlink.
	NewPath     string
	NewDir      string
	NewResolved string
	// FilePath is the file's path as the kernel holds it, where the call
	// named the file by a descriptor; Dev, Ino and FileMode identify it.
	FilePath string
	Dev, Ino uint64
	FileMode uint32
	Mode     uint32 // chmod, mkdir: the mode passed, setuid/setgid/sticky bits included
	UID, GID uint32 // chown: the ids passed (NoID leaves one unchanged)
	Length   int64  // truncate: the new length
	AtFlags  uint32 // the call's flags: AT_REMOVEDIR, AT_SYMLINK_NOFOLLOW, RENAME_*, ...
	Ret      int64  // 0, or -errno
}

// NoID is the uid or gid -1 that chown takes as "leave unchanged".
const NoID = ^uint32(0)

// The mode bits a chmod can set that change who a program runs as.
const (
	ModeSetuid = 0o4000
	ModeSetgid = 0o2000
	ModeSticky = 0o1000
)

// SpecialBits names the setuid, setgid and sticky bits set in Mode.
func (f *File) SpecialBits() []string {
	var out []string
	for _, b := range []struct {
		bit  uint32
		name string
	}{{ModeSetuid, "setuid"}, {ModeSetgid, "setgid"}, {ModeSticky, "sticky"}} {
		if f.Mode&b.bit != 0 {
			out = append(out, b.name)
		}
	}
	return out
}

// Namespace is a mount, an unmount, a root change or a namespace
// change (KindNamespace).
type Namespace struct {
	Syscall Syscall // mount, umount2, pivot_root, chroot, setns, unshare, clone, clone3
	// Flags are the call's flags: MS_* for mount, MNT_*/UMOUNT_* for
	// umount2, CLONE_* for unshare, clone and clone3, the namespace type
	// (CLONE_NEW*, or 0 for any) for setns.
	Flags  uint64
	Fd     int32  // setns: the namespace or pidfd descriptor
	NsFile string // setns: what Fd refers to, as the kernel names it (e.g. "mnt:[4026531841]")
	Source string // mount: the source; pivot_root: the new root
	Target string // mount, umount2: the mount point; chroot: the new root; pivot_root: put_old
	FSType string // mount: the filesystem type
	Dir    string // the directory a relative Target was resolved against
	Ret    int64  // clone: the child's pid; otherwise 0, or -errno
}

// The CLONE_NEW* flags: the namespaces an unshare, clone or setns names.
var cloneNewFlags = []struct {
	bit  uint64
	name string
}{
	{0x00000080, "time"}, {0x00020000, "mnt"}, {0x02000000, "cgroup"}, {0x04000000, "uts"},
	{0x08000000, "ipc"}, {0x10000000, "user"}, {0x20000000, "pid"}, {0x40000000, "net"},
}

// Namespaces names the namespaces Flags names (unshare, clone, clone3,
// setns); nil for the other calls.
func (n *Namespace) Namespaces() []string {
	switch n.Syscall {
	case "unshare", "clone", "clone3", "setns":
	default:
		return nil
	}
	var out []string
	for _, f := range cloneNewFlags {
		if n.Flags&f.bit != 0 {
			out = append(out, f.name)
		}
	}
	return out
}

// Signal is a signal sent to another process (KindSignal). Signals a
// process sends itself (the Go runtime's preemption, for one) are not
// captured.
type Signal struct {
	Syscall Syscall // kill, tkill, tgkill
	// TargetPID is kill's pid (0 and negative values name process
	// groups, -1 every process) or tgkill's thread group; 0 for tkill.
	TargetPID  int32
	TargetTID  int32  // tkill, tgkill: the thread
	TargetComm string // the target's comm, when the kernel found one process
	Signal     uint32 // 0 probes whether the target exists
	Ret        int64
}

// Socket is the inbound side of the network, and sockets that bypass the
// protocol stack (KindSocket).
type Socket struct {
	Syscall  Syscall // socket, bind, listen, accept, accept4
	Fd       int32   // bind, listen, accept: the socket
	Family   uint16  // AF_*
	Type     uint32  // socket: SOCK_* with its flags
	Protocol uint32  // socket: the protocol (for AF_PACKET, the ethertype)
	// Addr and Port are the local side: the address bound, the address
	// listened on, the address a connection was accepted on.
	Addr netip.Addr
	Port uint16
	// Peer and PeerPort are the remote side of an accepted connection.
	Peer     netip.Addr
	PeerPort uint16
	Backlog  int32 // listen
	Ret      int64 // socket, accept: the new descriptor; bind, listen: 0; or -errno
}

// Sys is one of a few rare, security-relevant calls (KindSys).
type Sys struct {
	Syscall Syscall // capset, prctl, userfaultfd, io_uring_setup, kexec_load, kexec_file_load, bpf
	Op      uint64  // prctl: the option; bpf: the command; 0 otherwise
	// Args by call: capset: effective, permitted, inheritable
	// capabilities (64-bit masks); userfaultfd: flags; io_uring_setup:
	// entries, flags; kexec_load: segments, flags; kexec_file_load:
	// flags; bpf: the attach type, the target fd or object id.
	Args [3]uint64
	// Name by call: prctl(PR_SET_NAME): the new name; kexec_file_load:
	// the kernel image's path; bpf: the object's name where it has one.
	Name string
	Ret  int64
}

// Event is one kernel event. Only the payload matching Header.Kind is
// meaningful; the others are zero.
type Event struct {
	Header
	Exec      Exec
	Fork      Fork
	Exit      Exit
	Open      Open
	Connect   Connect
	SetID     SetID
	Ptrace    Ptrace
	Module    Module
	BPFProg   BPFProg
	Memfd     Memfd
	File      File
	Namespace Namespace
	Signal    Signal
	Socket    Socket
	Sys       Sys
	// Process is the context pipeline/enrich attached: the process's binary,
	// ancestry and container. Nil before enrichment. Shared and immutable.
	Process *Process
}

// Clone returns a copy that shares no memory with e: its strings no longer
// borrow from a reader's buffer, and its process context is its own (a
// decoder may reuse the one e points at).
func (e *Event) Clone() *Event {
	c := *e
	c.Comm = strings.Clone(e.Comm)
	c.Process = e.Process.Clone()
	switch e.Kind {
	case KindExec:
		c.Exec.Filename = strings.Clone(e.Exec.Filename)
		c.Exec.Exe = strings.Clone(e.Exec.Exe)
		c.Exec.Args = strings.Clone(e.Exec.Args)
		c.Exec.Script = strings.Clone(e.Exec.Script)
		c.Exec.Env = strings.Clone(e.Exec.Env)
	case KindOpen:
		c.Open.Syscall = Syscall(strings.Clone(string(e.Open.Syscall)))
		c.Open.Path = strings.Clone(e.Open.Path)
		c.Open.Dir = strings.Clone(e.Open.Dir)
		c.Open.Resolved = strings.Clone(e.Open.Resolved)
		c.Open.FilePath = strings.Clone(e.Open.FilePath)
	case KindSetID:
		c.SetID.Syscall = Syscall(strings.Clone(string(e.SetID.Syscall)))
	case KindModule:
		c.Module.Syscall = Syscall(strings.Clone(string(e.Module.Syscall)))
		c.Module.Params = strings.Clone(e.Module.Params)
		c.Module.Path = strings.Clone(e.Module.Path)
	case KindBPFProg:
		c.BPFProg.Name = strings.Clone(e.BPFProg.Name)
	case KindMemfd:
		c.Memfd.Name = strings.Clone(e.Memfd.Name)
	case KindFile:
		f := &c.File
		f.Op, f.Syscall = FileOp(strings.Clone(string(f.Op))), Syscall(strings.Clone(string(f.Syscall)))
		f.Path, f.Dir, f.Resolved = strings.Clone(f.Path), strings.Clone(f.Dir), strings.Clone(f.Resolved)
		f.NewPath, f.NewDir, f.NewResolved = strings.Clone(f.NewPath), strings.Clone(f.NewDir), strings.Clone(f.NewResolved)
		f.FilePath = strings.Clone(f.FilePath)
	case KindNamespace:
		n := &c.Namespace
		n.Syscall, n.NsFile = Syscall(strings.Clone(string(n.Syscall))), strings.Clone(n.NsFile)
		n.Source, n.Target, n.FSType, n.Dir = strings.Clone(n.Source), strings.Clone(n.Target), strings.Clone(n.FSType), strings.Clone(n.Dir)
	case KindSignal:
		c.Signal.Syscall, c.Signal.TargetComm = Syscall(strings.Clone(string(e.Signal.Syscall))), strings.Clone(e.Signal.TargetComm)
	case KindSocket:
		c.Socket.Syscall = Syscall(strings.Clone(string(e.Socket.Syscall)))
	case KindSys:
		c.Sys.Syscall, c.Sys.Name = Syscall(strings.Clone(string(e.Sys.Syscall))), strings.Clone(e.Sys.Name)
	}
	return &c
}

// ProcessExe is the binary of the event's process: for an exec the new
// one, otherwise the process context's; empty when unknown.
func (e *Event) ProcessExe() string {
	if e.Kind == KindExec && e.Exec.Exe != "" {
		return e.Exec.Exe
	}
	if e.Process != nil {
		return e.Process.Exe
	}
	return ""
}

// ProcessArgs is the argv (NUL-separated) of the event's process: for an
// exec the new one, otherwise the process context's.
func (e *Event) ProcessArgs() string {
	if e.Kind == KindExec {
		return e.Exec.Args
	}
	if e.Process != nil {
		return e.Process.Args
	}
	return ""
}

// Ancestor is one process up a Process's parent chain.
type Ancestor struct {
	PID  uint32
	Exe  string
	Comm string
}

// Process is what is known about a process when an event happens. A new
// Process value is made when the process forks or execs; existing values are
// never changed, so events can share them.
type Process struct {
	PID         uint32
	PPID        uint32
	Exe         string
	Comm        string
	Args        string // argv, NUL-separated, as captured at exec (or read from /proc)
	UID, EUID   uint32
	CgroupID    uint64
	CgroupPath  string // relative to the cgroup2 mount; empty when unknown
	ContainerID string // empty on the host
	// StartKernelNs is when the process was seen to fork or exec (CLOCK_BOOTTIME);
	// 0 for processes that predate the monitor.
	StartKernelNs uint64
	// Ancestors starts with the parent; bounded by the table's depth.
	Ancestors []Ancestor
	// FromProc is true when this context was read from /proc instead of
	// being followed from fork/exec events.
	FromProc bool
}

// Clone returns a deep copy of p (nil for nil).
func (p *Process) Clone() *Process {
	if p == nil {
		return nil
	}
	c := *p
	c.Exe, c.Comm, c.Args = strings.Clone(p.Exe), strings.Clone(p.Comm), strings.Clone(p.Args)
	c.CgroupPath, c.ContainerID = strings.Clone(p.CgroupPath), strings.Clone(p.ContainerID)
	if p.Ancestors != nil {
		c.Ancestors = make([]Ancestor, len(p.Ancestors))
		for i, a := range p.Ancestors {
			c.Ancestors[i] = Ancestor{PID: a.PID, Exe: strings.Clone(a.Exe), Comm: strings.Clone(a.Comm)}
		}
	}
	return &c
}
