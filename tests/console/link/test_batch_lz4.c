/*
 * Compressed batches: what the defender frames (batch_frame_envelope_lz4)
 * the console reads back (batch_decode_lz4) as the same Batch, and what a
 * hostile peer could send instead is refused with a reason, never decoded
 * past the message limit.
 */
#include <criterion/criterion.h>
#include <lz4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/batch_frame.h"
#include "link/batch_decode.h"
#include "vigil.pb-c.h"
#include "wire_limits.h"

#define NEV 500

/* A packed Batch of NEV events whose JSON repeats, as a real one does. */
static uint8_t *packed_batch(size_t *len)
{
	static char json[NEV][160];
	Vigil__Batch b = VIGIL__BATCH__INIT;
	Vigil__Event *ev = calloc(NEV, sizeof(*ev)), **evp = calloc(NEV, sizeof(*evp));

	for (size_t i = 0; i < NEV; i++) {
		vigil__event__init(&ev[i]);
		ev[i].type = 5;
		ev[i].pid = (uint32_t)(1000 + i % 7);
		ev[i].comm = "curl";
		snprintf(
		    json[i], sizeof(json[i]),
		    "{\"type\":\"net\",\"pid\":%zu,\"op\":\"connect\",\"peer\":\"10.0.0.%zu:443\","
		    "\"class\":\"service\",\"service\":\"cron.service\"}",
		    1000 + i % 7, i % 250);
		ev[i].json = json[i];
		evp[i] = &ev[i];
	}
	b.n_events = NEV;
	b.events = evp;
	*len = vigil__batch__get_packed_size(&b);
	uint8_t *buf = malloc(*len);
	vigil__batch__pack(&b, buf);
	free(evp);
	free(ev);
	return buf;
}

Test(batch_lz4, what_the_defender_compresses_the_console_reads_back_the_same)
{
	size_t len, elen;
	uint8_t *packed = packed_batch(&len), *env_bytes;
	const char *why;

	env_bytes = batch_frame_envelope_lz4(77, 9, packed, len, &elen);
	cr_assert_not_null(env_bytes, "a batch of repeating JSON compresses");
	cr_expect_lt(elen * 3, len, "to under a third (%zu of %zu bytes)", elen, len);

	Vigil__Envelope *env = vigil__envelope__unpack(NULL, elen, env_bytes);
	cr_assert_not_null(env, "protobuf-c reads the hand-framed Envelope");
	cr_expect_eq(env->body_case, VIGIL__ENVELOPE__BODY_BATCH_LZ4);
	cr_expect_eq(env->seq, 9);
	cr_expect_eq(env->incarnation, 77);
	cr_expect_eq(env->batch_size, len);

	Vigil__Batch *b = batch_decode_lz4(env, NULL, &why);
	cr_assert_not_null(b, "decoded: %s", why ? why : "out of memory");
	cr_assert_eq(b->n_events, NEV);
	size_t again = vigil__batch__get_packed_size(b);
	uint8_t *repacked = malloc(again);
	vigil__batch__pack(b, repacked);
	cr_expect(again == len && memcmp(repacked, packed, len) == 0,
		  "the same bytes the defender packed");
	free(repacked);
	vigil__batch__free_unpacked(b, NULL);
	vigil__envelope__free_unpacked(env, NULL);
	free(env_bytes);
	free(packed);
}

Test(batch_lz4, bytes_that_do_not_shrink_are_left_uncompressed)
{
	uint8_t noise[4096];
	size_t elen = 99;
	uint32_t x = 1;

	for (size_t i = 0; i < sizeof(noise); i++) {
		x = x * 1664525u + 1013904223u;
		noise[i] = (uint8_t)(x >> 24);
	}
	cr_expect_null(batch_frame_envelope_lz4(1, 1, noise, sizeof(noise), &elen));
	cr_expect_eq(elen, 0, "not an out-of-memory: send it as it is");
}

/* An Envelope with batch_lz4 = data (clen bytes) and batch_size = size. */
static const char *decode(const void *data, size_t clen, uint32_t size)
{
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	const char *why = NULL;

	env.body_case = VIGIL__ENVELOPE__BODY_BATCH_LZ4;
	env.batch_lz4.data = (uint8_t *)data;
	env.batch_lz4.len = clen;
	env.batch_size = size;
	Vigil__Batch *b = batch_decode_lz4(&env, NULL, &why);
	if (b != NULL) {
		vigil__batch__free_unpacked(b, NULL);
		return NULL;
	}
	cr_assert_not_null(why, "refused with a reason, not taken for out of memory");
	return why;
}

Test(batch_lz4, hostile_sizes_and_bytes_are_refused_with_a_reason)
{
	size_t len;
	uint8_t *packed = packed_batch(&len);
	int bound = LZ4_compressBound((int)len);
	char *c = malloc((size_t)bound);
	int clen = LZ4_compress_default((const char *)packed, c, (int)len, bound);
	const char *why;

	cr_assert_gt(clen, 0);
	cr_expect_null(decode(c, (size_t)clen, (uint32_t)len), "positive control: it decodes");

	why = decode(c, (size_t)clen, 0);
	cr_expect(why && strstr(why, "batch_size"), "no size: %s", why);
	why = decode(c, (size_t)clen, VIGIL_MSG_MAX + 1);
	cr_expect(why && strstr(why, "limit"), "over the limit, never allocated: %s", why);
	why = decode(c, (size_t)clen, (uint32_t)len - 1);
	cr_expect(why && strstr(why, "batch_size"), "says less than it holds: %s", why);
	why = decode(c, (size_t)clen, (uint32_t)len + 1);
	cr_expect(why && strstr(why, "batch_size"), "says more than it holds: %s", why);
	why = decode(c, (size_t)clen / 2, (uint32_t)len);
	cr_expect(why != NULL, "cut short");
	why = decode(c, 0, (uint32_t)len);
	cr_expect(why != NULL, "empty");

	/* Valid LZ4 of bytes that are no Batch. */
	char junk[300], cj[400];
	memset(junk, 0xff, sizeof(junk));
	int jl = LZ4_compress_default(junk, cj, (int)sizeof(junk), (int)sizeof(cj));
	why = decode(cj, (size_t)jl, sizeof(junk));
	cr_expect(why && strstr(why, "malformed"), "not a Batch: %s", why);

	/* A bomb: a tiny input claiming far more than the limit after decompressing. */
	static char zeros[VIGIL_MSG_MAX / 2], cz[LZ4_COMPRESSBOUND(VIGIL_MSG_MAX / 2)];
	memset(zeros, 0, sizeof(zeros));
	int zl = LZ4_compress_default(zeros, cz, (int)sizeof(zeros), (int)sizeof(cz));
	why = decode(cz, (size_t)zl, 1000);
	cr_expect(why && strstr(why, "batch_size"),
		  "decompression stops at the stated size (%d compressed bytes): %s", zl, why);
	free(c);
	free(packed);
}
