// Package outbound reports what a compromised host does on the network
// right after the compromise:
//
//   - reverse-shell: a shell, interpreter or netcat-like tool connects out
//     and then it, or a child of it, starts an interactive shell (MITRE
//     ATT&CK T1059.004) — `bash -i >& /dev/tcp/…`, `nc -e /bin/sh`,
//     python's socket+pty one-liners;
//   - mining-pool-port: a connection to a port mining pools listen on
//     (T1496);
//   - miner-argv: a program started with a stratum URL or a well-known
//     miner's flags in its arguments (T1496);
//   - bind-shell: the inbound twin of reverse-shell: a shell, interpreter
//     or netcat-like tool accepts a connection and then it, or a child of
//     it, starts an interactive shell (T1059.004);
//   - netcat-listener: netcat, ncat or socat listens on an address off
//     loopback (T1059, T1571): the bind shell's usual listener, and a
//     file-transfer or relay endpoint.
//
// Connections to or from loopback are ignored unless include_loopback is
// set.
package outbound

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/match"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/procstate"
	"go.uber.org/zap"
)

// Config is the detector's configuration.
type Config struct {
	match.AllowConfig
	// Window is how long after a connection starting a shell counts as a
	// reverse shell (default 10m).
	Window string `json:"window"`
	// IncludeLoopback treats connections to 127.0.0.0/8 and ::1 as outbound.
	IncludeLoopback bool `json:"include_loopback"`
	// PoolPorts replaces DefaultPoolPorts when set.
	PoolPorts []uint16 `json:"pool_ports"`
	// Connectors and Shells are added to the defaults (patterns).
	Connectors []string `json:"connectors"`
	Shells     []string `json:"shells"`
	// MaxProcesses bounds the processes whose last connection is kept
	// (default 65536).
	MaxProcesses int `json:"max_processes"`
}

// DefaultConnectors are the programs reverse shells are made of.
var DefaultConnectors = []string{
	"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox",
	"python*", "perl*", "ruby*", "php*", "node", "nodejs", "lua*", "tclsh*", "awk", "gawk", "mawk",
	"nc", "nc.*", "ncat", "netcat", "socat", "telnet", "openssl",
}

// DefaultShells are what a reverse shell hands the attacker.
var DefaultShells = []string{"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox", "csh", "tcsh", "fish"}

// DefaultPoolPorts are ports Monero and Bitcoin pools commonly serve
// stratum on. 4444 is also Metasploit's default handler.
var DefaultPoolPorts = []uint16{3333, 3334, 3357, 4444, 5555, 7777, 14433, 14444, 20535, 20580, 45560, 45700}

// minerArgs mark a miner's command line.
var minerArgs = []string{"stratum+tcp://", "stratum+ssl://", "stratum+tls://", "stratum2+tcp://", "--donate-level", "--cpu-max-threads-hint"}

// DefaultListeners are the tools whose listening socket is reported.
var DefaultListeners = []string{"nc", "nc.*", "ncat", "netcat", "socat"}

type conn struct {
	at      uint64 // kernel time, ns
	addr    netip.Addr
	port    uint16
	inbound bool // accepted from addr:port; otherwise connected to it
}

// Detector is the detector.
type Detector struct {
	allow              match.Allowlist
	window             uint64
	loopback           bool
	pool               map[uint16]bool
	connectors, shells []string
	last               *procstate.Map[conn] // a connector's last outbound connection
}

// New returns the detector; Init configures it.
func New() *Detector { return &Detector{} }

func (d *Detector) Definition() sdk.Definition {
	return sdk.Definition{Name: "outbound", Version: "1.0.0",
		Description: "reverse and bind shells, netcat listeners and connections to mining pools (T1059.004, T1496)",
		Kinds:       []sdk.Kind{sdk.KindConnect, sdk.KindExec, sdk.KindExit, event.KindSocket}}
}

func (d *Detector) Init(_ context.Context, cfg sdk.Config, log *zap.Logger) error {
	c := Config{Window: "10m", MaxProcesses: 1 << 16}
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	window, err := time.ParseDuration(c.Window)
	if err != nil || window <= 0 {
		return fmt.Errorf("window: %q: use a positive duration such as 10m", c.Window)
	}
	if c.MaxProcesses < 1 {
		return fmt.Errorf("max_processes: %d: use at least 1", c.MaxProcesses)
	}
	for what, p := range map[string][]string{"connectors": c.Connectors, "shells": c.Shells} {
		if err := match.CheckPatterns(what, p); err != nil {
			return err
		}
	}
	if d.allow, err = c.Build(nil); err != nil {
		return err
	}
	ports := DefaultPoolPorts
	if c.PoolPorts != nil {
		ports = c.PoolPorts
	}
	d.pool = map[uint16]bool{}
	for _, p := range ports {
		d.pool[p] = true
	}
	d.window, d.loopback = uint64(window), c.IncludeLoopback
	d.connectors = append(append([]string(nil), DefaultConnectors...), c.Connectors...)
	d.shells = append(append([]string(nil), DefaultShells...), c.Shells...)
	d.last = procstate.New[conn](c.MaxProcesses)
	log.Debug("configured", zap.Duration("window", window), zap.Bool("include_loopback", d.loopback), zap.Int("pool_ports", len(d.pool)))
	return nil
}

func (d *Detector) OnEvent(_ context.Context, ev *sdk.Event) ([]sdk.Finding, error) {
	switch ev.Kind {
	case sdk.KindConnect:
		return d.onConnect(ev), nil
	case sdk.KindExec:
		return d.onExec(ev), nil
	case sdk.KindExit:
		d.last.Delete(ev.PID)
	case event.KindSocket:
		return d.onSocket(ev), nil
	}
	return nil, nil
}

