package enrich

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"go.uber.org/zap"
)

// Options configure a Table.
type Options struct {
	// ProcRoot is where procfs is mounted ("/proc" unless testing).
	ProcRoot string
	// MaxAncestors bounds each process's parent chain.
	MaxAncestors int
	// MaxProcesses bounds the table; past it, processes that no longer exist
	// are swept out, then any others.
	MaxProcesses int
	// Cgroups resolves cgroup ids to paths and container ids; nil leaves
	// them empty.
	Cgroups *Cgroups
}

// DefaultOptions suit a host.
func DefaultOptions() Options {
	return Options{ProcRoot: "/proc", MaxAncestors: 16, MaxProcesses: 1 << 16}
}

// Stats count the table's work.
type Stats struct {
	Processes   int    // in the table now
	Forks       uint64 // processes added from fork events
	Execs       uint64 // from exec events
	Exits       uint64 // removed on exit
	ProcLookups uint64 // read from /proc because no event had told us about them
	Evicted     uint64 // removed to stay under MaxProcesses
}

// Table follows processes through fork, exec and exit and attaches their
// context to every event. Not safe for concurrent use: it runs on the
// pipeline's reader goroutine, in event order.
type Table struct {
	opts  Options
	log   *zap.Logger
	procs map[uint32]*event.Process
	stats Stats
}

// New returns an empty table; call Seed to learn the running processes.
func New(opts Options, log *zap.Logger) *Table {
	if opts.MaxAncestors <= 0 {
		opts.MaxAncestors = 1
	}
	if opts.MaxProcesses <= 0 {
		opts.MaxProcesses = 1
	}
	return &Table{opts: opts, log: log, procs: make(map[uint32]*event.Process)}
}

// Stats returns the counts so far.
func (t *Table) Stats() Stats {
	s := t.stats
	s.Processes = len(t.procs)
	return s
}

// Lookup returns what the table knows about pid, or nil.
func (t *Table) Lookup(pid uint32) *event.Process { return t.procs[pid] }

// Seed reads every running process from /proc, so that events from
// processes that started before the monitor carry context too.
func (t *Table) Seed() (int, error) {
	entries, err := os.ReadDir(t.opts.ProcRoot)
	if err != nil {
		return 0, err
	}
	raw := make(map[uint32]*event.Process)
	for _, e := range entries {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil {
			continue
		}
		if p := t.readProc(uint32(pid)); p != nil {
			raw[p.PID] = p
		}
	}
	// Link ancestry parents-first, memoised through t.procs.
	var link func(p *event.Process, depth int)
	link = func(p *event.Process, depth int) {
		if _, done := t.procs[p.PID]; done {
			return
		}
		if parent, ok := raw[p.PPID]; ok && p.PPID != p.PID && depth < 4096 {
			link(parent, depth+1)
			p.Ancestors = t.ancestry(t.procs[p.PPID])
		}
		t.procs[p.PID] = p
	}
	for _, p := range raw {
		link(p, 0)
	}
	return len(raw), nil
}

// Enrich sets ev.Process and keeps the table current.
func (t *Table) Enrich(ev *event.Event) {
	switch ev.Kind {
	case event.KindFork:
		parent := t.lookup(ev)
		child := *parent
		child.PID = ev.Fork.ChildPID
		child.PPID = ev.PID
		child.StartKernelNs = ev.KernelTimeNs
		child.FromProc = false
		child.Ancestors = t.ancestry(parent)
		t.put(&child)
		t.stats.Forks++
		ev.Process = parent
	case event.KindExec:
		p := &event.Process{
			PID:           ev.PID,
			PPID:          ev.PPID,
			Exe:           strings.Clone(ev.Exec.Exe),
			Comm:          strings.Clone(ev.Comm),
			Args:          strings.Clone(ev.Exec.Args),
			UID:           ev.UID,
			EUID:          ev.EUID,
			CgroupID:      ev.CgroupID,
			StartKernelNs: ev.KernelTimeNs,
		}
		if p.Exe == "" {
			p.Exe = strings.Clone(ev.Exec.Filename)
		}
		if old := t.procs[ev.PID]; old != nil && old.CgroupID == ev.CgroupID {
			p.CgroupPath, p.ContainerID = old.CgroupPath, old.ContainerID
		} else {
			t.resolveCgroup(p)
		}
		if parent := t.procs[ev.PPID]; parent != nil {
			p.Ancestors = t.ancestry(parent)
		} else if old := t.procs[ev.PID]; old != nil {
			p.Ancestors = old.Ancestors
		}
		t.put(p)
		t.stats.Execs++
		ev.Process = p
	case event.KindExit:
		ev.Process = t.lookup(ev)
		delete(t.procs, ev.PID)
		t.stats.Exits++
	default:
		ev.Process = t.lookup(ev)
	}
}

