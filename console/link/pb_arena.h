/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_PB_ARENA_H
#define VIGIL_CONSOLE_PB_ARENA_H

/*
 * Memory for everything one request unpacks, given back at once.
 *
 * protobuf-c allocates every message, string and array of an unpacked
 * message on its own and frees each again: for a batch of 2,000 events
 * that is some 8,000 malloc and free calls, about a seventh of the
 * console's CPU under load, and the decompressed batch (a few MiB, above
 * malloc's mmap threshold) was a fresh mapping whose pages all faulted in.
 * An arena hands out memory by moving a pointer and frees nothing until
 * the request is answered; between requests it keeps one block as large
 * as the last request needed, up to a limit, so a steady stream of batches
 * allocates nothing new.
 *
 * One arena per listener worker thread: not thread-safe.  Nothing taken
 * from it may outlive pb_arena_reset.
 */

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

struct pb_arena;

/* An arena that keeps at most keep_bytes between requests; NULL when out of memory. */
struct pb_arena *pb_arena_new(size_t keep_bytes);

/* size bytes aligned for any type, valid until the next reset; NULL when out of memory. */
void *pb_arena_alloc(struct pb_arena *a, size_t size);

/* For protobuf-c's unpack: allocates from a, frees nothing (reset does). */
ProtobufCAllocator *pb_arena_allocator(struct pb_arena *a);

/* Give back everything taken since the last reset. */
void pb_arena_reset(struct pb_arena *a);

/* What the arena holds now, in bytes (its blocks, used or not). */
size_t pb_arena_held(const struct pb_arena *a);

void pb_arena_free(struct pb_arena *a);

#endif
