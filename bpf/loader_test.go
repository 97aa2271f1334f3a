package bpf_test

import (
	"os"
	"strings"
	"testing"

	"github.com/bulkhead-sec/bulkhead/bpf"
	"github.com/bulkhead-sec/bulkhead/test/testenv"
	"github.com/cilium/ebpf"
)

// The spec parses without privileges: what the ELF holds can be checked anywhere.
func TestLoadSpec(t *testing.T) {
	spec, err := bpf.LoadSpec()
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.Maps["events"].Type; got != ebpf.RingBuf {
		t.Errorf("events map is %s, want RingBuf", got)
	}
	if got := spec.Maps["threads"].Type; got != ebpf.TaskStorage {
		t.Errorf("threads map is %s, want TaskStorage", got)
	}
	for name, want := range map[string]ebpf.ProgramType{
		"sched_process_exec": ebpf.Tracing, "sched_process_fork": ebpf.Tracing, "sched_process_exit": ebpf.Tracing,
		"creds_fork": ebpf.Tracing, "creds_exec": ebpf.Tracing, "sys_exit_traced": ebpf.TracePoint,
	} {
		p, ok := spec.Programs[name]
		if !ok {
			t.Errorf("program %s missing", name)
			continue
		}
		if p.Type != want {
			t.Errorf("program %s has type %s, want %s", name, p.Type, want)
		}
	}
	for _, v := range []string{"self_tgid", "wakeup_bytes", "pid_filter_mode", "comm_filter_mode", "cgroup_filter_mode"} {
		if _, ok := spec.Variables[v]; !ok {
			t.Errorf("variable %s missing", v)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	page := uint32(os.Getpagesize())
	for _, tc := range []struct {
		name string
		opts bpf.Options
		ok   bool
	}{
		{"default", bpf.Options{RingBytes: 16 << 20, WakeupBytes: 64 << 10}, true},
		{"not a power of two", bpf.Options{RingBytes: 3 << 20, WakeupBytes: 1}, false},
		{"below a page", bpf.Options{RingBytes: page / 2, WakeupBytes: 1}, false},
		{"wake-up past the ring", bpf.Options{RingBytes: page, WakeupBytes: uint64(page) + 1}, false},
		{"comm too long", bpf.Options{RingBytes: page, WakeupBytes: 1, Comms: bpf.Filter[string]{Mode: bpf.FilterInclude, Values: []string{"a-very-long-command"}}}, false},
		{"env names", bpf.Options{RingBytes: page, WakeupBytes: 1, EnvNames: []string{"LD_PRELOAD", "MY_VAR"}}, true},
		{"env name with =", bpf.Options{RingBytes: page, WakeupBytes: 1, EnvNames: []string{"A=B"}}, false},
		{"env name too long", bpf.Options{RingBytes: page, WakeupBytes: 1, EnvNames: []string{"ABCDEFGHIJKLMNOPQRSTUVWXYZ_ABCDE"}}, false},
		{"empty env name", bpf.Options{RingBytes: page, WakeupBytes: 1, EnvNames: []string{""}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestLoadAttachDetach(t *testing.T) {
	testenv.RequireBPF(t)
	all := []uint16{bpf.RecordOpen, bpf.RecordConnect, bpf.RecordSetID, bpf.RecordPtrace, bpf.RecordModule, bpf.RecordBPFProg, bpf.RecordMemfd,
		bpf.RecordFile, bpf.RecordNamespace, bpf.RecordSignal, bpf.RecordSocket, bpf.RecordSys}
	for _, tc := range []struct {
		name string
		btf  bool
		min  int
	}{
		// 3 lifecycle hooks, 2 credential trackers, signal_generate and at
		// least one syscalls/sys_exit_* per kind ...
		{"tracepoints", false, 3 + 2 + 1 + len(all) - 1},
		// ... or the one BTF sys_exit.
		{"tp_btf", true, 3 + 2 + 1 + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := bpf.Load(bpf.Options{RingBytes: 1 << 20, WakeupBytes: 4096, SelfPID: uint32(os.Getpid()), SysExitBTF: tc.btf})
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			if err := k.Attach(all); err != nil {
				t.Fatal(err)
			}
			if len(k.Attached) < tc.min {
				t.Fatalf("only %d hooks attached: %v", len(k.Attached), k.Attached)
			}
			t.Logf("attached %d hooks, skipped %v", len(k.Attached), k.Skipped)
			for _, h := range k.Attached {
				// Any sys_enter tracepoint costs every syscall on the host.
				if strings.Contains(h, "sys_enter") {
					t.Errorf("enter hook attached: %s", h)
				}
			}
			// At least this test's own threads had their credentials read.
			if k.CredsSeeded == 0 {
				t.Errorf("credentials of %d running threads seeded (%d missed)", k.CredsSeeded, k.CredsSeedMissed)
			}
			if _, err := k.Counters(); err != nil {
				t.Fatal(err)
			}
			if err := k.Detach(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
