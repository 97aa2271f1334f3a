//go:build ignore
// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)

/*
 * bulkhead's kernel side: tracepoints and BTF tracepoints that turn process,
 * file, network and privilege activity into records on one BPF ring buffer.
 *
 * - Process lifecycle comes from tp_btf/sched_process_{exec,fork,exit}.
 * - Syscalls come from one generic program attached to every traced
 *   syscalls/sys_exit_*: it looks the syscall number up in syscall_whats,
 *   reads the arguments from the registers the syscall entry saved, adds the
 *   result and emits the record. There is no enter hook: enabling any
 *   sys_enter tracepoint costs every syscall on the host. The setid
 *   family's "before" credentials, gone at its exit, are the thread's as
 *   last seen (task storage, kept at fork, exec and each setid syscall).
 *   (One tracepoint per syscall instead of raw sys_enter/sys_exit: measured
 *   here, raw hooks cost every untraced syscall on the host ~20%.)
 * - Records are built in a per-CPU scratch buffer and copied to the ring with
 *   bpf_ringbuf_output, so a 20-byte path costs 20 bytes of ring, not 4 KiB.
 * - User space is woken only when queued data crosses wakeup_bytes; the
 *   reader's own deadline covers a quiet host.
 * - The open exit is the hot path (every open on the host runs it): one
 *   helper call finds the task and plain loads read what other helpers
 *   would (cgroup id, descriptor table); the path walk has no call per
 *   component; a relative open whose directory lies on the opened file's
 *   path sends it as the tail of that walk instead of walking it again.
 *   Helper calls are dear here: each pays the return-thunk mitigation.
 */

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>
#include "events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define SCRATCH_SIZE 24576 /* STR_LIMIT + PATH_MAX_READ fits; a per-CPU value stays below 32 KiB */
#define STR_LIMIT 16383    /* strings start below this offset ... */
#define STR_MASK 16383     /* ... which the verifier sees through this mask */
#define PATH_MAX_READ 4097 /* PATH_MAX + 1: a full read means the path was cut */
#define NAME_READ 256
#define ARGV_MAX 1024
#define WALK_DEPTH 48
#define WALK_BYTES 4096

#define AT_FDCWD -100
#define AF_INET 2
#define AF_INET6 10
#define AF_PACKET 17
#define SOCK_RAW 3
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define NSFS_MAGIC 0x6e736673
#define AT_SYMLINK_NOFOLLOW 0x100
#define CLONE_NEW_ANY 0x7E020080 /* CLONE_NEW{TIME,NS,CGROUP,UTS,IPC,USER,PID,NET} */
#define PR_SET_NAME 15
#define CAP_V1 0x19980330

/* bpf() commands */
#define BPF_OBJ_GET_CMD 7
#define BPF_PROG_ATTACH_CMD 8
#define BPF_PROG_LOAD_CMD 5
#define BPF_PROG_GET_FD_BY_ID_CMD 13
#define BPF_MAP_GET_FD_BY_ID_CMD 14
#define BPF_RAW_TRACEPOINT_OPEN_CMD 17
#define BPF_LINK_CREATE_CMD 28

/* The exec environment search (see put_env). */
#define ENV_STEPS 16384 /* strings, or ENV_READ pieces of a long one, looked at */
#define ENV_READ 1024   /* a selected variable longer than this is cut (and flagged) */
#define ENV_OUT 4096    /* bytes of selected variables sent */
#define ENV_NAME 32     /* a selectable name is shorter than this */

#define FILTER_OFF 0
#define FILTER_EXCLUDE 1
#define FILTER_INCLUDE 2

/* Set by the loader before the programs are loaded. */
const volatile __u32 self_tgid = 0;
const volatile __u64 wakeup_bytes = 262144;
const volatile __u8 pid_filter_mode = FILTER_OFF;
const volatile __u8 comm_filter_mode = FILTER_OFF;
const volatile __u8 cgroup_filter_mode = FILTER_OFF;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20); /* resized by the loader */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event_counters);
} counters SEC(".maps");

struct walk_state {
	__u64 dentry;
	__u64 mnt;
	/* A directory to look for on the way up (dentry, struct mount), or 0. */
	__u64 match_dentry;
	__u64 match_mnt;
	__u32 match_off; /* where the walk stood when it passed it; WALK_NO_MATCH if not */
	__u32 off;
	__u32 start;
	__u32 steps;
	__u16 flags;
	__u8 done;
};

#define WALK_NO_MATCH 0xffffffff

struct env_state {
	__u64 pos; /* the next byte of the environment to look at */
	__u64 end;
	__u32 off; /* where the next selected variable goes */
	__u32 start;
	__u16 flags;
	__u8 cont; /* pos is inside a long variable, not at a name */
	__u8 keep; /* ... which is selected (its start was kept) */
};

struct scratch {
	__u8 buf[SCRATCH_SIZE];
	struct walk_state walk;
	struct env_state env;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

/* A syscall's arguments and what it is, read at its exit (on the stack). */
struct pending {
	__u64 args[5];
	__u32 what;
};

/*
 * What bulkhead keeps per thread, in the thread's own task storage (no
 * hashing, and the slot goes away with the thread):
 * - the credentials it was last seen with: a setid syscall's "before",
 *   which is gone at its exit. They are set at fork (the child's copy),
 *   at exec (a set-id program), after each setid syscall, and for threads
 *   older than the monitor by the loader from /proc. Credentials are per
 *   thread in the kernel, and so are these. No syscall enter hook: one
 *   costs every syscall on the host, not only the setid family.
 * - signal_generate's find for the signal syscall under way: its target's comm.
 */
struct thread_state {
	__u32 ids_known; /* uids and gids hold the thread's credentials */
	__u32 uids[4];   /* real, effective, saved, fs */
	__u32 gids[4];
	__u32 sig_nr; /* the syscall that sent it; 0: nothing stashed */
	__u8 sig_comm[TASK_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct thread_state);
} threads SEC(".maps");

/* Syscall number → enum syscall_what, filled by the loader. */
#define SYSCALL_TABLE 1024

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SYSCALL_TABLE);
	__type(key, __u32);
	__type(value, __u32);
} syscall_whats SEC(".maps");

/* The exec environment variables to capture, by name, filled by the loader. */
struct env_key {
	__u8 name[ENV_NAME];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct env_key);
	__type(value, __u8);
} env_names SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} filter_pids SEC(".maps");

struct comm_key {
	__u8 comm[TASK_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct comm_key);
	__type(value, __u8);
} filter_comms SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u8);
} filter_cgroups SEC(".maps");

/* Make the record structs visible to bpf2go -type. */
const struct exec_event *unused_exec __attribute__((unused));
const struct fork_event *unused_fork __attribute__((unused));
const struct exit_event *unused_exit __attribute__((unused));
const struct open_event *unused_open __attribute__((unused));
const struct connect_event *unused_connect __attribute__((unused));
const struct setid_event *unused_setid __attribute__((unused));
const struct ptrace_event *unused_ptrace __attribute__((unused));
const struct module_event *unused_module __attribute__((unused));
const struct bpf_prog_event *unused_bpf_prog __attribute__((unused));
const struct memfd_event *unused_memfd __attribute__((unused));
const struct file_event *unused_file __attribute__((unused));
const struct namespace_event *unused_namespace __attribute__((unused));
const struct signal_event *unused_signal __attribute__((unused));
const struct socket_event *unused_socket __attribute__((unused));
const struct sys_event *unused_sys __attribute__((unused));
const enum dir_done *unused_dir_done __attribute__((unused));
const enum exec_script *unused_exec_script __attribute__((unused));
const enum event_kind *unused_kind __attribute__((unused));
const enum event_flag *unused_flag __attribute__((unused));
const enum syscall_what *unused_what __attribute__((unused));

/*
 * KERNEL_PTR makes a kernel address known only as a number (read with a
 * helper, or kept in a map) loadable: its fields are then read with plain
 * loads, which the verifier turns into fault-safe ones, instead of one
 * bpf_probe_read_kernel call each. The opened file's path walk and identity
 * cost an open storm ~3x less this way.
 */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
