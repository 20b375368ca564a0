/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/batch_frame.h"
#include "vigil.pb-c.h"

/* A packed Batch with n events and, when with_models, one model delta after them. */
static uint8_t *packed_batch(size_t n, bool with_models, size_t *len)
{
	Vigil__Batch b = VIGIL__BATCH__INIT;
	Vigil__Event ev[4], *evp[4];
	Vigil__ModelDelta md = VIGIL__MODEL_DELTA__INIT, *mdp = &md;

	cr_assert_leq(n, 4);
	for (size_t i = 0; i < n; i++) {
		vigil__event__init(&ev[i]);
		ev[i].pid = (uint32_t)(100 + i);
		ev[i].json = "{\"type\":\"file\"}";
		evp[i] = &ev[i];
	}
	b.n_events = n;
	b.events = evp;
	if (with_models) {
		md.service = "nginx.service";
		b.n_models = 1;
		b.models = &mdp;
	}
	*len = vigil__batch__get_packed_size(&b);
	uint8_t *buf = malloc(*len + 1);
	vigil__batch__pack(&b, buf);
	return buf;
}

Test(batchwire, events_alone_are_no_barrier)
{
	size_t len;
	uint8_t *buf = packed_batch(4, false, &len);

	cr_expect_not(batch_frame_has_models(buf, len));
	cr_expect_not(batch_frame_has_models(buf, 0), "an empty batch holds nothing");
	free(buf);
}

Test(batchwire, model_deltas_are_a_barrier)
{
	size_t len;
	uint8_t *buf = packed_batch(3, true, &len);

	cr_expect(batch_frame_has_models(buf, len));
	free(buf);
	buf = packed_batch(0, true, &len);
	cr_expect(batch_frame_has_models(buf, len));
	free(buf);
}

