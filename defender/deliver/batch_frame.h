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

/* Batch.models: the field that makes a batch a barrier (batch_frame_has_models). */
#define BATCH_FIELD_MODELS 4

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
 * Envelope{seq, incarnation, batch_size = raw_len, batch_lz4 = 7} around a
 * block compressed already (a spooled one): malloc'ed, NULL when out of
 * memory.
 */
uint8_t *batch_frame_envelope_lz4_block(uint64_t incarnation, uint64_t seq, const uint8_t *block,
					size_t block_len, size_t raw_len, size_t *ret_len);

/*
 * A batch as the defender spools it: the packed Batch as it is, or, once the
 * console takes compressed batches, compressed before it is written (the
 * spool then writes, checksums and reads back a twentieth of the bytes, and
 * the sender sends the block as it is):
 *   0x00 'L' flags 0x00, u32 little-endian length of the packed Batch, one
 *   LZ4 block.
 * No packed Batch starts with 0x00 (that would be field 0), so the two never
 * mix up, and spools written before compression read as they always did.
 * flags: BATCH_SPOOL_MODELS, the batch carries model deltas (it is a barrier:
 * known without decompressing).
 */
#define BATCH_SPOOL_LZ4_HEADER 8
#define BATCH_SPOOL_MODELS     0x01

/* Room batch_spool_compress needs for a packed Batch of len bytes. */
size_t batch_spool_lz4_bound(size_t len);

/*
 * Compress a packed Batch of len bytes (1..LZ4_MAX_INPUT_SIZE) into out (cap
 * bytes, at least batch_spool_lz4_bound(len)) with its header; models says it
 * carries model deltas.  Returns the spooled length, or 0 when compressing
 * would not make it smaller (spool it as it is).
 */
size_t batch_spool_compress(const uint8_t *packed, size_t len, bool models, uint8_t *out,
			    size_t cap);

/* What a spooled record holds (borrowing its bytes). */
struct batch_spooled {
	bool compressed;
	bool models;	     /* compressed: from the header; else not looked at */
	size_t raw_len;	     /* the packed Batch's length */
	const uint8_t *data; /* compressed: the LZ4 block; else the packed Batch */
	size_t data_len;
};

/*
 * Read a spooled record's framing.  false when it claims to be compressed
 * but its header is not one this defender writes (unknown flags, a length of
 * 0 or past SPOOL-sized batches, no block).
 */
bool batch_spool_parse(const uint8_t *p, size_t len, struct batch_spooled *out);

/*
 * The packed Batch of a compressed spooled record into *ret (malloc'ed,
 * raw_len bytes): 0, -ENOMEM, or -EBADMSG when the block does not
 * decompress to exactly raw_len bytes.
 */
int batch_spool_inflate(const struct batch_spooled *sb, uint8_t **ret);

/*
 * Whether a packed Batch of len bytes carries model deltas (field 4): such a
 * batch must reach the console in order.  true as well for bytes it cannot
 * read (the safe answer).
 */
bool batch_frame_has_models(const uint8_t *batch, size_t len);

#endif
