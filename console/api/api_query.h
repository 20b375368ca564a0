/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_API_QUERY_H
#define VIGIL_CONSOLE_API_QUERY_H

/*
 * The query string of an API request, decoded and checked once: only the
 * endpoint's known parameters, each at most once, percent-escapes well
 * formed, values valid UTF-8 without NUL.  An empty value ("host=") is the
 * same as an absent parameter, so a form can send every field.  Everything
 * lives in the struct (no allocation); a query longer than API_QUERY_TEXT_MAX
 * is refused.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define API_QUERY_TEXT_MAX   2048
#define API_QUERY_PARAMS_MAX 16

struct api_query {
	char text[API_QUERY_TEXT_MAX + 1]; /* decoded keys and values, NUL-separated */
	const char *keys[API_QUERY_PARAMS_MAX];
	const char *values[API_QUERY_PARAMS_MAX];
	int n;
	char bad[64];  /* after a failure: the parameter at fault ("" for the whole query) */
	char why[160]; /* after a failure: what is wrong with it */
};

/*
 * Parse the query of uri (the part after '?', if any), allowing only the
 * NULL-terminated names in known.  0, or -EINVAL with q->bad and q->why set.
 */
int api_query_parse(const char *uri, const char *const *known, struct api_query *q);

/* The value of name, or NULL when absent (or empty). */
const char *api_query_get(const struct api_query *q, const char *name);

/*
 * name as a decimal integer in [min, max] into *ret (left alone when
 * absent).  0 absent, 1 present and good, -EINVAL (q->bad, q->why set).
 */
int api_query_int(struct api_query *q, const char *name, int64_t min, int64_t max, int64_t *ret);

/*
 * name as an RFC 3339 time ("2025-11-28T20:44:48Z", fraction and offset
 * optional) into *ret (left alone when absent).  0, 1 or -EINVAL as api_query_int.
 */
int api_query_time(struct api_query *q, const char *name, const char **ret);

/* name must be one of the NULL-terminated values in allowed.  0, 1 or -EINVAL. */
int api_query_word(struct api_query *q, const char *name, const char *const *allowed,
		   const char **ret);

/*
 * The list endpoints' paging: before_id (an id, default 0: from the newest)
 * and limit (1..1000, default 100).  0, or -EINVAL as api_query_int.
 */
#define API_QUERY_LIMIT_DEFAULT 100
#define API_QUERY_LIMIT_MAX	1000
int api_query_page(struct api_query *q, int64_t *before_id, int *limit);

/* A decimal id "1".."9223372036854775807" (nothing else) into *ret; false when not. */
bool api_query_parse_id(const char *s, size_t len, int64_t *ret);

#endif
