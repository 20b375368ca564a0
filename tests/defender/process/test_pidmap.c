/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include "process/memacct.h"
#include "process/pidmap.h"

/* A fixed xorshift, so a failure replays. */
static uint32_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (uint32_t)(*s >> 16);
}

Test(pidmap, finds_what_was_inserted_and_nothing_else)
{
	struct pidmap m;
	uint64_t bytes = 0;

	cr_assert_eq(pidmap_init(&m, 100, &bytes), 0);
	cr_expect_eq(pidmap_find(&m, 42), PIDMAP_NONE);
	cr_assert_eq(pidmap_insert(&m, 42, 7), 0);
	cr_assert_eq(pidmap_insert(&m, 4242, 8), 0);
	cr_expect_eq(pidmap_find(&m, 42), 7);
	cr_expect_eq(pidmap_find(&m, 4242), 8);
	cr_expect_eq(pidmap_find(&m, 43), PIDMAP_NONE);
	cr_expect_eq(m.count, 2);
	pidmap_remove(&m, 43); /* absent: nothing happens */
	cr_expect_eq(m.count, 2);
	pidmap_remove(&m, 42);
	cr_expect_eq(pidmap_find(&m, 42), PIDMAP_NONE);
	cr_expect_eq(pidmap_find(&m, 4242), 8);
	cr_expect_eq(m.count, 1);
	pidmap_fini(&m);
	cr_expect_eq(bytes, 0);
}

/*
 * Many pids in a small range (long probe runs), inserted and removed at
 * random against a plain array: backward-shift deletion must keep every
 * remaining pid reachable.
 */
Test(pidmap, random_churn_matches_a_plain_array)
{
	enum { RANGE = 3000 };
	static uint32_t want[RANGE]; /* pid -> idx + 1, 0 when absent */
	struct pidmap m;
	uint64_t bytes = 0, seed = 0x9e3779b97f4a7c15ull;
	uint32_t count = 0;

	memset(want, 0, sizeof(want));
	cr_assert_eq(pidmap_init(&m, RANGE, &bytes), 0);
	for (int round = 0; round < 200000; round++) {
		uint32_t pid = 1 + next_rand(&seed) % (RANGE - 1);

		if (want[pid] == 0) {
			cr_assert_eq(pidmap_insert(&m, pid, (uint32_t)round), 0);
			want[pid] = (uint32_t)round + 1;
			count++;
		} else {
			pidmap_remove(&m, pid);
			want[pid] = 0;
			count--;
		}
		if (round % 9973 == 0) {
			for (uint32_t p = 1; p < RANGE; p++)
				cr_assert_eq(pidmap_find(&m, p),
					     want[p] != 0 ? want[p] - 1 : PIDMAP_NONE,
					     "pid %u after round %d", p, round);
		}
	}
	cr_expect_eq(m.count, count);
	for (uint32_t p = 1; p < RANGE; p++)
		cr_assert_eq(pidmap_find(&m, p), want[p] != 0 ? want[p] - 1 : PIDMAP_NONE);
	pidmap_fini(&m);
	cr_expect_eq(bytes, 0);
}

Test(pidmap, grows_to_half_load_and_counts_its_memory)
{
	struct pidmap m;
	uint64_t bytes = 0;

	cr_assert_eq(pidmap_init(&m, 10000, &bytes), 0);
	cr_expect_eq(m.nslots, PIDMAP_MIN);
	cr_expect_eq(m.nslots_max, 32768); /* first power of two >= 2 * 10000 */
	cr_expect_eq(bytes, memacct_cost(PIDMAP_MIN * sizeof(struct pidmap_slot)));
	for (uint32_t pid = 1; pid <= 10000; pid++) {
		cr_assert_eq(pidmap_insert(&m, pid * 7919, pid), 0);
		cr_assert_leq(m.count * 2, m.nslots, "load above one half at %u", pid);
	}
	cr_expect_eq(m.nslots, 32768);
	cr_expect_eq(bytes, memacct_cost(32768 * sizeof(struct pidmap_slot)));
	for (uint32_t pid = 1; pid <= 10000; pid++)
		cr_assert_eq(pidmap_find(&m, pid * 7919), pid);
	pidmap_fini(&m);
	cr_expect_eq(bytes, 0);
}

/* Past its largest size the map fills to all but one slot (so probes end), then refuses. */
Test(pidmap, refuses_when_full_at_its_largest)
{
	struct pidmap m;
	uint64_t bytes = 0;
	uint32_t pid;

	cr_assert_eq(pidmap_init(&m, 10, &bytes), 0);
	cr_expect_eq(m.nslots_max, PIDMAP_MIN);
	for (pid = 1; pid < PIDMAP_MIN; pid++)
		cr_assert_eq(pidmap_insert(&m, pid, pid), 0, "pid %u", pid);
	cr_expect_eq(pidmap_insert(&m, pid, pid), -ENOMEM);
	cr_expect_eq(m.count, PIDMAP_MIN - 1);
	cr_expect_eq(m.nslots, PIDMAP_MIN);
	cr_expect_eq(pidmap_find(&m, 999999), PIDMAP_NONE); /* terminates */
	for (pid = 1; pid < PIDMAP_MIN; pid++)
		cr_assert_eq(pidmap_find(&m, pid), pid);
	pidmap_remove(&m, 5);
	cr_expect_eq(pidmap_insert(&m, 999999, 1), 0);
	cr_expect_eq(pidmap_find(&m, 999999), 1);
	pidmap_fini(&m);
	cr_expect_eq(bytes, 0);
}
