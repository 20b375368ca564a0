/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_PROCFS_H
#define VIGIL_DEFENDER_PROCFS_H

/*
 * Reading the process tree's facts from one /proc tree (the real one, or a
 * fake one under tests): a process's stat, status, loginuid, exe, cwd,
 * cmdline and cgroup, built into a struct proc_entry whose strings are
 * interned.
 *
 * The pure parsers these readers use keep their public names and are
 * declared in proctree.h: proctree_parse_stat, proctree_cgroup_pick,
 * proctree_container_id and proctree_tty_name (defined in procfs.c).
 *
 * Untrusted input: /proc contents are bytes, not text.  Every read is
 * bounded (PROCFS_SCRATCH_LEN, PROCFS_PATH_MAX, args_max) and what is kept is
 * stored as-is.
 *
 * Ownership: a struct procfs owns its root path copy and its two buffers.
 * Strings it puts into entries are references in the caller's intern table,
 * owned by the entry that holds them.  Functions return 0 or a negative
 * errno and never log.
 *
 * Threading: none.  One thread owns a procfs (the proctree's) and makes
 * every call; the buffers are shared by all calls, and nothing here locks.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "process/intern.h"
#include "process/proctree.h"

#define PROCFS_SCRATCH_LEN 16384 /* /proc reads; lent out between them (getpwuid_r) */
#define PROCFS_PATH_MAX	   4096	 /* paths built and links read */

struct procfs {
	char *root;	  /* proc_root, NUL-terminated; owned */
	char *scratch;	  /* PROCFS_SCRATCH_LEN bytes; clobbered by every read */
	char *pathbuf;	  /* PROCFS_PATH_MAX bytes, for readlink */
	uint64_t tick_ns; /* one clock tick (USER_HZ): the precision of /proc start times */
	uint32_t args_max;
	/* v1 cgroup hierarchies seen: cgroup ids do not name every path (read-only to callers) */
	bool cg_hybrid;
	/* root is the kernel's /proc of this pid namespace: kill(pid, 0) says who is gone */
	bool live_root;
	uint64_t *bytes; /* the owner's heap counter (see memacct.h), not owned */
};

/*
 * Set up *pf to read under root (copied), keeping up to args_max bytes of
 * argv, counting its memory in *bytes.  Returns 0 or -ENOMEM; procfs_fini is
 * safe after either.
 */
int procfs_init(struct procfs *pf, const char *root, uint32_t args_max, uint64_t *bytes);

/* Free the root copy and the buffers; accepts a zeroed *pf. */
void procfs_fini(struct procfs *pf);

/*
 * Whether a directory entry name under root is a pid: decimal digits only,
 * 1..UINT32_MAX.  Sets *ret_pid only when it is.
 */
bool procfs_parse_pid(const char *name, uint32_t *ret_pid);

/* An O_DIRECTORY fd on root/<pid> (the caller closes it), or a negative errno. */
int procfs_open_pid(const struct procfs *pf, uint32_t pid);

/*
 * Read root/<pid>/stat and parse it into *ret_st.  Returns 0, -ENOENT or
 * -ESRCH when the process is gone, or another negative errno when it cannot
 * tell (unreadable, unparsable, path too long).
 */
int procfs_read_stat(struct procfs *pf, uint32_t pid, struct proctree_stat *ret_st);

/*
 * Read dfd/cgroup (dfd from procfs_open_pid) into e->cgroup and
 * e->container_id, which must be NULL, as references in strs.  Notes a
 * hybrid cgroup host in pf->cg_hybrid.  Returns 2 (v2 path), 1 (v1 path), 0
 * (no path), or a negative errno (-ENOMEM: e->cgroup may be set and is then
 * the caller's to put).
 */
int procfs_read_cgroup(struct procfs *pf, struct intern *strs, int dfd, struct proc_entry *e);

/*
 * A snapshot of root/<pid> in *e, its strings referenced in strs (the caller
 * owns those references).  All files are read through one directory fd, so
 * they describe one process even if the pid is reused meanwhile (reads then
 * fail instead of mixing two processes).  start_ns is coarse (clock ticks,
 * PROC_F_START_COARSE); unreadable parts are left absent.  Returns 0,
 * -ENOENT (gone), -ESRCH (a thread, not a leader), -EINVAL (unparsable) or
 * -ENOMEM; on failure *e holds no references.  *ret_zombie says whether the
 * process already exited.
 */
int procfs_load(struct procfs *pf, struct intern *strs, uint32_t pid, struct proc_entry *e,
		bool *ret_zombie);

#endif
