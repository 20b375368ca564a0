/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_PROCTREE_H
#define VIGIL_DEFENDER_PROCTREE_H

/*
 * The defender's process tree: a bounded table of the host's processes,
 * seeded from /proc and kept current from exec, fork and exit events, that
 * answers "who is this pid" (identity, credentials, executable, arguments,
 * cwd, tty, session, login uid, cgroup and container) and "who started it"
 * (the ancestry chain).
 *
 * Threading: none.  One thread (the capture thread) owns a proctree and makes
 * every call on it; nothing here locks.
 *
 * Identity: the kernel reuses pids, so a process is (pid, start_ns), with
 * start_ns in CLOCK_BOOTTIME nanoseconds (task->start_boottime, the value
 * struct ev_exec/ev_fork/ev_exit carry).  Entries read from /proc only know
 * the start time in clock ticks (10 ms at USER_HZ 100); they are marked
 * PROC_F_START_COARSE and match any event start_ns inside that tick, after
 * which the exact value replaces the coarse one.  An exec or fork whose
 * start_ns does not match the stored entry for that pid replaces the entry.
 * A start_ns of 0 in an event means "unknown" and matches any entry.
 *
 * Lifetimes: every pointer this module returns (entries, their strings,
 * ancestry arrays' elements) is owned by the tree and stays valid until the
 * next call on the tree that is not const-qualified here (proctree_get and
 * proctree_ancestry included: they may load an entry and so evict another),
 * except proctree_user_name's strings, which have their own rule.  Copy what
 * must outlive the current event.
 *
 * Memory: bounded by proctree_limits.max_entries.  Entries are fixed size;
 * their strings (exe, cwd, args, tty, cgroup, container id) are interned with
 * reference counts, so the thousands of processes that share /usr/bin/bash
 * or one cgroup pay for the string once.  When the table is full an insert
 * evicts the oldest exited entry; when every entry is live, a slice of the
 * entries of the owner with the most (login uid, else uid) goes
 * (evicted_live), so a user who forks to fill the table evicts only their
 * own processes; only when nothing is evictable is the insert refused
 * (table_full_drops).  The table never grows past the limit.  Every drop is
 * counted in proctree_stats.
 *
 * Untrusted input: /proc contents and event strings are bytes, not text.
 * They are read with bounds, stored as-is (non-UTF-8, newlines and all) and
 * escaped by whoever prints them.
 */

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define PROCTREE_MAX_ENTRIES_DEFAULT 65536
#define PROCTREE_MAX_ENTRIES_LIMIT   4194304	   /* the kernel's PID_MAX_LIMIT */
#define PROCTREE_GRACE_NS_DEFAULT    5000000000ull /* 5 s of event time */
#define PROCTREE_ARGS_DEFAULT	     256	   /* argv bytes kept per process */
#define PROCTREE_ARGS_MAX	     4096	   /* largest args_max accepted */
#define PROCTREE_COMM_LEN	     16		   /* as the kernel's TASK_COMM_LEN */
#define PROCTREE_TTY_LEN	     32		   /* tty names, with their NUL (as EV_TTY_LEN) */
#define PROCTREE_CONTAINER_ID_LEN    64
#define PROCTREE_USER_CACHE	     256 /* user names kept; see proctree_user_name */

/* Zero (or NULL) in any field means its default. */
struct proctree_limits {
	uint32_t max_entries;	/* default PROCTREE_MAX_ENTRIES_DEFAULT, at most _LIMIT */
	uint64_t exit_grace_ns; /* how long an exited entry stays resolvable (default 5 s) */
	uint32_t args_max;	/* argv bytes kept, up to PROCTREE_ARGS_MAX (default 256) */
	const char *proc_root;	/* default "/proc"; copied.  Tests point it at a fake tree */
	/* where container runtimes keep their state (container_cache.h): default "/"; copied */
	const char *container_root;
};

/* proc_entry.flags */
enum proc_flag {
	PROC_F_EXITED = 1 << 0,	      /* exit seen (exit_ns, exit_code valid) */
	PROC_F_START_COARSE = 1 << 1, /* start_ns from /proc, precise to one clock tick */
	PROC_F_KTHREAD = 1 << 2,      /* kernel thread (no exe, no args) */
	PROC_F_ARGS_TRUNC = 1 << 3,   /* args holds only the first args_max bytes of argv */
	PROC_F_PATH_TRUNC = 1 << 4,   /* exe or cwd was cut */
	PROC_F_EXE_DELETED = 1 << 5,  /* the executable had no links left at exec */
	PROC_F_EXE_MEMFD = 1 << 6,    /* the executable was a memfd */
	PROC_F_INCOMPLETE = 1 << 7,   /* fork of an unknown parent: only pid/ppid/start known */
	PROC_F_PARENT_GONE = 1 << 8, /* ppid is in neither the tree nor /proc: ancestry ends here */
};

