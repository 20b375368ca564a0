/* The failure throttle: limits, windows, refunds, eviction, with the clock given. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>

#include "api/throttle.h"

static const char *const ALICE[] = {"u:alice", "a:192.0.2.1"};

Test(throttle, refuses_past_the_limit_until_the_window_from_the_first_failure_passes)
{
	struct throttle *t = throttle_new(16, 3, 300, "test throttle");
	uint64_t refused, evicted;

	cr_assert_not_null(t);
	for (int i = 0; i < 3; i++)
		cr_expect_eq(throttle_begin(t, ALICE, 2, 1000 + i), 0, "attempt %d let through", i);
	/* Three failures from t=1000: refused until 1300, nothing charged. */
	cr_expect_eq(throttle_begin(t, ALICE, 2, 1010), 290);
	cr_expect_eq(throttle_begin(t, ALICE, 2, 1299), 1);
	cr_expect_eq(throttle_begin(t, ALICE, 2, 1300), 0, "a new window begins");
	throttle_counts(t, &refused, &evicted);
	cr_expect_eq(refused, 2);
	cr_expect_eq(evicted, 0);
	throttle_free(t);
}

Test(throttle, any_key_over_the_limit_refuses_the_attempt_and_the_others_are_not_charged)
{
	struct throttle *t = throttle_new(16, 2, 300, "test throttle");
	const char *bob[] = {"u:bob", "a:192.0.2.1"}; /* same address as alice */

	cr_expect_eq(throttle_begin(t, ALICE, 2, 0), 0);
	cr_expect_eq(throttle_begin(t, ALICE, 2, 1), 0);
	cr_expect_gt(throttle_begin(t, bob, 2, 2), 0, "the address is over its limit");
	/* bob's name was not charged by the refusal: from another address it passes twice. */
	const char *bob_elsewhere[] = {"u:bob", "a:198.51.100.7"};
	cr_expect_eq(throttle_begin(t, bob_elsewhere, 2, 3), 0);
	cr_expect_eq(throttle_begin(t, bob_elsewhere, 2, 4), 0);
	cr_expect_gt(throttle_begin(t, bob_elsewhere, 2, 5), 0);
	throttle_free(t);
}

Test(throttle, refunds_and_forgetting_give_attempts_back)
{
	struct throttle *t = throttle_new(16, 2, 300, "test throttle");

	for (int i = 0; i < 5; i++) { /* attempts that did not fail are given back */
		cr_expect_eq(throttle_begin(t, ALICE, 2, i), 0, "attempt %d", i);
		throttle_refund(t, ALICE[0]);
		throttle_refund(t, ALICE[1]);
	}
	cr_expect_eq(throttle_begin(t, ALICE, 2, 10), 0);
	cr_expect_eq(throttle_begin(t, ALICE, 2, 11), 0);
	cr_expect_gt(throttle_begin(t, ALICE, 1, 12), 0, "the name is at its limit");
	throttle_forget(t, ALICE[0]);
	cr_expect_eq(throttle_begin(t, ALICE, 1, 13), 0, "the name forgotten");
	cr_expect_gt(throttle_begin(t, ALICE + 1, 1, 14), 0, "the address still counts");
	throttle_free(t);
}

Test(throttle, a_full_table_drops_the_key_that_failed_least_recently_and_counts_it)
{
	struct throttle *t = throttle_new(4, 1, 300, "test throttle");
	char keys[6][16];
	uint64_t refused, evicted;

	for (int i = 0; i < 6; i++) {
		const char *k[] = {keys[i]};
		snprintf(keys[i], sizeof(keys[i]), "a:10.0.0.%d", i);
		cr_expect_eq(throttle_begin(t, k, 1, 100 + i), 0);
	}
	throttle_counts(t, &refused, &evicted);
	cr_expect_eq(evicted, 2, "two keys dropped for room");
	const char *oldest[] = {keys[0]}, *newest[] = {keys[5]};
	cr_expect_eq(throttle_begin(t, oldest, 1, 110), 0, "the oldest was forgotten");
	cr_expect_gt(throttle_begin(t, newest, 1, 111), 0, "the newest is remembered");
	throttle_free(t);
}
