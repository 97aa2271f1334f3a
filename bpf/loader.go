package bpf

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// FilterMode says how a filter list is applied in the kernel.
type FilterMode uint8

const (
	FilterOff     FilterMode = 0 // the list is not consulted
	FilterExclude FilterMode = 1 // events of listed entries are dropped
	FilterInclude FilterMode = 2 // only events of listed entries are sent
)

// Filter is one kernel-side filter list. Lists of different dimensions
// combine with AND: an event is sent only if every active list lets it through.
type Filter[T comparable] struct {
	Mode   FilterMode
	Values []T
}

// Options configure the kernel objects before they are created.
type Options struct {
	// RingBytes is the ring buffer size: a power of two, at least one page.
	RingBytes uint32
	// WakeupBytes: user space is woken when the queued data crosses this
	// many bytes. Below it, the reader's own deadline picks records up.
	WakeupBytes uint64
	// SelfPID is never traced, so the monitor cannot feed on its own activity.
	SelfPID uint32
	PIDs    Filter[uint32]
	Comms   Filter[string]
	Cgroups Filter[uint64]
	// EnvNames are the environment variables an exec reports (Exec.Env),
	// by exact name; nil means DefaultEnvNames. Each is 1 to 31 bytes
	// without '=' or NUL.
	EnvNames []string
	// SysExitBTF attaches the syscall exit program to the BTF raw
	// tracepoint sys_exit, where it runs on every syscall's exit, instead
	// of to each traced syscalls/sys_exit_* tracepoint (the default, which
	// measured cheaper for the syscalls bulkhead does not trace; see
	// docs/capture-cost.md). For comparing the two.
	SysExitBTF bool
}

// DefaultEnvNames are the environment variables captured at exec unless
// Options.EnvNames says otherwise: the dynamic linker's, proxies, and the
// shells' start-up and history settings.
var DefaultEnvNames = []string{
	"LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT",
	"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy",
	"BASH_ENV", "ENV", "PROMPT_COMMAND", "HISTFILE", "HISTSIZE", "HISTFILESIZE",
}

// envNameMax is the longest selectable name (events.h ENV_NAME less one).
const envNameMax = 31

// maxEnvNames is the env_names map's size.
const maxEnvNames = 256

// Validate reports the first option that the kernel would refuse, in words
// an operator can act on.
func (o Options) Validate() error {
	page := uint32(os.Getpagesize())
	if o.RingBytes < page || o.RingBytes&(o.RingBytes-1) != 0 {
		return fmt.Errorf("ring buffer size %d bytes: must be a power of two and at least one page (%d bytes)", o.RingBytes, page)
	}
	if o.WakeupBytes == 0 || o.WakeupBytes > uint64(o.RingBytes) {
		return fmt.Errorf("wake-up threshold %d bytes: must be between 1 and the ring size (%d bytes)", o.WakeupBytes, o.RingBytes)
	}
	if len(o.EnvNames) > maxEnvNames {
		return fmt.Errorf("%d environment variable names: at most %d", len(o.EnvNames), maxEnvNames)
	}
	for _, n := range o.EnvNames {
		if err := ValidateEnvName(n); err != nil {
			return err
		}
	}
	for _, c := range o.Comms.Values {
		if len(c) == 0 || len(c) > 15 {
			return fmt.Errorf("comm filter %q: a comm is 1 to 15 bytes (the kernel's TASK_COMM_LEN less the NUL)", c)
		}
	}
	return nil
}

// ValidateEnvName reports whether name can be selected for capture at exec.
func ValidateEnvName(name string) error {
	if len(name) == 0 || len(name) > envNameMax || strings.ContainsAny(name, "=\x00") {
		return fmt.Errorf("environment variable name %q: 1 to %d bytes, without '=' or NUL", name, envNameMax)
	}
	return nil
}

// LoadSpec parses the embedded BPF ELF. It needs no privileges.
func LoadSpec() (*ebpf.CollectionSpec, error) {
	return loadBulkhead()
}

// Kernel is the loaded set of programs and maps, and the links that attach
// them.
type Kernel struct {
	objs  bulkheadObjects
	links []link.Link
	opts  Options
	// Attached and Skipped name the hooks by "group/name"; Skipped ones do
	// not exist on this kernel (e.g. syscalls/sys_exit_open off x86).
	Attached []string
	Skipped  []string
	// CredsSeeded and CredsSeedMissed count the running threads whose
	// credentials were read from /proc at Attach (with setid records), and
	// those that could not be (see seedCreds).
	CredsSeeded, CredsSeedMissed int
}