/* How an entry was first learned. */
enum proc_source {
	PROC_SRC_SEED = 1, /* proctree_seed */
	PROC_SRC_LAZY,	   /* /proc, on a lookup miss */
	PROC_SRC_EXEC,	   /* exec event */
	PROC_SRC_FORK,	   /* fork event (inherited from the parent) */
};

/*
 * One process.  Read-only to callers.  Strings are NUL-terminated, owned by
 * the tree, and NULL when absent or unknown (no tty, exe unreadable, no
 * container, ...): never "" for "unknown".  args is argv joined by NUL bytes
 * without the final NUL, args_len bytes long (args[args_len] is a NUL).
 * Resolve uid/euid/loginuid to names with proctree_user_name().
 */
struct proc_entry {
	uint32_t pid; /* thread group id */
	uint32_t ppid;
	uint64_t start_ns;	 /* CLOCK_BOOTTIME; see "Identity" above */
	uint64_t exit_ns;	 /* event time of the exit; 0 while live */
	uint64_t cgroup_id;	 /* cgroup v2 id from the last exec event; 0 when unknown */
	uint32_t uid, euid, gid; /* (uint32_t)-1 when unknown */
	uint32_t sid;		 /* session id */
	uint32_t loginuid;	 /* audit login uid; (uint32_t)-1 when unset */
	int32_t exit_code;	 /* wait(2) status; -1 when inferred (zombie, sweep) */
	uint32_t flags;		 /* PROC_F_* */
	uint16_t args_len;
	uint8_t source; /* enum proc_source */
	uint8_t pad;
	char comm[PROCTREE_COMM_LEN]; /* NUL-terminated, at most 15 bytes */
	const char *exe;	      /* executable path as the kernel names it */
	const char *cwd;
	const char *args;
	const char *tty;	  /* "pts3", "tty1", "ttyS0", ...; NULL when none */
	const char *cgroup;	  /* cgroup path (v2, or v1 on hybrid hosts) */
	const char *container_id; /* 64 lowercase hex, from cgroup */
};

/*
 * An exec event, already decoded and length-checked by the caller.  String
 * pointers may be NULL (absent) and need not be NUL-terminated: *_len bytes
 * are read.  filename and cwd stop at their first NUL; args is argv joined by
 * NULs, one trailing NUL is dropped and the rest is cut to args_max.  comm is
 * read up to its first NUL or 15 bytes; tty up to its first NUL or 31 bytes
 * ("" or NULL = none).
 */
struct proctree_exec {
	uint32_t pid, ppid;
	uint64_t start_ns; /* CLOCK_BOOTTIME */
	uint32_t uid, euid, gid;
	uint32_t sid, loginuid;
	uint64_t cgroup_id;
	uint32_t
	    flags; /* PROC_F_ARGS_TRUNC, _PATH_TRUNC, _EXE_DELETED, _EXE_MEMFD; others ignored */
	const char *comm;
	const char *filename;
	size_t filename_len;
	const char *args;
	size_t args_len;
	const char *cwd;
	size_t cwd_len;
	const char *tty;
};

struct proctree_stats {
	uint64_t entries; /* live + exited */
	uint64_t live;
	uint64_t exited; /* exited, inside their grace period */
	uint64_t max;
	uint64_t seeded;	   /* entries loaded by proctree_seed */
	uint64_t lazy_loads;	   /* entries loaded from /proc after a lookup miss */
	uint64_t lookup_misses;	   /* lookups that found no entry (before any lazy load) */
	uint64_t expired;	   /* exited entries dropped after their grace period */
	uint64_t evicted_exited;   /* exited entries dropped early to make room */
	uint64_t evicted_live;	   /* live entries of the biggest owner dropped to make room */
	uint64_t table_full_drops; /* inserts refused: nothing left to evict */
	uint64_t replaced;	   /* entries replaced because their pid was reused */
	uint64_t exit_unknown;	   /* exit events for processes not in the table */
	uint64_t stale_reaped;	   /* live entries proctree_sweep found gone */
	uint64_t strings;	   /* distinct interned strings */
	uint64_t string_bytes;	   /* their payload bytes */
	uint64_t user_names;	   /* names in the user cache */
	/* Containers' metadata (proctree_container; container_cache.h has the details). */
	uint64_t containers;	       /* containers cached (found and not found) */
	uint64_t containers_found;     /* lookups that read a container's name and image */
	uint64_t containers_missed;    /* lookups that found a container nowhere (retried) */
	uint64_t containers_malformed; /* runtime state files refused */
	uint64_t containers_evicted;   /* cached containers dropped to make room (also from the
					* table the enforcement listener reads) */
	uint64_t bytes;		       /* heap held, with an allocator-overhead estimate */
};

