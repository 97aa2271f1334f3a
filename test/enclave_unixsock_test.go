package test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends/goplugin/enclave"
	"github.com/bulkhead-sec/bulkhead/test/testenv"
	"golang.org/x/sys/unix"
)

// What docs/enclave.md says of pathname UNIX sockets, measured: a plugin
// in its enclave connects, for real, to a socket of mode 0666 outside its
// directory (a stand-in for /dev/log or the system D-Bus). Landlock
// restricts that only from ABI 9: below it the connection must succeed
// (and the listener sees the plugin's uid); from ABI 9 it must be
// refused. Either way the monitor and a healthy detector beside it carry
// on.
func TestPathnameUnixSocketsFollowTheLandlockABI(t *testing.T) {
	testenv.RequireBPF(t)
	abi := enclave.Probe().LandlockABI
	if abi == 0 {
		t.Skip("no Landlock on this kernel: nothing to measure")
	}
	dir := t.TempDir()
	svc, err := os.MkdirTemp("", "bulkhead-svc-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(svc)
	os.Chmod(svc, 0o755)
	sock := filepath.Join(svc, "service.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	os.Chmod(sock, 0o666)
	peers := make(chan int, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(peers)
				return
			}
			raw, _ := c.(*net.UnixConn).SyscallConn()
			raw.Control(func(fd uintptr) {
				if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
					peers <- int(cred.Uid)
				}
			})
			c.Close()
		}
	}()

	cfg := "detectors:\n" + hostileLine(t, "hostile", "connect-other", dir, fmt.Sprintf(", target: %q", sock)) + healthyLine(t, "healthy", dir)
	m := startLive(t, nil, "--config", writeConfig(t, cfg), "--status", "")
	openMarkersFrom(t, dir, "ok", 0, 10, 50*time.Millisecond)
	openMarkersFrom(t, dir, "attack", 0, 1, 0)
	if !m.waitFor(30*time.Second, 1, `"hostile-attempt"`) {
		t.Error("the attempt was not reported within 30s")
	}
	openMarkersFrom(t, dir, "ok", 10, 10, 50*time.Millisecond)
	m.waitFor(30*time.Second, 20, `"healthy"`, dir+"/ok-")
	events := m.stop(t)
	l.Close()
	var uids []int
	for uid := range peers {
		uids = append(uids, uid)
	}
	got := attempts(events)["hostile"]
	t.Logf("Landlock ABI %d: connect to a 0666 pathname socket outside the enclave: %s; peer uids seen by the listener: %v", abi, got, uids)
	if abi < 9 {
		if !strings.HasPrefix(got, "succeeded") || len(uids) != 1 || uids[0] < enclave.UIDBase {
			t.Errorf("ABI %d does not restrict pathname UNIX sockets, yet the connect was %q (peers %v): docs/enclave.md is wrong", abi, got, uids)
		}
	} else if !strings.HasPrefix(got, "blocked") || len(uids) != 0 {
		t.Errorf("ABI %d restricts pathname UNIX sockets, yet the connect was %q (peers %v)", abi, got, uids)
	}
	if n := len(markersFound(events, "healthy", dir+"/ok-")); n != 20 {
		t.Errorf("the healthy detector got %d of 20 markers", n)
	}
	if t.Failed() {
		t.Logf("monitor:\n%s", tail(m.stderr.String(), 25))
	}
}
