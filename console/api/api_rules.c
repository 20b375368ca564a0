/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The rules endpoints, one tree handler for every method (nng 1.5 matches
 * paths by prefix only, so ids and actions are parsed here):
 *
 *   GET    /api/v1/rules                   the rule set in order, and its version
 *   POST   /api/v1/rules                   add a rule (201)
 *   GET    /api/v1/rules/{id}              one rule
 *   PUT    /api/v1/rules/{id}              replace it
 *   DELETE /api/v1/rules/{id}              delete it
 *   POST   /api/v1/rules/{id}/move         {"position": n}
 *   POST   /api/v1/rules/import            a whole rule set, in parts (202 until the last)
 *   GET    /api/v1/rules/versions          versions, newest first, paged
 *   GET    /api/v1/rules/versions/{n}      one version with its snapshot
 *   POST   /api/v1/rules/rehearse          what a rule would have done over a past window
 *
 * Every rule that comes in is parsed and checked by console/rules before
 * the store sees it (refusals: 400 naming the rule, the field and the
 * reason); every rule that goes out is written in canonical form.  Writes
 * take "If-Match: <version>" or "expected_version" (409 when the rule set
 * moved on) and "Idempotency-Key" (a repeated request gets the first one's
 * answer).  docs/rules.md has the format, docs/api.md the answers.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api_priv.h"
#include "log.h"
#include "rules/rule.h"
#include "rules/rule_set.h"
#include "store/rehearse.h"
#include "store/rules_store.h"
#include "utf8.h"

#define RULES_PATH "/api/v1/rules"

/*
 * Who made a change, as the version records it: "user:NAME" for a user
 * signed in to the web UI, "api-token" for the token (vigilctl, scripts,
 * and a session signed in with it).  The prefix keeps a user who happens
 * to be named "api-token" apart.  Per worker thread: a handler runs on one
 * worker from start to end.
 */
static const char *rules_actor(nng_aio *aio)
{
	static __thread char actor[8 + USER_NAME_MAX + 1];
	const struct api_caller *c = api_caller(aio);

	if (!c->session || c->user[0] == '\0')
		return "api-token";
	snprintf(actor, sizeof(actor), "user:%s", c->user);
	return actor;
}

/* 400 {"error", "rule", "field", "reason"}; rule NULL or "" is null. */
static void respond_refused(nng_aio *aio, const char *error, const char *rule, const char *field,
			    const char *reason)
{
	json_t *body = json_pack("{s:s,s:o,s:s,s:s}", "error", error, "rule",
				 rule != NULL && rule[0] != '\0' ? json_string(rule) : json_null(),
				 "field", field, "reason", reason);

	/* Every text here is checked or escaped UTF-8; should one not be, still answer. */
	if (body == NULL)
		api_respond_error(aio, 400, error);
	else
		api_respond_json(aio, 400, body);
}

static void respond_invalid(nng_aio *aio, const struct rule_error *e)
{
	respond_refused(aio, "invalid rule", e->rule, e->field, e->reason);
}

/* A stored rule in canonical form (the API's key order); takes stored. */
static json_t *canonical(json_t *stored)
{
	struct rule r;
	struct rule_error e;
	json_t *out;

	if (!json_is_object(stored) || rule_from_json(stored, NULL, &r, &e) < 0)
		return stored; /* shown as stored rather than not at all */
	out = rule_to_json(&r);
	rule_fini(&r);
	if (out == NULL)
		return stored;
	json_decref(stored);
	return out;
}

/* Every rule of arr (an array, or null) in canonical form, in place. */
static void canonical_all(json_t *arr)
{
	size_t i;
	json_t *r;

	json_array_foreach(arr, i, r) json_array_set_new(arr, i, canonical(json_incref(r)));
}

/*
 * The request's body as a JSON object into *ret (NULL when there is none and
 * !required); false after answering 400.
 */
