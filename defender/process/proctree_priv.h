/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_PROCTREE_PRIV_H
#define VIGIL_DEFENDER_PROCTREE_PRIV_H

/*
 * The process tree's insides, shared by the files of defender/process/ that
 * implement it; nothing outside defender/process/ may include this (use
 * proctree.h).  The parts' own headers are private to defender/process/ as
 * well, but for their unit tests.
 *
 * Layout.  A struct proctree is made of:
 *   - the entry pool (proctree.c): fixed-size nodes in chunks allocated as
 *     the table fills and never moved, so pointers handed out stay put until
 *     the entry is dropped; a free list; and a FIFO of exited entries in
 *     exit order, from whose head the grace-period expiry and the make-room
 *     eviction both take;
 *   - pids (pidmap.h): pid -> pool index;
 *   - strs (intern.h): every string an entry holds, interned and referenced;
 *   - proc (procfs.h): the /proc tree entries are read from, and the read
 *     buffers (its scratch is lent to the user cache between reads);
 *   - cgroups (cgcache.h): cgroup v2 id -> path, holding references in strs;
 *   - users (usercache.h): uid -> name;
 *   - ctrs (container_cache.h): container id -> runtime, name, image.
 * Every part counts its heap in st.bytes (memacct.h).
 *
 * Ownership: the proctree owns every part; the parts hold pointers to
 * st.bytes, so a struct proctree never moves.  Threading: none; one thread
 * owns a proctree and makes every call on it and its parts, nothing locks.
 */

#include <stdint.h>

#include "process/cgcache.h"
#include "process/container_cache.h"
#include "process/intern.h"
#include "process/pidmap.h"
#include "process/procfs.h"
#include "process/proctree.h"
#include "process/usercache.h"

struct proctree_node;

struct proctree {
	uint32_t max;	   /* entries, live and exited */
	uint64_t grace_ns; /* how long exited entries stay */

	/* entry pool (args_max and the clock tick are in proc) */
	struct proctree_node **chunks;
	uint32_t nchunks;
	uint32_t nused; /* pool high-water mark */
	uint32_t free_head;
	uint32_t exited_head, exited_tail;
	uint32_t sweep_cursor;
	uint32_t evict_cursor; /* where the last eviction of live entries stopped */
	uint64_t gen;	       /* bumped by every change to any entry: see proctree_generation */

	struct pidmap pids;
	struct intern strs;
	struct procfs proc;
	struct cgcache cgroups;
	struct usercache users;
	struct container_cache ctrs;

	/* Counters; strings, string_bytes and user_names are the parts' own, read on demand. */
	struct proctree_stats st;
};

/* Give back the references an entry holds and clear its string fields. */
static inline void proctree_entry_put_strings(struct intern *strs, struct proc_entry *e)
{
	intern_put(strs, e->exe);
	intern_put(strs, e->cwd);
	intern_put(strs, e->args);
	intern_put(strs, e->tty);
	intern_put(strs, e->cgroup);
	intern_put(strs, e->container_id);
	e->exe = e->cwd = e->args = e->tty = e->cgroup = e->container_id = NULL;
	e->args_len = 0;
}

/* Take a reference on every string of e (a copy about to be stored as well). */
static inline void proctree_entry_ref_strings(struct proc_entry *e)
{
	intern_ref(e->exe);
	intern_ref(e->cwd);
	intern_ref(e->args);
	intern_ref(e->tty);
	intern_ref(e->cgroup);
	intern_ref(e->container_id);
}

#endif
