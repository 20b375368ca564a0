/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_BPF_EVENTS_H
#define VIGIL_BPF_EVENTS_H

/*
 * The capture ABI: records the kernel programs write into the ring buffer,
 * shared by clang -target bpf and gcc.  Fixed-width fields only.  Every
 * record starts with struct ev_hdr; variable-length strings follow the fixed
 * part in the order the record's *_len fields list them, each NUL-terminated
 * and counted in its length (a length of 0 means "absent").  hdr.size is the
 * whole record.  User space checks every length against hdr.size before use:
 * the kernel is trusted to be correct, not to be uncompromised.
 */

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define EV_PATH_MAX   4096  /* one path string, with its NUL */
#define EV_ARGS_MAX   4096  /* argv joined by NULs, with the last NUL */
#define EV_RECORD_MAX 16384 /* largest record: hdr + fixed part + strings */
#define EV_COMM_LEN   16
#define EV_TTY_LEN    32

enum ev_type {
	EV_EXEC = 1,
	EV_FORK = 2,
	EV_EXIT = 3,
	EV_FILE = 4,
	EV_NET = 5,
};

/* hdr.flags: what was cut or could not be read.  Output marks them, never hides them. */
enum ev_flag {
	EVF_TRUNC_PATH = 1 << 0,  /* a path was longer than EV_PATH_MAX or deeper than the walk */
	EVF_TRUNC_ARGS = 1 << 1,  /* argv longer than EV_ARGS_MAX */
	EVF_TRUNC_PATH2 = 1 << 2, /* second path (rename/link target) cut */
	EVF_NO_CWD = 1 << 3,	  /* cwd could not be read */
	EVF_NO_BASE = 1 << 4,	  /* relative path whose directory could not be resolved */
	EVF_READ_FAIL = 1 << 5,	  /* a user-memory string could not be read (bad pointer) */
	EVF_COMPAT = 1 << 6,	  /* a 32-bit (ia32) syscall: int 0x80, or a 32-bit program */
	/*
	 * A path or address was read from the caller's memory after the call,
	 * not copied at its entry (see bpf/lib/stash.h): another thread could
	 * have rewritten it meanwhile.
	 */
	EVF_ARG_AT_EXIT = 1 << 7,
	/*
	 * The caller's path or address, or the directory or fd it names, changed
	 * while the call ran: another thread rewrote it.  What is reported is
	 * what the call was given at its entry.
	 */
	EVF_RACED = 1 << 8,
	/* A rule refused the call (the result is -EPERM): see ev_net.verdict. */
	EVF_DENIED = 1 << 9,
	/* An x32 syscall: a 64-bit process's, numbered with __X32_SYSCALL_BIT. */
	EVF_X32 = 1 << 10,
};

struct ev_hdr {
	__u16 type;
	__u16 size;
	__u32 flags;
	__u64 ts_ns; /* CLOCK_BOOTTIME */
	__u32 pid;   /* thread group id */
	__u32 tid;
	__u32 ppid; /* real parent's thread group id */
	__u32 uid;
	__u32 euid;
	__u32 gid;
	__u64 cgroup_id; /* cgroup v2 id */
	char comm[EV_COMM_LEN];
};

/* sched_process_exec.  Strings: filename (absolute path of the executable), args, cwd. */
struct ev_exec {
	struct ev_hdr hdr;
	__u32 sid;	 /* session id (global pid namespace) */
	__u32 loginuid;	 /* audit login uid, (u32)-1 when unset */
	__u64 start_ns;	 /* task start, CLOCK_BOOTTIME: with pid, identifies a process */
	__u32 argc;	 /* arguments the program got (args may hold fewer if cut) */
	__u32 exe_flags; /* EXE_* */
	__u16 filename_len;
	__u16 args_len;
	__u16 cwd_len;
	__u16 pad;
	char tty[EV_TTY_LEN]; /* controlling terminal name ("pts3"), "" when none */
	char data[];
};

