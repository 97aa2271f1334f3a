/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Record layouts shared by the BPF programs and, through bpf2go -type, by
 * the Go decoder. Every record starts with struct event_header; variable
 * data (paths, argv, names) follows the fixed part and is addressed by
 * struct str_ref (offset from the record start, length without the NUL).
 *
 * Paths that the kernel resolves from a struct path (an exec's binary, the
 * directory a relative open was resolved against, a module file) are sent as
 * their components from the leaf up to the root, each NUL-terminated; user
 * space reverses them. That keeps the BPF side a forward-only, verifier-
 * friendly walk.
 */
#pragma once

#define TASK_COMM_LEN 16

enum event_kind {
	KIND_EXEC = 1,
	KIND_FORK = 2,
	KIND_EXIT = 3,
	KIND_OPEN = 4,
	KIND_CONNECT = 5,
	KIND_SETID = 6,
	KIND_PTRACE = 7,
	KIND_MODULE = 8,
	KIND_BPF_PROG = 9,
	KIND_MEMFD = 10,
	KIND_FILE = 11,
	KIND_NAMESPACE = 12,
	KIND_SIGNAL = 13,
	KIND_SOCKET = 14,
	KIND_SYS = 15,
	KIND_MAX = 16,
};

/* event_header.flags: what was cut short or is unusual. */
enum event_flag {
	FLAG_TRUNC_ARGS = 1 << 0,  /* argv longer than captured */
	FLAG_TRUNC_PATH = 1 << 1,  /* a user-supplied path or name did not fit */
	FLAG_TRUNC_WALK = 1 << 2,  /* a kernel path walk stopped early (too deep / too long) */
	FLAG_PSEUDO_PATH = 1 << 3, /* the walked file is not reachable from a root (memfd, pipe, deleted mount) */
	FLAG_TRUNC_FILENAME = 1 << 4,
	FLAG_FILE_TRUNC_WALK = 1 << 5, /* the opened file's kernel path walk stopped early */
	FLAG_FILE_PSEUDO = 1 << 6,     /* the opened file is not reachable from a root */
	FLAG_TRUNC_ENV = 1 << 7,       /* exec: the environment was not searched to its end, or a value was cut */
};

/* file_event.dirs, namespace_event.dirs: which directory walks completed. */
enum dir_done {
	DIR_DONE = 1 << 0,     /* dir: the walk of cwd/dfd reached the root */
	NEW_DIR_DONE = 1 << 1, /* new_dir: likewise */
};

/* Which syscall of a family produced an event. */
enum syscall_what {
	WHAT_NONE = 0,
	WHAT_OPENAT = 1,
	WHAT_OPENAT2 = 2,
	WHAT_OPEN = 3,
	WHAT_CONNECT = 4,
	WHAT_SETUID = 5,
	WHAT_SETGID = 6,
	WHAT_SETREUID = 7,
	WHAT_SETREGID = 8,
	WHAT_SETRESUID = 9,
	WHAT_SETRESGID = 10,
	WHAT_SETFSUID = 11,
	WHAT_SETFSGID = 12,
	WHAT_PTRACE = 13,
	WHAT_INIT_MODULE = 14,
	WHAT_FINIT_MODULE = 15,
	WHAT_BPF = 16,
	WHAT_MEMFD_CREATE = 17,
	/* KIND_FILE */
	WHAT_UNLINK = 18,
	WHAT_UNLINKAT = 19,
	WHAT_RMDIR = 20,
	WHAT_RENAME = 21,
	WHAT_RENAMEAT = 22,
	WHAT_RENAMEAT2 = 23,
	WHAT_LINK = 24,
	WHAT_LINKAT = 25,
	WHAT_SYMLINK = 26,
	WHAT_SYMLINKAT = 27,
	WHAT_MKDIR = 28,
	WHAT_MKDIRAT = 29,
	WHAT_CHMOD = 30,
	WHAT_FCHMOD = 31,
	WHAT_FCHMODAT = 32,
	WHAT_FCHMODAT2 = 33,
	WHAT_CHOWN = 34,
	WHAT_FCHOWN = 35,
	WHAT_LCHOWN = 36,
	WHAT_FCHOWNAT = 37,
	WHAT_TRUNCATE = 38,
	WHAT_FTRUNCATE = 39,
	/* KIND_NAMESPACE */
	WHAT_MOUNT = 40,
	WHAT_UMOUNT2 = 41,
	WHAT_PIVOT_ROOT = 42,
	WHAT_CHROOT = 43,
	WHAT_SETNS = 44,
	WHAT_UNSHARE = 45,
	WHAT_CLONE = 46,
	WHAT_CLONE3 = 47,
	/* KIND_SIGNAL */
	WHAT_KILL = 48,
	WHAT_TKILL = 49,
	WHAT_TGKILL = 50,
	/* KIND_SOCKET */
	WHAT_SOCKET = 51,
	WHAT_BIND = 52,
	WHAT_LISTEN = 53,
	WHAT_ACCEPT = 54,
	WHAT_ACCEPT4 = 55,
	/* KIND_SYS */
	WHAT_CAPSET = 56,
	WHAT_PRCTL = 57,
	WHAT_USERFAULTFD = 58,
	WHAT_IO_URING_SETUP = 59,
	WHAT_KEXEC_LOAD = 60,
	WHAT_KEXEC_FILE_LOAD = 61,
	WHAT_BPF_CMD = 62,  /* bpf(): the attach/reach-in commands only (KIND_SYS) */
	WHAT_BPF_BOTH = 63, /* bpf(): PROG_LOAD as KIND_BPF_PROG, and the KIND_SYS commands */
};

