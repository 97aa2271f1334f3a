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
//	tiocsti         type a command into a terminal (TIOCSTI, TIOCLINUX) through
//	                stdin, stdout, stderr and /dev/tty: the operator's shell
//	escape-pdeathsig clear its parent-death signal, become a subreaper and
//	                dumpable, to outlive the monitor
//	outlive         clear its parent-death signal, then start a process of
//	                its own in a new session (a double fork's first step)
//	exec-private    write a copy of its binary and a script into its
//	                private directory, then execute them (and map one
//	                executable), sidestepping the SHA-256 pin
//	fill-disk       write into its private directory until refused
//	connect-other   connect to the UNIX socket at target: another
//	                monitor's plugin
//	print-flood     write 1 MiB to stdout and to stderr, as a detector that
//	                prints instead of logging would (the control: it must
//	                not block, and the plugin keeps answering)
package hostile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Attacks lists every attack.
var Attacks = []string{"read-shadow", "write-outside", "write-private", "signal-monitor", "ptrace-monitor",
	"raw-socket", "bpf", "load-module", "fork-bomb", "memory", "spin",
	"tiocsti", "escape-pdeathsig", "outlive", "exec-private", "fill-disk", "connect-other", "print-flood"}

// Config selects the attack.
type Config struct {
	Attack   string `json:"attack"`
	On       string `json:"on"`
	ReportOn string `json:"report_on"`
	// Target is the socket connect-other connects to.
	Target string `json:"target"`
	// Text is what tiocsti types (default: a command that creates
	// /tmp/bulkhead-hostile-tiocsti).
	Text string `json:"text"`
}

// Detector is the attacker.
type Detector struct {
	c     Config
	done  bool
	hoard [][]byte
	log   *zap.Logger
	main  chan func() // run on the process's main thread (ServeMainThread)
}

// New returns the detector.
func New() *Detector { return &Detector{main: make(chan func())} }

// ServeMainThread runs, on the calling thread, what attacks need done on
// the main thread (per-thread state such as the parent-death signal is
// the main thread's). Call it from main, locked to the main thread, with
// sdk.Serve on another goroutine; it does not return.
func (d *Detector) ServeMainThread() {
	for f := range d.main {
		f()
	}
}

// onMainThread runs f on the main thread if ServeMainThread serves it,
// else on this one.
func (d *Detector) onMainThread(f func() error) error {
	res := make(chan error, 1)
	select {
	case d.main <- func() { res <- f() }:
		return <-res
	case <-time.After(time.Second):
		return f()
	}
}

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
	case "print-flood":
		line := []byte(strings.Repeat("p", 1023) + "\n")
		for i := 0; i < 1024; i++ {
			if _, err := os.Stdout.Write(line); err != nil {
				return err
			}
			if _, err := os.Stderr.Write(line); err != nil {
				return err
			}
		}
		return nil
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
	case "tiocsti":
		return typeIntoTerminal(d.c.Text)
	case "escape-pdeathsig":
		// The parent-death signal is the main thread's: clear it there.
		return d.onMainThread(escapeParentDeath)
	case "outlive":
		if err := d.onMainThread(func() error { return unix.Prctl(unix.PR_SET_PDEATHSIG, 0, 0, 0, 0) }); err == nil {
			d.log.Warn("TEST detector cleared its parent-death signal")
		}
		pid, err := syscall.ForkExec("/proc/self/exe", []string{"hostile-orphan"}, &syscall.ProcAttr{Sys: &syscall.SysProcAttr{Setsid: true}})
		if err == nil {
			d.log.Warn("TEST detector started a process in a new session", zap.Int("pid", pid))
		}
		return err
	case "exec-private":
		return execPrivate()
	case "fill-disk":
		return fillDisk()
	case "connect-other":
		if d.c.Target == "" {
			return errors.New("connect-other needs target: a socket path")
		}
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Connect(fd, &unix.SockaddrUnix{Name: d.c.Target})
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

