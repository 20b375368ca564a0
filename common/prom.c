/* SPDX-License-Identifier: Apache-2.0 */
#include "prom.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

void prom_buf_init(struct prom_buf *b, size_t max)
{
	*b = (struct prom_buf){.max = max};
}

void prom_buf_fini(struct prom_buf *b)
{
	free(b->text);
	b->text = NULL;
	b->len = b->cap = 0;
}

/* Append len bytes of s; false (and over set) when it would pass max or memory ran out. */
static bool put(struct prom_buf *b, const char *s, size_t len)
{
	if (b->over || len > b->max || b->len + len + 1 > b->max) {
		b->over = true;
		return false;
	}
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap > 0 ? b->cap : 4096;
		char *text;

		while (cap < b->len + len + 1)
			cap *= 2;
		if (cap > b->max)
			cap = b->max;
		if ((text = realloc(b->text, cap)) == NULL) {
			b->over = true;
			return false;
		}
		b->text = text;
		b->cap = cap;
	}
	memcpy(b->text + b->len, s, len);
	b->len += len;
	b->text[b->len] = '\0';
	return true;
}

/*
 * s escaped into out: backslash and newline always, the double quote in
 * label values; invalid UTF-8 as U+FFFD (the format is UTF-8).
 */
static size_t escape(const char *s, bool quote, char *out, size_t outlen)
{
	size_t n = 0, len = s != NULL ? strlen(s) : 0;

	for (size_t i = 0; i < len;) {
		const char *rep = NULL;
		char one[5];
		size_t k = utf8_char_len((const unsigned char *)s + i, len - i), rl;

		if (k == 0) {
			rep = "\xef\xbf\xbd";
			k = 1;
		} else if (s[i] == '\\') {
			rep = "\\\\";
		} else if (s[i] == '\n') {
			rep = "\\n";
		} else if (s[i] == '"' && quote) {
			rep = "\\\"";
		} else {
			memcpy(one, s + i, k);
			one[k] = '\0';
			rep = one;
		}
		rl = strlen(rep);
		if (n + rl + 1 > outlen) {
			out[n] = '\0';
			return outlen;
		}
		memcpy(out + n, rep, rl);
		n += rl;
		i += k;
	}
	out[n] = '\0';
	return n;
}

size_t prom_escape_label(const char *s, char *out, size_t outlen)
{
	return escape(s, true, out, outlen);
}

void prom_family(struct prom_buf *b, const char *name, const char *type, const char *help)
{
	char esc[1024], line[1400];
	int n;

	escape(help, false, esc, sizeof(esc));
	n = snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s %s\n", name, esc, name, type);
	if (n > 0 && (size_t)n < sizeof(line))
		put(b, line, (size_t)n);
	else
		b->over = true;
}

/* name{labels} and a space, then value, as one line. */
static void sample(struct prom_buf *b, const char *name, const char *const *labels,
		   const char *value)
{
	char line[4096], esc[1024];
	size_t n;

	n = (size_t)snprintf(line, sizeof(line), "%s", name);
	for (int i = 0; labels != NULL && labels[i] != NULL && n < sizeof(line); i += 2) {
		if (prom_escape_label(labels[i + 1], esc, sizeof(esc)) >= sizeof(esc)) {
			b->over = true; /* a cut value would be another series */
			return;
		}
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s=\"%s\"", i == 0 ? "{" : ",",
				      labels[i], esc);
	}
	if (n < sizeof(line) && labels != NULL && labels[0] != NULL)
		n += (size_t)snprintf(line + n, sizeof(line) - n, "}");
	if (n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n, " %s\n", value);
	if (n >= sizeof(line)) {
		b->over = true;
		return;
	}
	put(b, line, n);
}

void prom_sample(struct prom_buf *b, const char *name, const char *const *labels, int64_t value)
{
	char v[24];

	snprintf(v, sizeof(v), "%" PRId64, value);
	sample(b, name, labels, v);
}

void prom_sample_u(struct prom_buf *b, const char *name, const char *const *labels, uint64_t value)
{
	char v[24];

	snprintf(v, sizeof(v), "%" PRIu64, value);
	sample(b, name, labels, v);
}

void prom_sample_f(struct prom_buf *b, const char *name, const char *const *labels, double value)
{
	char v[40];

	if (isnan(value))
		snprintf(v, sizeof(v), "NaN");
	else if (isinf(value))
		snprintf(v, sizeof(v), "%sInf", value > 0 ? "+" : "-");
	else
		/* The shortest text that reads back as the same double ("0.844", not "0.84399...").
		 */
		for (int prec = 1; prec <= 17; prec++) {
			snprintf(v, sizeof(v), "%.*g", prec, value);
			if (strtod(v, NULL) == value)
				break;
		}
	sample(b, name, labels, v);
}

static struct {
	pthread_mutex_t lock;
	struct {
		prom_collect_fn fn;
		void *arg;
	} c[PROM_COLLECTORS_MAX];
	int n;
} reg = {.lock = PTHREAD_MUTEX_INITIALIZER};

int prom_register(prom_collect_fn fn, void *arg)
{
	int rc = 0;

	pthread_mutex_lock(&reg.lock);
	if (reg.n >= PROM_COLLECTORS_MAX) {
		rc = -ENOSPC;
	} else {
		reg.c[reg.n].fn = fn;
		reg.c[reg.n].arg = arg;
		reg.n++;
	}
	pthread_mutex_unlock(&reg.lock);
	return rc;
}

void prom_unregister(prom_collect_fn fn, void *arg)
{
	pthread_mutex_lock(&reg.lock);
	for (int i = 0; i < reg.n; i++) {
		if (reg.c[i].fn == fn && reg.c[i].arg == arg) {
			memmove(&reg.c[i], &reg.c[i + 1],
				(size_t)(reg.n - i - 1) * sizeof(reg.c[0]));
			reg.n--;
			break;
		}
	}
	pthread_mutex_unlock(&reg.lock);
}

void prom_collect(struct prom_buf *b)
{
	pthread_mutex_lock(&reg.lock);
	for (int i = 0; i < reg.n; i++)
		reg.c[i].fn(b, reg.c[i].arg);
	pthread_mutex_unlock(&reg.lock);
}
