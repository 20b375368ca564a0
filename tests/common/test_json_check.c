/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The check of event bodies the console stores as text (common/json_check):
 * what PostgreSQL's json takes and reads back passes, everything else is
 * refused.  e2e/store's bodies test proves the same against the database.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "json_check.h"

static bool ok(const char *s)
{
	return json_check_object(s, strlen(s));
}

Test(json_check, objects_as_the_defender_writes_them_pass)
{
	cr_assert(ok("{}"));
	cr_assert(ok(" {\"a\" : 1 }\n"));
	cr_assert(ok("{\"type\":\"exec\",\"pid\":-12,\"x\":1.5e-3,\"y\":0,\"z\":2E+10,"
		     "\"argv\":[\"/bin/sh\",\"-c\",\"\"],\"n\":null,\"t\":true,\"f\":false,"
		     "\"nested\":{\"a\":[[],{},[1,[2]]]}}"));
	cr_assert(ok("{\"esc\":\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\u001f\"}"));
	cr_assert(ok("{\"pair\":\"\\ud83d\\ude00\"}"), "a surrogate pair is one character");
	cr_assert(ok("{\"utf8\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}"));
	cr_assert(ok("{\"dup\":1,\"dup\":2}"), "json keeps duplicate keys");
}

Test(json_check, anything_else_is_refused)
{
	static const char *const bad[] = {
	    "",
	    "[]",
	    "\"s\"",
	    "1",
	    "{",
	    "{\"a\"}",
	    "{\"a\":}",
	    "{\"a\":1,}",
	    "{,}",
	    "{\"a\":1} x",
	    "{\"a\":1}{}",
	    "{a:1}",
	    "{'a':1}",
	    "{\"a\":01}",
	    "{\"a\":-}",
	    "{\"a\":1.}",
	    "{\"a\":.5}",
	    "{\"a\":1e}",
	    "{\"a\":1x}",
	    "{\"a\":+1}",
	    "{\"a\":NaN}",
	    "{\"a\":truex}",
	    "{\"a\":nul}",
	    "{\"a\":\"tab\there\"}",
	    "{\"a\":\"\\x41\"}",
	    "{\"a\":\"\\u12\"}",
	    "{\"a\":\"\\u12g4\"}",
	    "{\"a\":\"\\u0000\"}",
	    "{\"a\":\"\\ud800\"}",
	    "{\"a\":\"\\ud800x\"}",
	    "{\"a\":\"\\ud800\\u0041\"}",
	    "{\"a\":\"\\udc00\"}",
	    "{\"a\":\"unterminated}",
	    "{\"a\":\"\\",
	    "{\"a\":\"\xc3\"}",
	    "{\"a\":\"\xc0\xaf\"}",
	    "{\"a\":\"\xed\xa0\x80\"}",
	    "{\"a\":\"\xf4\x90\x80\x80\"}",
	    "{\"a\":[1 2]}",
	    "{\"a\" 1}",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect(!ok(bad[i]), "accepted: %s", bad[i]);
	cr_expect(!json_check_object("{\"a\":\"x\0y\"}", 11), "a NUL byte");
	cr_expect(!json_check_object("{}\0", 3), "a NUL after the object");
	cr_expect(!json_check_object(NULL, 0));
}

Test(json_check, nesting_is_bounded)
{
	char deep[2 * JSON_CHECK_DEPTH + 16];
	size_t n = 0;

	/* The object itself is depth 0: JSON_CHECK_DEPTH - 1 arrays inside still pass. */
	deep[n++] = '{';
	memcpy(deep + n, "\"a\":", 4);
	n += 4;
	for (int i = 0; i < JSON_CHECK_DEPTH - 1; i++)
		deep[n++] = '[';
	for (int i = 0; i < JSON_CHECK_DEPTH - 1; i++)
		deep[n++] = ']';
	deep[n++] = '}';
	cr_assert(json_check_object(deep, n));
	/* One more level is refused. */
	memmove(deep + 6, deep + 5, n - 5);
	deep[5] = '[';
	n++;
	memmove(deep + n - 1, deep + n - 2, 2);
	deep[n - 2] = ']';
	n++;
	cr_assert(!json_check_object(deep, n), "%.*s", (int)n, deep);
}