func (d *Detector) onConnect(ev *sdk.Event) []sdk.Finding {
	c := &ev.Connect
	const einprogress = -115
	if (c.Ret != 0 && c.Ret != einprogress) || !c.Addr.IsValid() || c.Addr.IsUnspecified() || (c.Addr.IsLoopback() && !d.loopback) {
		return nil
	}
	exe := ev.ProcessExe()
	if exe == "" {
		exe = ev.Comm
	}
	if match.AnyPath(d.connectors, exe) {
		d.last.Put(ev.PID, conn{ev.KernelTimeNs, c.Addr, c.Port, false})
	}
	if !d.pool[c.Port] || d.allow.Allows(ev) {
		return nil
	}
	f := sdk.NewFinding(ev, "mining-pool-port", sdk.SeverityMedium,
		fmt.Sprintf("%s (pid %d) connected to %s, a mining-pool port", ev.Comm, ev.PID, netip.AddrPortFrom(c.Addr, c.Port)), "T1496")
	f.Fields = map[string]any{"addr": c.Addr.String(), "port": c.Port, "exe": exe}
	return []sdk.Finding{f}
}

// onSocket remembers a connector's accepted connection, for bind-shell,
// and reports netcat-likes listening.
func (d *Detector) onSocket(ev *sdk.Event) []sdk.Finding {
	s := &ev.Socket
	exe := ev.ProcessExe()
	if exe == "" {
		exe = ev.Comm
	}
	switch s.Syscall {
	case "accept", "accept4":
		if s.Ret < 0 || !s.Peer.IsValid() || (s.Peer.Unmap().IsLoopback() && !d.loopback) || !match.AnyPath(d.connectors, exe) {
			return nil
		}
		d.last.Put(ev.PID, conn{ev.KernelTimeNs, s.Peer.Unmap(), s.PeerPort, true})
	case "listen":
		if s.Ret < 0 || !match.AnyPath(DefaultListeners, exe) || (s.Addr.IsValid() && s.Addr.Unmap().IsLoopback() && !d.loopback) || d.allow.Allows(ev) {
			return nil
		}
		on := "every address"
		if s.Addr.IsValid() && !s.Addr.IsUnspecified() {
			on = s.Addr.String()
		}
		f := sdk.NewFinding(ev, "netcat-listener", sdk.SeverityMedium,
			fmt.Sprintf("%s (pid %d, uid %d) listens on port %d of %s", ev.Comm, ev.PID, ev.UID, s.Port, on), "T1059", "T1571")
		f.Fields = map[string]any{"exe": exe, "port": s.Port, "addr": on}
		return []sdk.Finding{f}
	}
	return nil
}

func (d *Detector) onExec(ev *sdk.Event) []sdk.Finding {
	var out []sdk.Finding
	if arg := minerArg(ev.Exec.Args); arg != "" && !d.allow.Allows(ev) {
		f := sdk.NewFinding(ev, "miner-argv", sdk.SeverityHigh,
			fmt.Sprintf("%s (pid %d) started with miner argument %q", ev.Exec.Exe, ev.PID, arg), "T1496")
		f.Fields = map[string]any{"exe": ev.Exec.Exe, "argv": ev.Exec.ArgList()}
		out = append(out, f)
	}
	if !match.AnyPath(d.shells, ev.Exec.Exe) || !interactive(ev.Exec.Args) {
		return out
	}
	who := ev.PID
	c, ok := d.last.Get(who)
	if ok = ok && ev.KernelTimeNs-c.at <= d.window; !ok {
		who = ev.PPID
		c, ok = d.last.Get(who)
		ok = ok && ev.KernelTimeNs-c.at <= d.window
	}
	if !ok || d.allow.Allows(ev) {
		return out
	}
	rel := "itself"
	if who != ev.PID {
		rel = fmt.Sprintf("its parent (pid %d)", who)
	}
	rule, what := "reverse-shell", "connected to"
	if c.inbound {
		rule, what = "bind-shell", "accepted a connection from"
	}
	f := sdk.NewFinding(ev, rule, sdk.SeverityCritical,
		fmt.Sprintf("interactive %s (pid %d) started after %s %s %s", ev.Exec.Exe, ev.PID, rel, what, netip.AddrPortFrom(c.addr, c.port)),
		"T1059.004")
	f.Fields = map[string]any{"shell": ev.Exec.Exe, "argv": ev.Exec.ArgList(), "connector_pid": who,
		"addr": c.addr.String(), "port": c.port, "seconds_after_connect": float64(ev.KernelTimeNs-c.at) / 1e9}
	return append(out, f)
}

// interactive reports whether a shell's argv asks for an interactive
// shell: -i or -s, a login shell, or no arguments at all. `sh -c …` and
// `sh script` are not.
func interactive(args string) bool {
	n := 0
	for i := 0; len(args) > 0; i++ {
		arg, rest, _ := strings.Cut(args, "\x00")
		args = rest
		if i == 0 {
			if strings.HasPrefix(arg, "-") {
				return true // login shell
			}
			continue
		}
		n++
		switch {
		case arg == "" || strings.HasPrefix(arg, "--"):
		case !strings.HasPrefix(arg, "-"):
			return false // a script
		case strings.ContainsRune(arg, 'c'):
			return false // a command string
		case strings.ContainsAny(arg, "is"):
			return true
		}
	}
	return n == 0
}

func minerArg(args string) string {
	for _, m := range minerArgs {
		if i := strings.Index(args, m); i >= 0 {
			end := strings.IndexByte(args[i:], 0)
			if end < 0 {
				end = len(args) - i
			}
			return args[i : i+end]
		}
	}
	return ""
}

func (d *Detector) Close(context.Context) error { return nil }
