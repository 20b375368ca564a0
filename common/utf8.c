/* SPDX-License-Identifier: Apache-2.0 */
#include "utf8.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

size_t utf8_char_len(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t need;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		need = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		need = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		need = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (n < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates and values past Unicode are not UTF-8. */
	if ((need == 3 && cp < 0x800) || (need == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need;
}

size_t utf8_sanitize(const char *in, size_t len, char *out, size_t outlen)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t i = 0, o = 0;

	while (i < len) {
		/* Plain ASCII, the usual case, goes through without decoding. */
		if (s[i] >= 0x01 && s[i] < 0x80) {
			if (o + 1 >= outlen)
				break;
			out[o++] = (char)s[i++];
			continue;
		}
		size_t n = s[i] == '\0' ? 0 : utf8_char_len(s + i, len - i);

		if (n > 0) {
			if (o + n >= outlen)
				break;
			memcpy(out + o, s + i, n);
			o += n;
			i += n;
		} else {
			if (o + 4 >= outlen)
				break;
			snprintf(out + o, 5, "\\x%02x", s[i]);
			o += 4;
			i++;
		}
	}
	out[o] = '\0';
	return o;
}

/*
 * The code point of a 2- or 3-byte character at s that reorders a terminal
 * line (bidirectional formatting: ALM, LRM, RLM, LRE..RLO, LRI..PDI), or 0.
 */
static unsigned bidi_control(const unsigned char *s, size_t n)
{
	unsigned cp;

	if (n == 2 && s[0] == 0xd8 && s[1] == 0x9c)
		return 0x061c;
	if (n != 3 || s[0] != 0xe2)
		return 0;
	cp = 0x2000u | ((s[1] & 0x3fu) << 6) | (s[2] & 0x3fu);
	if (cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
	    (cp >= 0x2066 && cp <= 0x2069))
		return cp;
	return 0;
}

size_t utf8_escape_controls(const char *in, size_t len, char *out, size_t outlen)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t i = 0, o = 0;

	if (outlen == 0)
		return 0;
	while (i < len) {
		size_t n = utf8_char_len(s + i, len - i);
		char esc[8];
		size_t elen = 0;

		if (n == 1 && (s[i] < 0x20 || s[i] == 0x7f))
			elen = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", s[i]);
		else if (n == 2 && s[i] == 0xc2 && s[i + 1] < 0xa0)
			elen = (size_t)snprintf(esc, sizeof(esc), "\\u00%02x", s[i + 1]);
		else if (n == 0)
			elen = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", s[i]);
		else if (bidi_control(s + i, n) != 0)
			elen =
			    (size_t)snprintf(esc, sizeof(esc), "\\u%04x", bidi_control(s + i, n));
		if (elen > 0) {
			if (o + elen >= outlen)
				break;
			memcpy(out + o, esc, elen);
			o += elen;
			i += n > 0 ? n : 1;
			continue;
		}
		if (o + n >= outlen)
			break;
		memcpy(out + o, s + i, n);
		o += n;
		i += n;
	}
	out[o] = '\0';
	return o;
}

bool utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; i < len;) {
		size_t n = utf8_char_len(p + i, len - i);

		if (n == 0)
			return false;
		i += n;
	}
	return true;
}
