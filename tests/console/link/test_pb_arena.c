/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The listener workers' request memory (console/link/pb_arena.h): what it
 * hands out is aligned and stays intact until reset, a reset keeps one
 * block as large as the request took (so a stream of like batches
 * allocates nothing new), never more than its limit, and protobuf-c's
 * unpack through it, compressed batches included, reads back the same.
 */
#include <criterion/criterion.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/batch_frame.h"
#include "link/batch_decode.h"
#include "link/pb_arena.h"
#include "vigil.pb-c.h"

Test(pb_arena, memory_is_aligned_and_intact_until_reset)
{
	struct pb_arena *a = pb_arena_new(1u << 20);
	unsigned char *p[2000];
	size_t sz[2000];

	cr_assert_not_null(a);
	for (size_t i = 0; i < 2000; i++) {
		sz[i] = 1 + (i * 7919) % 3000; /* odd sizes, across several blocks */
		p[i] = pb_arena_alloc(a, sz[i]);
		cr_assert_not_null(p[i]);
		cr_expect_eq((uintptr_t)p[i] % alignof(max_align_t), 0, "allocation %zu unaligned",
			     i);
		memset(p[i], (int)(i & 0xff), sz[i]);
	}
	for (size_t i = 0; i < 2000; i++)
		for (size_t k = 0; k < sz[i]; k++)
			cr_assert_eq(p[i][k], (unsigned char)(i & 0xff),
				     "allocation %zu overwritten at %zu", i, k);
	pb_arena_free(a);
}

Test(pb_arena, a_reset_keeps_one_block_of_what_the_request_took)
{
	struct pb_arena *a = pb_arena_new(8u << 20);
	size_t held;

	/* 3 MiB in 1 KiB pieces: many blocks the first time. */
	for (int i = 0; i < 3072; i++)
		cr_assert_not_null(pb_arena_alloc(a, 1024));
	pb_arena_reset(a);
	held = pb_arena_held(a);
	cr_expect_geq(held, 3u << 20, "one block for the next like request (%zu)", held);
	cr_expect_lt(held, 4u << 20, "and not much more (%zu)", held);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 3072; i++)
			cr_assert_not_null(pb_arena_alloc(a, 1024));
		cr_expect_eq(pb_arena_held(a), held, "round %d needed a new block", round);
		pb_arena_reset(a);
		cr_expect_eq(pb_arena_held(a), held);
	}
	pb_arena_free(a);
}

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifdef TEST_ASAN
#include <sanitizer/asan_interface.h>
#endif

Test(pb_arena, under_asan_what_is_not_handed_out_is_poisoned)
{
#ifndef TEST_ASAN
	cr_skip_test("built without AddressSanitizer");
#else
	struct pb_arena *a = pb_arena_new(1u << 20);
	char *p = pb_arena_alloc(a, 10), *q = pb_arena_alloc(a, 100);

	cr_assert(p != NULL && q != NULL);
	cr_expect(!__asan_address_is_poisoned(p) && !__asan_address_is_poisoned(p + 9));
	cr_expect(__asan_address_is_poisoned(p + 10), "one past an allocation is caught");
	cr_expect(!__asan_address_is_poisoned(q + 99));
	cr_expect(__asan_address_is_poisoned(q + 100), "and into the free rest of the block");
	pb_arena_reset(a);
	cr_expect(__asan_address_is_poisoned(p), "after a reset, all of it");
	pb_arena_free(a);
#endif
}

Test(pb_arena, past_its_limit_it_keeps_nothing)
{
	struct pb_arena *a = pb_arena_new(1u << 20);

	cr_assert_not_null(pb_arena_alloc(a, 3u << 20));
	cr_expect_geq(pb_arena_held(a), 3u << 20);
	pb_arena_reset(a);
	cr_expect_eq(pb_arena_held(a), 0, "a request over the limit is not kept");
	cr_expect_null(pb_arena_alloc(a, SIZE_MAX), "an impossible size is refused, not wrapped");
	cr_expect_null(pb_arena_alloc(a, SIZE_MAX / 2 + 1));
	pb_arena_free(a);
}

/* A packed Batch of n events whose JSON repeats, as a real one does. */
static uint8_t *packed_batch(size_t n, size_t *len)
{
	Vigil__Batch b = VIGIL__BATCH__INIT;
	Vigil__Event *ev = calloc(n, sizeof(*ev)), **evp = calloc(n, sizeof(*evp));
	char(*json)[128] = calloc(n, sizeof(*json));
	uint8_t *buf;

	for (size_t i = 0; i < n; i++) {
		vigil__event__init(&ev[i]);
		ev[i].type = 5;
		ev[i].pid = (uint32_t)(1000 + i);
		ev[i].comm = "curl";
		snprintf(json[i], sizeof(json[i]),
			 "{\"type\":\"net\",\"pid\":%zu,\"op\":\"connect\",\"n\":%zu}", 1000 + i,
			 i);
		ev[i].json = json[i];
		evp[i] = &ev[i];
	}
	b.n_events = n;
	b.events = evp;
	*len = vigil__batch__get_packed_size(&b);
	buf = malloc(*len);
	vigil__batch__pack(&b, buf);
	free(json);
	free(evp);
	free(ev);
	return buf;
}

Test(pb_arena, unpacking_through_it_reads_back_what_was_packed)
{
	struct pb_arena *a = pb_arena_new(8u << 20);
	size_t len, elen, held = 0;
	uint8_t *packed = packed_batch(2000, &len);
	uint8_t *env_bytes = batch_frame_envelope_lz4(5, 42, packed, len, &elen);
	const char *why = NULL;

	cr_assert_not_null(env_bytes);
	for (int round = 0; round < 4; round++) {
		Vigil__Envelope *env =
		    vigil__envelope__unpack(pb_arena_allocator(a), elen, env_bytes);
		cr_assert_not_null(env);
		cr_expect_eq(env->seq, 42);
		Vigil__Batch *b = batch_decode_lz4(env, a, &why);
		cr_assert_not_null(b, "%s", why ? why : "out of memory");
		cr_assert_eq(b->n_events, 2000);
		cr_expect_str_eq(b->events[1999]->comm, "curl");
		cr_expect_eq(b->events[1234]->pid, 2234);
		size_t again = vigil__batch__get_packed_size(b);
		uint8_t *repacked = malloc(again);
		vigil__batch__pack(b, repacked);
		cr_expect(again == len && memcmp(repacked, packed, len) == 0,
			  "round %d: the same bytes the defender packed", round);
		free(repacked);
		pb_arena_reset(a);
		if (round == 1)
			held = pb_arena_held(a);
		if (round > 1)
			cr_expect_eq(pb_arena_held(a), held, "a like batch needed new memory");
	}
	cr_expect_gt(held, len, "the batch and its messages came from the arena");
	free(env_bytes);
	free(packed);
	pb_arena_free(a);
}
