/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_RINGREAD_H
#define VIGIL_DEFENDER_RINGREAD_H

/*
 * A reader of a BPF ring buffer map that separates reading from releasing.
 *
 * libbpf's ring_buffer hands the kernel back each record's space as soon
 * as its callback returns.  Here records are read from read_pos on, and the
 * kernel's consumer position moves only on ringread_commit: what was read
 * but not yet made durable (spooled) stays in the ring.  When the ring is
 * pinned and outlives a killed defender, the next one reads on from the
 * last committed position, and nothing that was only in memory is lost.
 *
 * Positions are the kernel's: byte counts since the ring was created, only
 * growing.  The layout read here is the kernel's ABI for BPF_MAP_TYPE_RINGBUF
 * (a consumer page, a producer page, the data mapped twice so a record never
 * wraps; 8-byte headers with busy and discard bits).
 *
 * One thread.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct ringread;

/* A record of len bytes; end is the position just after it.  Return < 0 to stop. */
typedef int (*ringread_fn)(void *ctx, const void *data, size_t len, uint64_t end);

/*
 * Map the ring of map_fd (size bytes, a power of two).  publish: where to
 * store the read position after every record (the kernel's wakeup decision
 * reads it), or NULL.  autocommit: give each record back as soon as it is
 * read, as libbpf does.  NULL with err set.
 */
struct ringread *ringread_open(int map_fd, size_t size, volatile uint64_t *publish, bool autocommit,
			       vigil_err *err);

/*
 * Wait up to timeout_ms for the kernel's wakeup (it wakes the reader only
 * once plenty is waiting; not at all when the last call left records
 * behind), then hand fn the complete records from the read position up to
 * where the kernel had written when the wait ended: under a steady load a
 * call still returns, so that the caller can commit.  Returns how many, or
 * -errno (a record with an impossible length: -EBADMSG).
 */
int ringread_poll(struct ringread *r, int timeout_ms, ringread_fn fn, void *ctx);

/* Where reading stands, and what the kernel has been given back. */
uint64_t ringread_read_pos(const struct ringread *r);
uint64_t ringread_committed(const struct ringread *r);

/* Give the kernel back the ring up to pos (clamped to the read position; never backwards). */
void ringread_commit(struct ringread *r, uint64_t pos);

/* Bytes written by the kernel and not yet read. */
uint64_t ringread_unread(const struct ringread *r);

void ringread_close(struct ringread *r);

#endif