// Load creates the maps and programs in the kernel. It needs root (or
// CAP_BPF with CAP_PERFMON); run Preflight first for a clear message.
func Load(opts Options) (*Kernel, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("raise RLIMIT_MEMLOCK for BPF maps: %w", err)
	}
	spec, err := LoadSpec()
	if err != nil {
		return nil, fmt.Errorf("parse embedded BPF objects: %w", err)
	}
	spec.Maps["events"].MaxEntries = opts.RingBytes
	consts := map[string]any{
		"self_tgid":          opts.SelfPID,
		"wakeup_bytes":       opts.WakeupBytes,
		"pid_filter_mode":    uint8(opts.PIDs.Mode),
		"comm_filter_mode":   uint8(opts.Comms.Mode),
		"cgroup_filter_mode": uint8(opts.Cgroups.Mode),
	}
	for name, v := range consts {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
	}

	k := &Kernel{opts: opts}
	if err := spec.LoadAndAssign(&k.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("the kernel's verifier refused a bulkhead program (this is a bug in bulkhead for this kernel; please report it with this log): %+v", ve)
		}
		return nil, fmt.Errorf("load BPF objects: %w", err)
	}
	if err := k.fillFilters(opts); err != nil {
		k.Close()
		return nil, err
	}
	return k, nil
}

func (k *Kernel) fillFilters(opts Options) error {
	one := uint8(1)
	for _, pid := range opts.PIDs.Values {
		if err := k.objs.FilterPids.Put(pid, one); err != nil {
			return fmt.Errorf("pid filter %d: %w", pid, err)
		}
	}
	for _, c := range opts.Comms.Values {
		var key bulkheadCommKey
		copy(key.Comm[:], c)
		if err := k.objs.FilterComms.Put(key, one); err != nil {
			return fmt.Errorf("comm filter %q: %w", c, err)
		}
	}
	names := opts.EnvNames
	if names == nil {
		names = DefaultEnvNames
	}
	for _, n := range names {
		var key bulkheadEnvKey
		copy(key.Name[:], n)
		if err := k.objs.EnvNames.Put(key, one); err != nil {
			return fmt.Errorf("environment variable name %q: %w", n, err)
		}
	}
	for _, cg := range opts.Cgroups.Values {
		if err := k.objs.FilterCgroups.Put(cg, one); err != nil {
			return fmt.Errorf("cgroup filter %d: %w", cg, err)
		}
	}
	return nil
}

// Attach hooks up the process lifecycle programs (always: the process table
// depends on them) and the syscall programs for the given record kinds.
// With setid records, the threads' credentials are tracked (trackCreds).
func (k *Kernel) Attach(kinds []uint16) error {
	for _, p := range []*ebpf.Program{k.objs.SchedProcessFork, k.objs.SchedProcessExec, k.objs.SchedProcessExit} {
		l, err := link.AttachTracing(link.TracingOptions{Program: p, AttachType: ebpf.AttachTraceRawTp})
		if err != nil {
			return fmt.Errorf("attach BTF tracepoint %s: %w", p, err)
		}
		k.links = append(k.links, l)
		k.Attached = append(k.Attached, "tp_btf/"+programName(p))
	}
	for _, kind := range kinds {
		if kind != RecordSignal {
			continue
		}
		// The target's comm, stashed for the signal syscall's exit.
		l, err := link.AttachTracing(link.TracingOptions{Program: k.objs.SignalGenerate, AttachType: ebpf.AttachTraceRawTp})
		if err != nil {
			return fmt.Errorf("attach BTF tracepoint signal_generate: %w", err)
		}
		k.links = append(k.links, l)
		k.Attached = append(k.Attached, "tp_btf/signal_generate")
	}
	// The syscall table first, then the exit hook: no exit runs against
	// a half-filled table. bpf() is in two kinds.
	whats := map[uint32]uint32{}
	var names []string
	for _, kind := range kinds {
		for _, sc := range syscallHooks[kind] {
			w, seen := whats[sc.nr]
			if !seen {
				names = append(names, sc.name)
			}
			if seen && w != sc.what && (w == WhatBPF || w == WhatBPFCmd) {
				sc.what = WhatBPFBoth
			}
			whats[sc.nr] = sc.what
		}
	}
	for nr, what := range whats {
		if err := k.objs.SyscallWhats.Put(nr, what); err != nil {
			return fmt.Errorf("syscall table entry %d: %w", nr, err)
		}
	}
	if len(names) == 0 {
		return nil
	}
	if k.opts.SysExitBTF {
		l, err := link.AttachTracing(link.TracingOptions{Program: k.objs.SysExitBtf, AttachType: ebpf.AttachTraceRawTp})
		if err != nil {
			return fmt.Errorf("attach BTF tracepoint sys_exit: %w", err)
		}
		k.links = append(k.links, l)
		k.Attached = append(k.Attached, "tp_btf/sys_exit")
		return k.trackCreds(kinds)
	}
	for _, name := range names {
		if err := k.attachSyscall("sys_exit_"+name, k.objs.SysExitTraced); err != nil {
			return err
		}
	}
	return k.trackCreds(kinds)
}

