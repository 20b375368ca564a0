/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The defender's batch framing (defender/deliver/batch_frame.c) on bytes read
 * back from the spool.  The input is a u64 seq, a u64 incarnation (both
 * little-endian) and the packed Batch.  Properties, with protobuf-c as the
 * reference reader:
 *   - batch_frame_has_models is true whenever protobuf-c finds model deltas
 *     (false would let an ordered batch overtake another);
 *   - batch_frame_envelope's bytes unpack exactly when the Batch does, to the
 *     seq and incarnation given and to the same Batch (packed again, equal);
 *   - read as a spooled record (batch_spool_parse), a compressed one
 *     decompresses to exactly the length its header gives or is refused, and
 *     any bytes compressed for the spool read back the same, barrier and all;
 *     the compressed envelope from a spooled block equals the one compressed
 *     at send time.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/batch_frame.h"
#include "fuzz_util.h"
#include "vigil.pb-c.h"

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* m packed by protobuf-c into a new buffer (free it); NULL when out of memory. */
static uint8_t *repack(const Vigil__Batch *m, size_t *ret_len)
{
	size_t n = vigil__batch__get_packed_size(m);
	uint8_t *b = malloc(n ? n : 1);

	if (b == NULL)
		return NULL;
	*ret_len = vigil__batch__pack(m, b);
	if (*ret_len != n)
		fuzz_fail("vigil__batch__pack wrote %zu bytes, sized %zu", *ret_len, n);
	return b;
}

/* The input as a spooled record, and the input compressed for the spool and read back. */
static void spooled(const uint8_t *data, size_t size, bool has, uint64_t inc, uint64_t seq)
{
	struct batch_spooled sb;
	uint8_t *back = NULL, *spool, *a, *b;
	size_t n, cap, alen = 0, blen = 0;
	int rc;

	if (batch_spool_parse(data, size, &sb)) {
		if (!sb.compressed &&
		    (sb.data != data || sb.data_len != size || sb.raw_len != size))
			fuzz_fail("batch_spool_parse: an uncompressed record not taken as it is");
		if (sb.compressed) {
			if (sb.data_len + BATCH_SPOOL_LZ4_HEADER != size)
				fuzz_fail(
				    "batch_spool_parse: the block is not the rest of the record");
			rc = batch_spool_inflate(&sb, &back);
			if (rc == 0 && back == NULL)
				fuzz_fail("batch_spool_inflate: 0 without a batch");
			if (rc != 0 && rc != -EBADMSG && rc != -ENOMEM)
				fuzz_fail("batch_spool_inflate: %d", rc);
			free(back);
			back = NULL;
		}
	} else if (size == 0 || data[0] != 0x00) {
		fuzz_fail("batch_spool_parse: refused an uncompressed record");
	}

	cap = batch_spool_lz4_bound(size);
	if (size == 0 || cap == 0 || (spool = malloc(cap)) == NULL)
		return;
	n = batch_spool_compress(data, size, has, spool, cap);
	if (n > 0) {
		if (n >= size)
			fuzz_fail("batch_spool_compress: %zu bytes for %zu", n, size);
		if (!batch_spool_parse(spool, n, &sb) || !sb.compressed || sb.models != has ||
		    sb.raw_len != size)
			fuzz_fail("batch_spool_parse: refused or misread what was compressed");
		if (batch_spool_inflate(&sb, &back) != 0 || memcmp(back, data, size) != 0)
			fuzz_fail("batch_spool_inflate: not the bytes compressed");
		a = batch_frame_envelope_lz4(inc, seq, data, size, &alen);
		b = batch_frame_envelope_lz4_block(inc, seq, sb.data, sb.data_len, sb.raw_len,
						   &blen);
		if (a != NULL && b != NULL && (alen != blen || memcmp(a, b, alen) != 0))
			fuzz_fail("a spooled block's envelope differs from one compressed to send");
		free(a);
		free(b);
		free(back);
	}
	free(spool);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Vigil__Batch *direct;
	Vigil__Envelope *env;
	uint64_t seq, inc;
	uint8_t *frame, *a = NULL, *b = NULL;
	size_t flen = 0, alen = 0, blen = 0;
	bool has;

	if (size < 16)
		return -1;
	seq = get_le64(data);
	inc = get_le64(data + 8);
	data += 16;
	size -= 16;

	has = batch_frame_has_models(data, size);
	spooled(data, size, has, inc, seq);
	direct = vigil__batch__unpack(NULL, size, data);
	if (direct != NULL && direct->n_models > 0 && !has)
		fuzz_fail("batch_frame_has_models: false for a batch with %zu model deltas",
			  direct->n_models);

	frame = batch_frame_envelope(inc, seq, data, size, &flen);
	if (frame == NULL)
		fuzz_fail("batch_frame_envelope: out of memory");
	if (flen > size + BATCH_FRAME_ENVELOPE_OVERHEAD)
		fuzz_fail("batch_frame_envelope: %zu bytes, more than the overhead allows", flen);
	env = vigil__envelope__unpack(NULL, flen, frame);
	if ((env != NULL) != (direct != NULL))
		fuzz_fail("the Envelope %s but the Batch alone %s", env ? "unpacks" : "does not",
			  direct ? "does" : "does not");
	if (env != NULL) {
		if (env->seq != seq || env->incarnation != inc ||
		    env->body_case != VIGIL__ENVELOPE__BODY_BATCH)
			fuzz_fail("the Envelope does not carry seq %llu, incarnation %llu, a batch",
				  (unsigned long long)seq, (unsigned long long)inc);
		a = repack(direct, &alen);
		b = repack(env->batch, &blen);
		if (a == NULL || b == NULL || alen != blen || memcmp(a, b, alen) != 0)
			fuzz_fail("the Envelope's Batch differs from the Batch");
		vigil__envelope__free_unpacked(env, NULL);
	}
	free(a);
	free(b);
	free(frame);
	if (direct != NULL)
		vigil__batch__free_unpacked(direct, NULL);
	return 0;
}