/*
 * Create an empty tree.  lim may be NULL (all defaults).  Returns NULL with
 * errno set (EINVAL for limits above PROCTREE_ARGS_MAX or
 * PROCTREE_MAX_ENTRIES_LIMIT, ENOMEM).
 * Allocates a few hundred KiB up front; the rest grows with the entries.
 */
struct proctree *proctree_new(const struct proctree_limits *lim);

/* Free the tree and everything it returned; accepts NULL. */
void proctree_free(struct proctree *pt);

/*
 * Load every process under proc_root.  Processes that vanish or cannot be
 * read meanwhile are skipped; unreadable parts (exe of a kernel thread or of
 * a process we may not inspect) are stored as absent.  Zombies are stored as
 * exited.  Processes already in the tree are refreshed.  Returns 0, or a
 * negative errno with err set when proc_root cannot be listed.  Call it after
 * the capture programs are attached and before draining the ring buffer, so
 * no process falls between the snapshot and the first event.
 */
int proctree_seed(struct proctree *pt, vigil_err *err);

/*
 * A process exec'd.  Creates or updates the entry for (pid, start_ns):
 * exe, args, comm, credentials, cwd, tty, session, loginuid.  The cgroup
 * path is kept when cgroup_id says it did not change, else read from
 * proc_root/<pid>/cgroup.  Returns 0, -EINVAL (pid 0), -ENOSPC (table full
 * of live entries; counted) or -ENOMEM.
 */
int proctree_on_exec(struct proctree *pt, const struct proctree_exec *ev);

/*
 * A process forked a new process (not a thread).  The child inherits the
 * parent's credentials, comm, exe, args, cwd, tty, session, loginuid and
 * cgroup; an unknown parent is loaded from /proc, and failing that the child
 * is loaded itself or kept as PROC_F_INCOMPLETE.  A child already known
 * under the same identity (its exec was seen first, or the seed found it) is
 * left alone.  Returns 0, -EINVAL, -ENOSPC (counted) or -ENOMEM.
 */
int proctree_on_fork(struct proctree *pt, uint32_t parent_pid, uint32_t child_pid,
		     uint64_t child_start_ns);

/*
 * A process exited at event time ts_ns.  The entry stays resolvable for the
 * grace period, then proctree_expire drops it.  Returns 0, or -ENOENT when no
 * entry matches (pid, start_ns) (counted as exit_unknown; not an error for
 * the caller).
 */
int proctree_on_exit(struct proctree *pt, uint32_t pid, uint64_t start_ns, int32_t exit_code,
		     uint64_t ts_ns);

/*
 * Drop exited entries whose grace period ended by now_ns (the events' clock:
 * the newest event time, or CLOCK_BOOTTIME now).  Returns how many were
 * dropped.  Call it from the loop's housekeeping, e.g. once a second.
 */
size_t proctree_expire(struct proctree *pt, uint64_t now_ns);

/*
 * Check up to max_checks live entries (round robin over the table) against
 * proc_root, and mark exited at now_ns those that are gone, zombies, or now
 * another process under the same pid.  This repairs the tree after lost exit
 * events (ring buffer overruns) so that dead entries do not fill the table.
 * Returns how many it marked.  A few hundred checks a second cover a 10,000
 * process host in under a minute at negligible cost.
 */
size_t proctree_sweep(struct proctree *pt, uint64_t now_ns, size_t max_checks);

/*
 * The entry for pid, or NULL.  On a miss (counted in lookup_misses) the
 * process is loaded from proc_root when it exists there and is a thread group
 * leader (counted in lazy_loads).  Hits never allocate.
 */
const struct proc_entry *proctree_get(struct proctree *pt, uint32_t pid);

/* The entry for pid without loading anything, or NULL. */
const struct proc_entry *proctree_peek(const struct proctree *pt, uint32_t pid);

