package enclave

import (
	"os"

	"github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
)

// systemLibraries hold the dynamic loader and the C library a cgo plugin
// links against.
var systemLibraries = []string{"/usr/lib", "/usr/lib64", "/lib", "/lib64"}

// privateAccess is what the plugin may do in its private directory:
// read, write, make and remove files, directories and sockets; not
// execute, nor make devices, fifos or symbolic links.
const privateAccess = landlock.AccessFSSet(ll.AccessFSReadFile | ll.AccessFSReadDir | ll.AccessFSWriteFile |
	ll.AccessFSRemoveDir | ll.AccessFSRemoveFile | ll.AccessFSMakeDir | ll.AccessFSMakeReg | ll.AccessFSMakeSock | ll.AccessFSTruncate)

// restrictFilesystem confines the calling process to the plugin's binary,
// the system libraries and the read paths (read-only), its private
// directory (read-write), no TCP, and no signals or abstract UNIX sockets
// reaching outside. Best effort: an older kernel enforces what it knows.
func restrictFilesystem(s spec) error {
	rules := []landlock.Rule{
		landlock.ROFiles(s.Binary),
		landlock.RODirs(systemLibraries...).IgnoreIfMissing(),
		landlock.ROFiles("/etc/ld.so.cache").IgnoreIfMissing(),
		landlock.RWFiles("/dev/null").IgnoreIfMissing(),
		landlock.PathAccess(privateAccess, s.Tmp),
	}
	for _, p := range s.Read {
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			rules = append(rules, landlock.RODirs(p))
		} else {
			rules = append(rules, landlock.ROFiles(p))
		}
	}
	return landlock.V11.BestEffort().Restrict(rules...)
}
