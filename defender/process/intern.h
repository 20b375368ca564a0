/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_INTERN_H
#define VIGIL_DEFENDER_INTERN_H

/*
 * Interned strings with reference counts: one copy of each distinct byte
 * string, shared by everyone who holds it, so the thousands of processes
 * that run /usr/bin/bash or sit in one cgroup pay for the string once.  A
 * chained hash (FNV-1a) finds them; it doubles when it holds more strings
 * than buckets.
 *
 * Ownership: the table owns the strings.  intern_get and intern_ref each
 * hand out one reference, which the holder gives back with intern_put
 * exactly once; the string stays valid and unchanged while any reference is
 * held, and intern_fini frees it regardless.  Strings are byte strings of a
 * given length (they may hold NULs, as argv does) with a NUL after them.
 *
 * Memory: unbounded by itself; a string lives exactly as long as its
 * references, so what bounds the holders (the process table's max_entries)
 * bounds it.  Every allocation is counted in the owner's heap counter.
 *
 * Threading: none.  One thread owns the table (the proctree's); nothing
 * here locks.
 */

#include <stddef.h>
#include <stdint.h>

struct intern_str;

struct intern {
	struct intern_str **buckets;
	uint32_t nbuckets; /* a power of two */
	uint64_t count;	   /* distinct strings: read-only to callers */
	uint64_t payload;  /* their bytes, NULs after them not included: read-only */
	uint64_t *bytes;   /* the owner's heap counter (see memacct.h), not owned */
};

/*
 * Set up an empty table in *in (zeroed or not), counting its memory in
 * *bytes.  Returns 0 or -ENOMEM; intern_fini is safe after either.
 */
int intern_init(struct intern *in, uint64_t *bytes);

/* Free every string and the table, referenced or not; accepts a zeroed *in. */
void intern_fini(struct intern *in);

/*
 * A reference to the interned copy of p[0..len), NUL-terminated, or NULL
 * when out of memory.  len must fit in 32 bits.
 */
const char *intern_get(struct intern *in, const char *p, size_t len);

/* Another reference to s, an interned string or NULL.  Returns s. */
const char *intern_ref(const char *s);

/* Give back one reference to s; the last one frees it.  Accepts NULL. */
void intern_put(struct intern *in, const char *s);

#endif