/*
 * Fill out[0..max) with pid's entry, its parent, grandparent, ... and return
 * how many were written.  Stops after pid 1, at ppid 0, at a parent that
 * cannot be found (missing parents are loaded from /proc when they exist),
 * at a "parent" that started after its child (the pid was reused), at a
 * repeated pid (a cycle), or when out is full.  0 when pid is unknown.
 */
size_t proctree_ancestry(struct proctree *pt, uint32_t pid, const struct proc_entry **out,
			 size_t max);

/*
 * The user name for uid (getpwuid_r, cached), or the uid in decimal when it
 * has no name.  Never NULL.  The string is owned by the tree and stays valid
 * for at least the next PROCTREE_USER_CACHE - 1 calls of this function (the
 * cache is LRU), and never past proctree_free.  The first lookup of a uid
 * may block on NSS (LDAP, sssd): do not call it from a latency-bound thread.
 */
const char *proctree_user_name(struct proctree *pt, uint32_t uid);

/*
 * A number that changes whenever any entry is added, changed or removed
 * (events, lazy loads, sweeps, expiry).  Whatever was derived from the tree,
 * such as an ancestry chain and the pointers in it, is still what the tree
 * says while the number stays the same.
 */
uint64_t proctree_generation(const struct proctree *pt);

/* Counters and sizes. */
void proctree_stats(const struct proctree *pt, struct proctree_stats *ret_stats);

struct container_meta;

/*
 * The container e runs in, as its runtime's state describes it (runtime,
 * name, image; container_cache.h): NULL when e is in no container, or while its
 * container is not found (looked up again later, never on every call).  The
 * first call for a container reads a few bounded files; later ones are a
 * hash probe.  Valid until the next call of this function or proctree_free;
 * it changes nothing in the tree (entries stay where they are).
 */
const struct container_meta *proctree_container(struct proctree *pt, const struct proc_entry *e);

/* A number that changes whenever an answer of proctree_container may have. */
uint64_t proctree_container_generation(const struct proctree *pt);

/*
 * Pure helpers, exposed for tests and for other modules.
 */

/* One /proc/<pid>/stat line, parsed. */
struct proctree_stat {
	uint32_t pid;
	uint32_t ppid;
	uint32_t sid;
	uint32_t tty_nr; /* encoded dev_t of the controlling tty, 0 when none */
	uint32_t kflags; /* the kernel's PF_* task flags */
	uint64_t start_ticks;
	char state;
	char comm[PROCTREE_COMM_LEN]; /* cut to 15 bytes, NUL-terminated */
};

/*
 * Parse a /proc/<pid>/stat line of len bytes (need not be NUL-terminated).
 * comm is everything between the first '(' and the LAST ')', since comm may
 * itself hold spaces, parentheses and newlines.  Returns 0 or -EINVAL.
 */
int proctree_parse_stat(const char *line, size_t len, struct proctree_stat *ret_st);

/*
 * Pick the cgroup path from a /proc/<pid>/cgroup file of len bytes: the v2
 * ("0::") line's path unless it is the root "/" and a v1 line has a deeper
 * one (hybrid hosts keep the interesting path in v1), else the first v1
 * line with a path other than "/", else "/".  Sets ret_off and ret_len to the
 * path inside buf and returns 2 (from the v2 line), 1 (from a v1 line) or 0
 * (none found; ret_* untouched).
 */
int proctree_cgroup_pick(const char *buf, size_t len, size_t *ret_off, size_t *ret_len);

/*
 * The container id in a cgroup path: the deepest path component that is
 * docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>[.scope],
 * libpod-<id>[.scope], a bare <id> directly under "docker", or a bare <id>
 * anywhere under a "kubepods*" component, where <id> is exactly 64 lowercase
 * hex digits.  Runtime monitors (libpod-conmon-*, crio-conmon-*) are not
 * containers.  Writes the id (or "") to out and returns its length (64 or 0).
 */
size_t proctree_container_id(const char *cgroup_path, char out[PROCTREE_CONTAINER_ID_LEN + 1]);

/*
 * The kernel's name for a controlling tty from the stat tty_nr (as the exec
 * event's tty: "pts3", "tty1", "ttyS0", "console"; "<major>:<minor>" for
 * drivers it does not know).  Writes "" for 0.  out must hold 32 bytes.
 */
void proctree_tty_name(uint32_t tty_nr, char out[32]);

#endif
