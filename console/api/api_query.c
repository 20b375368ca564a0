/* SPDX-License-Identifier: Apache-2.0 */
/* Query strings of API requests: decoded into a fixed buffer, checked against what is known. */
#include "api/api_query.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static int fail(struct api_query *q, const char *param, const char *why)
{
	snprintf(q->bad, sizeof(q->bad), "%s", param);
	snprintf(q->why, sizeof(q->why), "%s", why);
	return -EINVAL;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * Decode s[0..len) ('+' is a space, %XX a byte) into q->text at *off; NULL
 * with *ret_why set when it is malformed or the buffer is full.
 */
static const char *decode(struct api_query *q, const char *s, size_t len, size_t *off,
			  const char **ret_why)
{
	char *out = q->text + *off;

	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)s[i];

		if (*off + 1 >= sizeof(q->text)) {
			*ret_why = "makes the query too long";
			return NULL;
		}
		if (c == '%') {
			if (i + 2 >= len || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0) {
				*ret_why = "has a malformed percent-escape";
				return NULL;
			}
			c = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
			i += 2;
			if (c == 0) {
				/* A NUL would cut the value short unseen. */
				*ret_why = "contains %00";
				return NULL;
			}
		} else if (c == '+') {
			c = ' ';
		}
		q->text[(*off)++] = (char)c;
	}
	if (*off >= sizeof(q->text)) {
		*ret_why = "makes the query too long";
		return NULL;
	}
	q->text[(*off)++] = '\0';
	return out;
}

/* A parameter name fit to repeat in an error message, or "?". */
static const char *printable(const char *name)
{
	size_t n = strlen(name);

	return n > 0 && n < 48 &&
		       strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "0123456789_-.") == n
		   ? name
		   : "?";
}

int api_query_parse(const char *uri, const char *const *known, struct api_query *q)
{
	const char *p = strchr(uri, '?');
	size_t off = 0;

	memset(q, 0, sizeof(*q));
	if (p == NULL)
		return 0;
	for (p++; *p != '\0';) {
		size_t len = strcspn(p, "&"), klen;
		const char *eq = memchr(p, '=', len), *key, *value, *why = NULL;
		bool ok = false;
		json_t *utf8;

		if (len == 0) {
			p++;
			continue;
		}
		if (q->n == API_QUERY_PARAMS_MAX)
			return fail(q, "", "the query has too many parameters");
		klen = eq != NULL ? (size_t)(eq - p) : len;
		key = decode(q, p, klen, &off, &why);
		value = key == NULL ? NULL
				    : decode(q, eq != NULL ? eq + 1 : p + len,
					     eq != NULL ? len - klen - 1 : 0, &off, &why);
		if (key == NULL || value == NULL)
			return fail(q, key != NULL ? printable(key) : "", why);
		for (int i = 0; known[i] != NULL; i++)
			ok |= strcmp(known[i], key) == 0;
		if (!ok)
			return fail(q, printable(key), "is not a parameter of this endpoint");
		for (int i = 0; i < q->n; i++)
			if (strcmp(q->keys[i], key) == 0)
				return fail(q, key, "is given more than once");
		/* jansson checks UTF-8 as it makes a string. */
		utf8 = json_string(value);
		if (utf8 == NULL)
			return fail(q, key, "is not valid UTF-8");
		json_decref(utf8);
		q->keys[q->n] = key;
		q->values[q->n++] = value;
		p += len;
	}
	return 0;
}

const char *api_query_get(const struct api_query *q, const char *name)
{
	for (int i = 0; i < q->n; i++)
		if (strcmp(q->keys[i], name) == 0)
			return q->values[i][0] != '\0' ? q->values[i] : NULL;
	return NULL;
}

int api_query_int(struct api_query *q, const char *name, int64_t min, int64_t max, int64_t *ret)
{
	const char *v = api_query_get(q, name);
	char *end, why[96];
	long long n;

	if (v == NULL)
		return 0;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || isspace((unsigned char)v[0]) || n < min ||
	    n > max) {
		snprintf(why, sizeof(why), "must be an integer from %" PRId64 " to %" PRId64, min,
			 max);
		return fail(q, name, why);
	}
	*ret = n;
	return 1;
}

/* n digits at s into *ret, each a digit; false otherwise. */
static bool digits(const char *s, int n, int *ret)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*ret = v;
	return true;
}

/* Whether s is RFC 3339; a space where the offset's '+' belongs (an unescaped '+') is fixed. */
static bool rfc3339(char *s)
{
	int y, mo, d, h, mi, sec, oh, om;
	char *p = s + 19;

	if (strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
	    s[7] != '-' || !digits(s + 8, 2, &d) || strchr("Tt ", s[10]) == NULL ||
	    !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
	    !digits(s + 17, 2, &sec))
		return false;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return false;
	if (*p == '.') {
		size_t n = strspn(p + 1, "0123456789");
		if (n == 0 || n > 9)
			return false;
		p += 1 + n;
	}
	if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
		return true;
	if (*p == ' ')
		*p = '+';
	return (*p == '+' || *p == '-') && digits(p + 1, 2, &oh) && p[3] == ':' &&
	       digits(p + 4, 2, &om) && p[6] == '\0' && oh <= 23 && om <= 59;
}

int api_query_time(struct api_query *q, const char *name, const char **ret)
{
	for (int i = 0; i < q->n; i++) {
		if (strcmp(q->keys[i], name) != 0 || q->values[i][0] == '\0')
			continue;
		/* The value lives in q->text, which is ours to fix up. */
		if (!rfc3339((char *)q->values[i]))
			return fail(q, name,
				    "must be an RFC 3339 time such as 2025-11-28T20:44:48Z");
		*ret = q->values[i];
		return 1;
	}
	return 0;
}

int api_query_word(struct api_query *q, const char *name, const char *const *allowed,
		   const char **ret)
{
	const char *v = api_query_get(q, name);
	char why[160];
	size_t o;

	if (v == NULL)
		return 0;
	for (int i = 0; allowed[i] != NULL; i++) {
		if (strcmp(allowed[i], v) == 0) {
			*ret = allowed[i];
			return 1;
		}
	}
	o = (size_t)snprintf(why, sizeof(why), "must be one of");
	for (int i = 0; allowed[i] != NULL && o < sizeof(why); i++)
		o += (size_t)snprintf(why + o, sizeof(why) - o, "%s %s", i > 0 ? "," : "",
				      allowed[i]);
	return fail(q, name, why);
}

bool api_query_parse_id(const char *s, size_t len, int64_t *ret)
{
	uint64_t v = 0;

	if (len == 0 || len > 19)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v == 0 || v > (uint64_t)INT64_MAX)
		return false;
	*ret = (int64_t)v;
	return true;
}

int api_query_page(struct api_query *q, int64_t *before_id, int *limit)
{
	int64_t n = API_QUERY_LIMIT_DEFAULT;

	*before_id = 0;
	if (api_query_int(q, "before_id", 1, INT64_MAX, before_id) < 0 ||
	    api_query_int(q, "limit", 1, API_QUERY_LIMIT_MAX, &n) < 0)
		return -EINVAL;
	*limit = (int)n;
	return 0;
}
