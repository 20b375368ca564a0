/* SPDX-License-Identifier: Apache-2.0 */
/* The --events-json mode's option parsing (the mode itself is tested in tests/defender/capture). */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "output/standalone.h"

Test(standalone, types_become_a_mask_of_their_event_types)
{
	uint32_t mask = 0;

	cr_assert_eq(standalone_parse_types("exec,net", &mask), 0);
	cr_expect_eq(mask, (1u << EV_EXEC) | (1u << EV_NET));
	cr_assert_eq(standalone_parse_types("fork,exit,file", &mask), 0);
	cr_expect_eq(mask, (1u << EV_FORK) | (1u << EV_EXIT) | (1u << EV_FILE));
	/* Empty items between commas are skipped, as strtok does. */
	cr_assert_eq(standalone_parse_types(",exec,,", &mask), 0);
	cr_expect_eq(mask, 1u << EV_EXEC);
}

Test(standalone, an_unknown_or_empty_list_is_refused_and_the_mask_kept)
{
	uint32_t mask = 42;

	cr_expect_eq(standalone_parse_types("exec,bogus", &mask), -EINVAL);
	cr_expect_eq(standalone_parse_types("", &mask), -EINVAL);
	cr_expect_eq(standalone_parse_types(",,", &mask), -EINVAL);
	cr_expect_eq(standalone_parse_types("EXEC", &mask), -EINVAL);
	cr_expect_eq(mask, 42);
}

Test(standalone, a_list_too_long_for_its_buffer_does_not_fit)
{
	char list[200];
	uint32_t mask = 42;

	memset(list, 'x', sizeof(list) - 1);
	list[sizeof(list) - 1] = '\0';
	cr_expect_eq(standalone_parse_types(list, &mask), -ENAMETOOLONG);
	cr_expect_eq(mask, 42);
}
