/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "process/intern.h"
#include "process/memacct.h"

static uint64_t buckets_cost(const struct intern *in)
{
	return memacct_cost(in->nbuckets * sizeof(*in->buckets));
}

Test(intern, same_bytes_share_one_copy_until_the_last_put)
{
	struct intern in;
	uint64_t bytes = 0;
	const char *a, *b, *c;

	cr_assert_eq(intern_init(&in, &bytes), 0);
	a = intern_get(&in, "/usr/bin/bash", 13);
	b = intern_get(&in, "/usr/bin/bash-extra", 13); /* only the first 13 bytes count */
	cr_assert_not_null(a);
	cr_expect_eq(a, b);
	cr_expect_str_eq(a, "/usr/bin/bash");
	cr_expect_eq(in.count, 1);
	cr_expect_eq(in.payload, 13);
	c = intern_ref(a);
	cr_expect_eq(c, a);
	intern_put(&in, a);
	intern_put(&in, b);
	cr_expect_eq(in.count, 1); /* c still holds it */
	cr_expect_str_eq(c, "/usr/bin/bash");
	intern_put(&in, c);
	cr_expect_eq(in.count, 0);
	cr_expect_eq(in.payload, 0);
	cr_expect_eq(bytes, buckets_cost(&in));
	cr_expect_null(intern_ref(NULL));
	intern_put(&in, NULL);
	intern_fini(&in);
	cr_expect_eq(bytes, 0);
}

/* argv is NUL-joined: strings are bytes of a length, with a NUL after them. */
Test(intern, embedded_nuls_and_lengths_tell_strings_apart)
{
	struct intern in;
	uint64_t bytes = 0;
	const char *args, *argv0, *empty;

	cr_assert_eq(intern_init(&in, &bytes), 0);
	args = intern_get(&in,
			  "sleep\0"
			  "10",
			  8);
	argv0 = intern_get(&in, "sleep", 5);
	empty = intern_get(&in, "", 0);
	cr_assert(args != NULL && argv0 != NULL && empty != NULL);
	cr_expect_neq(args, argv0);
	cr_expect_eq(memcmp(args,
			    "sleep\0"
			    "10",
			    9),
		     0); /* NUL after the 8 bytes */
	cr_expect_str_eq(empty, "");
	cr_expect_eq(in.count, 3);
	cr_expect_eq(in.payload, 8 + 5 + 0);
	intern_fini(&in); /* references still held: freed all the same */
	cr_expect_eq(bytes, 0);
}

Test(intern, table_grows_and_gives_everything_back)
{
	enum { N = 5000 };
	static const char *got[N];
	struct intern in;
	uint64_t bytes = 0;
	char s[32];

	cr_assert_eq(intern_init(&in, &bytes), 0);
	for (int i = 0; i < N; i++) {
		int n = snprintf(s, sizeof(s), "/proc/%d/cwd", i);

		got[i] = intern_get(&in, s, (size_t)n);
		cr_assert_not_null(got[i]);
	}
	cr_expect_eq(in.count, N);
	cr_expect_geq(in.nbuckets, in.count); /* doubled as it filled */
	/* After the rehashes every string is still found, as the same copy. */
	for (int i = 0; i < N; i++) {
		int n = snprintf(s, sizeof(s), "/proc/%d/cwd", i);

		cr_assert_eq(intern_get(&in, s, (size_t)n), got[i]);
	}
	for (int i = 0; i < N; i++) {
		intern_put(&in, got[i]);
		intern_put(&in, got[i]);
	}
	cr_expect_eq(in.count, 0);
	cr_expect_eq(in.payload, 0);
	cr_expect_eq(bytes, buckets_cost(&in));
	intern_fini(&in);
	cr_expect_eq(bytes, 0);
}
