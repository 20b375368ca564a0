/* SPDX-License-Identifier: Apache-2.0 */
#include "deliver/batch_frame.h"

#include <lz4.h>
#include <stdlib.h>
#include <string.h>

#define FIELD_MODELS 4 /* Batch.models */

size_t batch_frame_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	do {
		p[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v != 0);
	return n;
}

uint8_t *batch_frame_envelope(uint64_t incarnation, uint64_t seq, const void *batch, size_t len,
			      size_t *ret_len)
{
	uint8_t *out = malloc(len + BATCH_FRAME_ENVELOPE_OVERHEAD);
	size_t n = 0;

	if (out == NULL)
		return NULL;
	out[n++] = 0x08; /* field 1 (seq), varint */
	n += batch_frame_varint(out + n, seq);
	if (incarnation != 0) {
		out[n++] = 0x28; /* field 5 (incarnation), varint */
		n += batch_frame_varint(out + n, incarnation);
	}
	out[n++] = 0x22; /* field 4 (batch), length-delimited */
	n += batch_frame_varint(out + n, len);
	memcpy(out + n, batch, len);
	*ret_len = n + len;
	return out;
}

uint8_t *batch_frame_envelope_lz4(uint64_t incarnation, uint64_t seq, const void *batch, size_t len,
				  size_t *ret_len)
{
	uint8_t v[BATCH_FRAME_VARINT_MAX], *out;
	size_t n = 0;
	int bound, clen;

	*ret_len = 1;
	if (len == 0 || len > (size_t)LZ4_MAX_INPUT_SIZE)
		return (*ret_len = 0, NULL);
	bound = LZ4_compressBound((int)len);
	/* The compressed length's varint is written after compressing: room for the longest. */
	if ((out = malloc((size_t)bound + BATCH_FRAME_ENVELOPE_OVERHEAD + 2 +
			  BATCH_FRAME_VARINT_MAX)) == NULL)
		return NULL;
	out[n++] = 0x08; /* field 1 (seq), varint */
	n += batch_frame_varint(out + n, seq);
	if (incarnation != 0) {
		out[n++] = 0x28; /* field 5 (incarnation), varint */
		n += batch_frame_varint(out + n, incarnation);
	}
	out[n++] = 0x40; /* field 8 (batch_size), varint */
	n += batch_frame_varint(out + n, len);
	out[n++] = 0x3a; /* field 7 (batch_lz4), length-delimited */
	size_t at = n + BATCH_FRAME_VARINT_MAX;
	clen = LZ4_compress_default(batch, (char *)out + at, (int)len, bound);
	if (clen <= 0 || (size_t)clen >= len) {
		free(out);
		return (*ret_len = 0, NULL);
	}
	size_t vl = batch_frame_varint(v, (uint64_t)clen);
	memcpy(out + n, v, vl);
	memmove(out + n + vl, out + at, (size_t)clen);
	*ret_len = n + vl + (size_t)clen;
	return out;
}

/* Read a varint at p[*i..len); false when it runs past the end or over 64 bits. */
static bool read_varint(const uint8_t *p, size_t len, size_t *i, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (*i >= len)
			return false;
		uint8_t b = p[(*i)++];
		*v |= (uint64_t)(b & 0x7f) << shift;
		if ((b & 0x80) == 0)
			return true;
	}
	return false;
}

bool batch_frame_has_models(const uint8_t *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint64_t key, v;

		if (!read_varint(p, len, &i, &key) || key >> 3 == FIELD_MODELS)
			return true;
		/* A Batch holds only messages (length-delimited); a varint is tolerated. */
		if ((key & 7) != 0 && (key & 7) != 2)
			return true;
		if (!read_varint(p, len, &i, &v))
			return true;
		if ((key & 7) == 2) {
			if (v > len - i)
				return true;
			i += (size_t)v;
		}
	}
	return false;
}
