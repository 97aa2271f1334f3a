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
 *   result and emits the record. Only the setid family also has
 *   syscalls/sys_enter_* programs, because the credentials before the call
 *   are gone at its exit; they are paired through the thread's task storage.
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

#define SCRATCH_SIZE 16384
#define STR_LIMIT 8191     /* strings start below this offset ... */
#define STR_MASK 8191      /* ... which the verifier sees through this mask */
#define PATH_MAX_READ 4097 /* PATH_MAX + 1: a full read means the path was cut */
#define NAME_READ 256
#define ARGV_MAX 1024
#define WALK_DEPTH 48
#define WALK_BYTES 4096

#define AT_FDCWD -100
#define AF_INET 2
#define AF_INET6 10
#define BPF_PROG_LOAD_CMD 5
#define PTRACE_POKETEXT 4
#define PTRACE_POKEDATA 5
#define PTRACE_POKEUSR 6
#define PTRACE_ATTACH 16
#define PTRACE_SEIZE 0x4206

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

struct scratch {
	__u8 buf[SCRATCH_SIZE];
	struct walk_state walk;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

/*
 * A syscall's arguments between its enter and exit tracepoints, kept in the
 * thread's own task storage: no hashing, no insert or delete per syscall,
 * and the slot goes away with the thread. what == WHAT_NONE means empty.
 */
struct pending {
	__u64 args[4];
	__u32 what;
	__u32 old_ids[4];
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct pending);
} pending SEC(".maps");

/* Syscall number → enum syscall_what, filled by the loader. */
#define SYSCALL_TABLE 1024

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SYSCALL_TABLE);
	__type(key, __u32);
	__type(value, __u32);
} syscall_whats SEC(".maps");

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
			buf[(at + n) & (SCRATCH_SIZE - 1)] = 0;
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

SEC("tp_btf/sched_process_exec")
int BPF_PROG(sched_process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	if (filtered(bpf_get_current_pid_tgid() >> 32))
		return 0;
	struct scratch *s = scratch_get();
	if (!s)
		return 0;
	struct exec_event *e = (struct exec_event *)s->buf;
	fill_header(bpf_get_current_task_btf(), &e->h, KIND_EXEC);

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

/* ---- syscalls: enter ------------------------------------------------------ */

static __always_inline void read_ids(struct task_struct *task, __u32 what, __u32 ids[4])
{
	const struct cred *cred = task->cred;
	bool gids = what == WHAT_SETGID || what == WHAT_SETREGID || what == WHAT_SETRESGID || what == WHAT_SETFSGID;

	if (gids) {
		ids[0] = cred->gid.val;
		ids[1] = cred->egid.val;
		ids[2] = cred->sgid.val;
		ids[3] = cred->fsgid.val;
	} else {
		ids[0] = cred->uid.val;
		ids[1] = cred->euid.val;
		ids[2] = cred->suid.val;
		ids[3] = cred->fsuid.val;
	}
}

/*
 * on_enter records a setid syscall's arguments and the credentials before
 * it. A program may read no further into the context than the tracepoint's
 * own fields (nargs), or the kernel refuses to attach it.
 */
static __always_inline int on_enter(struct trace_event_raw_sys_enter *ctx, __u32 what, int nargs)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (filtered(pid_tgid >> 32))
		return 0;

	struct pending *p = bpf_task_storage_get(&pending, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!p) {
		struct event_counters *c = counters_get();
		if (c)
			c->pair_full++;
		return 0;
	}
	if (p->what != WHAT_NONE) {
		/* The previous syscall's exit never came (the thread was attached mid-call). */
		struct event_counters *c = counters_get();
		if (c)
			c->pair_overwritten++;
	}
	p->args[0] = ctx->args[0];
	if (nargs > 1)
		p->args[1] = ctx->args[1];
	if (nargs > 2)
		p->args[2] = ctx->args[2];
	read_ids(bpf_get_current_task_btf(), what, p->old_ids);
	p->what = what;
	return 0;
}

#define ENTER(name, what, nargs)                                                   \
	SEC("tracepoint/syscalls/sys_enter_" #name)                        \
	int sys_enter_##name(struct trace_event_raw_sys_enter *ctx)        \
	{                                                                   \
		return on_enter(ctx, what, nargs);                          \
	}

ENTER(setuid, WHAT_SETUID, 1)
ENTER(setgid, WHAT_SETGID, 1)
ENTER(setreuid, WHAT_SETREUID, 2)
ENTER(setregid, WHAT_SETREGID, 2)
ENTER(setresuid, WHAT_SETRESUID, 3)
ENTER(setresgid, WHAT_SETRESGID, 3)
ENTER(setfsuid, WHAT_SETFSUID, 1)
ENTER(setfsgid, WHAT_SETFSGID, 1)

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

static __always_inline int exit_setid(struct task_struct *task, struct pending *p, long ret)
{
	struct setid_event e = {};
	fill_header(task, &e.h, KIND_SETID);
	e.ret = ret;
	e.what = p->what;
	e.args[0] = p->args[0];
	e.args[1] = p->args[1];
	e.args[2] = p->args[2];
	__builtin_memcpy(e.old_ids, p->old_ids, sizeof(e.old_ids));
	read_ids(task, p->what, e.new_ids);
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

/* One program for every traced sys_exit_*: the pending entry says which. */
SEC("tracepoint/syscalls/sys_exit")
int sys_exit_traced(struct trace_event_raw_sys_exit *ctx)
{
	__u32 nr = ctx->id;
	if (nr >= SYSCALL_TABLE)
		return 0;
	__u32 *whatp = bpf_map_lookup_elem(&syscall_whats, &nr);
	if (!whatp || *whatp == WHAT_NONE)
		return 0;
	__u32 what = *whatp;
	long ret = ctx->ret;
	struct pending p = {};
	/* One helper call for the current task; everything else is loads. */
	struct task_struct *task = bpf_get_current_task_btf();

	if (what >= WHAT_SETUID && what <= WHAT_SETFSGID) {
		/* The old credentials only exist before the call: paired with sys_enter. */
		struct pending *pp = bpf_task_storage_get(&pending, task, 0, 0);
		if (!pp || pp->what == WHAT_NONE) {
			/* Filtered at enter, or the enter happened before we attached. */
			if (!filtered(task->tgid)) {
				struct event_counters *c = counters_get();
				if (c)
					c->pair_missing++;
			}
			return 0;
		}
		p = *pp;
		pp->what = WHAT_NONE;
	} else {
		/*
		 * The arguments are still in the registers the syscall entry saved:
		 * no enter hook, no pairing to lose.
		 */
		if (filtered(task->tgid))
			return 0;
		struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
		p.args[0] = regs->di;
		p.args[1] = regs->si;
		p.args[2] = regs->dx;
		p.args[3] = regs->r10;
		p.what = what;
		if (what == WHAT_PTRACE) {
			long req = p.args[0];
			if (req != PTRACE_ATTACH && req != PTRACE_SEIZE && req != PTRACE_POKETEXT && req != PTRACE_POKEDATA &&
			    req != PTRACE_POKEUSR)
				return 0;
		}
		if (what == WHAT_BPF && p.args[0] != BPF_PROG_LOAD_CMD)
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
	default:
		if (p.what >= WHAT_SETUID && p.what <= WHAT_SETFSGID)
			return exit_setid(task, &p, ret);
	}
	return 0;
}