enum ev_exe_flag {
	EXE_DELETED = 1 << 0, /* the executable file has no links left */
	EXE_MEMFD = 1 << 1,   /* the executable is a memfd */
	EXE_EXECVEAT = 1 << 2 /* reserved: set when the syscall was execveat */
};

/* sched_process_fork of a new process (not a thread). */
struct ev_fork {
	struct ev_hdr hdr; /* hdr.pid is the parent */
	__u32 child_pid;
	__u32 pad;
	__u64 child_start_ns;
};

/* A process (thread group) ended. */
struct ev_exit {
	struct ev_hdr hdr;
	__u32 exit_code; /* as wait(2) reports it: (code << 8) | signal */
	__u32 pad;
	__u64 start_ns;
};

enum ev_file_op {
	FOP_OPEN = 1,
	FOP_UNLINK,
	FOP_RENAME,
	FOP_CHMOD,
	FOP_CHOWN,
	FOP_LINK,
	FOP_SYMLINK,
	FOP_MKDIR,
	FOP_TRUNCATE,
	FOP_RMDIR,
};

/*
 * A file operation, reported when the syscall returns.  Strings, in order:
 * path (absolute for a successful open or an fd-based call, else as the
 * caller gave it), path2 (rename/link: the new name; symlink: the target as
 * given), base and base2 (the absolute directory path/path2 are relative to,
 * from the dirfd or the cwd; absent when that path is absolute).  User space
 * joins base and path lexically.
 */
struct ev_file {
	struct ev_hdr hdr;
	__u16 op; /* enum ev_file_op */
	__u16 syscall_nr_lo;
	__u32 open_flags; /* O_* for opens */
	__u32 mode;	  /* open/mkdir/chmod mode */
	__u32 owner_uid;  /* chown: new uid, (u32)-1 unchanged */
	__u32 owner_gid;
	__s32 result; /* syscall return: fd or 0, or -errno */
	__s64 length; /* truncate length */
	__u16 path_len;
	__u16 path2_len;
	__u16 base_len;
	__u16 base2_len;
	char data[];
};

enum ev_net_op {
	NOP_CONNECT = 1,
	NOP_ACCEPT,
	NOP_BIND,
	NOP_LISTEN,
};

/*
 * A socket operation, reported when the syscall returns.  Addresses are in
 * network byte order; IPv4 uses the first 4 bytes.  Strings: unix_path.
 */
struct ev_net {
	struct ev_hdr hdr;
	__u16 op;     /* enum ev_net_op */
	__u16 family; /* AF_INET, AF_INET6, AF_UNIX */
	__u16 type;   /* SOCK_STREAM, SOCK_DGRAM, ... */
	__u16 protocol;
	__s32 result;	   /* syscall return: fd or 0, or -errno */
	__u16 local_port;  /* host byte order */
	__u16 remote_port; /* host byte order */
	__u8 local_addr[16];
	__u8 remote_addr[16];
	__s32 backlog; /* listen */
	__u16 unix_path_len;
	__u16 verdict;	   /* EVF_DENIED: the guard_net_entry that refused it, plus one */
	__u32 verdict_gen; /* EVF_DENIED: the table's generation (guard_net_conf.gen) */
	__u32 pad;
	char data[];
};

/*
 * Network rules in the kernel (bpf/lib/guard.h): a table of entries the
 * defender compiles from its rule set, in runs per policy.
 */
#define GUARD_NET_ENTRIES  2048 /* two tables of GUARD_NET_ENTRIES / 2 */
#define GUARD_NET_POLICIES 64	/* policy 0: the host's; others: listed cgroups */
#define GUARD_NET_CGROUPS  1024 /* cgroups with a policy of their own */
#define GUARD_CGROUP_DEPTH 6	/* ancestors of a process's cgroup looked up */

