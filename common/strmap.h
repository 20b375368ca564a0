/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_COMMON_STRMAP_H
#define VIGIL_COMMON_STRMAP_H

/*
 * A string-keyed hash map (open addressing, linear probing, tombstones) for
 * tables that are looked up on every event: no allocation on lookup, one
 * key copy on insert.  Values are opaque pointers the caller owns.  Not
 * thread-safe; bound it by counting entries (strmap_count) before inserting.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct strmap;

/* The map's string hash (64-bit FNV-1a): stable across versions, usable as a file name. */
uint64_t strmap_hash(const char *s);

struct strmap *strmap_new(void);

/*
 * A map that keeps the caller's key pointers instead of copies: each key
 * must stay unchanged until it is deleted or the map freed (it lives in
 * the value, typically).  Saves an allocation per entry in big tables.
 */
struct strmap *strmap_new_borrowed(void);
void strmap_free(struct strmap *m);

/* The value for key, or NULL. */
void *strmap_get(const struct strmap *m, const char *key);

/* Insert or replace.  Returns 0, or -ENOMEM (the map is unchanged). */
int strmap_put(struct strmap *m, const char *key, void *value);

/* Remove key; returns its value, or NULL when absent. */
void *strmap_del(struct strmap *m, const char *key);

size_t strmap_count(const struct strmap *m);

/* Visit every entry in no particular order; the map must not change meanwhile. */
void strmap_each(const struct strmap *m, void (*fn)(const char *key, void *value, void *ctx),
		 void *ctx);

#endif