#define KERNEL_PTR(type, addr) ((type *)bpf_rdonly_cast((void *)(__u64)(addr), bpf_core_type_id_kernel(type)))

static __always_inline struct event_counters *counters_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&counters, &zero);
}

/* filtered reports whether the current task's events are left out. */
static __always_inline bool filtered(__u32 tgid)
{
	if (tgid == self_tgid)
		return true;
	if (pid_filter_mode != FILTER_OFF) {
		bool hit = bpf_map_lookup_elem(&filter_pids, &tgid) != NULL;
		if (hit == (pid_filter_mode == FILTER_EXCLUDE))
			return true;
	}
	if (comm_filter_mode != FILTER_OFF) {
		struct comm_key k = {};
		bpf_get_current_comm(&k.comm, sizeof(k.comm));
		bool hit = bpf_map_lookup_elem(&filter_comms, &k) != NULL;
		if (hit == (comm_filter_mode == FILTER_EXCLUDE))
			return true;
	}
	if (cgroup_filter_mode != FILTER_OFF) {
		__u64 cg = bpf_get_current_cgroup_id();
		bool hit = bpf_map_lookup_elem(&filter_cgroups, &cg) != NULL;
		if (hit == (cgroup_filter_mode == FILTER_EXCLUDE))
			return true;
	}
	return false;
}

static __always_inline struct scratch *scratch_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&scratch, &zero);
}

static __always_inline void fill_header(struct task_struct *task, struct event_header *h, __u16 kind)
{
	/* A BTF task pointer: fields are read with direct loads, not helpers. */
	const struct cred *cred = task->cred;

	h->ts_ns = bpf_ktime_get_boot_ns();
	/* What bpf_get_current_cgroup_id reads (the default hierarchy's
	 * cgroup, its kernfs id), as three loads instead of a helper call. */
	h->cgroup_id = task->cgroups->dfl_cgrp->kn->id;
	h->pid = task->tgid;
	h->tid = task->pid;
	h->ppid = task->real_parent->tgid;
	h->uid = cred->uid.val;
	h->gid = cred->gid.val;
	h->euid = cred->euid.val;
	h->egid = cred->egid.val;
	h->kind = kind;
	h->flags = 0;
	/* Two loads instead of the strscpy behind bpf_get_current_comm; the
	 * kernel keeps comm NUL-terminated within its 16 bytes. */
	__builtin_memcpy(h->comm, task->comm, sizeof(h->comm));
}

/* emit sends size bytes of buf and counts the outcome. */
static __always_inline void emit(void *buf, __u32 size, __u16 kind)
{
	struct event_counters *c = counters_get();
	__u64 flags = BPF_RB_NO_WAKEUP;
	__u64 queued = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);

	/* Wake the reader once, when the queue crosses the threshold. */
	if (queued < wakeup_bytes && queued + size >= wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	if (size == 0 || size > SCRATCH_SIZE)
		return;
	long err = bpf_ringbuf_output(&events, buf, size, flags);
	if (!c)
		return;
	kind &= KIND_MAX - 1;
	if (err) {
		c->dropped[kind]++;
	} else {
		c->emitted[kind]++;
		if (flags == BPF_RB_FORCE_WAKEUP)
			c->wakeups++;
	}
}

/*
 * put_str copies a NUL-terminated string to buf at off and fills ref. user
 * selects user or kernel memory. A read that fills max bytes means the
 * string was longer than max-1: trunc_flag is set.
 */
static __always_inline __u32 put_str(__u8 *buf, __u32 off, const void *src, __u32 max, bool user,
				     struct str_ref *ref, __u16 *flags, __u16 trunc_flag)
{
	ref->off = off;
	ref->len = 0;
	if (!src)
		return off;
	if (off > STR_LIMIT) {
		*flags |= trunc_flag;
		return off;
	}
	long n;
	if (user)
		n = bpf_probe_read_user_str(&buf[off & STR_MASK], max, src);
	else
		n = bpf_probe_read_kernel_str(&buf[off & STR_MASK], max, src);
	if (n <= 0)
		return off;
	if ((__u32)n >= max)
		*flags |= trunc_flag;
	ref->len = n - 1;
	return off + n;
}

/*
 * put_name copies a dentry's name, NUL-terminated, to buf at off. A short
 * name lives in the dentry itself: five plain loads copy it, no helper
 * (the walk's main cost per component was the byte-by-byte string read).
 * A longer one is read as a string, up to its NUL: a rename racing with
 * the walk can pair a name with another name's length, and a copy by
 * length could then read past the name into the kernel's memory.
 */
static __always_inline __u32 put_name(__u8 *buf, __u32 off, struct dentry *d, __u16 *flags)
{
	if (off > STR_LIMIT) {
		*flags |= FLAG_TRUNC_WALK;
		return off;
	}
	/* d_seq brackets the inline copy, as in the kernel's own RCU walk: a
	 * rename in between (an odd or changed count) sends it to the string
	 * read, so a length never goes with another name's bytes. */
	__u32 seq = d->d_seq.seqcount.sequence;
	asm volatile("" ::: "memory");
	__u32 n = d->d_name.len;
	__u32 at = off & STR_MASK;
	const unsigned char *name = d->d_name.name;
	if (bpf_core_field_exists(d->d_shortname) && !(seq & 1) && n > 0 && n < sizeof(d->d_shortname) &&
	    (__u64)name == (__u64)&d->d_shortname) {
		__u64 *dst = (__u64 *)&buf[at];
		dst[0] = d->d_shortname.words[0];
		dst[1] = d->d_shortname.words[1];
		dst[2] = d->d_shortname.words[2];
		dst[3] = d->d_shortname.words[3];
		dst[4] = d->d_shortname.words[4];
		asm volatile("" ::: "memory");
		if (d->d_seq.seqcount.sequence == seq) {
			__u32 z = at + n; /* at <= STR_MASK, n < 40 */
			if (z < SCRATCH_SIZE)
				buf[z] = 0;
			return off + n + 1;
		}
	}
	/* NAME_READ is NAME_MAX + 1: every name fits whole. */
	long got = bpf_probe_read_kernel_str(&buf[at], NAME_READ, name);
	if (got <= 1) /* unreadable, or an empty name */
		return off;
	return off + got;
}

/*
 * walk_step moves the walk one step up: it writes the current dentry's name
 * or crosses to the parent mount. It returns true when the walk is over
 * (done, or stopped early: done stays 0). On the way it notes where the
 * walk passes the directory it was asked to look for (match_*).
 */
static __always_inline bool walk_step(struct scratch *s)
{
	struct walk_state *w = &s->walk;
	__u64 dentry = w->dentry, mount = w->mnt;
	struct dentry *d = KERNEL_PTR(struct dentry, dentry);
	struct mount *mnt = KERNEL_PTR(struct mount, mount);
	__u64 mnt_root = (__u64)mnt->mnt.mnt_root;
	__u64 parent = (__u64)d->d_parent;

	if (dentry == w->match_dentry && mount == w->match_mnt && w->match_off == WALK_NO_MATCH)
		w->match_off = w->off;
	if (w->steps >= WALK_DEPTH)
		return true;
	w->steps++;
	if (dentry == mnt_root || dentry == parent) {
		__u64 up = (__u64)mnt->mnt_parent;
		if (dentry != mnt_root) {
			/* A root that is no mount's root: pseudo files (memfd, pipes). */
			w->flags |= FLAG_PSEUDO_PATH;
			if (w->off == w->start)
				w->off = put_name(s->buf, w->off, d, &w->flags);
			w->done = 1;
			return true;
		}
		if (mount == up) {
			w->done = 1;
			return true;
		}
		w->dentry = (__u64)mnt->mnt_mountpoint;
		w->mnt = up;
		return false;
	}
	__u32 off = w->off;
	if (off - w->start > WALK_BYTES - NAME_READ)
		return true;
	__u32 next = put_name(s->buf, off, d, &w->flags);
	if (next == off)
		return true;
	w->off = next;
	w->dentry = parent;
	return false;
}

