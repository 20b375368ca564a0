/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_MEMACCT_H
#define VIGIL_DEFENDER_MEMACCT_H

/*
 * Memory accounting for the process tree and its parts: malloc and free that
 * keep a running estimate of the heap they hold in a counter the caller owns
 * (a proctree's stats.bytes, shared by all of its parts).  The estimate
 * follows glibc's allocator, so it tracks what malloc really holds rather
 * than what was asked for.
 *
 * Threading: none.  The counter belongs to whoever owns the tree; nothing
 * here locks.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/*
 * What a malloc of n bytes costs with glibc: an 8-byte header and 16-byte
 * rounding; whole pages above the mmap threshold.
 */
static inline uint64_t memacct_cost(size_t n)
{
	size_t c;

	if (n >= (size_t)128 * 1024)
		return ((n + 16 + 4095) & ~(size_t)4095);
	c = (n + 8 + 15) & ~(size_t)15;
	return c < 32 ? 32 : c;
}

/* malloc(n), counted in *bytes.  NULL when out of memory (nothing counted). */
static inline void *memacct_alloc(uint64_t *bytes, size_t n)
{
	void *p = malloc(n);

	if (p != NULL)
		*bytes += memacct_cost(n);
	return p;
}

/* calloc(1, n), counted in *bytes.  NULL when out of memory (nothing counted). */
static inline void *memacct_zalloc(uint64_t *bytes, size_t n)
{
	void *p = calloc(1, n);

	if (p != NULL)
		*bytes += memacct_cost(n);
	return p;
}

/* Free p, which memacct_alloc/_zalloc returned for n bytes; accepts NULL. */
static inline void memacct_free(uint64_t *bytes, void *p, size_t n)
{
	if (p == NULL)
		return;
	*bytes -= memacct_cost(n);
	free(p);
}

#endif
