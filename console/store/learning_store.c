/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The learning part of a batch: deviations become audits, model deltas
 * update models and model_entries.  Everything arrives from the network:
 * each item is checked against the rules in learning_store.h before any of
 * it reaches SQL, and the SQL only ever sees it as parameters.  Items are
 * written set-wise (one statement per batch of deviations, one per delta's
 * entries, the rows passed as one JSON parameter built with jansson) so a
 * 20,000-entry delta costs a few round trips, not 20,000.
 */
#include "store/learning_store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rules/rule.h"
#include "store/store_priv.h"
#include "utf8.h"

/*
 * A deviation's why: a rule's list entry (a glob or path, RULE_GLOB_MAX) or
 * the defender's reason for applying less than the rule wanted.
 */
#define LEARN_WHY_MAX RULE_GLOB_MAX

/* 9999-12-31T23:59:59.999Z in ms: anything later is a defender's bug, not a time. */
#define LEARN_MS_MAX 253402300799999ull

/* ms since the epoch as a timestamptz parameter; 0 means "not set" (NULL). */
#define MS_TS(p)                                                                                   \
	"CASE WHEN " p "::bigint = 0 THEN NULL"                                                    \
	" ELSE to_timestamp(" p "::bigint / 1000::double precision) END"

static const char *const deviation_kinds[] = {"new_program",
					      "new_write",
					      "sensitive_read",
					      "new_listen",
					      "new_peer",
					      "new_client",
					      "new_read",
					      "rewritten_argument",
					      "denied_program",
					      "denied_read",
					      "denied_write",
					      "denied_connect",
					      "denied_listen",
					      "enforcement_failed_open",
					      NULL};
/* The first of the kinds a rule's deny list gives (denied_*): the rest of the list. */
#define DEVIATION_DENIED_FIRST 8
/*
 * What a deviation of each kind (same order) did, for its one-line summary:
 * as it happened ("started"), and as what was stopped ("prevented from
 * starting").
 */
static const struct {
	const char *did, *doing;
} deviation_verbs[] = {
    {"started", "starting"},
    {"wrote", "writing"},
    {"read the sensitive file", "reading the sensitive file"},
    {"listened on", "listening on"},
    {"connected to", "connecting to"},
    {"accepted a connection from", "accepting a connection from"},
    {"read", "reading"},
    {"rewrote a call's argument while the call ran:",
     "rewriting a call's argument while the call ran:"},
    {"started", "starting"},
    {"read", "reading"},
    {"wrote", "writing"},
    {"connected to", "connecting to"},
    {"listened on", "listening on"},
    {"was let through undecided (fail-open):", "being let through undecided:"},
};
_Static_assert(sizeof(deviation_verbs) / sizeof(deviation_verbs[0]) ==
		   sizeof(deviation_kinds) / sizeof(deviation_kinds[0]) - 1,
	       "a verb for every deviation kind");
/* Effects a rule may have applied or wanted; "" is alert (a defender from before rules). */
static const char *const effects[] = {"alert", "prevent", "block", NULL};
/*
 * How the summary goes on after what was done: a model's deviation says it
 * is not in the model, unless it is a rewritten argument (an attack sign
 * whatever the model holds); a deny list's says so when the act happened.
 */
static const char *deviation_tail(int kind, bool happened)
{
	if (strcmp(deviation_kinds[kind], "enforcement_failed_open") == 0)
		return "";
	if (kind >= DEVIATION_DENIED_FIRST)
		return happened ? ", on a deny list" : "";
	return strcmp(deviation_kinds[kind], "rewritten_argument") == 0 ? "" : ", not in its model";
}
static const char *const entry_kinds[] = {"program", "write",  "sensitive_read", "listen",
					  "connect", "accept", "read",		 NULL};
static const char *const severities[] = {"low", "medium", "high", NULL};
static const char *const states[] = {"learning", "active", NULL};
static const char *const container_runtimes[] = {"",	       "docker", "podman",
						 "containerd", "cri-o",	 NULL};

