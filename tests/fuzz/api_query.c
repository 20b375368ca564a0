/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The API's request URIs (console/api/api_query.c), as the handlers use them:
 * the first input byte picks an endpoint (its known parameters, as in api.c,
 * api_models.c, api_activity.c), the rest is the URI nng hands the handler
 * (cut at the first NUL, as a C string is).  After api_query_parse come the
 * getters that endpoint calls, and for /api/v1/models/{id} the id parser.
 * The API reads no JSON bodies (POST .../relearn has none), so this is all
 * of its input parsing besides nng's own HTTP parser.
 *
 * Properties: accepted parameters are known, unique, non-NUL UTF-8 and live
 * in q->text; getters return values inside their bounds; a refusal names a
 * parameter fit to repeat in a JSON answer and says why; ids are exactly the
 * decimal numbers 1..INT64_MAX.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_query.h"
#include "fuzz_util.h"
#include "utf8.h"

#define MODELS_PATH "/api/v1/models"

struct endpoint {
	const char *const *known;
	bool session, times, state, page;
};

static const char *const hosts_known[] = {NULL};
static const char *const audits_known[] = {"host",  "kind",	 "service", "since",
					   "until", "before_id", "limit",   NULL};
static const char *const models_known[] = {"host", "service", "state", "limit", "before_id", NULL};
static const char *const activity_known[] = {"host",  "user",  "session",   "since",
					     "until", "limit", "before_id", NULL};
static const char *const states[] = {"learning", "active", NULL};

static const struct endpoint endpoints[] = {
    {hosts_known, false, false, false, false},
    {audits_known, false, true, false, true},
    {models_known, false, false, true, true},
    {activity_known, true, true, false, true},
};

static void check_parsed(const struct api_query *q, const struct endpoint *ep)
{
	for (int i = 0; i < q->n; i++) {
		bool known = false;

		if (q->keys[i] < q->text || q->keys[i] >= q->text + sizeof(q->text) ||
		    q->values[i] < q->text || q->values[i] >= q->text + sizeof(q->text))
			fuzz_fail("api_query_parse: parameter %d outside q->text", i);
		for (int k = 0; ep->known[k] != NULL; k++)
			known |= strcmp(ep->known[k], q->keys[i]) == 0;
		if (!known)
			fuzz_fail("api_query_parse: accepted unknown parameter '%s'", q->keys[i]);
		for (int j = 0; j < i; j++)
			if (strcmp(q->keys[i], q->keys[j]) == 0)
				fuzz_fail("api_query_parse: '%s' accepted twice", q->keys[i]);
		if (!utf8_valid(q->values[i], strlen(q->values[i])))
			fuzz_fail("api_query_parse: value of '%s' is not UTF-8", q->keys[i]);
	}
}

/* A refusal must name something printable (it goes into a JSON answer) and say why. */
static void check_refusal(const struct api_query *q)
{
	size_t n = strnlen(q->bad, sizeof(q->bad));

	if (n == sizeof(q->bad) || strnlen(q->why, sizeof(q->why)) == sizeof(q->why) ||
	    q->why[0] == '\0')
		fuzz_fail("api_query: a refusal without a terminated parameter and reason");
	if (strspn(q->bad, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.?") !=
	    n)
		fuzz_fail("api_query: refusal names an unprintable parameter '%s'", q->bad);
}

static void use_getters(struct api_query *q, const struct endpoint *ep)
{
	const char *v, *since = NULL, *until = NULL, *state = NULL;
	int64_t session = -1, before_id = 0;
	int limit = 0, rc;

	v = api_query_get(q, "host");
	if (v != NULL && v[0] == '\0')
		fuzz_fail("api_query_get: an empty value instead of NULL");
	if (ep->session) {
		rc = api_query_int(q, "session", 0, INT32_MAX, &session);
		if (rc < 0) {
			check_refusal(q);
			return;
		}
		if (rc == 1 && (session < 0 || session > INT32_MAX))
			fuzz_fail("api_query_int: session %" PRId64 " out of range", session);
	}
	if (ep->times) {
		if (api_query_time(q, "since", &since) < 0 ||
		    api_query_time(q, "until", &until) < 0) {
			check_refusal(q);
			return;
		}
		if ((since != NULL && strlen(since) < 20) || (until != NULL && strlen(until) < 20))
			fuzz_fail("api_query_time: accepted a time shorter than RFC 3339's");
	}
	if (ep->state) {
		rc = api_query_word(q, "state", states, &state);
		if (rc < 0) {
			check_refusal(q);
			return;
		}
		if (rc == 1 && state != states[0] && state != states[1])
			fuzz_fail("api_query_word: a word not in the list");
	}
	if (ep->page) {
		if (api_query_page(q, &before_id, &limit) < 0) {
			check_refusal(q);
			return;
		}
		if (before_id < 0 || limit < 1 || limit > API_QUERY_LIMIT_MAX)
			fuzz_fail("api_query_page: before_id %" PRId64 ", limit %d", before_id,
				  limit);
	}
}

/* The id of /api/v1/models/{id}[/...], checked against a plain reading of it. */
static void check_id(const char *uri)
{
	size_t plen = strcspn(uri, "?"), len;
	const char *rest, *slash;
	bool digits = true;
	int64_t id = 0;
	bool ok;

	if (plen <= strlen(MODELS_PATH) + 1 || strncmp(uri, MODELS_PATH "/", 15) != 0)
		return;
	rest = uri + 15;
	slash = memchr(rest, '/', plen - 15);
	len = slash != NULL ? (size_t)(slash - rest) : plen - 15;
	ok = api_query_parse_id(rest, len, &id);
	for (size_t i = 0; i < len; i++)
		digits &= rest[i] >= '0' && rest[i] <= '9';
	if (!digits || len == 0 || len > 19) {
		if (ok)
			fuzz_fail("api_query_parse_id: accepted '%.*s'", (int)len, rest);
		return;
	}
	char buf[20];
	memcpy(buf, rest, len);
	buf[len] = '\0';
	errno = 0;
	unsigned long long ref = strtoull(buf, NULL, 10);
	bool want = errno == 0 && ref >= 1 && ref <= INT64_MAX;
	if (ok != want || (ok && (unsigned long long)id != ref))
		fuzz_fail("api_query_parse_id: '%s' gave %d/%" PRId64, buf, ok, id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct endpoint *ep;
	struct api_query q;
	char *uri;

	if (size < 1)
		return -1;
	ep = &endpoints[data[0] % (sizeof(endpoints) / sizeof(endpoints[0]))];
	uri = malloc(size);
	if (uri == NULL)
		return 0;
	memcpy(uri, data + 1, size - 1);
	uri[size - 1] = '\0';

	check_id(uri);
	if (api_query_parse(uri, ep->known, &q) < 0) {
		check_refusal(&q);
	} else {
		check_parsed(&q, ep);
		use_getters(&q, ep);
	}
	free(uri);
	return 0;
}