static bool read_body(nng_aio *aio, bool required, json_t **ret)
{
	nng_http_req *req = nng_aio_get_input(aio, 0);
	json_error_t jerr;
	void *data;
	size_t len;
	char why[256];

	*ret = NULL;
	nng_http_req_get_data(req, &data, &len);
	if (len == 0 && !required)
		return true;
	if (len == 0) {
		respond_refused(aio, "invalid request", NULL, "", "the request has no body");
		return false;
	}
	*ret = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (*ret == NULL || !json_is_object(*ret)) {
		if (*ret == NULL) {
			/* jansson may quote the input: keep the answer valid UTF-8. */
			char text[200];

			utf8_escape_controls(jerr.text, strnlen(jerr.text, 120), text,
					     sizeof(text));
			snprintf(why, sizeof(why), "not JSON: %s (line %d, column %d)", text,
				 jerr.line, jerr.column);
		} else
			snprintf(why, sizeof(why), "the body must be a JSON object");
		json_decref(*ret);
		*ret = NULL;
		respond_refused(aio, "invalid request", NULL, "", why);
		return false;
	}
	return true;
}

/* A version number in an If-Match header: 12, "12" or W/"12". */
static bool if_match_version(const char *h, int64_t *ret)
{
	size_t len;

	if (strncmp(h, "W/", 2) == 0)
		h += 2;
	len = strlen(h);
	if (len >= 2 && h[0] == '"' && h[len - 1] == '"') {
		h++;
		len -= 2;
	}
	if (len == 1 && h[0] == '0') {
		*ret = 0;
		return true;
	}
	return api_query_parse_id(h, len, ret);
}

/*
 * The conditions of a write: "If-Match" and the body's "expected_version"
 * (removed from body), "Idempotency-Key".  false after answering 400.
 */
