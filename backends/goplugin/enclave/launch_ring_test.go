package enclave

import (
	"os"
	"testing"

	"github.com/bulkhead-sec/bulkhead/backends/goplugin/shm"
	"golang.org/x/sys/unix"
)

// The launcher keeps descriptors 3 and 4 only if they are sealed memfds
// (a ring); anything else there is refused, not handed to the plugin.
func TestCheckRingFD(t *testing.T) {
	ring, err := shm.New(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Close()
	prod, cons := ring.Files()
	for _, f := range []*os.File{prod, cons} {
		if err := checkRingFD(int(f.Fd())); err != nil {
			t.Errorf("%s: %v", f.Name(), err)
		}
		if flags, _ := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0); flags&unix.FD_CLOEXEC != 0 {
			t.Errorf("%s: still close-on-exec", f.Name())
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	unsealed, err := unix.MemfdCreate("unsealed", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(unsealed)
	for name, fd := range map[string]int{"pipe": int(r.Fd()), "unsealed memfd": unsealed, "closed": 1 << 20} {
		if err := checkRingFD(fd); err == nil {
			t.Errorf("%s: accepted as a ring", name)
		}
	}
}