// typeIntoTerminal pushes text into the input of every terminal it can
// reach; nil if any took it.
func typeIntoTerminal(text string) error {
	if text == "" {
		text = "touch /tmp/bulkhead-hostile-tiocsti\n"
	}
	var errs []string
	b := []byte(text)
	try := func(what string, fd int) bool {
		for i := range b {
			if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCSTI, uintptr(unsafe.Pointer(&b[i]))); errno != 0 {
				errs = append(errs, fmt.Sprintf("TIOCSTI on %s: %v", what, errno))
				return false
			}
		}
		return true
	}
	ok := false
	for fd := 0; fd <= 2; fd++ {
		ok = try(fmt.Sprintf("fd %d", fd), fd) || ok
	}
	if fd, err := unix.Open("/dev/tty", unix.O_RDWR|unix.O_NOCTTY, 0); err != nil {
		errs = append(errs, "open /dev/tty: "+err.Error())
	} else {
		ok = try("/dev/tty", fd) || ok
		unix.Close(fd)
	}
	// TIOCLINUX subcode 2: paste the console selection (a virtual console).
	sub := byte(2)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, 0, unix.TIOCLINUX, uintptr(unsafe.Pointer(&sub))); errno != 0 {
		errs = append(errs, fmt.Sprintf("TIOCLINUX on fd 0: %v", errno))
	}
	if ok {
		return nil
	}
	return errors.New(strings.Join(errs, "; "))
}

// escapeParentDeath tries what would let it outlive the monitor; nil if
// its parent-death signal ended up cleared.
func escapeParentDeath() error {
	var before int32
	unix.Prctl(unix.PR_GET_PDEATHSIG, uintptr(unsafe.Pointer(&before)), 0, 0, 0)
	errs := []string{fmt.Sprintf("main thread's parent-death signal %d", before)}
	for _, c := range []struct {
		what      string
		op, value uintptr
	}{{"PR_SET_PDEATHSIG 0", unix.PR_SET_PDEATHSIG, 0}, {"PR_SET_CHILD_SUBREAPER", unix.PR_SET_CHILD_SUBREAPER, 1},
		{"PR_SET_DUMPABLE", unix.PR_SET_DUMPABLE, 1}, {"PR_SET_PTRACER any", unix.PR_SET_PTRACER, ^uintptr(0)}} {
		if err := unix.Prctl(int(c.op), c.value, 0, 0, 0); err != nil {
			errs = append(errs, c.what+": "+err.Error())
		}
	}
	var sig int32
	if err := unix.Prctl(unix.PR_GET_PDEATHSIG, uintptr(unsafe.Pointer(&sig)), 0, 0, 0); err == nil && sig == 0 {
		return nil
	}
	return fmt.Errorf("parent-death signal still %d: %s", sig, strings.Join(errs, "; "))
}

// execPrivate writes code into its private directory and tries to run
// it; nil if anything ran or mapped executable. (An execve that works
// replaces the plugin: the monitor then sees it die without a report.)
func execPrivate() error {
	dir := os.TempDir()
	self, err := os.ReadFile(os.Args[0]) // its own binary: Landlock lets it read that
	if err != nil {
		return fmt.Errorf("read its binary: %w", err)
	}
	bin := filepath.Join(dir, "hostile-copy")
	script := filepath.Join(dir, "hostile-script")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		return fmt.Errorf("write a binary: %w", err)
	}
	if err := os.WriteFile(script, []byte("#!/bin/sh\ntouch /tmp/bulkhead-hostile-exec\n"), 0o755); err != nil {
		return fmt.Errorf("write a script: %w", err)
	}
	var errs []string
	f, err := os.Open(bin)
	if err != nil {
		return err
	}
	defer f.Close()
	if m, err := unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_EXEC, unix.MAP_PRIVATE); err != nil {
		errs = append(errs, "mmap PROT_EXEC: "+err.Error())
	} else {
		unix.Munmap(m)
		return nil // code from its own directory could run
	}
	for _, p := range []string{bin, script} {
		if err := syscall.Exec(p, []string{p}, os.Environ()); err != nil {
			errs = append(errs, "execve "+filepath.Base(p)+": "+err.Error())
		}
	}
	return errors.New(strings.Join(errs, "; "))
}

// fillDisk writes 1 MiB at a time into its private directory until a
// write fails (or 8 GiB).
func fillDisk() error {
	f, err := os.Create(filepath.Join(os.TempDir(), "hostile-fill"))
	if err != nil {
		return err
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	for mib := 0; mib < 8192; mib++ {
		if _, err := f.Write(chunk); err != nil {
			return fmt.Errorf("wrote %d MiB, then: %w", mib, err)
		}
	}
	return nil
}

func (d *Detector) Close(context.Context) error { return nil }

func on(path, marker string) bool { return marker != "" && strings.Contains(path, marker) }
