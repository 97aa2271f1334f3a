package credaccess

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

// maxIdentities bounds the files whose identity the detector keeps: a
// pattern that matches a whole tree must not make Init slow or large.
const maxIdentities = 4096

// watchedFile is a watched file known by its identity: the class it
// belongs to and the name it was found under at Init.
type watchedFile struct {
	class int
	path  string
}

// identities stats the files the patterns name now, following symlinks,
// so that an open of the same file under any other name (a hard link, a
// bind mount) is recognised. stat needs no read permission on the file,
// only search permission on its directories: in a plugin's enclave (an
// unprivileged uid under Landlock) literal paths such as /etc/shadow work;
// a wildcard needs its directory listed, which the enclave may refuse:
// those files are then matched by name only. What could not be listed is
// returned in missed.
func identities(classes []class) (ids *fileIDs, missed []string) {
	ids = newFileIDs()
	for ci, c := range classes {
		for _, p := range c.patterns {
			if !strings.HasPrefix(p, "/") {
				continue
			}
			names := []string{p}
			if strings.ContainsAny(p, "*?[") {
				if _, err := os.ReadDir(filepath.Dir(p)); err != nil && !os.IsNotExist(err) && !strings.ContainsAny(filepath.Dir(p), "*?[") {
					missed = append(missed, filepath.Dir(p))
				}
				names, _ = filepath.Glob(p) // only ErrBadPattern, for patterns Glob reads differently: name-only
			}
			for _, name := range names {
				if ids.full() {
					return ids, append(missed, "(more than 4096 files)")
				}
				if matchAny(c.except, name) {
					continue
				}
				var st syscall.Stat_t
				if syscall.Stat(name, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
					continue
				}
				ids.add(event.FileID{Dev: st.Dev, Ino: st.Ino}, watchedFile{class: ci, path: name})
			}
		}
	}
	return ids, missed
}

// fileIDs are the watched files by identity, and the identity each watched
// name leads to. Bounded by maxIdentities names.
type fileIDs struct {
	byID   map[event.FileID]watchedFile
	byPath map[string]event.FileID
}

func newFileIDs() *fileIDs {
	return &fileIDs{byID: map[event.FileID]watchedFile{}, byPath: map[string]event.FileID{}}
}

func (f *fileIDs) full() bool { return len(f.byPath) >= maxIdentities }

// lookup is the watched file id is, if any.
func (f *fileIDs) lookup(id event.FileID) (watchedFile, bool) {
	w, ok := f.byID[id]
	return w, ok
}

// add notes that w's name leads to the file id. When the name led to
// another file before (a file replaced by rename, as passwd rewrites
// /etc/shadow), that file is forgotten: its inode number may be reused.
func (f *fileIDs) add(id event.FileID, w watchedFile) {
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

// learn notes the identity of a watched file that an open reached by its
// kernel path: a file created or replaced since Init is then known under
// its other names too. path may borrow from the event: it is copied.
func (f *fileIDs) learn(o *event.Open, class int, path string) {
	if o.Ret < 0 || o.ID().IsZero() || !o.Regular() {
		return
	}
	if id, ok := f.byPath[path]; ok && id == o.ID() {
		return
	}
	f.add(o.ID(), watchedFile{class: class, path: strings.Clone(path)})
}