// lookup finds the event's process, reading /proc (or, if the process is
// already gone, the event itself) the first time it is seen.
func (t *Table) lookup(ev *event.Event) *event.Process {
	if p := t.procs[ev.PID]; p != nil {
		return p
	}
	t.stats.ProcLookups++
	p := t.readProc(ev.PID)
	if p == nil {
		p = &event.Process{PID: ev.PID, PPID: ev.PPID, Comm: strings.Clone(ev.Comm), UID: ev.UID, EUID: ev.EUID, CgroupID: ev.CgroupID}
		t.resolveCgroup(p)
	}
	if parent := t.procs[p.PPID]; parent != nil && p.PPID != p.PID {
		p.Ancestors = t.ancestry(parent)
	}
	t.put(p)
	return p
}

// ancestry is parent's chain with parent in front, bounded.
func (t *Table) ancestry(parent *event.Process) []event.Ancestor {
	if parent == nil {
		return nil
	}
	n := min(1+len(parent.Ancestors), t.opts.MaxAncestors)
	out := make([]event.Ancestor, 0, n)
	out = append(out, event.Ancestor{PID: parent.PID, Exe: parent.Exe, Comm: parent.Comm})
	return append(out, parent.Ancestors[:n-1]...)
}

func (t *Table) put(p *event.Process) {
	if _, ok := t.procs[p.PID]; !ok && len(t.procs) >= t.opts.MaxProcesses {
		t.evict()
	}
	t.procs[p.PID] = p
}

// evict sweeps out processes that no longer exist (their exit was missed),
// and if that is not enough, arbitrary others: memory stays bounded, and a
// process evicted while alive is read again from /proc when next seen.
func (t *Table) evict() {
	before := len(t.procs)
	for pid := range t.procs {
		if _, err := os.Stat(filepath.Join(t.opts.ProcRoot, strconv.FormatUint(uint64(pid), 10))); err != nil {
			delete(t.procs, pid)
		}
	}
	for pid := range t.procs {
		if len(t.procs) < t.opts.MaxProcesses*7/8 {
			break
		}
		delete(t.procs, pid)
	}
	t.stats.Evicted += uint64(before - len(t.procs))
	t.log.Debug("process table swept", zap.Int("before", before), zap.Int("after", len(t.procs)))
}

// readProc builds a process from /proc/PID, or returns nil if it is gone.
func (t *Table) readProc(pid uint32) *event.Process {
	dir := filepath.Join(t.opts.ProcRoot, strconv.FormatUint(uint64(pid), 10))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return nil
	}
	p := &event.Process{PID: pid, FromProc: true}
	// comm is in parentheses and may itself contain ") ".
	if open, close := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')'); open >= 0 && close > open {
		p.Comm = string(stat[open+1 : close])
		if fields := strings.Fields(string(stat[close+1:])); len(fields) > 1 {
			ppid, _ := strconv.ParseUint(fields[1], 10, 32)
			p.PPID = uint32(ppid)
		}
	}
	if exe, err := os.Readlink(filepath.Join(dir, "exe")); err == nil {
		// Match what the kernel side reports: "memfd:NAME", no " (deleted)".
		exe = strings.TrimSuffix(exe, " (deleted)")
		if name, ok := strings.CutPrefix(exe, "/memfd:"); ok {
			exe = "memfd:" + name
		}
		p.Exe = exe
	}
	// What a process controls is read bounded: its argv as the kernel
	// side captures it (ArgvMax), the rest at procFileMax.
	if cmdline, err := readBounded(filepath.Join(dir, "cmdline"), ArgvMax); err == nil {
		p.Args = string(cmdline)
	}
	if status, err := readBounded(filepath.Join(dir, "status"), procFileMax); err == nil {
		p.UID, p.EUID = statusIDs(status)
	}
	if cg, err := readBounded(filepath.Join(dir, "cgroup"), procFileMax); err == nil {
		p.CgroupPath = unifiedCgroupPath(cg)
		if t.opts.Cgroups != nil {
			p.CgroupID = t.opts.Cgroups.IDOf(p.CgroupPath)
		}
		p.ContainerID = ContainerID(p.CgroupPath)
	}
	return p
}

func (t *Table) resolveCgroup(p *event.Process) {
	if t.opts.Cgroups == nil || p.CgroupID == 0 {
		return
	}
	p.CgroupPath = t.opts.Cgroups.Path(p.CgroupID)
	p.ContainerID = ContainerID(p.CgroupPath)
}

// statusIDs reads the real and effective uid from /proc/PID/status.
func statusIDs(status []byte) (uid, euid uint32) {
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 2 {
				r, _ := strconv.ParseUint(f[0], 10, 32)
				e, _ := strconv.ParseUint(f[1], 10, 32)
				return uint32(r), uint32(e)
			}
		}
	}
	return 0, 0
}

// unifiedCgroupPath picks the cgroup v2 ("0::") line of /proc/PID/cgroup.
// ArgvMax is how much of a process's argv is kept: what the BPF side
// captures at exec (ARGV_MAX in bpf/bulkhead.c).
const ArgvMax = 1024

// procFileMax bounds the other /proc files read per process.
const procFileMax = 64 << 10

// readBounded reads at most max bytes of a file.
func readBounded(path string, max int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, int64(max)))
}

func unifiedCgroupPath(cg []byte) string {
	for _, line := range strings.Split(string(cg), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			return rest
		}
	}
	return ""
}