/*
 * put_walk writes the path of (dentry, vfsmount), both kernel addresses,
 * as its components from the leaf up to the root, each NUL-terminated,
 * crossing mount points on the way. If (match_dentry, match_vfsmount) is
 * passed on the way, s->walk.match_off says where.
 *
 * The walk's state lives in the scratch map value, which each bpf_loop
 * step (walk_cb) reads and updates.
 */
/*
 * walk_cb is walk_step as a bpf_loop callback. (An open-coded loop bounded
 * by may_goto measured about 15% cheaper per open, but may_goto needs Linux
 * 6.9, and bulkhead runs on 6.1 and later.)
 */
struct walk_arg {
	struct scratch *s;
};

static long walk_cb(__u64 i, void *ctx)
{
	return walk_step(((struct walk_arg *)ctx)->s) ? 1 : 0;
}

static __always_inline __u32 put_walk(struct scratch *s, __u32 off, __u64 dentry, __u64 vfsmount, __u64 match_dentry,
				      __u64 match_vfsmount, struct str_ref *ref, __u16 *flags, __u16 trunc_flag,
				      __u16 pseudo_flag)
{
	struct walk_state *w = &s->walk;
	__u64 mnt_off = bpf_core_field_offset(struct mount, mnt); /* container_of */

	ref->off = off;
	ref->len = 0;
	w->match_off = WALK_NO_MATCH;
	if (!dentry || !vfsmount)
		return off;
	w->dentry = dentry;
	w->mnt = vfsmount - mnt_off;
	w->match_dentry = match_dentry;
	w->match_mnt = match_vfsmount ? match_vfsmount - mnt_off : 0;
	w->off = off;
	w->start = off;
	w->steps = 0;
	w->flags = 0;
	w->done = 0;
	struct walk_arg arg = {.s = s};
	bpf_loop(WALK_DEPTH, walk_cb, &arg, 0);
	if (!w->done || (w->flags & FLAG_TRUNC_WALK))
		*flags |= trunc_flag;
	if (w->flags & FLAG_PSEUDO_PATH)
		*flags |= pseudo_flag;
	__u32 end = w->off;
	if (end < off || end - off > WALK_BYTES)
		return off;
	ref->len = end - off;
	return end;
}

/*
 * fd_slot types one entry of a descriptor table (struct file *) for
 * KERNEL_PTR, which needs a kernel struct: struct kiocb starts with a
 * struct file *, and only that first field is read.
 */
#define FD_SLOT(addr) (KERNEL_PTR(struct kiocb, addr)->ki_filp)

/* fd_file is task's open file fd, or NULL. task is the current task. */
static __always_inline struct file *fd_file(struct task_struct *task, int fd)
{
	struct fdtable *fdt = task->files->fdt;
	__u64 fds = (__u64)fdt->fd; /* struct file **: a number to the verifier */

	if (fd < 0 || (unsigned int)fd >= fdt->max_fds || !fds)
		return NULL;
	/* A plain, fault-safe load instead of a bpf_probe_read_kernel call. */
	__u64 f = (__u64)FD_SLOT(fds + (__u64)fd * sizeof(f));
	if (!f)
		return NULL;
	return KERNEL_PTR(struct file, f);
}

/* ---- process lifecycle ------------------------------------------------- */

/*
 * env_cb looks at one string of the environment (or the next ENV_READ piece
 * of a long one): it reads it to the output position and keeps it there if
 * its name is selected. One helper call per variable; a value is never
 * scanned byte by byte. It returns 1 when the environment is done or
 * cannot be read further.
 */
struct env_arg {
	struct scratch *s;
};

static long env_cb(__u64 i, void *ctx)
{
	struct scratch *s = ((struct env_arg *)ctx)->s;
	struct env_state *st = &s->env;

	if (st->pos >= st->end)
		return 1;
	__u32 off = st->off;
	if (off > STR_LIMIT) {
		st->flags |= FLAG_TRUNC_ENV;
		return 1;
	}
	long n = bpf_probe_read_user_str(&s->buf[off & STR_MASK], ENV_READ, (void *)st->pos);
	if (n <= 0) {
		st->flags |= FLAG_TRUNC_ENV;
		return 1;
	}
	bool whole = n < ENV_READ; /* the NUL was within this read */
	if (st->cont) {
		/* The rest of a long variable: nothing to match, only skip it. */
		st->pos += whole ? n : ENV_READ - 1;
		st->cont = !whole;
		return 0;
	}
	struct env_key key = {};
	bool named = false;
	for (int j = 0; j < ENV_NAME; j++) {
		__u8 c = s->buf[(off + j) & STR_MASK];
		if (j >= n - 1 || c == 0)
			break;
		if (c == '=') {
			named = true;
			break;
		}
		key.name[j] = c;
	}
	if (named && bpf_map_lookup_elem(&env_names, &key)) {
		if (off + n - st->start > ENV_OUT) {
			st->flags |= FLAG_TRUNC_ENV; /* no room left for it */
		} else {
			st->off = off + n; /* the read wrote a NUL at its end, cut or not */
			if (!whole)
				st->flags |= FLAG_TRUNC_ENV;
		}
	}
	st->pos += whole ? n : ENV_READ - 1;
	st->cont = !whole;
	return 0;
}

/*
 * put_env writes the selected variables of the environment [start, end) of
 * the current process at off. FLAG_TRUNC_ENV is set when the search stopped
 * before the end (ENV_STEPS strings: an environment padded to push a
 * variable past the bound says so) or a selected value was cut.
 */