static bool write_conditions(nng_aio *aio, json_t *body, struct rules_write *w)
{
	nng_http_req *req = nng_aio_get_input(aio, 0);
	const char *match = nng_http_req_get_header(req, "If-Match");
	const char *key = nng_http_req_get_header(req, "Idempotency-Key");
	json_t *ev = body != NULL ? json_object_get(body, "expected_version") : NULL;
	int64_t header = -1;

	*w = (struct rules_write){.actor = rules_actor(aio), .expected_version = -1};
	if (match != NULL && strcmp(match, "*") == 0)
		match = NULL; /* any version */
	if (match != NULL && !if_match_version(match, &header)) {
		respond_refused(aio, "invalid request", NULL, "If-Match",
				"must be a rule set version (a number, maybe in quotes)");
		return false;
	}
	if (ev != NULL) {
		if (!json_is_integer(ev) || json_integer_value(ev) < 0) {
			respond_refused(aio, "invalid request", NULL, "expected_version",
					"must be a rule set version (0, 1, ...)");
			return false;
		}
		w->expected_version = json_integer_value(ev);
		json_object_del(body, "expected_version");
	}
	if (header >= 0 && w->expected_version >= 0 && header != w->expected_version) {
		respond_refused(aio, "invalid request", NULL, "expected_version",
				"differs from the If-Match header");
		return false;
	}
	if (header >= 0)
		w->expected_version = header;
	if (key != NULL) {
		size_t len = strlen(key);

		if (len < 16 || len > 64 ||
		    strspn(key,
			   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
			len) {
			respond_refused(aio, "invalid request", NULL, "Idempotency-Key",
					"must be 16 to 64 letters, digits, '-' or '_'");
			return false;
		}
		w->request_id = key;
	}
	return true;
}

/* A write the store refused, as its answer. */
static void respond_write_error(nng_aio *aio, const char *what, int rc,
				const struct rules_outcome *out, const char *rule,
				const vigil_err *err)
{
	char field[64];

	switch (rc) {
	case -ENOENT:
		api_respond_error(aio, 404, err->msg);
		break;
	case -EEXIST:
		if (out->dup_name[0] != '\0') {
			char reason[96];

			snprintf(field, sizeof(field), "rules[%zu].name", out->dup_second);
			snprintf(reason, sizeof(reason), "is also the name of rules[%zu]",
				 out->dup_first);
			respond_refused(aio, "invalid rule", out->dup_name, field, reason);
		} else if (out->conflict_id > 0) {
			respond_refused(aio, "invalid rule", rule, "name", err->msg);
		} else {
			api_respond_store_error(aio, rc, what, err->msg);
		}
		break;
	case -ERANGE:
		respond_refused(aio, rule != NULL ? "invalid rule" : "invalid request", rule,
				"position", err->msg);
		break;
	case -E2BIG:
		respond_refused(aio, rule != NULL ? "invalid rule" : "invalid request", rule, "",
				err->msg);
		break;
	case -ESTALE:
		api_respond_json(
		    aio, 409,
		    json_pack("{s:s,s:I}", "error", err->msg, "version", (json_int_t)out->version));
		break;
	case -EALREADY:
	case -EILSEQ:
	case -ENOSPC:
		api_respond_error(aio, 409, err->msg);
		break;
	default:
		api_respond_store_error(aio, rc, what, err->msg);
	}
}

/* The answer of a write that went through: {"version", key: rule, "unchanged", "replayed"}. */
static void respond_written(nng_aio *aio, uint16_t status, const char *what, const char *key,
			    struct rules_outcome *out)
{
	json_t *rule = out->rule != NULL ? canonical(out->rule) : json_null();

	out->rule = NULL;
	if (out->change[0] != '\0')
		log_info("rules: version %" PRId64 " by %s: %s", out->version, rules_actor(aio),
			 out->change);
	else
		log_info("%s: %s", what,
			 out->replayed ? "a repeated request, answered as the first"
				       : "nothing changed, no new version");
	api_respond_json(aio, status,
			 json_pack("{s:I,s:o,s:b,s:b}", "version", (json_int_t)out->version, key,
				   rule, "unchanged", out->unchanged, "replayed", out->replayed));
}

/*
 * A rule from a write's body (after write_conditions took its conditions),
 * canonical text into *ret_text (caller frees), *r filled (caller
 * rule_fini's).  false after answering.
 */
static bool rule_in(nng_aio *aio, json_t *body, struct rule *r, char **ret_text)
{
	struct rule_error e;
	size_t len;
	int rc;

	if (rule_from_json(body, NULL, r, &e) < 0) {
		respond_invalid(aio, &e);
		return false;
	}
	rc = rule_serialize(r, ret_text, &len);
	if (rc < 0) {
		rule_fini(r);
		api_respond_error(aio, 500, "out of memory");
		return false;
	}
	return true;
}

static void rules_list(nng_aio *aio)
{
	static const char *const known[] = {NULL};
	json_t *rules = NULL;
	vigil_err err = {0};
	struct api_query q;
	int64_t version;
	int rc;

	if (!api_read_query(aio, known, &q))
		return;
	rc = store_rules_list(api_store(aio), &rules, &version, &err);
	if (rc < 0) {
		api_respond_store_error(aio, rc, "GET " RULES_PATH, err.msg);
		return;
	}
	canonical_all(rules);
	api_respond_json(aio, 200,
			 json_pack("{s:I,s:o}", "version", (json_int_t)version, "rules", rules));
}

static void rule_add(nng_aio *aio)
{
	static const char *const known[] = {NULL};
	struct rules_outcome out = {0};
	struct rules_write w;
	struct api_query q;
	vigil_err err = {0};
	json_t *body = NULL;
	struct rule r;
	char *text = NULL;
	int rc;

	if (!api_read_query(aio, known, &q) || !read_body(aio, true, &body) ||
	    !write_conditions(aio, body, &w) || !rule_in(aio, body, &r, &text)) {
		json_decref(body);
		return;
	}
	if (r.id != 0) {
		respond_refused(aio, "invalid rule", r.name, "id",
				"is given by the console: leave it out of a new rule");
		goto out;
	}
	rc = store_rule_add(api_store(aio), text, r.position, &w, &out, &err);
	if (rc < 0)
		respond_write_error(aio, "POST " RULES_PATH, rc, &out, r.name, &err);
	else
		respond_written(aio, 201, "POST " RULES_PATH, "rule", &out);
out:
	rules_outcome_fini(&out);
	rule_fini(&r);
	free(text);
	json_decref(body);
}

static void rule_get(nng_aio *aio, int64_t id)
{
	static const char *const known[] = {NULL};
	json_t *rule = NULL;
	vigil_err err = {0};
	struct api_query q;
	int64_t version;
	int rc;

	if (!api_read_query(aio, known, &q))
		return;
	rc = store_rule_get(api_store(aio), id, &rule, &version, &err);
	if (!api_store_done(aio, rc, NULL, "GET " RULES_PATH "/{id}", err.msg))
		return;
	api_respond_json(
	    aio, 200,
	    json_pack("{s:I,s:o}", "version", (json_int_t)version, "rule", canonical(rule)));
}

static void rule_put(nng_aio *aio, int64_t id)
{
	static const char *const known[] = {NULL};
	struct rules_outcome out = {0};
	struct rules_write w;
	struct api_query q;
	vigil_err err = {0};
	json_t *body = NULL;
	struct rule r;
	char *text = NULL, why[96];
	int rc;

	if (!api_read_query(aio, known, &q) || !read_body(aio, true, &body) ||
	    !write_conditions(aio, body, &w) || !rule_in(aio, body, &r, &text)) {
		json_decref(body);
		return;
	}
	if (r.id != 0 && r.id != id) {
		snprintf(why, sizeof(why), "is %" PRId64 ", but the path names rule %" PRId64, r.id,
			 id);
		respond_refused(aio, "invalid rule", r.name, "id", why);
		goto out;
	}
	rc = store_rule_edit(api_store(aio), id, text, r.position, &w, &out, &err);
	if (rc < 0)
		respond_write_error(aio, "PUT " RULES_PATH "/{id}", rc, &out, r.name, &err);
	else
		respond_written(aio, 200, "PUT " RULES_PATH "/{id}", "rule", &out);
out:
	rules_outcome_fini(&out);
	rule_fini(&r);
	free(text);
	json_decref(body);
}

/* A body that may hold only the keys in known (and "expected_version"). */
static bool only_keys(nng_aio *aio, json_t *body, const char *const *known)
{
	const char *k;
	json_t *v;

	json_object_foreach(body, k, v)
	{
		bool ok = false;

		for (size_t i = 0; known[i] != NULL; i++)
			ok |= strcmp(known[i], k) == 0;
		if (!ok) {
			char field[80];

			utf8_escape_controls(k, strnlen(k, 32), field, sizeof(field));
			respond_refused(aio, "invalid request", NULL, field, "unknown field");
			return false;
		}
	}
	return true;
}

static void rule_delete(nng_aio *aio, int64_t id)
{
	static const char *const known[] = {NULL};
	struct rules_outcome out = {0};
	struct rules_write w;
	struct api_query q;
	vigil_err err = {0};
	json_t *body = NULL;
	int rc;

	if (!api_read_query(aio, known, &q) || !read_body(aio, false, &body) ||
	    !write_conditions(aio, body, &w) || (body != NULL && !only_keys(aio, body, known))) {
		json_decref(body);
		return;
	}
	rc = store_rule_delete(api_store(aio), id, &w, &out, &err);
	if (rc < 0)
		respond_write_error(aio, "DELETE " RULES_PATH "/{id}", rc, &out, NULL, &err);
	else
		respond_written(aio, 200, "DELETE " RULES_PATH "/{id}", "deleted", &out);
	rules_outcome_fini(&out);
	json_decref(body);
}

static void rule_move(nng_aio *aio, int64_t id)
{
	static const char *const known[] = {NULL};
	static const char *const keys[] = {"position", NULL};
	struct rules_outcome out = {0};
	struct rules_write w;
	struct api_query q;
	vigil_err err = {0};
	json_t *body = NULL, *pos;
	int rc;

	if (!api_read_query(aio, known, &q) || !read_body(aio, true, &body) ||
	    !write_conditions(aio, body, &w) || !only_keys(aio, body, keys)) {
		json_decref(body);
		return;
	}
	pos = json_object_get(body, "position");
	if (!json_is_integer(pos) || json_integer_value(pos) < 1 ||
	    json_integer_value(pos) > RULES_MAX) {
		char why[64];

		snprintf(why, sizeof(why), "must be an integer from 1 to %d", RULES_MAX);
		respond_refused(aio, "invalid request", NULL, "position", why);
		json_decref(body);
		return;
	}
	rc = store_rule_move(api_store(aio), id, (int)json_integer_value(pos), &w, &out, &err);
	if (rc < 0)
		respond_write_error(aio, "POST " RULES_PATH "/{id}/move", rc, &out, NULL, &err);
	else
		respond_written(aio, 200, "POST " RULES_PATH "/{id}/move", "rule", &out);
	rules_outcome_fini(&out);
	json_decref(body);
}

/* The canonical bodies of s as one JSON array text (caller frees); NULL when out of memory. */
static char *bodies_text(const struct rule_set *s)
{
	size_t cap = 2, len = 1;
	char *text = malloc(cap + 1);

	if (text == NULL)
		return NULL;
	text[0] = '[';
	for (size_t i = 0; i < s->n; i++) {
		char *one, *grown;
		size_t n;

		if (rule_serialize(&s->v[i], &one, &n) < 0)
			goto fail;
		if (len + n + 2 > cap) {
			cap = (len + n + 2) * 2;
			if ((grown = realloc(text, cap + 1)) == NULL) {
				free(one);
				goto fail;
			}
			text = grown;
		}
		if (i > 0)
			text[len++] = ',';
		memcpy(text + len, one, n);
		len += n;
		free(one);
	}
	text[len++] = ']';
	text[len] = '\0';
	return text;
fail:
	free(text);
	return NULL;
}

/* POST /api/v1/rules/import {"import": KEY, "part": n, "last": bool, "rules": [...]} */
static void rules_import(nng_aio *aio)
{
	static const char *const known[] = {NULL};
	static const char *const keys[] = {"import", "part", "last", "rules", NULL};
	struct rules_outcome out = {0};
	struct rules_import_part p = {0};
	struct rule_set set = {0};
	struct rule_error e;
	struct rules_write w;
	struct api_query q;
	vigil_err err = {0};
	json_t *body = NULL, *v;
	char *text = NULL;
	int rc;

	if (!api_read_query(aio, known, &q) || !read_body(aio, true, &body) ||
	    !write_conditions(aio, body, &w) || !only_keys(aio, body, keys))
		goto out;
	v = json_object_get(body, "import");
	p.key = json_string_value(v);
	if (p.key == NULL || strlen(p.key) < 16 || strlen(p.key) > 64 ||
	    strspn(p.key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
		strlen(p.key)) {
		respond_refused(aio, "invalid request", NULL, "import",
				"must be a key of 16 to 64 letters, digits, '-' or '_' that the"
				" client chose for this import");
		goto out;
	}
	v = json_object_get(body, "part");
	if (v != NULL && (!json_is_integer(v) || json_integer_value(v) < 1 ||
			  json_integer_value(v) > RULES_MAX + 1)) {
		respond_refused(aio, "invalid request", NULL, "part",
				"must be the part's number, from 1");
		goto out;
	}
	p.part = v != NULL ? (int)json_integer_value(v) : 1;
	v = json_object_get(body, "last");
	if (v != NULL && !json_is_boolean(v)) {
		respond_refused(aio, "invalid request", NULL, "last", "must be true or false");
		goto out;
	}
	p.last = v == NULL || json_is_true(v);
	if (rule_set_from_array(json_object_get(body, "rules"), "rules", 0, &set, &e) < 0) {
		respond_invalid(aio, &e);
		goto out;
	}
	if ((text = bodies_text(&set)) == NULL) {
		api_respond_error(aio, 500, "out of memory");
		goto out;
	}
	p.rules = text;
	rc = store_rules_import(api_store(aio), &p, &w, &out, &err);
	if (rc < 0) {
		respond_write_error(aio, "POST " RULES_PATH "/import", rc, &out, NULL, &err);
	} else if (!p.last) {
		api_respond_json(aio, 202,
				 json_pack("{s:s,s:i,s:I,s:b}", "import", p.key, "part", p.part,
					   "staged", (json_int_t)out.staged, "replayed",
					   out.replayed));
	} else {
		if (out.change[0] != '\0')
			log_info("rules: version %" PRId64 " by %s: %s", out.version,
				 rules_actor(aio), out.change);
		json_object_set_new(out.result, "replayed", json_boolean(out.replayed));
		api_respond_json(aio, 200, json_incref(out.result));
	}
out:
	rules_outcome_fini(&out);
	rule_set_fini(&set);
	free(text);
	json_decref(body);
}

/* The window and hosts of a rehearsal from body into rq (globs: its room); false after 400. */
static bool rehearse_bounds(nng_aio *aio, json_t *body, struct rehearse_request *rq,
			    const char **globs)
{
	json_t *since = json_object_get(body, "since"), *until = json_object_get(body, "until");
	json_t *hosts = json_object_get(body, "hosts"), *max = json_object_get(body, "max_events"),
	       *v;
	const char *field;
	struct timespec now;
	char why[256];
	size_t i;

	if ((since != NULL && !json_is_string(since)) ||
	    (until != NULL && !json_is_string(until))) {
		respond_refused(aio, "invalid request", NULL,
				since != NULL && !json_is_string(since) ? "since" : "until",
				"must be a string: an RFC 3339 time or a time before now (24h)");
		return false;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	if (rehearse_window(json_string_value(since), json_string_value(until),
			    (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000, &rq->since_us,
			    &rq->until_us, &field, why, sizeof(why)) < 0) {
		respond_refused(aio, "invalid request", NULL, field, why);
		return false;
	}
	if (hosts != NULL &&
	    (!json_is_array(hosts) || json_array_size(hosts) > REHEARSE_HOST_GLOBS_MAX)) {
		snprintf(why, sizeof(why), "must be a list of at most %d host globs",
			 REHEARSE_HOST_GLOBS_MAX);
		respond_refused(aio, "invalid request", NULL, "hosts", why);
		return false;
	}
	json_array_foreach(hosts, i, v)
	{
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) > 256) {
			char f[32];

			snprintf(f, sizeof(f), "hosts[%zu]", i);
			respond_refused(aio, "invalid request", NULL, f,
					"must be a host glob of 1 to 256 bytes (web-*)");
			return false;
		}
		globs[rq->nhosts++] = json_string_value(v);
	}
	rq->hosts = globs;
	if (max != NULL && (!json_is_integer(max) || json_integer_value(max) < 1 ||
			    json_integer_value(max) > REHEARSE_ROWS_MAX)) {
		snprintf(why, sizeof(why), "must be an integer from 1 to %d", REHEARSE_ROWS_MAX);
		respond_refused(aio, "invalid request", NULL, "max_events", why);
		return false;
	}
	rq->rows_max = max != NULL ? (size_t)json_integer_value(max) : 0;
	return true;
}

/*
 * POST /api/v1/rules/rehearse {"rule", "rule_id", "since", "until", "hosts", "max_events"}:
 * a new rule (rule), a stored one (rule_id) or an edit of one (both).
 */
static void rules_rehearse(nng_aio *aio)
{
	static const char *const known[] = {NULL};
	static const char *const keys[] = {"rule",  "rule_id",	  "since", "until",
					   "hosts", "max_events", NULL};
	const char *globs[REHEARSE_HOST_GLOBS_MAX];
	struct rehearse_request rq = {0};
	struct rule r = {0};
	struct rule_error e;
	struct api_query q;
	vigil_err err = {0};
	json_t *body = NULL, *v, *doc = NULL;
	char why[160];
	int rc;

	if (!api_read_query(aio, known, &q) || !read_body(aio, true, &body) ||
	    !only_keys(aio, body, keys))
		goto out;
	v = json_object_get(body, "rule_id");
	if (v != NULL && (!json_is_integer(v) || json_integer_value(v) < 1)) {
		respond_refused(aio, "invalid request", NULL, "rule_id",
				"must be the id of a stored rule (1, 2, ...)");
		goto out;
	}
	rq.rule_id = v != NULL ? json_integer_value(v) : 0;
	if ((v = json_object_get(body, "rule")) == NULL && rq.rule_id == 0) {
		respond_refused(aio, "invalid request", NULL, "rule",
				"give the rule to rehearse, a rule_id, or both (an edit of it)");
		goto out;
	}
	if (v != NULL && rule_from_json(v, "rule", &r, &e) < 0) {
		respond_invalid(aio, &e);
		goto out;
	}
	if (v != NULL && r.id != 0 && r.id != rq.rule_id) {
		if (rq.rule_id == 0)
			snprintf(why, sizeof(why),
				 "names rule %" PRId64 ": give \"rule_id\": %" PRId64
				 " to rehearse an edit of it, or leave the id out of a new rule",
				 r.id, r.id);
		else
			snprintf(why, sizeof(why), "is %" PRId64 ", but rule_id is %" PRId64, r.id,
				 rq.rule_id);
		respond_refused(aio, "invalid rule", r.name, "rule.id", why);
		goto out;
	}
	rq.rule = v != NULL ? &r : NULL;
	rq.position = r.position;
	if (!rehearse_bounds(aio, body, &rq, globs))
		goto out;
	rc = store_rehearse(api_store(aio), &rq, &doc, &err);
	if (rc == -ENOENT)
		respond_refused(aio, "invalid request", NULL, "rule_id", err.msg);
	else if (rc == -ERANGE)
		respond_refused(aio, "invalid rule", r.name, "rule.position", err.msg);
	else if (rc < 0)
		api_respond_store_error(aio, rc, "POST " RULES_PATH "/rehearse", err.msg);
	else
		api_respond_json(aio, 200, doc);
out:
	rule_fini(&r);
	json_decref(body);
}

static void versions_list(nng_aio *aio)
{
	static const char *const known[] = {"limit", "before_id", NULL};
	json_t *versions = NULL;
	vigil_err err = {0};
	struct api_query q;
	int64_t before, version;
	int limit, rc;

	if (!api_read_query(aio, known, &q))
		return;
	if (api_query_page(&q, &before, &limit) < 0) {
		api_respond_bad_param(aio, &q);
		return;
	}
	rc = store_rule_versions_list(api_store(aio), before, limit, &versions, &version, &err);
	if (rc < 0) {
		api_respond_store_error(aio, rc, "GET " RULES_PATH "/versions", err.msg);
		return;
	}
	api_respond_json(
	    aio, 200, json_pack("{s:I,s:o}", "version", (json_int_t)version, "versions", versions));
}

static void version_get(nng_aio *aio, int64_t n)
{
	json_t *doc, *v;

	/* 404 with the store's message, which names the version. */
	if (!api_item_fetch(aio, n, store_rule_version_get, NULL, "GET " RULES_PATH "/versions/{n}",
			    &doc))
		return;
	if (json_is_object(v = json_object_get(doc, "before")))
		json_object_set_new(doc, "before", canonical(json_incref(v)));
	if (json_is_object(v = json_object_get(doc, "after")))
		json_object_set_new(doc, "after", canonical(json_incref(v)));
	canonical_all(json_object_get(doc, "rules"));
	api_respond_json(aio, 200, doc);
}

/* /api/v1/rules/versions[/{n}] */
static void route_versions(nng_aio *aio, const char *rest)
{
	int64_t n;

	if (!api_method_get(aio)) {
		api_respond_not_allowed(aio, "GET, HEAD", "use GET on " RULES_PATH "/versions");
		return;
	}
	if (rest[0] == '\0' || strcmp(rest, "/") == 0) {
		versions_list(aio);
		return;
	}
	if (!api_query_parse_id(rest + 1, strlen(rest + 1), &n)) {
		api_respond_error(aio, 400, "a rule set version must be a positive integer");
		return;
	}
	version_get(aio, n);
}

static const struct api_item_route rule_routes[] = {
    {"", .get = rule_get, .put = rule_put, .del = rule_delete, .allow = "GET, HEAD, PUT, DELETE",
     .refused = "use GET, PUT or DELETE on " RULES_PATH "/{id}"},
    {"/move", .post = rule_move, .allow = "POST",
     .refused = "use POST on " RULES_PATH "/{id}/move"},
    {0},
};

void api_handle_rules(nng_aio *aio)
{
	const char *method = nng_http_req_get_method(nng_aio_get_input(aio, 0));
	char buf[256];
	const char *rest = api_subpath(aio, RULES_PATH, buf, sizeof(buf));

	if (rest == NULL)
		return;
	if (rest[0] == '\0' || strcmp(rest, "/") == 0) {
		if (api_method_get(aio))
			rules_list(aio);
		else if (strcmp(method, "POST") == 0)
			rule_add(aio);
		else
			api_respond_not_allowed(aio, "GET, HEAD, POST",
						"use GET or POST on " RULES_PATH);
		return;
	}
	if (rest[0] != '/') {
		api_respond_error(aio, 404, "no such API endpoint");
		return;
	}
	rest++; /* past '/' */
	if (strncmp(rest, "versions", 8) == 0 && (rest[8] == '\0' || rest[8] == '/')) {
		route_versions(aio, rest + 8);
		return;
	}
	if (strcmp(rest, "import") == 0 || strcmp(rest, "import/") == 0) {
		if (strcmp(method, "POST") == 0)
			rules_import(aio);
		else
			api_respond_not_allowed(aio, "POST", "use POST on " RULES_PATH "/import");
		return;
	}
	if (strcmp(rest, "rehearse") == 0 || strcmp(rest, "rehearse/") == 0) {
		if (strcmp(method, "POST") == 0)
			rules_rehearse(aio);
		else
			api_respond_not_allowed(aio, "POST", "use POST on " RULES_PATH "/rehearse");
		return;
	}
	api_route_item(aio, rest, "a rule id must be a positive integer", rule_routes);
}