Test(batchwire, unreadable_bytes_are_a_barrier)
{
	size_t len;
	uint8_t *buf = packed_batch(2, false, &len);

	/* Cut inside the second event: its length runs past the end. */
	cr_expect(batch_frame_has_models(buf, len - 3));
	/* A varint that never ends. */
	uint8_t endless[12];
	memset(endless, 0xff, sizeof(endless));
	cr_expect(batch_frame_has_models(endless, sizeof(endless)));
	/* A fixed64 field, which no Batch holds. */
	uint8_t fixed[] = {(1 << 3) | 1, 0, 0, 0, 0, 0, 0, 0, 0};
	cr_expect(batch_frame_has_models(fixed, sizeof(fixed)));
	/* A length far past the end must not wrap the cursor. */
	uint8_t huge[] = {(1 << 3) | 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
	cr_expect(batch_frame_has_models(huge, sizeof(huge)));
	free(buf);
}

Test(batchwire, envelope_unpacks_to_incarnation_seq_and_batch)
{
	size_t len, elen;
	uint8_t *buf = packed_batch(2, true, &len);
	uint8_t *env = batch_frame_envelope(INT64_MAX, UINT64_MAX, buf, len, &elen);

	cr_assert_not_null(env);
	cr_expect_leq(elen, len + BATCH_FRAME_ENVELOPE_OVERHEAD);
	Vigil__Envelope *e = vigil__envelope__unpack(NULL, elen, env);
	cr_assert_not_null(e);
	cr_expect_eq(e->seq, UINT64_MAX);
	cr_expect_eq(e->incarnation, INT64_MAX);
	cr_assert_eq(e->body_case, VIGIL__ENVELOPE__BODY_BATCH);
	cr_expect_eq(e->batch->n_events, 2);
	cr_expect_eq(e->batch->events[1]->pid, 101);
	cr_expect_eq(e->batch->n_models, 1);
	cr_expect_str_eq(e->batch->models[0]->service, "nginx.service");
	vigil__envelope__free_unpacked(e, NULL);
	free(env);
	free(buf);
}

Test(batchwire, a_legacy_spool_frames_without_an_incarnation)
{
	size_t len, elen;
	uint8_t *buf = packed_batch(1, false, &len);
	uint8_t *env = batch_frame_envelope(0, 7, buf, len, &elen);

	cr_assert_not_null(env);
	Vigil__Envelope *e = vigil__envelope__unpack(NULL, elen, env);
	cr_assert_not_null(e);
	cr_expect_eq(e->seq, 7);
	cr_expect_eq(e->incarnation, 0);
	cr_expect_eq(e->batch->n_events, 1);
	vigil__envelope__free_unpacked(e, NULL);
	free(env);
	free(buf);
}

Test(batchwire, varint_round_numbers)
{
	uint8_t p[BATCH_FRAME_VARINT_MAX];

	cr_expect_eq(batch_frame_varint(p, 0), 1);
	cr_expect_eq(p[0], 0);
	cr_expect_eq(batch_frame_varint(p, 300), 2);
	cr_expect_eq(p[0], 0xac);
	cr_expect_eq(p[1], 0x02);
	cr_expect_eq(batch_frame_varint(p, UINT64_MAX), 10);
	cr_expect_eq(p[9], 0x01);
}

/* ---- batches spooled compressed ------------------------------------------------------ */

/* A packed Batch of 4 events repeated k times: JSON that repeats, as a real batch's does. */
static uint8_t *repetitive(size_t k, bool with_models, size_t *len)
{
	size_t one;
	uint8_t *b = packed_batch(4, with_models, &one), *out = malloc(one * k);

	for (size_t i = 0; i < k; i++)
		memcpy(out + i * one, b, one); /* repeated fields concatenate into one Batch */
	free(b);
	*len = one * k;
	return out;
}

Test(batchwire, a_batch_spooled_compressed_reads_back_whole_with_its_barrier)
{
	for (int models = 0; models <= 1; models++) {
		size_t len, cap, n;
		uint8_t *batch = repetitive(200, models, &len), *back = NULL;
		struct batch_spooled sb;

		cap = batch_spool_lz4_bound(len);
		uint8_t *spooled = malloc(cap);
		n = batch_spool_compress(batch, len, models, spooled, cap);
		cr_assert_gt(n, 0);
		cr_assert_lt(n, len / 5, "%zu bytes spooled for %zu", n, len);
		cr_assert_eq(spooled[0], 0x00, "no packed Batch starts so");
		cr_assert(batch_spool_parse(spooled, n, &sb));
		cr_assert(sb.compressed);
		cr_assert_eq(sb.models, (bool)models);
		cr_assert_eq(sb.raw_len, len);
		/* The barrier the header says is the one the batch holds. */
		cr_assert_eq(batch_frame_has_models(batch, len), (bool)models);
		cr_assert_eq(batch_spool_inflate(&sb, &back), 0);
		cr_assert_arr_eq(back, batch, len);
		free(back);
		free(spooled);
		free(batch);
	}
}

Test(batchwire, a_spooled_block_goes_on_the_wire_as_one_compressed_when_sent)
{
	size_t len, n, a_len, b_len;
	uint8_t *batch = repetitive(100, false, &len);
	uint8_t *spooled = malloc(batch_spool_lz4_bound(len)), *a, *b;
	struct batch_spooled sb;

	n = batch_spool_compress(batch, len, false, spooled, batch_spool_lz4_bound(len));
	cr_assert(batch_spool_parse(spooled, n, &sb));
	a = batch_frame_envelope_lz4(7, 42, batch, len, &a_len);
	b = batch_frame_envelope_lz4_block(7, 42, sb.data, sb.data_len, sb.raw_len, &b_len);
	cr_assert_not_null(a);
	cr_assert_not_null(b);
	cr_assert_eq(a_len, b_len);
	cr_assert_arr_eq(a, b, a_len, "the console reads both the same way");
	free(a);
	free(b);
	free(spooled);
	free(batch);
}

Test(batchwire, spools_written_before_compression_read_as_they_are)
{
	size_t len;
	uint8_t *batch = packed_batch(3, true, &len);
	struct batch_spooled sb;

	cr_assert(batch_spool_parse(batch, len, &sb));
	cr_assert_not(sb.compressed);
	cr_assert_eq(sb.raw_len, len);
	cr_assert_eq(sb.data, batch);
	free(batch);
}

Test(batchwire, a_batch_that_does_not_shrink_is_spooled_as_it_is)
{
	uint8_t noise[512], out[1024];

	uint64_t x = 88172645463325252ull; /* xorshift64: bytes LZ4 finds nothing in */

	for (size_t i = 0; i < sizeof(noise); i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		noise[i] = (uint8_t)(x >> 24);
	}
	noise[0] = 0x0a; /* a packed Batch's first key */
	cr_assert_eq(batch_spool_compress(noise, sizeof(noise), false, out, sizeof(out)), 0);
	cr_assert_eq(batch_spool_compress(noise, sizeof(noise), false, out, 16), 0,
		     "too little room is refused, not overrun");
}

Test(batchwire, damaged_compressed_framing_is_refused_not_decoded)
{
	size_t len, n;
	uint8_t *batch = repetitive(50, false, &len), *back = NULL;
	uint8_t *spooled = malloc(batch_spool_lz4_bound(len));
	struct batch_spooled sb;

	n = batch_spool_compress(batch, len, false, spooled, batch_spool_lz4_bound(len));
	cr_assert_gt(n, 0);
	/* Header: too short, wrong magic, unknown flag, reserved byte set, no length. */
	cr_assert_not(batch_spool_parse(spooled, BATCH_SPOOL_LZ4_HEADER, &sb));
	spooled[1] = 'X';
	cr_assert_not(batch_spool_parse(spooled, n, &sb));
	spooled[1] = 'L';
	spooled[2] = 0x80;
	cr_assert_not(batch_spool_parse(spooled, n, &sb));
	spooled[2] = 0;
	spooled[3] = 1;
	cr_assert_not(batch_spool_parse(spooled, n, &sb));
	spooled[3] = 0;
	uint8_t saved[4];
	memcpy(saved, spooled + 4, 4);
	memset(spooled + 4, 0, 4);
	cr_assert_not(batch_spool_parse(spooled, n, &sb));
	memset(spooled + 4, 0xff, 4);
	cr_assert_not(batch_spool_parse(spooled, n, &sb), "past what LZ4 takes");
	/* A length the block does not decompress to, either way. */
	memcpy(spooled + 4, saved, 4);
	spooled[4] ^= 1;
	cr_assert(batch_spool_parse(spooled, n, &sb));
	cr_assert_eq(batch_spool_inflate(&sb, &back), -EBADMSG);
	cr_assert_null(back);
	/* A block cut short. */
	memcpy(spooled + 4, saved, 4);
	cr_assert(batch_spool_parse(spooled, n - 3, &sb));
	cr_assert_eq(batch_spool_inflate(&sb, &back), -EBADMSG);
	free(spooled);
	free(batch);
}
