package bpf_test

import (
	"net/netip"
	"os"
	"testing"

	"github.com/bulkhead-sec/bulkhead/bpf"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"golang.org/x/sys/unix"
)

// bind, listen and accept4 on loopback come out with both ends; raw and
// packet sockets are reported at creation, ordinary ones and unix sockets
// are not.
func TestCaptureSocket(t *testing.T) {
	me := uint32(os.Getpid())
	var lfd, cfd, afd, rawfd, pktfd, tcpfd int
	var port, cport int
	evs := capture(t, bpf.Options{}, []uint16{bpf.RecordSocket}, func() {
		var err error
		must := func(what string, err error) {
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		tcpfd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		must("socket", err)
		lfd = tcpfd
		must("bind", unix.Bind(lfd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
		must("listen", unix.Listen(lfd, 7))
		sa, err := unix.Getsockname(lfd)
		must("getsockname", err)
		port = sa.(*unix.SockaddrInet4).Port
		cfd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		must("client socket", err)
		must("connect", unix.Connect(cfd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}))
		ca, err := unix.Getsockname(cfd)
		must("client name", err)
		cport = ca.(*unix.SockaddrInet4).Port
		afd, _, err = unix.Accept4(lfd, unix.SOCK_CLOEXEC)
		must("accept4", err)
		rawfd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
		must("raw socket", err)
		pktfd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		must("packet socket", err)
		ufd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		must("unix socket", err)
		must("unix bind", unix.Bind(ufd, &unix.SockaddrUnix{Name: "@bulkhead-test-" + hostile}))
		must("unix listen", unix.Listen(ufd, 1))
		for _, fd := range []int{lfd, cfd, afd, rawfd, pktfd, ufd} {
			unix.Close(fd)
		}
	})
	lo := netip.MustParseAddr("127.0.0.1")
	get := func(what string, sc event.Syscall) event.Socket {
		t.Helper()
		return one(t, evs, event.KindSocket, what, func(e *event.Event) bool { return e.PID == me && e.Socket.Syscall == sc }).Socket
	}
	b := get("bind", "bind")
	if b.Fd != int32(lfd) || b.Family != unix.AF_INET || b.Addr != lo || b.Port != 0 || b.Ret != 0 {
		t.Errorf("bind: %+v", b)
	}
	l := get("listen", "listen")
	if l.Fd != int32(lfd) || l.Addr != lo || l.Port != uint16(port) || l.Backlog != 7 || l.Ret != 0 {
		t.Errorf("listen: %+v (port %d)", l, port)
	}
	a := get("accept4", "accept4")
	if a.Fd != int32(lfd) || a.Ret != int64(afd) || a.Addr != lo || a.Port != uint16(port) || a.Peer != lo || a.PeerPort != uint16(cport) {
		t.Errorf("accept4: %+v (port %d, client %d)", a, port, cport)
	}
	socks := find(evs, event.KindSocket, func(e *event.Event) bool { return e.PID == me && e.Socket.Syscall == "socket" })
	if len(socks) != 2 {
		t.Fatalf("%d socket() events, want the raw and the packet one", len(socks))
	}
	if r := socks[0].Socket; r.Family != unix.AF_INET || r.Type&0xf != unix.SOCK_RAW || r.Protocol != unix.IPPROTO_ICMP || r.Ret != int64(rawfd) {
		t.Errorf("raw socket: %+v", r)
	}
	if p := socks[1].Socket; p.Family != unix.AF_PACKET || p.Protocol != uint32(htons(unix.ETH_P_ALL)) || p.Ret != int64(pktfd) {
		t.Errorf("packet socket: %+v", p)
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
