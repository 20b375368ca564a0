/* SPDX-License-Identifier: Apache-2.0 */
/* Bytes to UTF-8 for the console: valid text kept, every bad byte shown, cuts between characters.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "utf8.h"

static const char *clean(const char *in, size_t len, size_t outlen)
{
	static char out[256];

	utf8_sanitize(in, len, out, outlen);
	cr_assert(utf8_valid(out, strlen(out)), "output is valid UTF-8: %s", out);
	return out;
}

Test(utf8, valid_text_is_kept_as_it_is)
{
	const char *s = "/home/zoë/日本語/🙂.txt";

	cr_assert_str_eq(clean(s, strlen(s), 3), "/h", "cut to fit, not overrun");
	cr_assert_str_eq(clean(s, strlen(s), 256), s);
}

Test(utf8, bad_bytes_become_escapes)
{
	cr_assert_str_eq(clean("a\xff"
			       "b",
			       3, 256),
			 "a\\xffb");
	cr_assert_str_eq(clean("\xc3(", 2, 256), "\\xc3(", "a lead byte without its continuation");
	cr_assert_str_eq(clean("\xc0\xaf", 2, 256), "\\xc0\\xaf", "an overlong '/'");
	cr_assert_str_eq(clean("\xed\xa0\x80", 3, 256), "\\xed\\xa0\\x80", "a UTF-16 surrogate");
	cr_assert_str_eq(clean("x\0y", 3, 256), "x\\x00y", "a NUL is shown, not an end");
}

Test(utf8, a_cut_never_splits_a_character_or_an_escape)
{
	/* "é" is two bytes: with room for 2 bytes + NUL after "ab", only "ab" fits whole. */
	cr_assert_str_eq(clean("abé", 4, 4), "ab");
	cr_assert_str_eq(clean("ab\xff", 3, 6), "ab");
	cr_assert_str_eq(clean("ab\xff", 3, 7), "ab\\xff");
}

Test(utf8, validity)
{
	cr_assert(utf8_valid("plain", 5));
	cr_assert(utf8_valid("\xf0\x9f\x99\x82", 4));
	cr_assert_not(utf8_valid("\xf4\x90\x80\x80", 4), "past U+10FFFF");
	cr_assert_not(utf8_valid("\xe2\x82", 2), "cut short");
}

/* What PostgreSQL text refuses, the store's checks (utf8_valid(s, strlen(s))) refuse too. */
Test(utf8, validity_refuses_what_postgresql_refuses)
{
	cr_assert(utf8_valid("", 0));
	cr_assert(utf8_valid("\xc2\x80\xdf\xbf", 4), "U+0080, U+07FF");
	cr_assert(utf8_valid("\xe0\xa0\x80\xef\xbf\xbf", 6), "U+0800, U+FFFF");
	cr_assert(utf8_valid("\xf0\x90\x80\x80\xf4\x8f\xbf\xbf", 8), "U+10000, U+10FFFF");
	cr_assert_not(utf8_valid("\xc0\xaf", 2), "overlong in 2 bytes");
	cr_assert_not(utf8_valid("\xc1\xbf", 2), "overlong in 2 bytes");
	cr_assert_not(utf8_valid("\xe0\x9f\xbf", 3), "overlong in 3 bytes");
	cr_assert_not(utf8_valid("\xf0\x8f\xbf\xbf", 4), "overlong in 4 bytes");
	cr_assert_not(utf8_valid("\xed\xa0\x80", 3), "surrogate U+D800");
	cr_assert_not(utf8_valid("\xed\xbf\xbf", 3), "surrogate U+DFFF");
	cr_assert_not(utf8_valid("\xf5\x80\x80\x80", 4), "lead byte past U+10FFFF");
	cr_assert_not(utf8_valid("\x80", 1), "continuation without a lead");
	cr_assert_not(utf8_valid("\xc3\x28", 2), "lead without its continuation");
	cr_assert_not(utf8_valid("\xff", 1));
	cr_assert_not(utf8_valid("ok\xe2\x82", 4), "cut at the end");
}

Test(utf8, controls_and_terminal_escapes_are_written_out_for_a_terminal)
{
	char out[256];
	/* ESC ] title BEL, ESC [ 2J, a C1 CSI, CR LF forging a line, DEL, NUL, a bad byte. */
	const char in[] = "\x1b]0;pwned\x07host\x1b[2J\xc2\x9b"
			  "31m\r\nforged\x7f\x00\xff ok é";
	size_t n = utf8_escape_controls(in, sizeof(in) - 1, out, sizeof(out));

	cr_expect_str_eq(out, "\\x1b]0;pwned\\x07host\\x1b[2J\\u009b31m\\x0d\\x0aforged\\x7f\\x00"
			      "\\xff ok é");
	cr_expect_eq(n, strlen(out));
	for (size_t i = 0; i < n; i++)
		cr_expect((unsigned char)out[i] >= 0x20 && (unsigned char)out[i] != 0x7f,
			  "a control byte at %zu", i);
}

Test(utf8, bidirectional_overrides_are_written_out_not_obeyed)
{
	/* "evil" RLO "gpj.exe" PDF, LRI, ALM: each would reorder the line shown. */
	const char in[] = "evil\xe2\x80\xae"
			  "gpj.exe\xe2\x80\xac|\xe2\x81\xa6|\xd8\x9c|\xe2\x80\x8f";
	char out[128];

	utf8_escape_controls(in, sizeof(in) - 1, out, sizeof(out));
	cr_expect_str_eq(out, "evil\\u202egpj.exe\\u202c|\\u2066|\\u061c|\\u200f");
	/* Neighbours that are ordinary text stay as they are: en dash, ellipsis, Arabic letter. */
	const char plain[] = "a\xe2\x80\x93"
			     "b\xe2\x80\xa6\xd8\xa8";
	utf8_escape_controls(plain, sizeof(plain) - 1, out, sizeof(out));
	cr_expect_str_eq(out, plain);
}

Test(utf8, escaping_that_does_not_fit_is_cut_between_escapes)
{
	char out[8];

	utf8_escape_controls("ab\x1b"
			     "cd",
			     5, out, 6);
	cr_expect_str_eq(out, "ab", "\\x1b needs 4 more bytes and the NUL one");
	utf8_escape_controls("ab\x1b"
			     "cd",
			     5, out, 7);
	cr_expect_str_eq(out, "ab\\x1b");
	utf8_escape_controls("\x1b", 1, out, 4);
	cr_expect_str_eq(out, "");
	utf8_escape_controls("\x1b", 1, out, 5);
	cr_expect_str_eq(out, "\\x1b");
}
