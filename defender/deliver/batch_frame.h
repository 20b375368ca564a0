/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_BATCH_FRAME_H
#define VIGIL_DEFENDER_BATCH_FRAME_H

/*
 * Protobuf wire helpers for spooled batches, which the sender handles as
 * packed bytes: framing them in an Envelope and looking at their top-level
 * fields without unpacking 2,000 events.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest varint: 10 bytes for a uint64. */
#define BATCH_FRAME_VARINT_MAX 10

/* Write v as a protobuf varint at p (room for BATCH_FRAME_VARINT_MAX); returns its length. */
size_t batch_frame_varint(uint8_t *p, uint64_t v);

/* What batch_frame_envelope adds at most around a batch: three keys and three varints. */
#define BATCH_FRAME_ENVELOPE_OVERHEAD (3 + 3 * BATCH_FRAME_VARINT_MAX)

/*
 * Envelope{seq = 1, incarnation = 5 (left out when 0), batch = 4} around
 * packed Batch bytes: malloc'ed, NULL when out of memory.
 */
uint8_t *batch_frame_envelope(uint64_t incarnation, uint64_t seq, const void *batch, size_t len,
			      size_t *ret_len);

/*
 * Envelope{seq, incarnation, batch_size = len, batch_lz4 = 7} around the
 * packed Batch bytes compressed as one LZ4 block, for a console that takes
 * them (Reply.batch_lz4).  malloc'ed; NULL with *ret_len 0 when compressing
 * would not make it smaller (send it as it is), NULL with *ret_len 1 when
 * out of memory.
 */
uint8_t *batch_frame_envelope_lz4(uint64_t incarnation, uint64_t seq, const void *batch, size_t len,
				  size_t *ret_len);

/*
 * Whether a packed Batch of len bytes carries model deltas (field 4): such a
 * batch must reach the console in order.  true as well for bytes it cannot
 * read (the safe answer).
 */
bool batch_frame_has_models(const uint8_t *batch, size_t len);

#endif