enum guard_op {
	GUARD_OP_CONNECT = 1, /* connect: peer address and port */
	GUARD_OP_LISTEN = 2,  /* bind: the local port */
};

enum guard_proto {
	GUARD_PROTO_ANY = 0,
	GUARD_PROTO_TCP = 1,
	GUARD_PROTO_UDP = 2,
};

struct guard_net_entry {
	__u8 op;     /* enum guard_op */
	__u8 family; /* AF_INET, AF_INET6 */
	__u8 proto;  /* enum guard_proto */
	__u8 prefix; /* connect: network prefix length */
	__u8 allow;  /* 1: an allow entry (wins over deny) */
	__u8 block;  /* deny: kill the caller too */
	__u16 pad;
	__u16 port_lo, port_hi; /* 0, 0: every port */
	__u8 addr[16];		/* connect: network, IPv4 in the first 4 bytes */
};

struct guard_net_conf {
	__u32 gen; /* the table's generation (from 1); in [2]: which table is in force */
	__u32 pad;
	__u16 first[GUARD_NET_POLICIES], count[GUARD_NET_POLICIES];
};

struct guard_cgroup_policy {
	__u32 policy[2]; /* in table 0 and table 1 */
};

/* What a cgroup program decided for a call in flight, for sys_exit. */
struct guard_verdict {
	__u64 ts_ns;
	__u32 entry;
	__u32 gen;
	__u8 block;
	__u8 pad[7];
};

/* Why an event was not delivered: one per-CPU counter each, exported by the defender. */
enum ev_drop_reason {
	/* bpf_ringbuf_output failed: user space too slow or ring too small */
	DROP_RINGBUF_FULL = 0,
	DROP_SCRATCH,	     /* per-CPU scratch buffer unavailable */
	DROP_PATH_TRUNCATED, /* delivered, but a path was cut (counted, not lost) */
	DROP_ARGS_TRUNCATED, /* delivered, but argv was cut (counted, not lost) */
	DROP_ARGS_AT_EXIT,   /* delivered, but a path was read after the call (EVF_ARG_AT_EXIT) */
	DROP_REASON_MAX,
};

/* Events the kernel filtered on purpose (not losses): per-CPU counters. */
enum ev_filter_reason {
	FILTER_SELF = 0,    /* the defender's own activity */
	FILTER_READ_REPEAT, /* read-only open seen recently by the same process */
	FILTER_READ_FAILED, /* read-only open that failed (library/config probing) */
	FILTER_REASON_MAX,
};

/* Indices into the per-CPU "seen" counter: events successfully written, per type. */
#define EV_TYPE_MAX 6

/* The control map's one value (bpf/lib/maps.h explains it). */
struct ev_control {
	__u64 read_pos;
	__u32 gen;
	__u32 pad;
};

/*
 * The layout both compilers must agree on, checked wherever this header is
 * compiled (clang -target bpf and gcc): a field moved, resized or padded
 * differently on one side fails the build instead of garbling records.
 * Changing a struct means changing these numbers on purpose.
 */
