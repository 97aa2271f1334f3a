package match

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

// How Files.Match recognised an opened file, for a finding's matched_by.
const (
	ByKernelPath = "kernel_path"   // the path the kernel resolved for the opened file
	ByIdentity   = "file_identity" // a watched file under another name (a hard link)
	ByName       = "path"          // the path as passed, made absolute (a failed open)
)

// MaxIdentities bounds the files whose identity Files keeps: a pattern
// that matches a whole tree must not make Init slow or large.
const MaxIdentities = 4096

// Files recognises the files a detector watches under any name. Groups
// are the detector's own (a class of credentials, a persistence place);
// group says which group a path belongs to, -1 none. Use one per detector
// goroutine.
type Files struct {
	group  func(path string) int
	byID   map[event.FileID]watched
	byPath map[string]event.FileID
}

// watched is a watched file known by its identity: its group and the
// name it was found under.
type watched struct {
	group int
	path  string
}

// NewFiles watches the files group places in a group.
func NewFiles(group func(path string) int) *Files {
	return &Files{group: group, byID: map[event.FileID]watched{}, byPath: map[string]event.FileID{}}
}

// Len is how many names lead to a known identity.
func (f *Files) Len() int { return len(f.byPath) }

// Stat learns the identity of every regular file the absolute patterns
// name now, following symlinks, so that an open of the same file under
// another name (a hard link, a bind mount) is recognised. stat needs no
// read permission on the file, only search permission on its directories:
// in a plugin's enclave (an unprivileged uid under Landlock) literal paths
// such as /etc/shadow work; a wildcard needs its directory listed, which
// the enclave may refuse: those files are then matched by name only. What
// could not be listed is returned in missed.
func (f *Files) Stat(patterns []string) (missed []string) {
	for _, p := range patterns {
		if !strings.HasPrefix(p, "/") {
			continue
		}
		names := []string{p}
		if strings.ContainsAny(p, "*?[") {
			dir := filepath.Dir(p)
			if _, err := os.ReadDir(dir); err != nil && !os.IsNotExist(err) && !strings.ContainsAny(dir, "*?[") {
				missed = append(missed, dir)
			}
			names, _ = filepath.Glob(p) // only ErrBadPattern, for patterns Glob reads differently: name-only
		}
		for _, name := range names {
			if f.full() {
				return append(missed, "(more than 4096 files)")
			}
			g := f.group(name)
			var st syscall.Stat_t
			if g < 0 || syscall.Stat(name, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
				continue
			}
			f.add(event.FileID{Dev: st.Dev, Ino: st.Ino}, watched{group: g, path: name})
		}
	}
	return missed
}

// Match finds the group of the file o opened, the watched name it is
// known by and how it was recognised: by the kernel's path of the opened
// file (symlinks, "..", "//" and relative paths all end there; the file's
// identity is learnt then, so a file created or replaced since is known
// under its other names too), by its identity (a hard link's other name),
// or, when no file was opened, by the path as passed. group is -1 when o
// opened no watched file.
func (f *Files) Match(o *event.Open) (group int, path, by string) {
	if kp := o.KernelPath(); kp != "" {
		if g := f.group(kp); g >= 0 {
			f.learn(o, g, kp)
			return g, kp, ByKernelPath
		}
	}
	if o.Ret >= 0 && !o.ID().IsZero() {
		if w, ok := f.byID[o.ID()]; ok {
			return w.group, w.path, ByIdentity
		}
	}
	if g := f.group(o.Resolved); g >= 0 {
		return g, o.Resolved, ByName
	}
	return -1, "", ""
}

func (f *Files) full() bool { return len(f.byPath) >= MaxIdentities }

// add notes that w's name leads to the file id. When the name led to
// another file before (a file replaced by rename, as passwd rewrites
// /etc/shadow), that file is forgotten: its inode number may be reused.
func (f *Files) add(id event.FileID, w watched) {
	if id.IsZero() {
		return
	}
	old, known := f.byPath[w.path]
	if known && old == id {
		return
	}
	if !known && f.full() {
		return
	}
	if known && f.byID[old].path == w.path {
		delete(f.byID, old)
	}
	if _, ok := f.byID[id]; !ok {
		f.byID[id] = w
	}
	f.byPath[w.path] = id
}

// learn notes the identity of a watched regular file an open reached by
// its kernel path. path may borrow from the event: it is copied.
func (f *Files) learn(o *event.Open, group int, path string) {
	if o.Ret < 0 || o.ID().IsZero() || !o.Regular() {
		return
	}
	if id, ok := f.byPath[path]; ok && id == o.ID() {
		return
	}
	f.add(o.ID(), watched{group: group, path: strings.Clone(path)})
}
