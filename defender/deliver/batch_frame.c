/* SPDX-License-Identifier: Apache-2.0 */
#include "deliver/batch_frame.h"

#include <errno.h>
#include <lz4.h>
#include <stdlib.h>
#include <string.h>

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

/* Envelope{seq, incarnation, batch_size = raw_len} and batch_lz4's key at out: their length. */
static size_t lz4_envelope_head(uint8_t *out, uint64_t incarnation, uint64_t seq, size_t raw_len)
{
	size_t n = 0;

	out[n++] = 0x08; /* field 1 (seq), varint */
	n += batch_frame_varint(out + n, seq);
	if (incarnation != 0) {
		out[n++] = 0x28; /* field 5 (incarnation), varint */
		n += batch_frame_varint(out + n, incarnation);
	}
	out[n++] = 0x40; /* field 8 (batch_size), varint */
	n += batch_frame_varint(out + n, raw_len);
	out[n++] = 0x3a; /* field 7 (batch_lz4), length-delimited */
	return n;
}

uint8_t *batch_frame_envelope_lz4(uint64_t incarnation, uint64_t seq, const void *batch, size_t len,
				  size_t *ret_len)
{
	uint8_t v[BATCH_FRAME_VARINT_MAX], *out;
	size_t n;
	int bound, clen;

	*ret_len = 1;
	if (len == 0 || len > (size_t)LZ4_MAX_INPUT_SIZE)
		return (*ret_len = 0, NULL);
	bound = LZ4_compressBound((int)len);
	/* The compressed length's varint is written after compressing: room for the longest. */
	if ((out = malloc((size_t)bound + BATCH_FRAME_ENVELOPE_OVERHEAD + 2 +
			  BATCH_FRAME_VARINT_MAX)) == NULL)
		return NULL;
	n = lz4_envelope_head(out, incarnation, seq, len);
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

uint8_t *batch_frame_envelope_lz4_block(uint64_t incarnation, uint64_t seq, const uint8_t *block,
					size_t block_len, size_t raw_len, size_t *ret_len)
{
	uint8_t *out =
	    malloc(block_len + BATCH_FRAME_ENVELOPE_OVERHEAD + 2 + BATCH_FRAME_VARINT_MAX);
	size_t n;

	if (out == NULL)
		return NULL;
	n = lz4_envelope_head(out, incarnation, seq, raw_len);
	n += batch_frame_varint(out + n, block_len);
	memcpy(out + n, block, block_len);
	*ret_len = n + block_len;
	return out;
}

size_t batch_spool_lz4_bound(size_t len)
{
	return len > (size_t)LZ4_MAX_INPUT_SIZE
		   ? 0
		   : BATCH_SPOOL_LZ4_HEADER + (size_t)LZ4_compressBound((int)len);
}

size_t batch_spool_compress(const uint8_t *packed, size_t len, bool models, uint8_t *out,
			    size_t cap)
{
	int clen;

	if (len == 0 || len > (size_t)LZ4_MAX_INPUT_SIZE || cap < batch_spool_lz4_bound(len))
		return 0;
	clen = LZ4_compress_default((const char *)packed, (char *)out + BATCH_SPOOL_LZ4_HEADER,
				    (int)len, (int)(cap - BATCH_SPOOL_LZ4_HEADER));
	if (clen <= 0 || (size_t)clen + BATCH_SPOOL_LZ4_HEADER >= len)
		return 0;
	out[0] = 0x00;
	out[1] = 'L';
	out[2] = models ? BATCH_SPOOL_MODELS : 0;
	out[3] = 0;
	for (int i = 0; i < 4; i++)
		out[4 + i] = (uint8_t)(len >> (8 * i));
	return BATCH_SPOOL_LZ4_HEADER + (size_t)clen;
}

bool batch_spool_parse(const uint8_t *p, size_t len, struct batch_spooled *out)
{
	uint32_t raw = 0;

	memset(out, 0, sizeof(*out));
	if (len == 0 || p[0] != 0x00) {
		out->raw_len = out->data_len = len;
		out->data = p;
		return true;
	}
	if (len <= BATCH_SPOOL_LZ4_HEADER || p[1] != 'L' || (p[2] & ~BATCH_SPOOL_MODELS) != 0 ||
	    p[3] != 0)
		return false;
	for (int i = 0; i < 4; i++)
		raw |= (uint32_t)p[4 + i] << (8 * i);
	if (raw == 0 || raw > (uint32_t)LZ4_MAX_INPUT_SIZE)
		return false;
	out->compressed = true;
	out->models = (p[2] & BATCH_SPOOL_MODELS) != 0;
	out->raw_len = raw;
	out->data = p + BATCH_SPOOL_LZ4_HEADER;
	out->data_len = len - BATCH_SPOOL_LZ4_HEADER;
	return true;
}

int batch_spool_inflate(const struct batch_spooled *sb, uint8_t **ret)
{
	uint8_t *out;

	*ret = NULL;
	if (!sb->compressed || sb->raw_len == 0 || sb->raw_len > (size_t)LZ4_MAX_INPUT_SIZE ||
	    sb->data_len > (size_t)INT32_MAX)
		return -EBADMSG;
	if ((out = malloc(sb->raw_len)) == NULL)
		return -ENOMEM;
	if (LZ4_decompress_safe((const char *)sb->data, (char *)out, (int)sb->data_len,
				(int)sb->raw_len) != (int)sb->raw_len) {
		free(out);
		return -EBADMSG;
	}
	*ret = out;
	return 0;
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

		if (!read_varint(p, len, &i, &key) || key >> 3 == BATCH_FIELD_MODELS)
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