#define EV_ABI_AT(type, field, off)                                                                \
	_Static_assert(__builtin_offsetof(type, field) == (off),                                   \
		       #type "." #field " must sit at byte " #off)
#define EV_ABI_SIZE(type, size)                                                                    \
	_Static_assert(sizeof(type) == (size), #type " must be " #size " bytes")

EV_ABI_SIZE(struct ev_hdr, 64);
EV_ABI_AT(struct ev_hdr, type, 0);
EV_ABI_AT(struct ev_hdr, size, 2);
EV_ABI_AT(struct ev_hdr, flags, 4);
EV_ABI_AT(struct ev_hdr, ts_ns, 8);
EV_ABI_AT(struct ev_hdr, pid, 16);
EV_ABI_AT(struct ev_hdr, tid, 20);
EV_ABI_AT(struct ev_hdr, ppid, 24);
EV_ABI_AT(struct ev_hdr, uid, 28);
EV_ABI_AT(struct ev_hdr, euid, 32);
EV_ABI_AT(struct ev_hdr, gid, 36);
EV_ABI_AT(struct ev_hdr, cgroup_id, 40);
EV_ABI_AT(struct ev_hdr, comm, 48);

EV_ABI_SIZE(struct ev_exec, 128);
EV_ABI_AT(struct ev_exec, sid, 64);
EV_ABI_AT(struct ev_exec, loginuid, 68);
EV_ABI_AT(struct ev_exec, start_ns, 72);
EV_ABI_AT(struct ev_exec, argc, 80);
EV_ABI_AT(struct ev_exec, exe_flags, 84);
EV_ABI_AT(struct ev_exec, filename_len, 88);
EV_ABI_AT(struct ev_exec, args_len, 90);
EV_ABI_AT(struct ev_exec, cwd_len, 92);
EV_ABI_AT(struct ev_exec, tty, 96);
EV_ABI_AT(struct ev_exec, data, 128);

EV_ABI_SIZE(struct ev_fork, 80);
EV_ABI_AT(struct ev_fork, child_pid, 64);
EV_ABI_AT(struct ev_fork, child_start_ns, 72);

EV_ABI_SIZE(struct ev_exit, 80);
EV_ABI_AT(struct ev_exit, exit_code, 64);
EV_ABI_AT(struct ev_exit, start_ns, 72);

EV_ABI_SIZE(struct ev_file, 104);
EV_ABI_AT(struct ev_file, op, 64);
EV_ABI_AT(struct ev_file, syscall_nr_lo, 66);
EV_ABI_AT(struct ev_file, open_flags, 68);
EV_ABI_AT(struct ev_file, mode, 72);
EV_ABI_AT(struct ev_file, owner_uid, 76);
EV_ABI_AT(struct ev_file, owner_gid, 80);
EV_ABI_AT(struct ev_file, result, 84);
EV_ABI_AT(struct ev_file, length, 88);
EV_ABI_AT(struct ev_file, path_len, 96);
EV_ABI_AT(struct ev_file, path2_len, 98);
EV_ABI_AT(struct ev_file, base_len, 100);
EV_ABI_AT(struct ev_file, base2_len, 102);
EV_ABI_AT(struct ev_file, data, 104);

EV_ABI_SIZE(struct ev_net, 128);
EV_ABI_AT(struct ev_net, op, 64);
EV_ABI_AT(struct ev_net, family, 66);
EV_ABI_AT(struct ev_net, type, 68);
EV_ABI_AT(struct ev_net, protocol, 70);
EV_ABI_AT(struct ev_net, result, 72);
EV_ABI_AT(struct ev_net, local_port, 76);
EV_ABI_AT(struct ev_net, remote_port, 78);
EV_ABI_AT(struct ev_net, local_addr, 80);
EV_ABI_AT(struct ev_net, remote_addr, 96);
EV_ABI_AT(struct ev_net, backlog, 112);
EV_ABI_AT(struct ev_net, unix_path_len, 116);
EV_ABI_AT(struct ev_net, verdict, 118);
EV_ABI_AT(struct ev_net, verdict_gen, 120);
EV_ABI_AT(struct ev_net, data, 128);

EV_ABI_SIZE(struct ev_control, 16);
EV_ABI_AT(struct ev_control, read_pos, 0);
EV_ABI_AT(struct ev_control, gen, 8);

/* Records fit the u16 size field, and every fixed part fits a record. */
_Static_assert(EV_RECORD_MAX <= 65535, "hdr.size is 16 bits");
_Static_assert(sizeof(struct ev_exec) + EV_PATH_MAX + EV_ARGS_MAX + EV_PATH_MAX <= EV_RECORD_MAX,
	       "an exec record with every string at its maximum must fit EV_RECORD_MAX");

#undef EV_ABI_AT
#undef EV_ABI_SIZE

#endif
