/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_CGCACHE_H
#define VIGIL_DEFENDER_CGCACHE_H

/*
 * cgroup v2 id -> cgroup path and container id, learned from /proc reads,
 * so that an exec in a known cgroup (the event carries the id) does not read
 * /proc/<pid>/cgroup again.  Only meaningful on pure cgroup v2 hosts, where
 * the id names the cgroup; the caller decides (procfs.cg_hybrid).
 *
 * Memory: fixed, CGCACHE_SLOTS slots inside the struct, direct-mapped by a
 * hash of the id: a new id replaces whatever shared its slot.  No counter;
 * a miss costs one /proc read.
 *
 * Ownership: each slot holds one reference on its path and container id in
 * the caller's intern table, given back when the slot is replaced and by
 * cgcache_fini.  Returned slots are the cache's and valid until the next
 * cgcache_put or cgcache_fini.
 *
 * Threading: none.  One thread owns the cache (the proctree's); nothing here
 * locks.  A zeroed struct cgcache is an empty cache.
 */

#include <stdint.h>

#include "process/intern.h"

#define CGCACHE_SLOTS 256

struct cgcache_slot {
	uint64_t id;
	const char *path; /* referenced; NULL: empty slot */
	const char *cid;  /* referenced, may be NULL */
};

struct cgcache {
	struct cgcache_slot slots[CGCACHE_SLOTS];
};

/* Drop every slot's references into strs; the cache is empty after. */
void cgcache_fini(struct cgcache *c, struct intern *strs);

/*
 * Remember that cgroup id is path, with container id cid (NULL: none); both
 * interned in strs, and referenced here anew.  Replaces the slot's old pair.
 */
void cgcache_put(struct cgcache *c, struct intern *strs, uint64_t id, const char *path,
		 const char *cid);

/* The slot for id, or NULL when id is not cached. */
const struct cgcache_slot *cgcache_get(const struct cgcache *c, uint64_t id);

#endif