struct str_ref {
	__u16 off;
	__u16 len;
};

struct event_header {
	__u64 ts_ns; /* bpf_ktime_get_boot_ns() */
	__u64 cgroup_id;
	__u32 pid; /* thread-group id */
	__u32 tid;
	__u32 ppid; /* real parent's thread-group id */
	__u32 uid;
	__u32 gid;
	__u32 euid;
	__u32 egid;
	__u16 kind;
	__u16 flags;
	__u8 comm[TASK_COMM_LEN];
};

struct exec_event {
	struct event_header h;
	__u32 args_size; /* bytes of argv in the process, captured or not */
	__u32 exe_nlink; /* 0: the binary has no name left (deleted, memfd) */
	struct str_ref args; /* NUL-separated argv */
	struct str_ref filename; /* as passed to execve */
	struct str_ref exe; /* components, leaf first */
	/*
	 * script: SCRIPT_IS when the kernel ran an interpreter for filename
	 * (a #! script: bprm->interp differs from bprm->filename), with
	 * SCRIPT_DIR_DONE when script_dir, the components of cwd for a relative
	 * filename (leaf first), reached the root.
	 */
	__u32 script;
	struct str_ref script_dir;
	/* Selected environment variables, NAME=value, each NUL-terminated. */
	struct str_ref env;
	__u32 env_size; /* bytes of environment in the process */
	__u32 _pad;
};

enum exec_script {
	SCRIPT_IS = 1 << 0,
	SCRIPT_DIR_DONE = 1 << 1,
};

struct fork_event {
	struct event_header h;
	__u32 child_pid;
	__u32 child_tid;
};

struct exit_event {
	struct event_header h;
	__u32 exit_code;
	__u32 signal;
	__u32 core_dumped;
	__u32 _pad;
};

struct open_event {
	struct event_header h;
	__s64 ret;
	__s32 dfd;
	__u32 what;
	__u64 flags;
	__u64 mode;
	__u64 resolve; /* openat2 RESOLVE_* */
	struct str_ref path; /* as passed */
	/*
	 * Components of cwd or dfd, leaf first; only for relative paths. When
	 * the open succeeded and that directory lies on the opened file's own
	 * path (no "..", no symlink out of it), dir addresses the tail of
	 * file's bytes instead of a walk of its own: the same components.
	 */
	struct str_ref dir;
	/*
	 * The file the call opened (ret >= 0 only), read from the new descriptor
	 * at the syscall's exit: what the kernel resolved, whatever string was
	 * passed (symlinks, "..", "//", a hard link's other name).
	 */
	__u64 ino;
	__u32 dev;   /* the superblock's s_dev, kernel encoding (major << 20 | minor) */
	__u32 nlink; /* names the file has */
	__u32 imode; /* i_mode: file type and permission bits */
	struct str_ref file; /* its path, components leaf first */
};