static bool empty_text(const char *s)
{
	return s == NULL || s[0] == '\0';
}

static int name_index(const char *const *set, const char *s)
{
	for (int i = 0; s != NULL && set[i] != NULL; i++)
		if (strcmp(set[i], s) == 0)
			return i;
	return -1;
}

bool store_text_ok(const char *s, size_t max, bool required, char *why, size_t whylen)
{
	size_t len = s != NULL ? strlen(s) : 0;

	if (len == 0 && required)
		snprintf(why, whylen, "is missing or empty");
	else if (len > max)
		snprintf(why, whylen, "is longer than %zu bytes", max);
	else if (len > 0 && !utf8_valid(s, len))
		snprintf(why, whylen, "is not valid UTF-8");
	else
		return true;
	return false;
}

void store_utf8_trim(char *s)
{
	size_t n = strlen(s);

	/* A UTF-8 character is at most 4 bytes: at most 3 of a cut one remain. */
	for (int i = 0; i < 4 && !utf8_valid(s, n); i++)
		s[n > 0 ? --n : 0] = '\0';
	if (!utf8_valid(s, n))
		s[0] = '\0';
}

void problems_add(struct ingest_problems *p, const char *field, const char *why)
{
	if (p->count++ == 0) {
		snprintf(p->first, sizeof(p->first), "%s %s", field, why);
		store_utf8_trim(p->first);
	}
	if (p->count > PROBLEMS_LISTED_MAX)
		return;
	if (p->list == NULL)
		p->list = json_array();
	/* On failure (out of memory) the problem is still counted. */
	json_array_append_new(p->list, json_pack("{s:s,s:s}", "field", field, "why", why));
}

void problems_reset(struct ingest_problems *p)
{
	json_decref(p->list);
	memset(p, 0, sizeof(*p));
}

/* List item prefix's field name as left out for why; returns false for "not ok". */
static bool refuse(struct ingest_problems *p, const char *prefix, const char *name, const char *why)
{
	char field[160];

	snprintf(field, sizeof(field), "%s.%s", prefix, name);
	problems_add(p, field, why);
	return false;
}

static bool text_ok(struct ingest_problems *p, const char *prefix, const char *name, const char *s,
		    size_t max, bool required)
{
	char why[64];

	return store_text_ok(s, max, required, why, sizeof(why)) || refuse(p, prefix, name, why);
}

bool learning_activity_ok(const struct store_activity *a, size_t idx, struct ingest_problems *p)
{
	char prefix[48];

	snprintf(prefix, sizeof(prefix), "event[%zu].activity", idx);
	if (a->session > INT32_MAX)
		return refuse(p, prefix, "session", "is larger than 2147483647");
	return text_ok(p, prefix, "user", a->user, LEARN_USER_MAX, false) &&
	       text_ok(p, prefix, "tty", a->tty, LEARN_USER_MAX, false) &&
	       text_ok(p, prefix, "summary", a->summary, LEARN_SUMMARY_MAX, false);
}

/* A container's name or image: empty, or printable ASCII without spaces, at most max bytes. */
static bool container_text_ok(struct ingest_problems *p, const char *prefix, const char *name,
			      const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	if (n > LEARN_CONTAINER_MAX)
		return refuse(p, prefix, name, "is longer than 255 bytes");
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return refuse(p, prefix, name, "is not printable ASCII without spaces");
	return true;
}

