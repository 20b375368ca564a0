/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_PIDMAP_H
#define VIGIL_DEFENDER_PIDMAP_H

/*
 * pid -> index: the process table's map from a pid to its entry's place in
 * the entry pool.  Open addressing with linear probing and Fibonacci
 * hashing; removal shifts the rest of the run back, so there are no
 * tombstones and lookups never slow down with churn.
 *
 * Memory: starts at PIDMAP_MIN slots and doubles as it fills, keeping the
 * load at or below one half, up to the first power of two at or above twice
 * the pid count given to pidmap_init.  Every allocation is counted in the
 * owner's heap counter.
 *
 * Ownership: the map owns its slot array; it stores pids and indexes only.
 * Threading: none.  One thread owns the map (the proctree's); nothing here
 * locks.
 */

#include <stdint.h>

#define PIDMAP_MIN  1024u
#define PIDMAP_NONE UINT32_MAX /* pidmap_find: no such pid */

struct pidmap_slot {
	uint32_t pid; /* 0: empty */
	uint32_t idx;
};

struct pidmap {
	struct pidmap_slot *slots;
	uint32_t nslots;     /* a power of two */
	uint32_t nslots_max; /* growth stops here */
	uint32_t count;	     /* pids held: read-only to callers */
	uint64_t *bytes;     /* the owner's heap counter (see memacct.h), not owned */
};

/*
 * Set up an empty map in *m for up to max_pids pids, counting its memory in
 * *bytes.  Returns 0 or -ENOMEM; pidmap_fini is safe after either.
 */
int pidmap_init(struct pidmap *m, uint32_t max_pids, uint64_t *bytes);

/* Free the slots; accepts a zeroed *m. */
void pidmap_fini(struct pidmap *m);

/* The index stored for pid (not 0), or PIDMAP_NONE. */
uint32_t pidmap_find(const struct pidmap *m, uint32_t pid);

/*
 * Store idx for pid (not 0), which must not be in the map.  Returns 0, or
 * -ENOMEM when the map is full and could not grow (nothing stored).
 */
int pidmap_insert(struct pidmap *m, uint32_t pid, uint32_t idx);

/* Forget pid; nothing happens when it is not in the map. */
void pidmap_remove(struct pidmap *m, uint32_t pid);

#endif
