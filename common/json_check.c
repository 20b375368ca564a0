/* SPDX-License-Identifier: Apache-2.0 */
/* A JSON object checked as PostgreSQL's json reads it (json_check.h). */
#include "json_check.h"

#include <stdint.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "utf8.h"

struct cursor {
	const unsigned char *p, *end;
};

static void skip_ws(struct cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

static int hex_value(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* The four hex digits after "\u" at p (which points at the 'u'); -1 when not four. */
static long unicode_escape(const unsigned char *p, const unsigned char *end)
{
	long v = 0;

	if (end - p < 5)
		return -1;
	for (int i = 1; i <= 4; i++) {
		int h = hex_value(p[i]);

		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/*
 * The bytes a string holds as they are: printable ASCII but the quote and
 * the backslash.  Bodies are mostly these.
 */
static const unsigned char plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

#ifdef __SSE2__
/*
 * Past the plain bytes at p, sixteen at a time: a block goes by when none of
 * its bytes is a quote, a backslash, below 0x20 or above 0x7f (the last two
 * are one signed comparison: bytes from 0x80 are negative).
 */
static const unsigned char *skip_plain16(const unsigned char *p, const unsigned char *end)
{
	const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
	const __m128i space = _mm_set1_epi8(0x20);

	while (end - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		__m128i stop = _mm_or_si128(
		    _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
		    _mm_cmplt_epi8(v, space));

		if (_mm_movemask_epi8(stop) != 0)
			break;
		p += 16;
	}
	return p;
}
#else
static const unsigned char *skip_plain16(const unsigned char *p, const unsigned char *end)
{
	(void)end;
	return p;
}
#endif

/* A string, c->p at its opening quote. */
static bool string(struct cursor *c)
{
	const unsigned char *p = c->p + 1, *end = c->end;

	for (;;) {
		p = skip_plain16(p, end);
		while (p < end && plain[*p])
			p++;
		if (p >= end)
			return false;
		if (*p == '"') {
			c->p = p + 1;
			return true;
		}
		if (*p >= 0x80) {
			size_t n = utf8_char_len(p, (size_t)(end - p));

			if (n == 0)
				return false;
			p += n;
			continue;
		}
		if (*p != '\\' || ++p >= end)
			return false; /* a control character, or a backslash at the end */
		switch (*p) {
		case '"':
		case '\\':
		case '/':
		case 'b':
		case 'f':
		case 'n':
		case 'r':
		case 't':
			p++;
			break;
		case 'u': {
			long v = unicode_escape(p, end);

			if (v <= 0 || (v >= 0xdc00 && v <= 0xdfff))
				return false; /* not four digits, \u0000, a lone low surrogate */
			p += 5;
			if (v >= 0xd800 && v <= 0xdbff) {
				/* A high surrogate: a low one must follow at once. */
				if (end - p < 2 || p[0] != '\\' || p[1] != 'u')
					return false;
				v = unicode_escape(p + 1, end);
				if (v < 0xdc00 || v > 0xdfff)
					return false;
				p += 6;
			}
			break;
		}
		default:
			return false;
		}
	}
}

static bool digits(struct cursor *c)
{
	const unsigned char *start = c->p;

	while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
		c->p++;
	return c->p > start;
}

static bool number(struct cursor *c)
{
	if (*c->p == '-')
		c->p++;
	if (c->p >= c->end)
		return false;
	if (*c->p == '0')
		c->p++;
	else if (!digits(c))
		return false;
	if (c->p < c->end && *c->p == '.') {
		c->p++;
		if (!digits(c))
			return false;
	}
	if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
		c->p++;
		if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
			c->p++;
		if (!digits(c))
			return false;
	}
	/* "01", "1a": what follows a number must end it. */
	return c->p >= c->end ||
	       !((*c->p >= '0' && *c->p <= '9') || (*c->p >= 'a' && *c->p <= 'z') ||
		 (*c->p >= 'A' && *c->p <= 'Z') || *c->p == '_' || *c->p == '.');
}

static bool literal(struct cursor *c, const char *word, size_t n)
{
	if ((size_t)(c->end - c->p) < n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (c->p[i] != (unsigned char)word[i])
			return false;
	c->p += n;
	return c->p >= c->end ||
	       !((*c->p >= 'a' && *c->p <= 'z') || (*c->p >= 'A' && *c->p <= 'Z') ||
		 (*c->p >= '0' && *c->p <= '9') || *c->p == '_');
}

static bool value(struct cursor *c, int depth);

/* An object or an array, c->p at its opening bracket. */
static bool container(struct cursor *c, int depth)
{
	bool object = *c->p == '{';
	unsigned char close = object ? '}' : ']';

	if (depth >= JSON_CHECK_DEPTH)
		return false;
	c->p++;
	skip_ws(c);
	if (c->p < c->end && *c->p == close) {
		c->p++;
		return true;
	}
	for (;;) {
		if (object) {
			if (c->p >= c->end || *c->p != '"' || !string(c))
				return false;
			skip_ws(c);
			if (c->p >= c->end || *c->p != ':')
				return false;
			c->p++;
			skip_ws(c);
		}
		if (!value(c, depth + 1))
			return false;
		skip_ws(c);
		if (c->p >= c->end)
			return false;
		if (*c->p == close) {
			c->p++;
			return true;
		}
		if (*c->p != ',')
			return false;
		c->p++;
		skip_ws(c);
	}
}

static bool value(struct cursor *c, int depth)
{
	if (c->p >= c->end)
		return false;
	switch (*c->p) {
	case '{':
	case '[':
		return container(c, depth);
	case '"':
		return string(c);
	case 't':
		return literal(c, "true", 4);
	case 'f':
		return literal(c, "false", 5);
	case 'n':
		return literal(c, "null", 4);
	default:
		return (*c->p == '-' || (*c->p >= '0' && *c->p <= '9')) && number(c);
	}
}

bool json_check_object(const char *s, size_t len)
{
	struct cursor c = {(const unsigned char *)s, (const unsigned char *)s + len};

	if (s == NULL)
		return false;
	skip_ws(&c);
	if (c.p >= c.end || *c.p != '{' || !container(&c, 0))
		return false;
	skip_ws(&c);
	return c.p == c.end;
}