struct connect_event {
	struct event_header h;
	__s64 ret;
	__s32 fd;
	__u16 family;
	__u16 port; /* host order */
	__u8 addr[16];
};

struct setid_event {
	struct event_header h;
	__s64 ret;
	__u32 what;
	__u32 args[3];
	__u32 old_ids[4]; /* real, effective, saved, fs: uids or gids by what */
	__u32 new_ids[4];
};

struct ptrace_event {
	struct event_header h;
	__s64 ret;
	__s64 request;
	__u32 target_pid;
	__u32 _pad;
};

struct module_event {
	struct event_header h;
	__s64 ret;
	__u32 what;
	__u32 flags;
	__u64 len; /* init_module image size */
	struct str_ref params;
	struct str_ref path; /* finit_module file, components leaf first */
};

struct bpf_prog_event {
	struct event_header h;
	__s64 ret;
	__u32 cmd;
	__u32 prog_type;
	__u32 insn_cnt;
	__u8 prog_name[16];
	__u32 _pad;
};

struct memfd_event {
	struct event_header h;
	__s64 ret;
	__u32 flags;
	struct str_ref name;
};

struct file_event {
	struct event_header h;
	__s64 ret;
	__s64 length; /* truncate, ftruncate */
	__u64 ino;    /* fd calls: the file's identity */
	__u32 what;
	__s32 dfd;    /* directory of path: AT_FDCWD or a descriptor */
	__s32 newdfd; /* directory of new_path */
	__s32 fd;     /* fchmod, fchown, ftruncate, or an *at call with an empty path */
	__u32 mode;
	__u32 uid;
	__u32 gid;
	__u32 at_flags;
	__u32 dev;
	__u32 imode;
	__u32 dirs;           /* enum dir_done */
	struct str_ref path;  /* as passed; symlink: the link's target text */
	struct str_ref dir;   /* components of cwd/dfd for a relative path, leaf first */
	struct str_ref new_path;
	struct str_ref new_dir;
	struct str_ref file;  /* fd calls: the file's kernel path, leaf first */
	__u32 _pad;
};

struct namespace_event {
	struct event_header h;
	__s64 ret;
	__u64 flags;
	__u64 ns_ino; /* setns: the namespace file's inode (its number in "mnt:[N]") */
	__u32 what;
	__s32 fd;
	__u32 dirs;   /* enum dir_done: for dir */
	__u32 _pad;
	struct str_ref source;
	struct str_ref target;
	struct str_ref fstype;
	struct str_ref dir;     /* components of cwd for a relative target, leaf first */
	struct str_ref ns_file; /* setns: the namespace type ("mnt") with ns_ino; else the fd's path walk */
};

struct signal_event {
	struct event_header h;
	__s64 ret;
	__s32 target_pid;
	__s32 target_tid;
	__u32 sig;
	__u32 what;
	__u8 target_comm[TASK_COMM_LEN];
};

struct socket_event {
	struct event_header h;
	__s64 ret;
	__s32 fd;
	__u32 what;
	__u32 type;
	__u32 protocol;
	__s32 backlog;
	__u16 family;
	__u16 port;      /* host order */
	__u16 peer_port; /* host order */
	__u16 _pad;
	__u8 addr[16];
	__u8 peer[16];
};

struct sys_event {
	struct event_header h;
	__s64 ret;
	__u64 op;
	__u64 args[3];
	__u32 what;
	struct str_ref name; /* a user string, or (kexec_file_load) a path walk, leaf first */
};

/*
 * Per-CPU counters. Every event the programs meant to send and could not is
 * counted here, by kind; so is every setid syscall whose "before"
 * credentials were not known (the pair_* names are from when those came
 * from a sys_enter hook paired with the exit).
 */
struct event_counters {
	__u64 emitted[KIND_MAX];
	__u64 dropped[KIND_MAX];   /* ring buffer full: bpf_ringbuf_output failed */
	__u64 pair_missing;        /* setid syscall of a thread whose credentials were never seen: not reported */
	__u64 pair_overwritten;    /* no longer counted: always 0 */
	__u64 pair_full;           /* a thread's credentials could not be noted: no task storage */
	__u64 wakeups;             /* forced wake-ups of user space */
};
