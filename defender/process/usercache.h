/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_USERCACHE_H
#define VIGIL_DEFENDER_USERCACHE_H

/*
 * uid -> user name, from getpwuid_r, kept in a least-recently-used cache:
 * the first lookup of a uid may block on NSS (LDAP, sssd), later ones are a
 * hash probe.
 *
 * Memory: bounded.  At most PROCTREE_USER_CACHE names; a new uid in a full
 * cache evicts the least recently used one.  The count is in
 * usercache.count.  Names are counted in the owner's heap counter.
 *
 * Ownership: the cache owns the names.  A name returned stays valid for at
 * least the next PROCTREE_USER_CACHE - 1 calls of usercache_name, and never
 * past usercache_fini.
 *
 * Threading: none.  One thread owns the cache (the proctree's); nothing here
 * locks.
 */

#include <stddef.h>
#include <stdint.h>

#include "process/proctree.h"

#define USERCACHE_NIL 0xffffu

struct usercache_user {
	uint32_t uid;
	uint16_t prev, next; /* LRU, most recent first */
	uint16_t hnext;	     /* hash chain */
	char *name;
};

struct usercache {
	struct usercache_user users[PROCTREE_USER_CACHE];
	uint16_t buckets[PROCTREE_USER_CACHE]; /* first user of each chain, or USERCACHE_NIL */
	uint16_t count;			       /* names held: read-only to callers */
	uint16_t head, tail;		       /* LRU ends */
	uint64_t *bytes; /* the owner's heap counter (see memacct.h), not owned */
};

/* Set up an empty cache in *uc, counting its names in *bytes.  Allocates nothing. */
void usercache_init(struct usercache *uc, uint64_t *bytes);

/* Free the names; accepts a zeroed *uc. */
void usercache_fini(struct usercache *uc);

/*
 * The user name for uid: its passwd name, or the uid in decimal when it has
 * none; "?" when out of memory.  Never NULL; owned as the header says.  buf
 * is cap bytes of scratch for getpwuid_r (larger buffers are malloc'd as
 * needed, up to 1 MiB); its contents are clobbered.
 */
const char *usercache_name(struct usercache *uc, uint32_t uid, char *buf, size_t cap);

#endif
