package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bulkhead-sec/bulkhead/bpf"
	"github.com/bulkhead-sec/bulkhead/internal/monitor"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

// listFlag collects a repeatable or comma-separated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// captureFlags are the flags shared by every command that captures.
type captureFlags struct {
	ringMiB, wakeupKiB      int
	flush                   time.Duration
	kinds                   string
	pids, excludePids       listFlag
	comms, excludeComms     listFlag
	cgroups, excludeCgroups listFlag
	execEnv                 listFlag
	sysExitBTF              bool
	logLevel                string
}

func (c *captureFlags) register(fs *flag.FlagSet) {
	def := monitor.DefaultCapture()
	fs.IntVar(&c.ringMiB, "ring-mib", def.RingMiB, "ring buffer size in MiB (a power of two)")
	fs.IntVar(&c.wakeupKiB, "wakeup-kib", def.WakeupKiB, "wake the reader when this many KiB are queued")
	fs.DurationVar(&c.flush, "flush-interval", def.FlushInterval, "longest time an event waits in the ring on a quiet host")
	fs.StringVar(&c.kinds, "kinds", "all", "event kinds to capture, comma-separated: "+kindList())
	fs.Var(&c.pids, "pid", "only capture these process ids (repeatable, comma-separated)")
	fs.Var(&c.excludePids, "exclude-pid", "never capture these process ids")
	fs.Var(&c.comms, "comm", "only capture processes with these command names (as in /proc/PID/comm)")
	fs.Var(&c.excludeComms, "exclude-comm", "never capture processes with these command names")
	fs.Var(&c.cgroups, "cgroup", "only capture these cgroups (v2 id, or a cgroup directory path)")
	fs.Var(&c.excludeCgroups, "exclude-cgroup", "never capture these cgroups")
	fs.Var(&c.execEnv, "exec-env", "also capture these environment variables at exec, by exact name (repeatable, comma-separated), beside "+strings.Join(bpf.DefaultEnvNames, ","))
	fs.BoolVar(&c.sysExitBTF, "sys-exit-btf", false, "attach the syscall exit program to the BTF tracepoint sys_exit (every syscall runs it) instead of each traced syscalls/sys_exit_* (to compare their cost)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
}

func kindList() string {
	var names []string
	for _, k := range event.AllKinds() {
		names = append(names, k.String())
	}
	return strings.Join(names, ",")
}

func (c *captureFlags) config() (monitor.Capture, error) {
	cfg := monitor.DefaultCapture()
	cfg.RingMiB, cfg.WakeupKiB, cfg.FlushInterval = c.ringMiB, c.wakeupKiB, c.flush
	cfg.SysExitBTF = c.sysExitBTF
	if c.ringMiB <= 0 || c.ringMiB&(c.ringMiB-1) != 0 || c.ringMiB > 1024 {
		return cfg, usageErr("--ring-mib %d: use a power of two from 1 to 1024", c.ringMiB)
	}
	if c.wakeupKiB <= 0 || c.wakeupKiB > c.ringMiB<<10 {
		return cfg, usageErr("--wakeup-kib %d: use 1 up to the ring size (%d KiB)", c.wakeupKiB, c.ringMiB<<10)
	}
	if c.flush < time.Millisecond || c.flush > 10*time.Second {
		return cfg, usageErr("--flush-interval %s: use 1ms to 10s", c.flush)
	}
	kinds, err := event.ParseKindSet(c.kinds)
	if err != nil {
		return cfg, usageErr("--kinds: %v", err)
	}
	cfg.Kinds = kinds
	if cfg.PIDs, err = filter("pid", c.pids, c.excludePids, func(s string) (uint32, error) {
		n, err := strconv.ParseUint(s, 10, 32)
		return uint32(n), err
	}); err != nil {
		return cfg, err
	}
	if cfg.Comms, err = filter("comm", c.comms, c.excludeComms, func(s string) (string, error) {
		if len(s) > 15 {
			return "", fmt.Errorf("longer than 15 bytes; the kernel keeps only the first 15 (use %q)", s[:15])
		}
		return s, nil
	}); err != nil {
		return cfg, err
	}
	if cfg.Cgroups, err = filter("cgroup", c.cgroups, c.excludeCgroups, cgroupID); err != nil {
		return cfg, err
	}
	if len(c.execEnv) > 0 {
		cfg.EnvNames = append([]string(nil), bpf.DefaultEnvNames...)
		for _, n := range c.execEnv {
			if err := bpf.ValidateEnvName(n); err != nil {
				return cfg, usageErr("--exec-env: %v", err)
			}
			cfg.EnvNames = append(cfg.EnvNames, n)
		}
	}
	return cfg, nil
}

// filter builds one kernel filter from an include and an exclude flag.
func filter[T comparable](name string, include, exclude listFlag, parse func(string) (T, error)) (bpf.Filter[T], error) {
	var f bpf.Filter[T]
	list := include
	switch {
	case len(include) > 0 && len(exclude) > 0:
		return f, usageErr("--%s and --exclude-%s: use one or the other", name, name)
	case len(include) > 0:
		f.Mode = bpf.FilterInclude
	case len(exclude) > 0:
		f.Mode, list = bpf.FilterExclude, exclude
	}
	for _, s := range list {
		v, err := parse(s)
		if err != nil {
			return f, usageErr("--%s %q: %v", name, s, err)
		}
		f.Values = append(f.Values, v)
	}
	return f, nil
}

// cgroupID accepts a cgroup v2 id or the path of a cgroup directory.
func cgroupID(s string) (uint64, error) {
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		return n, nil
	}
	var st syscall.Stat_t
	if err := syscall.Stat(s, &st); err != nil {
		return 0, fmt.Errorf("not a cgroup id, and not a directory: %v", err)
	}
	return st.Ino, nil
}

// parseInterspersed parses flags that may come before and after the
// positional arguments (`replay FILE --config X`), which flag.Parse alone
// stops at.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