/* The container fields of a deviation (ingest.h): all "", or an id and what is known. */
static bool container_ok(const struct store_deviation *d, struct ingest_problems *p,
			 const char *prefix)
{
	const char *id = d->container_id != NULL ? d->container_id : "";
	size_t n = strlen(id);

	if (n != 0 && n != 64)
		return refuse(p, prefix, "container_id", "is not 64 lowercase hex digits");
	for (size_t i = 0; i < n; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return refuse(p, prefix, "container_id", "is not 64 lowercase hex digits");
	if (!container_text_ok(p, prefix, "container_name", d->container_name) ||
	    !container_text_ok(p, prefix, "container_image", d->container_image))
		return false;
	if (name_index(container_runtimes,
		       d->container_runtime != NULL ? d->container_runtime : "") < 0)
		return refuse(p, prefix, "container_runtime",
			      "is not docker, podman, containerd, cri-o or empty");
	if (n == 0 && (!empty_text(d->container_name) || !empty_text(d->container_image) ||
		       !empty_text(d->container_runtime)))
		return refuse(p, prefix, "container_id", "is missing: the container has a name");
	return true;
}

/* An effect word, or "" (s may be NULL); refuses field name of prefix when not. */
static bool effect_ok(struct ingest_problems *p, const char *prefix, const char *name,
		      const char *s)
{
	return s == NULL || s[0] == '\0' || name_index(effects, s) >= 0 ||
	       refuse(p, prefix, name, "is not alert, prevent, block or empty");
}

static bool deviation_ok(const struct store_deviation *d, size_t i, struct ingest_problems *p)
{
	char prefix[48], link[80], why[160];
	int kind = name_index(deviation_kinds, d->kind);

	snprintf(prefix, sizeof(prefix), "deviation[%zu]", i);
	if (d->ts_ns == 0)
		return refuse(p, prefix, "ts_ns", "is 0");
	/* A deny list also stops interactive processes, which have no service. */
	if (!text_ok(p, prefix, "service", d->service, LEARN_SERVICE_MAX,
		     kind < DEVIATION_DENIED_FIRST) ||
	    !text_ok(p, prefix, "exe", d->exe, LEARN_PATH_MAX, true))
		return false;
	if (kind < 0)
		return refuse(p, prefix, "kind",
			      "is not new_program, new_write, sensitive_read, new_listen, new_peer,"
			      " new_client, new_read, rewritten_argument, denied_program,"
			      " denied_read, denied_write, denied_connect or denied_listen");
	if (!text_ok(p, prefix, "object", d->object, LEARN_PATH_MAX, true) ||
	    !text_ok(p, prefix, "raw", d->raw, LEARN_PATH_MAX, false) ||
	    !text_ok(p, prefix, "expected", d->expected, LEARN_EXPECTED_MAX, false))
		return false;
	if (name_index(severities, d->severity) < 0)
		return refuse(p, prefix, "severity", "is not low, medium or high");
	if (d->nchain > LEARN_CHAIN_MAX)
		return refuse(p, prefix, "chain", "has more than 64 links");
	if (d->nchain > 0 && d->chain == NULL)
		return refuse(p, prefix, "chain", "is missing");
	for (size_t j = 0; j < d->nchain; j++) {
		snprintf(link, sizeof(link), "%s.chain[%zu]", prefix, j);
		if (!text_ok(p, link, "comm", d->chain[j].comm, LEARN_COMM_MAX, false) ||
		    !text_ok(p, link, "exe", d->chain[j].exe, LEARN_PATH_MAX, false))
			return false;
	}
	/* The rule's name as the console's rules have it (rule_check_name's why never quotes). */
	if (!text_ok(p, prefix, "rule", d->rule, RULE_NAME_MAX, false))
		return false;
	if (d->rule != NULL && d->rule[0] != '\0' && !rule_check_name(d->rule, why, sizeof(why)))
		return refuse(p, prefix, "rule", why);
	return effect_ok(p, prefix, "effect", d->effect) &&
	       effect_ok(p, prefix, "wanted", d->wanted) &&
	       text_ok(p, prefix, "why", d->why, LEARN_WHY_MAX, false) &&
	       container_ok(d, p, prefix);
}

/* RFC 3339 UTC with digits (6 or 9) fractional digits. */
static void format_ts(uint64_t ts_ns, int digits, char *buf, size_t len)
{
	time_t sec = (time_t)(ts_ns / 1000000000ull);
	unsigned frac = (unsigned)(ts_ns % 1000000000ull);
	struct tm tm;

	char date[64];

	gmtime_r(&sec, &tm);
	/* strftime: the year of a hostile timestamp cannot overrun a fixed-width field. */
	if (strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		date[0] = '\0';
	snprintf(buf, len, "%s.%0*uZ", date, digits, digits == 9 ? frac : frac / 1000);
}

/* Bytes of valid UTF-8 s to keep for at most max bytes without splitting a character. */
static int utf8_prefix(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n <= max)
		return (int)n;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return (int)n;
}

static const char *or_empty(const char *s)
{
	return s != NULL ? s : "";
}

static bool empty(const char *s)
{
	return s == NULL || s[0] == '\0';
}

/* s as a JSON string, or null when it is empty (a column left NULL). */
static json_t *text_or_null(const char *s)
{
	return empty(s) ? json_null() : json_string(s);
}

/*
 * The one-line summary of checked deviation d (kind its index) into buf:
 * who did what and, when a rule decided, its effect and name, e.g.
 *   nginx.service: /usr/sbin/nginx started /bin/sh, not in its model
 *   nginx.service: /usr/sbin/nginx was prevented from starting /bin/sh (rule "web-no-shells")
 *   /usr/bin/nc connected to 10.0.0.9:4444, on a deny list (rule "no-egress", wanted prevent)
 * An operator reads it in a list; the detail keeps every byte.
 */
static void deviation_summary(const struct store_deviation *d, int kind, const char *effect,
			      char *buf, size_t len)
{
	const char *what = !empty(d->raw) ? d->raw : d->object;
	bool happened = strcmp(effect, "alert") == 0;
	char act[2200], rule[200] = "";

	if (happened)
		snprintf(act, sizeof(act), "%s %.*s%s", deviation_verbs[kind].did,
			 utf8_prefix(what, 1024), what, strlen(what) > 1024 ? "..." : "");
	else
		snprintf(act, sizeof(act), "%s %s %.*s%s",
			 strcmp(effect, "block") == 0 ? "was killed for" : "was prevented from",
			 deviation_verbs[kind].doing, utf8_prefix(what, 1024), what,
			 strlen(what) > 1024 ? "..." : "");
	if (!empty(d->rule) && !empty(d->wanted))
		snprintf(rule, sizeof(rule), " (rule \"%s\", wanted %s)", d->rule, d->wanted);
	else if (!empty(d->rule))
		snprintf(rule, sizeof(rule), " (rule \"%s\")", d->rule);
	else if (!empty(d->wanted))
		snprintf(rule, sizeof(rule), " (wanted %s)", d->wanted);
	snprintf(buf, len, "%s%s%.*s%s %s%s%s", or_empty(d->service), empty(d->service) ? "" : ": ",
		 utf8_prefix(d->exe, 1024), d->exe, strlen(d->exe) > 1024 ? "..." : "", act,
		 deviation_tail(kind, happened), rule);
}

/* The audit row of a checked deviation, as an object for the insert's JSON parameter. */
static json_t *deviation_row(const struct store_deviation *d)
{
	char ts_us[40], ts_ns[40], summary[3200];
	int kind = name_index(deviation_kinds, d->kind);
	const char *effect = empty(d->effect) ? "alert" : d->effect;
	json_t *chain = json_array(), *detail;

	deviation_summary(d, kind, effect, summary, sizeof(summary));
	for (size_t j = 0; j < d->nchain; j++)
		json_array_append_new(
		    chain, json_pack("{s:I,s:s,s:s}", "pid", (json_int_t)d->chain[j].pid, "comm",
				     or_empty(d->chain[j].comm), "exe", or_empty(d->chain[j].exe)));
	if (chain == NULL || json_array_size(chain) != d->nchain) {
		json_decref(chain);
		return NULL;
	}
	format_ts(d->ts_ns, 6, ts_us, sizeof(ts_us));
	format_ts(d->ts_ns, 9, ts_ns, sizeof(ts_ns));
	detail = json_pack("{s:s,s:s,s:s,s:I,s:o,s:s}", "object", d->object, "raw",
			   or_empty(d->raw), "expected", or_empty(d->expected), "pid",
			   (json_int_t)d->pid, "chain", chain, "ts", ts_ns);
	if (detail == NULL)
		return NULL;
	/* Only what a rule said: a model's plain deviation keeps the detail it always had. */
	if ((!empty(d->wanted) &&
	     json_object_set_new(detail, "wanted", json_string(d->wanted)) < 0) ||
	    (!empty(d->why) && json_object_set_new(detail, "why", json_string(d->why)) < 0)) {
		json_decref(detail);
		return NULL;
	}
	/* No service (an interactive process stopped by a deny list): NULL, as other audits. */
	return json_pack(
	    "{s:s,s:s,s:s,s:s,s:o,s:o,s:s,s:o,s:s,s:o,s:o,s:o,s:o}", "ts", ts_us, "kind", d->kind,
	    "severity", d->severity, "summary", summary, "detail", detail, "service",
	    empty(d->service) ? json_null() : json_string(d->service), "exe", d->exe, "rule",
	    empty(d->rule) ? json_null() : json_string(d->rule), "effect", effect, "container_id",
	    text_or_null(d->container_id), "container_name", text_or_null(d->container_name),
	    "container_image", text_or_null(d->container_image), "container_runtime",
	    text_or_null(d->container_runtime));
}

int learning_store_deviations(struct store *st, const char *host_id,
			      const struct store_deviation *devs, size_t n,
			      struct ingest_problems *p, size_t *ret_stored, vigil_err *err)
{
	/* ORDER BY ord: ids follow the batch's order. */
	static const char sql[] =
	    "INSERT INTO audits (host_id, ts, kind, severity, summary, detail, service, exe,"
	    " rule, effect, container_id, container_name, container_image, container_runtime)"
	    " SELECT $1, (e->>'ts')::timestamptz, e->>'kind', e->>'severity', e->>'summary',"
	    " (e->'detail')::jsonb, e->>'service', e->>'exe', e->>'rule', e->>'effect',"
	    " e->>'container_id', e->>'container_name', e->>'container_image',"
	    " e->>'container_runtime'"
	    " FROM json_array_elements($2::json) WITH ORDINALITY AS t(e, ord) ORDER BY ord";
	json_t *rows = json_array();
	const char *params[2] = {host_id, NULL};
	char *text;
	int rc;

	*ret_stored = 0;
	for (size_t i = 0; i < n && rows != NULL; i++) {
		json_t *row;

		if (!deviation_ok(&devs[i], i, p))
			continue;
		row = deviation_row(&devs[i]);
		if (row == NULL || json_array_append_new(rows, row) < 0) {
			json_decref(rows);
			rows = NULL;
		}
	}
	if (rows == NULL)
		return verr_set(err, -ENOMEM, "out of memory storing deviations");
	if (json_array_size(rows) == 0) {
		json_decref(rows);
		return 0;
	}
	*ret_stored = json_array_size(rows);
	text = json_dumps(rows, JSON_COMPACT);
	json_decref(rows);
	if (text == NULL)
		return verr_set(err, -ENOMEM, "out of memory storing deviations");
	params[1] = text;
	rc = store_cmd(st, "storing deviations", sql, 2, params, false, err);
	free(text);
	return rc;
}

static bool delta_ok(const struct store_model_delta *d, size_t i, struct ingest_problems *p)
{
	char prefix[48];

	snprintf(prefix, sizeof(prefix), "model[%zu]", i);
	if (!text_ok(p, prefix, "service", d->service, LEARN_SERVICE_MAX, true))
		return false;
	if (name_index(states, d->state) < 0)
		return refuse(p, prefix, "state", "is not learning or active");
	if (d->learning_since_ms > LEARN_MS_MAX)
		return refuse(p, prefix, "learning_since_ms", "is after the year 9999");
	if (d->active_since_ms > LEARN_MS_MAX)
		return refuse(p, prefix, "active_since_ms", "is after the year 9999");
	if (d->learn_until_ms > LEARN_MS_MAX)
		return refuse(p, prefix, "learn_until_ms", "is after the year 9999");
	if (d->learn_drops > (uint64_t)INT64_MAX)
		return refuse(p, prefix, "learn_drops", "is larger than 9223372036854775807");
	if (!text_ok(p, prefix, "note", d->note, LEARN_NOTE_MAX, false))
		return false;
	if (d->nentries > LEARN_DELTA_ENTRIES_MAX)
		return refuse(p, prefix, "entries", "has more than 20000 entries");
	if (d->nentries > 0 && d->entries == NULL)
		return refuse(p, prefix, "entries", "is missing");
	return true;
}

static bool entry_ok(const struct store_model_entry *e, size_t i, size_t j,
		     struct ingest_problems *p)
{
	char prefix[64];

	snprintf(prefix, sizeof(prefix), "model[%zu].entries[%zu]", i, j);
	if (!text_ok(p, prefix, "exe", e->exe, LEARN_PATH_MAX, true))
		return false;
	if (name_index(entry_kinds, e->kind) < 0)
		return refuse(
		    p, prefix, "kind",
		    "is not program, write, sensitive_read, listen, connect, accept or read");
	if (!text_ok(p, prefix, "pattern", e->pattern, LEARN_PATH_MAX, true))
		return false;
	if (e->first_seen_ms > LEARN_MS_MAX)
		return refuse(p, prefix, "first_seen_ms", "is after the year 9999");
	if (e->last_seen_ms > LEARN_MS_MAX)
		return refuse(p, prefix, "last_seen_ms", "is after the year 9999");
	if (e->count > (uint64_t)INT64_MAX)
		return refuse(p, prefix, "count", "is larger than 9223372036854775807");
	return true;
}

/* Upsert the models row of a checked delta; *ret_id gets its id. */
static int delta_upsert(struct store *st, const char *host_id, const struct store_model_delta *d,
			char ret_id[24], vigil_err *err)
{
	/* learn_until 0: unknown (an older defender, or active), NULL. */
	static const char sql[] = "INSERT INTO models (host_id, service, state, learning_since, "
				  "active_since,"
				  " learn_drops, note, learn_until, updated_at) VALUES ($1, $2, "
				  "$3, " MS_TS("$4") ", " MS_TS("$5") ", $6::bigint, $7, " MS_TS(
				      "$8") ", now())"
					    " ON CONFLICT (host_id, service) DO UPDATE"
					    " SET state = EXCLUDED.state,"
					    " learning_since = EXCLUDED.learning_since,"
					    " active_since = EXCLUDED.active_since,"
					    " learn_drops = EXCLUDED.learn_drops, note = "
					    "EXCLUDED.note,"
					    " learn_until = EXCLUDED.learn_until, updated_at = "
					    "now()"
					    " RETURNING id";
	char learning[24], active[24], drops[24], until[24];
	const char *params[8] = {host_id, d->service, d->state,		 learning,
				 active,  drops,      or_empty(d->note), until};
	PGresult *res = NULL;
	int rc;

	snprintf(learning, sizeof(learning), "%" PRIu64, d->learning_since_ms);
	snprintf(active, sizeof(active), "%" PRIu64, d->active_since_ms);
	snprintf(until, sizeof(until), "%" PRIu64, d->learn_until_ms);
	snprintf(drops, sizeof(drops), "%" PRIu64, d->learn_drops);
	rc = store_exec(st, "storing a model", sql, 8, params, PGRES_TUPLES_OK, false, &res, err);
	if (rc < 0)
		return rc;
	snprintf(ret_id, 24, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

/*
 * Apply a delta's entries (JSON array of checked ones) to model id.  The
 * last occurrence of a key wins (DISTINCT ON ... ord DESC), which is what
 * applying them one by one in order would leave; removals and upserts then
 * touch disjoint keys, so one statement can do both.
 */
static int delta_entries(struct store *st, const char *id, const char *rows, size_t *ret_changed,
			 vigil_err *err)
{
	static const char sql[] =
	    "WITH d AS (SELECT DISTINCT ON (e->>'x', e->>'k', e->>'p')"
	    " e->>'x' AS exe, e->>'k' AS kind, e->>'p' AS pattern, (e->>'f')::bigint AS f,"
	    " (e->>'l')::bigint AS l, (e->>'c')::bigint AS c, (e->>'r')::boolean AS r"
	    " FROM json_array_elements($2::json) WITH ORDINALITY AS t(e, ord)"
	    " ORDER BY e->>'x', e->>'k', e->>'p', ord DESC),"
	    " gone AS (DELETE FROM model_entries m USING d WHERE d.r AND m.model_id = $1::bigint"
	    " AND m.exe = d.exe AND m.kind = d.kind AND m.pattern = d.pattern RETURNING 1),"
	    " up AS (INSERT INTO model_entries (model_id, exe, kind, pattern, first_seen,"
	    " last_seen, count) SELECT $1::bigint, exe, kind, pattern, " MS_TS("f") ", " MS_TS(
		"l") ", c FROM d WHERE NOT r ON CONFLICT (model_id, exe, kind, pattern) DO UPDATE "
		     "SET"
		     " first_seen = EXCLUDED.first_seen, last_seen = EXCLUDED.last_seen,"
		     " count = EXCLUDED.count RETURNING 1)"
		     " SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM up)";
	const char *params[2] = {id, rows};
	PGresult *res = NULL;
	int rc;

	rc = store_exec(st, "storing model entries", sql, 2, params, PGRES_TUPLES_OK, false, &res,
			err);
	if (rc < 0)
		return rc;
	*ret_changed += (size_t)strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

/* The checked entries of delta i as compact JSON text (caller frees); NULL when out of memory. */
static char *delta_rows(const struct store_model_delta *d, size_t i, struct ingest_problems *p,
			size_t *ret_n)
{
	json_t *rows = json_array();
	char *text;

	for (size_t j = 0; j < d->nentries && rows != NULL; j++) {
		const struct store_model_entry *e = &d->entries[j];
		json_t *row;

		if (!entry_ok(e, i, j, p))
			continue;
		row = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:b}", "x", e->exe, "k", e->kind, "p",
				e->pattern, "f", (json_int_t)e->first_seen_ms, "l",
				(json_int_t)e->last_seen_ms, "c", (json_int_t)e->count, "r",
				e->removed);
		if (row == NULL || json_array_append_new(rows, row) < 0) {
			json_decref(rows);
			rows = NULL;
		}
	}
	if (rows == NULL)
		return NULL;
	*ret_n = json_array_size(rows);
	text = json_dumps(rows, JSON_COMPACT);
	json_decref(rows);
	return text;
}

int learning_store_deltas(struct store *st, const char *host_id,
			  const struct store_model_delta *deltas, size_t n,
			  struct ingest_problems *p, size_t *ret_deltas, size_t *ret_entries,
			  vigil_err *err)
{
	static const char reset_sql[] = "DELETE FROM model_entries WHERE model_id = $1::bigint";
	int rc = 0;

	*ret_deltas = 0;
	*ret_entries = 0;
	/* In order: a later delta of the same service sees what an earlier one did. */
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct store_model_delta *d = &deltas[i];
		char id[24], *rows;
		const char *params[1] = {id};
		size_t nrows = 0;

		if (!delta_ok(d, i, p))
			continue;
		if ((rc = delta_upsert(st, host_id, d, id, err)) < 0)
			break;
		if (d->reset &&
		    (rc = store_cmd(st, "resetting a model", reset_sql, 1, params, false, err)) < 0)
			break;
		if ((rows = delta_rows(d, i, p, &nrows)) == NULL) {
			rc = verr_set(err, -ENOMEM, "out of memory storing model entries");
			break;
		}
		if (nrows > 0)
			rc = delta_entries(st, id, rows, ret_entries, err);
		free(rows);
		if (rc == 0)
			(*ret_deltas)++;
	}
	return rc;
}
