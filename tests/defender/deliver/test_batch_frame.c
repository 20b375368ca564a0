/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
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
