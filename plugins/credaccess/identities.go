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
func identities(classes []class) (ids map[event.FileID]watchedFile, missed []string) {
	ids = map[event.FileID]watchedFile{}
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
				if len(ids) >= maxIdentities {
					return ids, append(missed, "(more than 4096 files)")
				}
				if matchAny(c.except, name) {
					continue
				}
				var st syscall.Stat_t
				if syscall.Stat(name, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
					continue
				}
				id := event.FileID{Dev: st.Dev, Ino: st.Ino}
				if _, ok := ids[id]; !ok {
					ids[id] = watchedFile{class: ci, path: name}
				}
			}
		}
	}
	return ids, missed
}
