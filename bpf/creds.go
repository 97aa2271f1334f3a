package bpf

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// pidfdThread is PIDFD_THREAD (Linux 6.9): a pidfd for one thread, not
// only for a thread group's leader. Not in x/sys/unix yet.
const pidfdThread = unix.O_EXCL

// trackCreds, with setid records, keeps every thread's credentials in its
// task storage: a setid syscall's "before" is gone at its exit, and an
// enter hook would cost every syscall on the host. New threads and
// processes get theirs at fork, a set-id exec updates them, and each
// setid syscall's exit; the threads already running are read from /proc
// here, after the exit hooks are in (a thread that changes its
// credentials meanwhile is noted by the hook; one read before and
// written after its change holds the old ones until its next setid
// syscall, a window of microseconds).
func (k *Kernel) trackCreds(kinds []uint16) error {
	if !slices.Contains(kinds, RecordSetID) {
		return nil
	}
	for _, p := range []*ebpf.Program{k.objs.CredsFork, k.objs.CredsExec} {
		l, err := link.AttachTracing(link.TracingOptions{Program: p, AttachType: ebpf.AttachTraceRawTp})
		if err != nil {
			return fmt.Errorf("attach BTF tracepoint %s: %w", programName(p), err)
		}
		k.links = append(k.links, l)
		k.Attached = append(k.Attached, "tp_btf/"+programName(p))
	}
	seeded, missed := seedCreds(k.objs.Threads)
	k.CredsSeeded, k.CredsSeedMissed = seeded, missed
	return nil
}

// seedCreds writes the credentials of every thread in /proc into threads.
// A thread that exits meanwhile, or that cannot be named by a pidfd (a
// kernel before 6.9 names thread-group leaders only), is missed: its first
// setid syscall is counted (pair_missing), not reported, and the ones
// after it are.
func seedCreds(threads *ebpf.Map) (seeded, missed int) {
	tasks, _ := filepath.Glob("/proc/[0-9]*/task/[0-9]*")
	for _, dir := range tasks {
		tid, err := strconv.Atoi(filepath.Base(dir))
		if err != nil {
			continue
		}
		state, ok := readCreds(filepath.Join(dir, "status"))
		if !ok {
			missed++
			continue
		}
		fd, err := unix.PidfdOpen(tid, pidfdThread)
		if errors.Is(err, unix.EINVAL) {
			fd, err = unix.PidfdOpen(tid, 0) // older kernel: leaders only
		}
		if err != nil {
			missed++
			continue
		}
		err = threads.Update(uint32(fd), &state, ebpf.UpdateAny)
		unix.Close(fd)
		if err != nil {
			missed++
			continue
		}
		seeded++
	}
	return seeded, missed
}

// readCreds reads the Uid: and Gid: lines of a /proc status file (real,
// effective, saved, fs).
func readCreds(status string) (bulkheadThreadState, bool) {
	var st bulkheadThreadState
	f, err := os.Open(status)
	if err != nil {
		return st, false
	}
	defer f.Close()
	found := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() && found < 2 {
		line := sc.Bytes()
		var ids *[4]uint32
		switch {
		case bytes.HasPrefix(line, []byte("Uid:")):
			ids = &st.Uids
		case bytes.HasPrefix(line, []byte("Gid:")):
			ids = &st.Gids
		default:
			continue
		}
		fields := bytes.Fields(line[4:])
		if len(fields) != 4 {
			return st, false
		}
		for i, f := range fields {
			v, err := strconv.ParseUint(string(f), 10, 32)
			if err != nil {
				return st, false
			}
			ids[i] = uint32(v)
		}
		found++
	}
	st.IdsKnown = 1
	return st, found == 2
}