static __always_inline __u32 put_env(struct scratch *s, __u32 off, __u64 start, __u64 end, struct str_ref *ref,
				     __u16 *flags)
{
	struct env_state *st = &s->env;
	ref->off = off;
	ref->len = 0;
	st->pos = start;
	st->end = end;
	st->off = off;
	st->start = off;
	st->flags = 0;
	st->cont = 0;
	st->keep = 0;
	struct env_arg arg = {.s = s};
	bpf_loop(ENV_STEPS, env_cb, &arg, 0);
	if (st->pos < st->end)
		st->flags |= FLAG_TRUNC_ENV;
	*flags |= st->flags;
	__u32 e = st->off;
	if (e < off || e - off > ENV_OUT)
		return off;
	ref->len = e - off;
	return e;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(sched_process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	if (filtered(bpf_get_current_pid_tgid() >> 32))
		return 0;
	struct scratch *s = scratch_get();
	if (!s)
		return 0;
	struct exec_event *e = (struct exec_event *)s->buf;
	struct task_struct *task = bpf_get_current_task_btf();
	fill_header(task, &e->h, KIND_EXEC);

	__u32 off = sizeof(*e);
	__u64 start = BPF_CORE_READ(p, mm, arg_start);
	__u64 end = BPF_CORE_READ(p, mm, arg_end);
	__u64 len = end > start ? end - start : 0;
	e->args_size = len;
	if (len > ARGV_MAX) {
		len = ARGV_MAX;
		e->h.flags |= FLAG_TRUNC_ARGS;
	}
	e->args.off = off;
	e->args.len = 0;
	if (len > 0 && bpf_probe_read_user(&s->buf[off & STR_MASK], len & (ARGV_MAX * 2 - 1), (void *)start) == 0) {
		e->args.len = len;
		off += len;
	}

	const char *filename = BPF_CORE_READ(bprm, filename);
	off = put_str(s->buf, off, filename, PATH_MAX_READ, false, &e->filename, &e->h.flags, FLAG_TRUNC_FILENAME);

	struct file *file = bprm->file;
	e->exe_nlink = file->f_inode->__i_nlink;
	off = put_walk(s, off, (__u64)file->f_path.dentry, (__u64)file->f_path.mnt, 0, 0, &e->exe, &e->h.flags,
		       FLAG_TRUNC_WALK, FLAG_PSEUDO_PATH);

	/* The new program's environment: only the selected variables. */
	__u64 env_start = BPF_CORE_READ(p, mm, env_start);
	__u64 env_end = BPF_CORE_READ(p, mm, env_end);
	e->env_size = env_end > env_start ? env_end - env_start : 0;
	off = put_env(s, off, env_start, env_end, &e->env, &e->h.flags);

	/*
	 * A script: binfmt_script (or binfmt_misc) set interp to the
	 * interpreter, filename is still the script as passed. A relative one
	 * is resolved against the working directory, walked here.
	 */
	e->script = 0;
	e->script_dir.off = off;
	e->script_dir.len = 0;
	if ((__u64)bprm->interp != (__u64)bprm->filename) {
		e->script = SCRIPT_IS;
		__u8 c = 0;
		bpf_probe_read_kernel(&c, 1, filename);
		if (c != '/' && c != 0) {
			struct fs_struct *fs = task->fs;
			off = put_walk(s, off, (__u64)fs->pwd.dentry, (__u64)fs->pwd.mnt, 0, 0, &e->script_dir, &e->h.flags,
				       FLAG_TRUNC_WALK, FLAG_PSEUDO_PATH);
			if (s->walk.done)
				e->script |= SCRIPT_DIR_DONE;
		}
	}
	emit(s->buf, off, KIND_EXEC);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	/* Threads are not processes: only a new thread group is reported. */
	if (child->pid != child->tgid)
		return 0;
	if (filtered(bpf_get_current_pid_tgid() >> 32))
		return 0;
	struct fork_event e = {};
	fill_header(bpf_get_current_task_btf(), &e.h, KIND_FORK);
	e.child_pid = child->tgid;
	e.child_tid = child->pid;
	emit(&e, sizeof(e), KIND_FORK);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(sched_process_exit, struct task_struct *task, bool group_dead)
{
	if (!group_dead)
		return 0;
	if (filtered(bpf_get_current_pid_tgid() >> 32))
		return 0;
	struct exit_event e = {};
	fill_header(bpf_get_current_task_btf(), &e.h, KIND_EXIT);
	int code = task->exit_code;
	e.exit_code = (code >> 8) & 0xff;
	e.signal = code & 0x7f;
	e.core_dumped = (code & 0x80) != 0;
	emit(&e, sizeof(e), KIND_EXIT);
	return 0;
}

/* ---- credentials: what a setid syscall changes from ------------------------ */

static __always_inline void read_creds(const struct cred *cred, __u32 uids[4], __u32 gids[4])
{
	uids[0] = cred->uid.val;
	uids[1] = cred->euid.val;
	uids[2] = cred->suid.val;
	uids[3] = cred->fsuid.val;
	gids[0] = cred->gid.val;
	gids[1] = cred->egid.val;
	gids[2] = cred->sgid.val;
	gids[3] = cred->fsgid.val;
}

/* remember_creds notes task's current credentials in its task storage. */
static __always_inline void remember_creds(struct task_struct *task)
{
	struct thread_state *t = bpf_task_storage_get(&threads, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!t) {
		struct event_counters *c = counters_get();
		if (c)
			c->pair_full++;
		return;
	}
	read_creds(task->cred, t->uids, t->gids);
	t->ids_known = 1;
}

/*
 * A new thread or process starts with its parent's credentials: noted
 * for it, so its first setid syscall has its "before". Attached only
 * when setid syscalls are captured.
 */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(creds_fork, struct task_struct *parent, struct task_struct *child)
{
	remember_creds(child);
	return 0;
}

/* An exec may change credentials (a set-id program): noted after it. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(creds_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	remember_creds(bpf_get_current_task_btf());
	return 0;
}

/* ---- syscalls: exit ------------------------------------------------------- */

static __always_inline int exit_open(struct task_struct *task, struct scratch *s, struct pending *p, long ret)
{
	struct open_event *e = (struct open_event *)s->buf;
	fill_header(task, &e->h, KIND_OPEN);
	e->ret = ret;
	e->what = p->what;
	e->resolve = 0;

	const char *upath;
	if (p->what == WHAT_OPEN) {
		e->dfd = AT_FDCWD;
		upath = (const char *)p->args[0];
		e->flags = p->args[1];
		e->mode = p->args[2];
	} else {
		e->dfd = (int)p->args[0];
		upath = (const char *)p->args[1];
		if (p->what == WHAT_OPENAT2) {
			struct open_how how = {};
			bpf_probe_read_user(&how, sizeof(how), (void *)p->args[2]);
			e->flags = how.flags;
			e->mode = how.mode;
			e->resolve = how.resolve;
		} else {
			e->flags = p->args[2];
			e->mode = p->args[3];
		}
	}

	__u32 off = sizeof(*e);
	off = put_str(s->buf, off, upath, PATH_MAX_READ, true, &e->path, &e->h.flags, FLAG_TRUNC_PATH);

	/* The directory a relative path is resolved against: cwd or dfd. */
	bool relative = e->path.len > 0 && s->buf[e->path.off & STR_MASK] != '/';
	__u64 dir_dentry = 0, dir_mnt = 0;
	if (relative) {
		if (e->dfd == AT_FDCWD) {
			struct fs_struct *fs = task->fs;
			dir_dentry = (__u64)fs->pwd.dentry;
			dir_mnt = (__u64)fs->pwd.mnt;
		} else {
			struct file *f = fd_file(task, e->dfd);
			if (f) {
				dir_dentry = (__u64)f->f_path.dentry;
				dir_mnt = (__u64)f->f_path.mnt;
			}
		}
	}

	/* The file the call returned: its kernel path first (it matters more
	 * than the directory below, and so gets the room), then its identity. */
	e->ino = 0;
	e->dev = 0;
	e->nlink = 0;
	e->imode = 0;
	e->file.off = off;
	e->file.len = 0;
	e->dir.off = off;
	e->dir.len = 0;
	bool dir_done = false;
	if (ret >= 0) {
		struct file *f = fd_file(task, (int)ret);
		if (f) {
			struct inode *inode = f->f_inode;
			e->ino = inode->i_ino;
			e->dev = inode->i_sb->s_dev;
			e->nlink = inode->__i_nlink;
			e->imode = inode->i_mode;
			__u16 fflags = 0;
			off = put_walk(s, off, (__u64)f->f_path.dentry, (__u64)f->f_path.mnt, dir_dentry, dir_mnt, &e->file,
				       &fflags, FLAG_FILE_TRUNC_WALK, FLAG_FILE_PSEUDO);
			e->h.flags |= fflags;
			/*
			 * The directory is on the file's own path (the usual case: no
			 * "..", no symlink out of it): its components are the tail of
			 * the file's, exactly what walking it again would write. Only
			 * a complete, rooted walk stands in for the directory's own.
			 */
			__u32 m = s->walk.match_off;
			if (relative && fflags == 0 && m != WALK_NO_MATCH && m >= e->file.off && m <= off) {
				e->dir.off = m;
				e->dir.len = off - m;
				dir_done = true;
			}
		}
	}
	if (relative && !dir_done) {
		e->dir.off = off;
		off = put_walk(s, off, dir_dentry, dir_mnt, 0, 0, &e->dir, &e->h.flags, FLAG_TRUNC_WALK, FLAG_PSEUDO_PATH);
	}
	emit(s->buf, off, KIND_OPEN);
	return 0;
}

static __always_inline int exit_connect(struct task_struct *task, struct pending *p, long ret)
{
	struct connect_event e = {};
	const void *uaddr = (const void *)p->args[1];
	__u16 family = 0;

	bpf_probe_read_user(&family, sizeof(family), uaddr);
	if (family == AF_INET) {
		struct sockaddr_in sin = {};
		bpf_probe_read_user(&sin, sizeof(sin), uaddr);
		e.port = bpf_ntohs(sin.sin_port);
		__builtin_memcpy(e.addr, &sin.sin_addr, 4);
	} else if (family == AF_INET6) {
		struct sockaddr_in6 sin6 = {};
		bpf_probe_read_user(&sin6, sizeof(sin6), uaddr);
		e.port = bpf_ntohs(sin6.sin6_port);
		__builtin_memcpy(e.addr, &sin6.sin6_addr, 16);
	} else {
		return 0; /* unix and other families are not network connects */
	}
	fill_header(task, &e.h, KIND_CONNECT);
	e.ret = ret;
	e.fd = (int)p->args[0];
	e.family = family;
	emit(&e, sizeof(e), KIND_CONNECT);
	return 0;
}

/*
 * exit_setid reports a setid syscall: the credentials before it are the
 * ones the thread was last seen with, after it its own. Either way they
 * are noted as the thread's for the next one. A thread whose credentials
 * were never seen (it raced the loader's seeding) is counted, not
 * reported: its "before" is not known.
 */
static __always_inline int exit_setid(struct task_struct *task, struct pending *p, long ret)
{
	struct thread_state *t = bpf_task_storage_get(&threads, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!t) {
		struct event_counters *c = counters_get();
		if (c)
			c->pair_full++;
		return 0;
	}
	__u32 uids[4], gids[4];
	read_creds(task->cred, uids, gids);
	bool known = t->ids_known;
	struct setid_event e = {};
	bool gid = p->what == WHAT_SETGID || p->what == WHAT_SETREGID || p->what == WHAT_SETRESGID || p->what == WHAT_SETFSGID;
	if (gid) {
		__builtin_memcpy(e.old_ids, t->gids, sizeof(e.old_ids));
		__builtin_memcpy(e.new_ids, gids, sizeof(e.new_ids));
	} else {
		__builtin_memcpy(e.old_ids, t->uids, sizeof(e.old_ids));
		__builtin_memcpy(e.new_ids, uids, sizeof(e.new_ids));
	}
	__builtin_memcpy(t->uids, uids, sizeof(uids));
	__builtin_memcpy(t->gids, gids, sizeof(gids));
	t->ids_known = 1;
	if (filtered(task->tgid))
		return 0;
	if (!known) {
		struct event_counters *c = counters_get();
		if (c)
			c->pair_missing++;
		return 0;
	}
	fill_header(task, &e.h, KIND_SETID);
	e.ret = ret;
	e.what = p->what;
	e.args[0] = p->args[0];
	e.args[1] = p->args[1];
	e.args[2] = p->args[2];
	emit(&e, sizeof(e), KIND_SETID);
	return 0;
}

static __always_inline int exit_ptrace(struct task_struct *task, struct pending *p, long ret)
{
	struct ptrace_event e = {};
	fill_header(task, &e.h, KIND_PTRACE);
	e.ret = ret;
	e.request = p->args[0];
	e.target_pid = p->args[1];
	emit(&e, sizeof(e), KIND_PTRACE);
	return 0;
}

static __always_inline int exit_module(struct task_struct *task, struct scratch *s, struct pending *p, long ret)
{
	struct module_event *e = (struct module_event *)s->buf;
	fill_header(task, &e->h, KIND_MODULE);
	e->ret = ret;
	e->what = p->what;
	e->len = 0;
	e->flags = 0;

	__u32 off = sizeof(*e);
	const char *params;
	if (p->what == WHAT_INIT_MODULE) {
		e->len = p->args[1];
		params = (const char *)p->args[2];
	} else {
		params = (const char *)p->args[1];
		e->flags = p->args[2];
	}
	off = put_str(s->buf, off, params, NAME_READ, true, &e->params, &e->h.flags, FLAG_TRUNC_PATH);
	e->path.off = off;
	e->path.len = 0;
	if (p->what == WHAT_FINIT_MODULE) {
		struct file *f = fd_file(task, (int)p->args[0]);
		if (f)
			off = put_walk(s, off, (__u64)f->f_path.dentry, (__u64)f->f_path.mnt, 0, 0, &e->path, &e->h.flags,
				       FLAG_TRUNC_WALK, FLAG_PSEUDO_PATH);
	}
	emit(s->buf, off, KIND_MODULE);
	return 0;
}

static __always_inline int exit_bpf(struct task_struct *task, struct pending *p, long ret)
{
	struct bpf_prog_event e = {};
	const void *uattr = (const void *)p->args[1];
	__u64 size = p->args[2];

	fill_header(task, &e.h, KIND_BPF_PROG);
	e.ret = ret;
	e.cmd = p->args[0];
	if (size >= 8) {
		bpf_probe_read_user(&e.prog_type, sizeof(e.prog_type), uattr);
		bpf_probe_read_user(&e.insn_cnt, sizeof(e.insn_cnt), uattr + 4);
	}
	__u64 name_off = bpf_core_field_offset(union bpf_attr, prog_name);
	if (size >= name_off + sizeof(e.prog_name))
		bpf_probe_read_user(&e.prog_name, sizeof(e.prog_name), uattr + name_off);
	emit(&e, sizeof(e), KIND_BPF_PROG);
	return 0;
}

static __always_inline int exit_memfd(struct task_struct *task, struct scratch *s, struct pending *p, long ret)
{
	struct memfd_event *e = (struct memfd_event *)s->buf;
	fill_header(task, &e->h, KIND_MEMFD);
	e->ret = ret;
	e->flags = p->args[1];
	__u32 off = put_str(s->buf, sizeof(*e), (const char *)p->args[0], NAME_READ, true, &e->name, &e->h.flags,
			    FLAG_TRUNC_PATH);
	emit(s->buf, off, KIND_MEMFD);
	return 0;
}

/* ---- file changes, namespaces, signals, sockets, rare calls --------------- */

/*
 * put_rel_dir walks the directory a relative path (already in buf at
 * path) is resolved against: cwd for AT_FDCWD, else the directory open as
 * dfd. *dirs gets done_bit when the walk reached the root.
 */
static __always_inline __u32 put_rel_dir(struct task_struct *task, struct scratch *s, __u32 off, int dfd,
					 struct str_ref *path, struct str_ref *dir, __u16 *flags, __u32 *dirs,
					 __u32 done_bit)
{
	dir->off = off;
	dir->len = 0;
	if (path->len == 0 || s->buf[path->off & STR_MASK] == '/')
		return off;
	__u64 d = 0, m = 0;
	if (dfd == AT_FDCWD) {
		struct fs_struct *fs = task->fs;
		d = (__u64)fs->pwd.dentry;
		m = (__u64)fs->pwd.mnt;
	} else {
		struct file *f = fd_file(task, dfd);
		if (!f)
			return off;
		d = (__u64)f->f_path.dentry;
		m = (__u64)f->f_path.mnt;
	}
	off = put_walk(s, off, d, m, 0, 0, dir, flags, FLAG_TRUNC_WALK, FLAG_PSEUDO_PATH);
	if (s->walk.done)
		*dirs |= done_bit;
	return off;
}

static __always_inline int exit_file(struct task_struct *task, struct scratch *s, struct pending *p, long ret)
{
	struct file_event *e = (struct file_event *)s->buf;
	__u32 what = p->what;
	const char *path = 0, *newpath = 0;
	int fd = -1;

	fill_header(task, &e->h, KIND_FILE);
	e->ret = ret;
	e->what = what;
	e->length = 0;
	e->ino = 0;
	e->dev = 0;
	e->imode = 0;
	e->mode = 0;
	e->uid = (__u32)-1;
	e->gid = (__u32)-1;
	e->at_flags = 0;
	e->dirs = 0;
	e->dfd = AT_FDCWD;
	e->newdfd = AT_FDCWD;
	e->_pad = 0;

	switch (what) {
	case WHAT_UNLINK:
	case WHAT_RMDIR:
		path = (const char *)p->args[0];
		break;
	case WHAT_UNLINKAT:
		e->dfd = p->args[0];
		path = (const char *)p->args[1];
		e->at_flags = p->args[2];
		break;
	case WHAT_RENAME:
	case WHAT_LINK:
	case WHAT_SYMLINK:
		path = (const char *)p->args[0];
		newpath = (const char *)p->args[1];
		break;
	case WHAT_RENAMEAT:
	case WHAT_RENAMEAT2:
	case WHAT_LINKAT:
		e->dfd = p->args[0];
		path = (const char *)p->args[1];
		e->newdfd = p->args[2];
		newpath = (const char *)p->args[3];
		if (what != WHAT_RENAMEAT)
			e->at_flags = p->args[4];
		break;
	case WHAT_SYMLINKAT:
		path = (const char *)p->args[0];
		e->newdfd = p->args[1];
		newpath = (const char *)p->args[2];
		break;
	case WHAT_MKDIR:
	case WHAT_CHMOD:
		path = (const char *)p->args[0];
		e->mode = p->args[1];
		break;
	case WHAT_MKDIRAT:
	case WHAT_FCHMODAT:
	case WHAT_FCHMODAT2:
		e->dfd = p->args[0];
		path = (const char *)p->args[1];
		e->mode = p->args[2];
		if (what == WHAT_FCHMODAT2)
			e->at_flags = p->args[3];
		break;
	case WHAT_FCHMOD:
		fd = p->args[0];
		e->mode = p->args[1];
		break;
	case WHAT_CHOWN:
	case WHAT_LCHOWN:
		path = (const char *)p->args[0];
		e->uid = p->args[1];
		e->gid = p->args[2];
		if (what == WHAT_LCHOWN)
			e->at_flags = AT_SYMLINK_NOFOLLOW;
		break;
	case WHAT_FCHOWN:
		fd = p->args[0];
		e->uid = p->args[1];
		e->gid = p->args[2];
		break;
	case WHAT_FCHOWNAT:
		e->dfd = p->args[0];
		path = (const char *)p->args[1];
		e->uid = p->args[2];
		e->gid = p->args[3];
		e->at_flags = p->args[4];
		break;
	case WHAT_TRUNCATE:
		path = (const char *)p->args[0];
		e->length = p->args[1];
		break;
	case WHAT_FTRUNCATE:
		fd = p->args[0];
		e->length = p->args[1];
		break;
	default:
		return 0;
	}

	__u32 off = sizeof(*e);
	off = put_str(s->buf, off, path, PATH_MAX_READ, true, &e->path, &e->h.flags, FLAG_TRUNC_PATH);
	/* A symlink's target is text, resolved only when the link is followed. */
	if (what == WHAT_SYMLINK || what == WHAT_SYMLINKAT) {
		e->dir.off = off;
		e->dir.len = 0;
	} else {
		off = put_rel_dir(task, s, off, e->dfd, &e->path, &e->dir, &e->h.flags, &e->dirs, DIR_DONE);
		/* An *at call with an empty path (AT_EMPTY_PATH) acts on dfd itself. */
		if (path && e->path.len == 0 && e->dfd != AT_FDCWD)
			fd = e->dfd;
	}
	off = put_str(s->buf, off, newpath, PATH_MAX_READ, true, &e->new_path, &e->h.flags, FLAG_TRUNC_PATH);
	off = put_rel_dir(task, s, off, e->newdfd, &e->new_path, &e->new_dir, &e->h.flags, &e->dirs, NEW_DIR_DONE);

	e->fd = fd;
	e->file.off = off;
	e->file.len = 0;
	if (fd >= 0) {
		struct file *f = fd_file(task, fd);
		if (f) {
			struct inode *inode = f->f_inode;
			e->ino = inode->i_ino;
			e->dev = inode->i_sb->s_dev;
			e->imode = inode->i_mode;
			off = put_walk(s, off, (__u64)f->f_path.dentry, (__u64)f->f_path.mnt, 0, 0, &e->file, &e->h.flags,
				       FLAG_FILE_TRUNC_WALK, FLAG_FILE_PSEUDO);
		}
	}
	emit(s->buf, off, KIND_FILE);
	return 0;
}

static __always_inline int exit_namespace(struct task_struct *task, struct scratch *s, struct pending *p, long ret)
{
	struct namespace_event *e = (struct namespace_event *)s->buf;
	__u32 what = p->what;
	const char *source = 0, *target = 0, *fstype = 0;
	__u64 flags = 0;
	int fd = -1;

	switch (what) {
	case WHAT_CLONE:
	case WHAT_CLONE3:
		/* The child returns from the same call with 0: the parent reports. */
		if (ret == 0)
			return 0;
		if (what == WHAT_CLONE)
			flags = p->args[0];
		else
			bpf_probe_read_user(&flags, sizeof(flags), (void *)p->args[0]);
		/* Plain forks and threads are KIND_FORK's (or nobody's). */
		if (!(flags & CLONE_NEW_ANY))
			return 0;
		break;
	case WHAT_MOUNT:
		source = (const char *)p->args[0];
		target = (const char *)p->args[1];
		fstype = (const char *)p->args[2];
		flags = p->args[3];
		break;
	case WHAT_UMOUNT2:
		target = (const char *)p->args[0];
		flags = p->args[1];
		break;
	case WHAT_PIVOT_ROOT:
		source = (const char *)p->args[0];
		target = (const char *)p->args[1];
		break;
	case WHAT_CHROOT:
		target = (const char *)p->args[0];
		break;
	case WHAT_SETNS:
		fd = p->args[0];
		flags = p->args[1];
		break;
	case WHAT_UNSHARE:
		flags = p->args[0];
		break;
	default:
		return 0;
	}
	fill_header(task, &e->h, KIND_NAMESPACE);
	e->ret = ret;
	e->what = what;
	e->flags = flags;
	e->fd = fd;
	e->ns_ino = 0;
	e->dirs = 0;
	e->_pad = 0;

	__u32 off = sizeof(*e);
	off = put_str(s->buf, off, source, PATH_MAX_READ, true, &e->source, &e->h.flags, FLAG_TRUNC_PATH);
	off = put_str(s->buf, off, fstype, NAME_READ, true, &e->fstype, &e->h.flags, FLAG_TRUNC_PATH);
	off = put_str(s->buf, off, target, PATH_MAX_READ, true, &e->target, &e->h.flags, FLAG_TRUNC_PATH);
	off = put_rel_dir(task, s, off, AT_FDCWD, &e->target, &e->dir, &e->h.flags, &e->dirs, DIR_DONE);
	e->ns_file.off = off;
	e->ns_file.len = 0;
	if (fd >= 0) {
		struct file *f = fd_file(task, fd);
		if (f) {
			struct inode *inode = f->f_inode;
			if (inode->i_sb->s_magic == NSFS_MAGIC) {
				/* "mnt:[4026531841]" as /proc/PID/ns names it: the type here, the number beside. */
				struct ns_common *ns = KERNEL_PTR(struct ns_common, inode->i_private);
				e->ns_ino = inode->i_ino;
				off = put_str(s->buf, off, ns->ops->name, 16, false, &e->ns_file, &e->h.flags, FLAG_TRUNC_PATH);
			} else {
				/* A pidfd: its pseudo path. */
				off = put_walk(s, off, (__u64)f->f_path.dentry, (__u64)f->f_path.mnt, 0, 0, &e->ns_file,
					       &e->h.flags, FLAG_FILE_TRUNC_WALK, FLAG_FILE_PSEUDO);
			}
		}
	}
	emit(s->buf, off, KIND_NAMESPACE);
	return 0;
}

/* pid_nr_own is a struct pid's number in its own (innermost) namespace. */
static __always_inline int pid_nr_own(struct pid *pid)
{
	unsigned int level = pid->level;
	struct upid u = {};
	__u64 at = (__u64)pid + bpf_core_field_offset(struct pid, numbers) + (__u64)(level & 63) * sizeof(struct upid);
	bpf_probe_read_kernel(&u, sizeof(u), (void *)at);
	return u.nr;
}

/* x86-64 numbers of the signal syscalls (signal_generate finds them in orig_ax). */
#define NR_KILL 62
#define NR_TKILL 200
#define NR_TGKILL 234

/*
 * signal_generate runs where the kernel queues a signal, with the target
 * task at hand: when the sender is inside kill, tkill or tgkill and the
 * target is another process, it stashes the target's comm in the sender's
 * task storage for the syscall's exit (exit_signal). Signals are rare next
 * to syscalls, and this finds the target in any pid namespace without a
 * lookup by number.
 */
SEC("tp_btf/signal_generate")
int BPF_PROG(signal_generate, int sig, struct kernel_siginfo *info, struct task_struct *t, int group, int result)
{
	struct task_struct *cur = bpf_get_current_task_btf();
	if (t->tgid == cur->tgid)
		return 0;
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(cur);
	__u32 nr = regs->orig_ax;
	if (nr != NR_KILL && nr != NR_TKILL && nr != NR_TGKILL)
		return 0;
	if (filtered(cur->tgid))
		return 0;
	struct thread_state *p = bpf_task_storage_get(&threads, cur, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!p)
		return 0;
	__builtin_memcpy(p->sig_comm, t->comm, sizeof(p->sig_comm));
	p->sig_nr = nr;
	return 0;
}

static __always_inline int exit_signal(struct task_struct *task, struct pending *p, long ret)
{
	struct signal_event e = {};
	__u32 what = p->what;
	int tgid = 0, tid = 0;

	if (what == WHAT_KILL) {
		tgid = p->args[0];
		e.sig = p->args[1];
	} else if (what == WHAT_TKILL) {
		tid = p->args[0];
		e.sig = p->args[1];
	} else {
		tgid = p->args[0];
		tid = p->args[1];
		e.sig = p->args[2];
	}
	/*
	 * Signals to itself are not reported (the Go runtime tgkills its own
	 * threads all the time). The numbers passed are the caller's pid
	 * namespace's: compare with its own numbers there.
	 */
	struct pid *own = task->thread_pid;
	bool init_ns = own->level == 0;
	int self_tgid = init_ns ? task->tgid : pid_nr_own(task->group_leader->thread_pid);
	int self_tid = init_ns ? task->pid : pid_nr_own(own);
	if ((what == WHAT_TKILL && tid == self_tid) || (what != WHAT_TKILL && tgid == self_tgid))
		return 0;

	fill_header(task, &e.h, KIND_SIGNAL);
	e.ret = ret;
	e.what = what;
	e.target_pid = tgid;
	e.target_tid = tid;
	/* The target's comm, when signal_generate saw one process get it. */
	struct thread_state *pp = bpf_task_storage_get(&threads, task, 0, 0);
	if (pp && pp->sig_nr) {
		if (ret == 0 && (what == WHAT_KILL ? tgid : tid) > 0)
			__builtin_memcpy(e.target_comm, pp->sig_comm, sizeof(e.target_comm));
		pp->sig_nr = 0;
	}
	emit(&e, sizeof(e), KIND_SIGNAL);
	return 0;
}

/* sock_of is the socket behind fd, or NULL. */
static __always_inline struct sock *sock_of(struct task_struct *task, int fd)
{
	struct file *f = fd_file(task, fd);
	if (!f || (f->f_inode->i_mode & S_IFMT) != S_IFSOCK)
		return NULL;
	struct socket *sock = KERNEL_PTR(struct socket, f->private_data);
	__u64 sk = (__u64)sock->sk;
	if (!sk)
		return NULL;
	return KERNEL_PTR(struct sock, sk);
}

/* put_sock_addrs fills the local (and peer) address of sk. */
static __always_inline void put_sock_addrs(struct socket_event *e, struct sock *sk, bool peer)
{
	struct sock_common *c = &sk->__sk_common;
	e->family = c->skc_family;
	e->port = c->skc_num;
	if (e->family == AF_INET) {
		__builtin_memcpy(e->addr, &c->skc_rcv_saddr, 4);
		if (peer) {
			__builtin_memcpy(e->peer, &c->skc_daddr, 4);
			e->peer_port = bpf_ntohs(c->skc_dport);
		}
	} else if (e->family == AF_INET6) {
		__builtin_memcpy(e->addr, &c->skc_v6_rcv_saddr, 16);
		if (peer) {
			__builtin_memcpy(e->peer, &c->skc_v6_daddr, 16);
			e->peer_port = bpf_ntohs(c->skc_dport);
		}
	}
}

static __always_inline int exit_socket(struct task_struct *task, struct pending *p, long ret)
{
	struct socket_event e = {};
	__u32 what = p->what;

	e.what = what;
	e.fd = -1;
	switch (what) {
	case WHAT_SOCKET:
		e.family = p->args[0];
		e.type = p->args[1];
		e.protocol = p->args[2];
		/* Only sockets that bypass the protocol stack: raw and packet ones. */
		if ((e.type & 0xf) != SOCK_RAW && e.family != AF_PACKET)
			return 0;
		break;
	case WHAT_BIND: {
		const void *uaddr = (const void *)p->args[1];
		e.fd = p->args[0];
		bpf_probe_read_user(&e.family, sizeof(e.family), uaddr);
		if (e.family == AF_INET) {
			struct sockaddr_in sin = {};
			bpf_probe_read_user(&sin, sizeof(sin), uaddr);
			e.port = bpf_ntohs(sin.sin_port);
			__builtin_memcpy(e.addr, &sin.sin_addr, 4);
		} else if (e.family == AF_INET6) {
			struct sockaddr_in6 sin6 = {};
			bpf_probe_read_user(&sin6, sizeof(sin6), uaddr);
			e.port = bpf_ntohs(sin6.sin6_port);
			__builtin_memcpy(e.addr, &sin6.sin6_addr, 16);
		} else if (e.family == AF_PACKET) {
			__u16 proto = 0; /* sockaddr_ll.sll_protocol, network order */
			bpf_probe_read_user(&proto, sizeof(proto), uaddr + 2);
			e.protocol = bpf_ntohs(proto);
		} else {
			return 0;
		}
		break;
	}
	case WHAT_LISTEN: {
		e.fd = p->args[0];
		e.backlog = p->args[1];
		struct sock *sk = sock_of(task, e.fd);
		if (!sk)
			return 0;
		put_sock_addrs(&e, sk, false);
		if (e.family != AF_INET && e.family != AF_INET6)
			return 0;
		break;
	}
	case WHAT_ACCEPT:
	case WHAT_ACCEPT4: {
		e.fd = p->args[0];
		/* The new connection's two ends; on failure, the listener's. */
		struct sock *sk = sock_of(task, ret >= 0 ? (int)ret : e.fd);
		if (!sk)
			return 0;
		put_sock_addrs(&e, sk, ret >= 0);
		if (e.family != AF_INET && e.family != AF_INET6)
			return 0;
		break;
	}
	default:
		return 0;
	}
	fill_header(task, &e.h, KIND_SOCKET);
	e.ret = ret;
	emit(&e, sizeof(e), KIND_SOCKET);
	return 0;
}

/* bpf() commands reported as KIND_SYS: attaching programs, reaching into others' objects. */
static __always_inline bool bpf_sys_cmd(__u64 cmd)
{
	return cmd == BPF_PROG_ATTACH_CMD || cmd == BPF_LINK_CREATE_CMD || cmd == BPF_RAW_TRACEPOINT_OPEN_CMD ||
	       cmd == BPF_PROG_GET_FD_BY_ID_CMD || cmd == BPF_MAP_GET_FD_BY_ID_CMD || cmd == BPF_OBJ_GET_CMD;
}

static __always_inline int exit_sys(struct task_struct *task, struct scratch *s, struct pending *p, long ret)
{
	struct sys_event *e = (struct sys_event *)s->buf;
	__u32 what = p->what;
	const char *name = 0;
	__u32 name_max = NAME_READ;
	int fd = -1;

	if (what == WHAT_PRCTL && p->args[0] != PR_SET_NAME)
		return 0;
	fill_header(task, &e->h, KIND_SYS);
	e->ret = ret;
	e->what = what;
	e->op = 0;
	e->args[0] = 0;
	e->args[1] = 0;
	e->args[2] = 0;
	switch (what) {
	case WHAT_CAPSET: {
		__u32 version = 0;
		__u32 data[6] = {}; /* struct __user_cap_data_struct[2]: effective, permitted, inheritable */
		bpf_probe_read_user(&version, sizeof(version), (void *)p->args[0]);
		if (p->args[1]) {
			if (version == CAP_V1)
				bpf_probe_read_user(data, 12, (void *)p->args[1]);
			else
				bpf_probe_read_user(data, sizeof(data), (void *)p->args[1]);
		}
		e->args[0] = data[0] | (__u64)data[3] << 32;
		e->args[1] = data[1] | (__u64)data[4] << 32;
		e->args[2] = data[2] | (__u64)data[5] << 32;
		break;
	}
	case WHAT_PRCTL:
		e->op = p->args[0];
		name = (const char *)p->args[1];
		name_max = TASK_COMM_LEN;
		break;
	case WHAT_USERFAULTFD:
		e->args[0] = p->args[0];
		break;
	case WHAT_IO_URING_SETUP: {
		__u32 flags = 0;
		e->args[0] = p->args[0];
		bpf_probe_read_user(&flags, sizeof(flags), (void *)p->args[1] + 8); /* io_uring_params.flags */
		e->args[1] = flags;
		break;
	}
	case WHAT_KEXEC_LOAD:
		e->args[0] = p->args[1];
		e->args[1] = p->args[3];
		break;
	case WHAT_KEXEC_FILE_LOAD:
		fd = p->args[0];
		e->args[0] = p->args[4];
		break;
	default: { /* bpf() */
		__u32 a[4] = {};
		__u64 ptr = 0;
		const void *uattr = (const void *)p->args[1];
		e->op = p->args[0];
		if (p->args[2] >= sizeof(a))
			bpf_probe_read_user(a, sizeof(a), uattr);
		switch (e->op) {
		case BPF_PROG_ATTACH_CMD: /* target_fd, attach_bpf_fd, attach_type */
			e->args[0] = a[2];
			e->args[1] = a[0];
			e->args[2] = a[1];
			break;
		case BPF_LINK_CREATE_CMD: /* prog_fd, target_fd, attach_type */
			e->args[0] = a[2];
			e->args[1] = a[1];
			e->args[2] = a[0];
			break;
		case BPF_RAW_TRACEPOINT_OPEN_CMD: /* name, prog_fd */
			bpf_probe_read_user(&ptr, sizeof(ptr), uattr);
			name = (const char *)ptr;
			e->args[2] = a[2];
			break;
		case BPF_OBJ_GET_CMD: /* pathname, bpf_fd, file_flags */
			bpf_probe_read_user(&ptr, sizeof(ptr), uattr);
			name = (const char *)ptr;
			name_max = PATH_MAX_READ;
			break;
		default: /* *_GET_FD_BY_ID: the id */
			e->args[1] = a[0];
		}
	}
	}
	__u32 off = sizeof(*e);
	if (fd >= 0) {
		struct file *f = fd_file(task, fd);
		e->name.off = off;
		e->name.len = 0;
		if (f)
			off = put_walk(s, off, (__u64)f->f_path.dentry, (__u64)f->f_path.mnt, 0, 0, &e->name, &e->h.flags,
				       FLAG_TRUNC_WALK, FLAG_PSEUDO_PATH);
	} else {
		off = put_str(s->buf, off, name, name_max, true, &e->name, &e->h.flags, FLAG_TRUNC_PATH);
	}
	emit(s->buf, off, KIND_SYS);
	return 0;
}

/*
 * on_exit handles one syscall's exit, read whole here: the arguments from
 * the registers the syscall entry saved, so there is no enter hook and
 * nothing to pair.
 */
static __always_inline int on_exit(struct task_struct *task, __u32 nr, __u64 a0, __u64 a1, __u64 a2, __u64 a3,
				   __u64 a4, long ret)
{
	if (nr >= SYSCALL_TABLE)
		return 0;
	__u32 *whatp = bpf_map_lookup_elem(&syscall_whats, &nr);
	if (!whatp || *whatp == WHAT_NONE)
		return 0;
	__u32 what = *whatp;
	struct pending p = {};

	p.args[0] = a0;
	p.args[1] = a1;
	p.args[2] = a2;
	p.args[3] = a3;
	p.args[4] = a4;
	p.what = what;
	if (what >= WHAT_SETUID && what <= WHAT_SETFSGID)
		return exit_setid(task, &p, ret); /* filtered there: the credentials are noted either way */
	if (filtered(task->tgid))
		return 0;
	if (what == WHAT_BPF || what == WHAT_BPF_CMD || what == WHAT_BPF_BOTH) {
		bool load = a0 == BPF_PROG_LOAD_CMD;
		if (load && what != WHAT_BPF_CMD)
			p.what = WHAT_BPF;
		else if (!load && what != WHAT_BPF && bpf_sys_cmd(a0))
			p.what = WHAT_BPF_CMD;
		else
			return 0;
	}

	switch (p.what) {
	case WHAT_OPENAT:
	case WHAT_OPENAT2:
	case WHAT_OPEN: {
		struct scratch *s = scratch_get();
		return s ? exit_open(task, s, &p, ret) : 0;
	}
	case WHAT_CONNECT:
		return exit_connect(task, &p, ret);
	case WHAT_PTRACE:
		return exit_ptrace(task, &p, ret);
	case WHAT_INIT_MODULE:
	case WHAT_FINIT_MODULE: {
		struct scratch *s = scratch_get();
		return s ? exit_module(task, s, &p, ret) : 0;
	}
	case WHAT_BPF:
		return exit_bpf(task, &p, ret);
	case WHAT_MEMFD_CREATE: {
		struct scratch *s = scratch_get();
		return s ? exit_memfd(task, s, &p, ret) : 0;
	}
	}
	if (p.what >= WHAT_UNLINK && p.what <= WHAT_FTRUNCATE) {
		struct scratch *s = scratch_get();
		return s ? exit_file(task, s, &p, ret) : 0;
	}
	if (p.what >= WHAT_MOUNT && p.what <= WHAT_CLONE3) {
		struct scratch *s = scratch_get();
		return s ? exit_namespace(task, s, &p, ret) : 0;
	}
	if (p.what >= WHAT_KILL && p.what <= WHAT_TGKILL)
		return exit_signal(task, &p, ret);
	if (p.what >= WHAT_SOCKET && p.what <= WHAT_ACCEPT4)
		return exit_socket(task, &p, ret);
	if (p.what >= WHAT_CAPSET && p.what <= WHAT_BPF_CMD) {
		struct scratch *s = scratch_get();
		return s ? exit_sys(task, s, &p, ret) : 0;
	}
	return 0;
}

/*
 * sys_exit_btf is the exit program on the BTF raw tracepoint sys_exit: it
 * runs on every syscall's exit and looks the number up in syscall_whats.
 * The registers come as the tracepoint's argument: no trace-event record
 * is built, no helper call finds them.
 */
SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit_btf, struct pt_regs *regs, long ret)
{
	__u32 nr = regs->orig_ax;
	if (nr >= SYSCALL_TABLE)
		return 0;
	return on_exit(bpf_get_current_task_btf(), nr, regs->di, regs->si, regs->dx, regs->r10, regs->r8, ret);
}

/* sys_exit_traced is the same program for the per-syscall tracepoints syscalls/sys_exit_*. */
SEC("tracepoint/syscalls/sys_exit")
int sys_exit_traced(struct trace_event_raw_sys_exit *ctx)
{
	__u32 nr = ctx->id;
	if (nr >= SYSCALL_TABLE)
		return 0;
	/* One helper call for the current task; everything else is loads. */
	struct task_struct *task = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	return on_exit(task, nr, regs->di, regs->si, regs->dx, regs->r10, regs->r8, ctx->ret);
}
