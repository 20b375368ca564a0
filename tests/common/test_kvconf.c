/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvconf.h"

static struct kvconf *parse_ok(const char *text)
{
	struct kvconf *kv = NULL;
	vigil_err err = {0};

	cr_assert_eq(kvconf_parse(text, strlen(text), "t.conf", &kv, &err), 0, "%s", err.msg);
	return kv;
}

static void parse_fails(const char *text, size_t len, const char *want)
{
	struct kvconf *kv = NULL;
	vigil_err err = {0};

	cr_expect_lt(kvconf_parse(text, len, "t.conf", &kv, &err), 0);
	cr_expect_null(kv);
	cr_expect(strstr(err.msg, want) != NULL, "expected '%s' in '%s'", want, err.msg);
}

Test(kvconf, parses_keys_values_comments_and_repeats)
{
	struct kvconf *kv =
	    parse_ok("# comment\n\n  console = tls+tcp://a:1  \nconsole=tls+tcp://b:2\n"
		     "label = \"  spaced  \"\r\nempty =\n");

	cr_assert_eq(kv->n, 4);
	cr_expect_str_eq(kv->entries[0].key, "console");
	cr_expect_str_eq(kv->entries[0].value, "tls+tcp://a:1");
	cr_expect_eq(kv->entries[0].line, 3);
	cr_expect_str_eq(kv->entries[1].value, "tls+tcp://b:2");
	cr_expect_str_eq(kv->entries[2].value, "  spaced  ");
	cr_expect_str_eq(kv->entries[3].value, "");
	kvconf_free(kv);
}

Test(kvconf, names_line_of_a_line_without_equals)
{
	parse_fails("a = 1\nnonsense\n", 14, "t.conf:2");
}

Test(kvconf, refuses_bad_keys_unterminated_quotes_and_control_bytes)
{
	parse_fails("Bad-Key = 1\n", 12, "may hold only");
	parse_fails("k = \"open\n", 10, "unterminated");
	parse_fails("k = a\x01z\n", 8, "control");
	parse_fails("k = a\0z\n", 8, "NUL");
}

Test(kvconf, refuses_invalid_utf8_and_accepts_valid)
{
	parse_fails("k = \xc3\x28\n", 7, "UTF-8");     /* bad continuation */
	parse_fails("k = \xe0\x80\xaf\n", 8, "UTF-8"); /* overlong */
	parse_fails("k = \xed\xa0\x80\n", 8, "UTF-8"); /* surrogate */
	parse_fails("k = abc\xe2\x82\n", 10, "UTF-8"); /* truncated at end */
	struct kvconf *kv = parse_ok("k = h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x94\x92\n");
	cr_expect_str_eq(kv->entries[0].value, "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x94\x92");
	kvconf_free(kv);
}

Test(kvconf, bounds_size_entries_and_value_length)
{
	static char big[KVCONF_MAX_BYTES + 2];
	char *many;
	size_t off = 0;

	memset(big, '#', sizeof(big) - 1);
	parse_fails(big, sizeof(big) - 1, "larger than");

	many = malloc((KVCONF_MAX_ENTRIES + 1) * 8 + 1);
	for (int i = 0; i <= KVCONF_MAX_ENTRIES; i++)
		off += (size_t)sprintf(many + off, "k = %d\n", i % 10);
	parse_fails(many, off, "more than");
	free(many);

	char *longv = malloc(KVCONF_MAX_VALUE + 16);
	memcpy(longv, "k = ", 4);
	memset(longv + 4, 'x', KVCONF_MAX_VALUE + 1);
	longv[KVCONF_MAX_VALUE + 5] = '\n';
	parse_fails(longv, KVCONF_MAX_VALUE + 6, "longer than");
	free(longv);
}
