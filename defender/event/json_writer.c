/* SPDX-License-Identifier: Apache-2.0 */
#include "event/json_writer.h"

#include "utf8.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

void json_writer_init(struct json_writer *w, char *buf, size_t cap)
{
	w->buf = buf;
	w->cap = cap;
	w->len = 0;
	w->overflow = false;
	w->depth = 0;
	w->after_key = false;
	w->lossy = false;
	w->first[0] = true;
	if (cap > 0)
		buf[0] = '\0';
}

static void put(struct json_writer *w, const char *s, size_t n)
{
	if (w->overflow || w->len + n + 1 > w->cap) {
		w->overflow = true;
		return;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = '\0';
}

static void putc_(struct json_writer *w, char c)
{
	put(w, &c, 1);
}

/* Before any value: a comma unless it is the first in its container (keys place their own). */
static void sep(struct json_writer *w)
{
	if (w->depth < JSON_WRITER_DEPTH && !w->first[w->depth])
		putc_(w, ',');
	if (w->depth < JSON_WRITER_DEPTH)
		w->first[w->depth] = false;
}

/* Before a value: nothing after a key, else the separator. */
static void value_prefix(struct json_writer *w)
{
	if (w->after_key)
		w->after_key = false;
	else
		sep(w);
}

static void str_body(struct json_writer *w, const char *s, size_t len);

void json_writer_obj_begin(struct json_writer *w)
{
	value_prefix(w);
	putc_(w, '{');
	if (++w->depth < JSON_WRITER_DEPTH)
		w->first[w->depth] = true;
}

void json_writer_obj_end(struct json_writer *w)
{
	putc_(w, '}');
	w->depth--;
}

void json_writer_arr_begin(struct json_writer *w)
{
	value_prefix(w);
	putc_(w, '[');
	if (++w->depth < JSON_WRITER_DEPTH)
		w->first[w->depth] = true;
}

void json_writer_arr_end(struct json_writer *w)
{
	putc_(w, ']');
	w->depth--;
}

void json_writer_key_n(struct json_writer *w, const char *key, size_t len)
{
	sep(w);
	/* One bounds check for '"', the key and '":'; keys are never escaped. */
	if (w->overflow || w->len + len + 4 > w->cap) {
		w->overflow = true;
		return;
	}
	w->buf[w->len] = '"';
	memcpy(w->buf + w->len + 1, key, len);
	memcpy(w->buf + w->len + 1 + len, "\":", 3);
	w->len += len + 3;
	w->buf[w->len] = '\0';
	w->after_key = true;
}

/*
 * Whether none of the 8 bytes in x needs more than copying: each is printable
 * ASCII other than '"' and '\\'.  Word-at-a-time tests (a byte below 0x20,
 * a byte equal to a constant, a byte with its top bit set); each is exact
 * for the word as a whole, which is all this asks.
 */
static bool word_plain(uint64_t x)
{
	const uint64_t ones = 0x0101010101010101ULL, tops = ones * 0x80;
	uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
	uint64_t flagged = ((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((b - ones) & ~b) | x;

	return (flagged & tops) == 0;
}

static void str_body(struct json_writer *w, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, run = 0;

	while (i < len) {
		unsigned char c = u[i];
		char esc[8];
		size_t n;
		uint64_t word;

		/* Most text needs no escaping: take it 8 bytes at a time. */
		if (len - i >= 8) {
			memcpy(&word, u + i, 8);
			if (word_plain(word)) {
				run += 8;
				i += 8;
				continue;
			}
		}
		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			run++;
			i++;
			continue;
		}
		put(w, s + i - run, run);
		run = 0;
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(w, esc, 2);
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			put(w, esc, 6);
			i++;
		} else if ((n = utf8_char_len(u + i, len - i)) > 0) {
			put(w, s + i, n);
			i += n;
		} else {
			/* Not UTF-8: the text \xNN, so the bytes stay visible and the line valid.
			 */
			char b[5] = {'\\', '\\', 'x', hex[c >> 4], hex[c & 15]};
			put(w, b, 5);
			w->lossy = true;
			i++;
		}
	}
	put(w, s + i - run, run);
}

void json_writer_str(struct json_writer *w, const char *s, size_t len)
{
	value_prefix(w);
	putc_(w, '"');
	str_body(w, s, len);
	putc_(w, '"');
}

void json_writer_cstr(struct json_writer *w, const char *s)
{
	json_writer_str(w, s, strlen(s));
}

void json_writer_raw(struct json_writer *w, const char *s)
{
	value_prefix(w);
	put(w, s, strlen(s));
}

void json_writer_append(struct json_writer *w, const char *s, size_t len)
{
	put(w, s, len);
	if (len > 0 && w->depth < JSON_WRITER_DEPTH)
		w->first[w->depth] = false;
}

/* Digits of v at the end of b[24]; returns where they start (every event has a dozen numbers). */
static char *u64_digits(char b[24], uint64_t v)
{
	char *p = b + 23;

	*p = '\0';
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	return p;
}

void json_writer_u64(struct json_writer *w, uint64_t v)
{
	char b[24];

	json_writer_raw(w, u64_digits(b, v));
}

void json_writer_i64(struct json_writer *w, int64_t v)
{
	char b[24];
	char *p = u64_digits(b, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v);

	if (v < 0)
		*--p = '-';
	json_writer_raw(w, p);
}

void json_writer_bool(struct json_writer *w, bool v)
{
	json_writer_raw(w, v ? "true" : "false");
}

void json_writer_null(struct json_writer *w)
{
	json_writer_raw(w, "null");
}
