/* SPDX-License-Identifier: Apache-2.0 */
#include "outputs/syslog_format.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "utf8.h"

int syslog_severity(const char *s)
{
	if (s == NULL)
		return 6;
	if (strcmp(s, "high") == 0)
		return 2;
	if (strcmp(s, "medium") == 0)
		return 4;
	if (strcmp(s, "low") == 0)
		return 5;
	return 6;
}

/* A bounded writer. */
struct out {
	char *p;
	size_t len, cap;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (n > o->cap - o->len)
		n = o->cap - o->len;
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

/*
 * s as text for a value (sd: an SD PARAM-VALUE, with '"', '\' and ']'
 * escaped) into o, at most max bytes, cut between characters: control
 * characters as #ooo, invalid UTF-8 as #ooo per byte.
 */
static void put_text(struct out *o, const char *s, bool sd, size_t max)
{
	size_t len = strlen(s), used = 0;

	for (size_t i = 0; i < len;) {
		const unsigned char c = (unsigned char)s[i];
		size_t k = utf8_char_len((const unsigned char *)s + i, len - i);
		char tmp[8];
		size_t tl;

		if (k == 0 || c < 0x20 || c == 0x7f) {
			snprintf(tmp, sizeof(tmp), "#%03o", c);
			tl = 4;
			k = 1;
		} else if (sd && (c == '"' || c == '\\' || c == ']')) {
			tmp[0] = '\\';
			tmp[1] = (char)c;
			tl = 2;
		} else {
			memcpy(tmp, s + i, k);
			tl = k;
		}
		if (used + tl > max || tl > o->cap - o->len)
			return;
		put(o, tmp, tl);
		used += tl;
		i += k;
	}
}

/* Whether s can be a header field: 1..max printable US-ASCII characters (33..126). */
static bool header_ok(const char *s, size_t max)
{
	size_t n = s != NULL ? strlen(s) : 0;

	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 33 || (unsigned char)s[i] > 126)
			return false;
	return true;
}

/* "2024-11-28T14:20:00.000000Z": the shape the store writes (RFC 3339, UTC). */
static bool timestamp_ok(const char *s)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.ddddddZ";

	if (s == NULL || strlen(s) != sizeof(shape) - 1)
		return false;
	for (size_t i = 0; shape[i] != '\0'; i++) {
		if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
			return false;
	}
	return true;
}

static const char *str(const json_t *audit, const char *key)
{
	const json_t *v = json_object_get(audit, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

size_t syslog_format(const json_t *audit, const struct syslog_opts *o, char *outbuf, size_t outlen)
{
	static const char *const params[] = {"host", "kind", "severity", "service",
					     "exe",  "rule", "effect"};
	static const char *const fields[] = {"host_id", "kind", "severity", "service",
					     "exe",	"rule", "effect"};
	_Static_assert(400 + 7 * (SYSLOG_VALUE_MAX + 16) < SYSLOG_MSG_MAX, "the SD always fits");
	char msg[SYSLOG_MSG_MAX], head[64];
	struct out m = {.p = msg, .cap = sizeof(msg)};
	const char *host = str(audit, "host_id"), *ts = str(audit, "ts"),
		   *kind = str(audit, "kind");
	const char *summary = str(audit, "summary");
	const json_t *id = json_object_get(audit, "id");
	int pri = o->facility * 8 + syslog_severity(str(audit, "severity"));
	size_t n;
	int hl;

	if (host == NULL || host[0] == '\0')
		host = o->hostname;
	snprintf(head, sizeof(head), "<%d>1 ", pri);
	puts_(&m, head);
	puts_(&m, timestamp_ok(ts) ? ts : "-");
	puts_(&m, " ");
	puts_(&m, header_ok(host, 255) ? host : "-");
	puts_(&m, " vigil - ");
	puts_(&m, header_ok(kind, 32) ? kind : "-");
	puts_(&m, " [");
	puts_(&m, o->sd_id);
	snprintf(head, sizeof(head), " id=\"%" JSON_INTEGER_FORMAT "\"",
		 json_is_integer(id) ? json_integer_value(id) : (json_int_t)0);
	puts_(&m, head);
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
		const char *v = str(audit, fields[i]);

		if (v == NULL || (i == 0 && v[0] == '\0'))
			continue;
		puts_(&m, " ");
		puts_(&m, params[i]);
		puts_(&m, "=\"");
		put_text(&m, v, true, SYSLOG_VALUE_MAX);
		puts_(&m, "\"");
	}
	/* The header (under 400 bytes) and the SD (7 values, each cut) always fit whole. */
	puts_(&m, "]");
	if (summary != NULL && summary[0] != '\0') {
		puts_(&m, " \xef\xbb\xbf");
		put_text(&m, summary, false, SIZE_MAX);
	}
	hl = snprintf(head, sizeof(head), "%zu ", m.len);
	n = (size_t)hl + m.len;
	if (n > outlen)
		return 0;
	memcpy(outbuf, head, (size_t)hl);
	memcpy(outbuf + hl, msg, m.len);
	return n;
}