// attachSyscall attaches prog to syscalls/name, noting in Skipped a
// tracepoint this kernel does not have.
func (k *Kernel) attachSyscall(name string, prog *ebpf.Program) error {
	l, err := link.Tracepoint("syscalls", name, prog, nil)
	if errors.Is(err, os.ErrNotExist) {
		k.Skipped = append(k.Skipped, "syscalls/"+name)
		return nil
	}
	if err != nil {
		return fmt.Errorf("attach tracepoint syscalls/%s: %w", name, err)
	}
	k.links = append(k.links, l)
	k.Attached = append(k.Attached, "syscalls/"+name)
	return nil
}

func programName(p *ebpf.Program) string {
	if info, err := p.Info(); err == nil {
		return info.Name
	}
	return p.String()
}

// Detach removes every hook; records already in the ring stay readable.
func (k *Kernel) Detach() error {
	var errs []error
	for _, l := range k.links {
		errs = append(errs, l.Close())
	}
	k.links = nil
	return errors.Join(errs...)
}

// Events is the ring buffer the programs write to.
func (k *Kernel) Events() *ebpf.Map { return k.objs.Events }

// Counters are the kernel side's per-CPU counters summed over all CPUs.
type Counters struct {
	Emitted         [RecordKinds]uint64
	Dropped         [RecordKinds]uint64 // ring buffer full
	PairMissing     uint64
	PairOverwritten uint64
	PairFull        uint64
	Wakeups         uint64
	// RecursionMisses counts program runs the kernel skipped because another
	// BPF program was already running on that CPU (e.g. from an NMI).
	RecursionMisses uint64
}

// RingFull is every record the ring buffer had no room for.
func (c Counters) RingFull() uint64 {
	var n uint64
	for _, d := range c.Dropped {
		n += d
	}
	return n
}

// DroppedTotal is every event the kernel side meant to send and could not.
func (c Counters) DroppedTotal() uint64 {
	return c.RingFull() + c.PairMissing + c.PairFull + c.RecursionMisses
}

// Counters reads and sums the per-CPU counters.
func (k *Kernel) Counters() (Counters, error) {
	var per []bulkheadEventCounters
	if err := k.objs.Counters.Lookup(uint32(0), &per); err != nil {
		return Counters{}, fmt.Errorf("read kernel counters: %w", err)
	}
	var c Counters
	for _, p := range per {
		for i := range c.Emitted {
			c.Emitted[i] += p.Emitted[i]
			c.Dropped[i] += p.Dropped[i]
		}
		c.PairMissing += p.PairMissing
		c.PairOverwritten += p.PairOverwritten
		c.PairFull += p.PairFull
		c.Wakeups += p.Wakeups
	}
	progs := k.objs.bulkheadPrograms
	for _, p := range []*ebpf.Program{progs.SchedProcessExec, progs.SchedProcessFork, progs.SchedProcessExit, progs.SysExitTraced, progs.SysExitBtf, progs.SignalGenerate, progs.CredsFork, progs.CredsExec} {
		if st, err := p.Stats(); err == nil {
			c.RecursionMisses += st.RecursionMisses
		}
	}
	return c, nil
}

// Close detaches and frees everything.
func (k *Kernel) Close() error {
	return errors.Join(k.Detach(), k.objs.Close())
}
