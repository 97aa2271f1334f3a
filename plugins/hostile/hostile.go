// Package hostile is a TEST detector that attacks the monitor and the host
// from inside its plugin process, to show what the plugin enclave stops.
// Never run it outside the enclave, or on a host you care about.
//
// An open event whose path contains `on` triggers the configured attack
// once per process. An attack that returns is reported as a finding
// (rule hostile-attempt) whose fields say whether it was blocked and how;
// an attack the enclave answers by killing the plugin is reported by the
// monitor. Opens whose path contains `report_on` are reported as
// hostile-report, so a test sees that the plugin still works.
//
//	read-shadow     read /etc/shadow
//	write-outside   create a file outside the plugin's private directory
//	write-private   create a file in it (the control: this one must work)
//	signal-monitor  send SIGTERM to the monitor
//	ptrace-monitor  ptrace-attach to the monitor
//	raw-socket      open a raw IP socket
//	bpf             load a BPF program
//	load-module     load a kernel module
//	fork-bomb       start processes without end
//	memory          allocate without end
//	spin            burn CPU in four goroutines, still answering events
package hostile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unsafe"

	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Attacks lists every attack.
var Attacks = []string{"read-shadow", "write-outside", "write-private", "signal-monitor", "ptrace-monitor",
	"raw-socket", "bpf", "load-module", "fork-bomb", "memory", "spin"}

// Config selects the attack.
type Config struct {
	Attack   string `json:"attack"`
	On       string `json:"on"`
	ReportOn string `json:"report_on"`
}

// Detector is the attacker.
type Detector struct {
	c     Config
	done  bool
	hoard [][]byte
	log   *zap.Logger
}

// New returns the detector.
func New() *Detector { return &Detector{} }

func (d *Detector) Definition() sdk.Definition {
	return sdk.Definition{Name: "hostile", Version: "1.0.0", Description: "TEST ONLY: attacks from inside its plugin", Kinds: []sdk.Kind{sdk.KindOpen}}
}

func (d *Detector) Init(_ context.Context, cfg sdk.Config, log *zap.Logger) error {
	if err := cfg.Decode(&d.c); err != nil {
		return err
	}
	known := d.c.Attack == ""
	for _, a := range Attacks {
		known = known || a == d.c.Attack
	}
	if !known {
		return fmt.Errorf("attack %q: use one of %s", d.c.Attack, strings.Join(Attacks, ", "))
	}
	if d.c.Attack != "" && d.c.On == "" {
		return errors.New("an attack needs on: a path marker that triggers it")
	}
	d.log = log
	return nil
}

func (d *Detector) OnEvent(_ context.Context, ev *sdk.Event) ([]sdk.Finding, error) {
	path := ev.Open.Resolved
	var out []sdk.Finding
	if !d.done && on(path, d.c.On) {
		d.done = true
		d.log.Warn("TEST detector attacking", zap.String("attack", d.c.Attack))
		err := d.attack()
		outcome := "blocked"
		switch {
		case d.c.Attack == "spin":
			outcome = "running" // until a limit ends it
		case err == nil:
			outcome = "succeeded"
		}
		f := sdk.NewFinding(ev, "hostile-attempt", sdk.SeverityInfo, fmt.Sprintf("attack %s %s: %v", d.c.Attack, outcome, err))
		f.Fields = map[string]any{"attack": d.c.Attack, "outcome": outcome, "error": fmt.Sprint(err)}
		out = append(out, f)
	}
	if on(path, d.c.ReportOn) {
		out = append(out, sdk.NewFinding(ev, "hostile-report", sdk.SeverityInfo, "saw "+path))
	}
	return out, nil
}

// attack performs the attack; nil means it worked.
func (d *Detector) attack() error {
	monitor := os.Getppid()
	switch d.c.Attack {
	case "read-shadow":
		_, err := os.ReadFile("/etc/shadow")
		return err
	case "write-outside":
		for _, dir := range []string{"/var/tmp", "/tmp", "/etc", "/root"} {
			name := filepath.Join(dir, fmt.Sprintf("bulkhead-hostile-%d", os.Getpid()))
			if err := os.WriteFile(name, []byte("x"), 0o600); err == nil {
				os.Remove(name)
				return nil // one place was writable: the attack worked
			}
		}
		return errors.New("every directory refused: " + fmt.Sprint(os.WriteFile("/var/tmp/bulkhead-hostile", nil, 0o600)))
	case "write-private":
		name := filepath.Join(os.TempDir(), "hostile-control")
		defer os.Remove(name)
		return os.WriteFile(name, []byte("x"), 0o600)
	case "signal-monitor":
		return unix.Kill(monitor, unix.SIGTERM)
	case "ptrace-monitor":
		return unix.PtraceAttach(monitor)
	case "raw-socket":
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP)
		if err == nil {
			unix.Close(fd)
		}
		return err
	case "bpf":
		// BPF_PROG_LOAD of "r0 = 0; exit" as a socket filter.
		insns := []uint64{0x00000000000000b7, 0x0000000000000095}
		license := []byte("GPL\x00")
		attr := struct {
			progType, insnCnt uint32
			insns, license    uint64
		}{1, 2, uint64(uintptr(unsafe.Pointer(&insns[0]))), uint64(uintptr(unsafe.Pointer(&license[0])))}
		fd, _, errno := unix.Syscall(unix.SYS_BPF, 5, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
		if errno != 0 {
			return errno
		}
		unix.Close(int(fd))
		return nil
	case "load-module":
		_, _, errno := unix.Syscall(unix.SYS_FINIT_MODULE, ^uintptr(0), 0, 0)
		return errno // EBADF would mean the call itself was allowed
	case "fork-bomb":
		var last error
		for i := 0; i < 1000; i++ {
			pid, err := syscall.ForkExec("/proc/self/exe", []string{"hostile-child"}, &syscall.ProcAttr{})
			if err != nil {
				last = err
				break
			}
			defer syscall.Kill(pid, syscall.SIGKILL)
			if i == 999 {
				return nil
			}
		}
		return last
	case "memory":
		for {
			b := make([]byte, 16<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1 // resident, not just reserved
			}
			d.hoard = append(d.hoard, b)
		}
	case "spin":
		for g := 0; g < 4; g++ {
			go func() {
				for x := 0; ; x++ {
					_ = x * x
				}
			}()
		}
		return nil
	}
	return nil
}

func (d *Detector) Close(context.Context) error { return nil }

func on(path, marker string) bool { return marker != "" && strings.Contains(path, marker) }
