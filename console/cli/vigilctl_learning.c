/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vigilctl's learning commands:
 *
 *   models [filters] [--json]   the models, one line each
 *   model ID [--json]           one model, per executable and kind
 *   relearn ID                  queue a relearn for the model's defender
 *   activity [filters] [--json] the interactive sessions' activity log
 *   sessions [filters] [--json] the interactive sessions, one line each
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/vigilctl.h"

static long long int_field(json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

static void print_json(json_t *v)
{
	json_dumpf(v, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
	putchar('\n');
}

/* A model id argument: digits only, as the API wants it. */
static bool model_id_arg(const char *cmd, const char *s)
{
	if (s[0] != '\0' && strspn(s, "0123456789") == strlen(s) && strlen(s) <= 19)
		return true;
	fprintf(stderr, "vigilctl %s: '%s' is not a model id (see vigilctl models)\n", cmd, s);
	return false;
}

int ctl_cmd_models(struct ctl *c, int argc, char **argv)
{
	static const char *const params[] = {"host",  "service",   "state",
					     "limit", "before-id", NULL};
	char path[4096] = "/api/v1/models";
	json_t *doc, *models, *m;
	bool json_out, pending = false;
	size_t i;
	int rc;

	if ((rc = ctl_query_opts("models", argc, argv, params, path, sizeof(path), &json_out)) != 0)
		return rc;
	if ((doc = ctl_get_json(c, path)) == NULL)
		return ctl_failure(c);
	models = json_object_get(doc, "models");
	if (json_out) {
		print_json(models);
		json_decref(doc);
		return 0;
	}
	printf("%-6s %-20s %-32s %-9s %-20s %-8s %s\n", "ID", "HOST", "SERVICE", "STATE", "SINCE",
	       "ENTRIES", "DROPS");
	json_array_foreach(models, i, m)
	{
		bool active = strcmp(ctl_str(m, "state"), "active") == 0;
		bool relearn = json_is_true(json_object_get(m, "relearn_pending"));
		const char *since = ctl_str(m, active ? "active_since" : "learning_since");
		char state[16];

		/* A relearn the defender has not carried out yet: marked, explained below. */
		snprintf(state, sizeof(state), "%s%s", ctl_str(m, "state"), relearn ? "*" : "");
		pending |= relearn;
		/* Seconds are precise enough for a table; --json has the microseconds. */
		printf("%-6lld %-20s %-32s %-9s %-19.19s%-1s %-8lld %lld\n", int_field(m, "id"),
		       ctl_str(m, "host"), ctl_str(m, "service"), state, since,
		       strcmp(since, "-") != 0 ? "Z" : "", int_field(m, "entries"),
		       int_field(m, "learn_drops"));
	}
	printf("%zu model(s)\n", json_array_size(models));
	if (pending)
		printf("* relearn requested, not yet carried out by the host's defender\n");
	json_decref(doc);
	return 0;
}

/* A time field to the second ("2025-11-28T20:44:48Z"), or "-"; into buf. */
static const char *ts_short(json_t *o, const char *k, char buf[24])
{
	const char *v = ctl_str(o, k);

	if (strlen(v) < 19)
		return v;
	snprintf(buf, 24, "%.19sZ", v);
	return buf;
}

static void print_model_head(json_t *m)
{
	bool active = strcmp(ctl_str(m, "state"), "active") == 0;
	const char *note = ctl_str(m, "note");
	char t1[24], t2[24];

	printf("model %lld: %s on %s\n", int_field(m, "id"), ctl_str(m, "service"),
	       ctl_str(m, "host"));
	if (active)
		printf("state:       active since %s (learning since %s)\n",
		       ts_short(m, "active_since", t1), ts_short(m, "learning_since", t2));
	else
		printf("state:       learning since %s\n", ts_short(m, "learning_since", t1));
	printf("learn drops: %lld%s\n", int_field(m, "learn_drops"),
	       int_field(m, "learn_drops") > 0 ? " (events lost while learning)" : "");
	if (note[0] != '\0' && strcmp(note, "-") != 0)
		printf("note:        %s\n", note);
	printf("entries:     %lld (updated %s)\n", int_field(m, "entries"),
	       ts_short(m, "updated_at", t1));
	if (json_is_true(json_object_get(m, "relearn_pending")))
		printf("relearn:     requested, not yet carried out by the host's defender\n");
	if (json_is_true(json_object_get(m, "truncated")))
		printf("(only the first entries are shown; the model has more)\n");
}

/* One executable's entries, grouped by kind (the API sorts them by kind). */
static void print_section(json_t *sec)
{
	json_t *entries = json_object_get(sec, "entries"), *e;
	const char *kind = NULL;
	size_t i;

	printf("\n%s\n", ctl_str(sec, "exe"));
	json_array_foreach(entries, i, e)
	{
		json_t *count = json_object_get(e, "count");
		char times[32], seen[24];

		if (kind == NULL || strcmp(kind, ctl_str(e, "kind")) != 0) {
			kind = ctl_str(e, "kind");
			printf("  %s\n", kind);
		}
		if (json_is_integer(count))
			snprintf(times, sizeof(times), "%lld",
				 (long long)json_integer_value(count));
		else
			snprintf(times, sizeof(times), "-");
		printf("    %-48s count %-8s last seen %s\n", ctl_str(e, "pattern"), times,
		       ts_short(e, "last_seen", seen));
	}
}

int ctl_cmd_model(struct ctl *c, int argc, char **argv)
{
	char path[128];
	bool json_out = false;
	const char *id = NULL;
	json_t *m, *sections, *sec;
	size_t i;

	for (int k = 1; k < argc; k++) {
		if (strcmp(argv[k], "--json") == 0) {
			json_out = true;
		} else if (id == NULL && argv[k][0] != '-') {
			id = argv[k];
		} else {
			fprintf(stderr,
				"vigilctl model: unexpected '%s' (usage: model ID [--json])\n",
				argv[k]);
			return 2;
		}
	}
	if (id == NULL) {
		fprintf(stderr, "vigilctl model: which model? (usage: model ID [--json])\n");
		return 2;
	}
	if (!model_id_arg("model", id))
		return 2;
	snprintf(path, sizeof(path), "/api/v1/models/%s", id);
	if ((m = ctl_get_json(c, path)) == NULL)
		return ctl_failure(c);
	if (json_out) {
		print_json(m);
		json_decref(m);
		return 0;
	}
	print_model_head(m);
	sections = json_object_get(m, "sections");
	json_array_foreach(sections, i, sec) print_section(sec);
	json_decref(m);
	return 0;
}

int ctl_cmd_relearn(struct ctl *c, int argc, char **argv)
{
	char path[128];
	json_t *r;

	if (argc != 2) {
		fprintf(stderr, "vigilctl relearn: usage: relearn ID\n");
		return 2;
	}
	if (!model_id_arg("relearn", argv[1]))
		return 2;
	snprintf(path, sizeof(path), "/api/v1/models/%s/relearn", argv[1]);
	r = ctl_post_json(c, path,
			  "the relearn may have been queued: 'vigilctl models' marks a model whose"
			  " relearn is pending with '*'; check before asking again");
	if (r == NULL)
		return ctl_failure(c);
	if (json_is_true(json_object_get(r, "already_pending")))
		printf("a relearn of %s on %s is already pending (command %lld)\n",
		       ctl_str(r, "service"), ctl_str(r, "host"), int_field(r, "command_id"));
	else
		printf("relearn of %s on %s queued (command %lld): the defender starts learning it"
		       " again at its next heartbeat\n",
		       ctl_str(r, "service"), ctl_str(r, "host"), int_field(r, "command_id"));
	json_decref(r);
	return 0;
}

int ctl_cmd_activity(struct ctl *c, int argc, char **argv)
{
	static const char *const params[] = {"host",  "user",  "session",   "q", "since",
					     "until", "limit", "before-id", NULL};
	char path[4096] = "/api/v1/activity";
	json_t *doc, *rows, *a;
	bool json_out;
	size_t i;
	int rc;

	if ((rc = ctl_query_opts("activity", argc, argv, params, path, sizeof(path), &json_out)) !=
	    0)
		return rc;
	if ((doc = ctl_get_json(c, path)) == NULL)
		return ctl_failure(c);
	rows = json_object_get(doc, "activity");
	if (json_out) {
		print_json(rows);
		json_decref(doc);
		return 0;
	}
	printf("%-8s %-20s %-20s %-12s %-8s %-8s %-5s %s\n", "ID", "TIME", "HOST", "USER",
	       "SESSION", "TTY", "TYPE", "SUMMARY");
	json_array_foreach(rows, i, a)
	{
		printf("%-8lld %-.19sZ %-20s %-12s %-8lld %-8s %-5s %s\n", int_field(a, "id"),
		       ctl_str(a, "ts"), ctl_str(a, "host"), ctl_str(a, "user"),
		       int_field(a, "session"),
		       ctl_str(a, "tty")[0] != '\0' ? ctl_str(a, "tty") : "-", ctl_str(a, "type"),
		       ctl_str(a, "summary"));
	}
	printf("%zu activity row(s)\n", json_array_size(rows));
	json_decref(doc);
	return 0;
}

int ctl_cmd_sessions(struct ctl *c, int argc, char **argv)
{
	static const char *const params[] = {"host",  "user",  "q",	    "since",
					     "until", "limit", "before-id", NULL};
	char path[4096] = "/api/v1/activity/sessions";
	json_t *doc, *rows, *s;
	bool json_out;
	size_t i;
	int rc;

	if ((rc = ctl_query_opts("sessions", argc, argv, params, path, sizeof(path), &json_out)) !=
	    0)
		return rc;
	if ((doc = ctl_get_json(c, path)) == NULL)
		return ctl_failure(c);
	rows = json_object_get(doc, "sessions");
	if (json_out) {
		print_json(rows);
		json_decref(doc);
		return 0;
	}
	printf("%-20s %-8s %-12s %-8s %-20s %-20s %8s %8s\n", "HOST", "SESSION", "USER", "TTY",
	       "FIRST", "LAST", "COMMANDS", "EVENTS");
	json_array_foreach(rows, i, s)
	{
		printf("%-20s %-8lld %-12s %-8s %-.19sZ %-.19sZ %8lld %8lld\n", ctl_str(s, "host"),
		       int_field(s, "session"), ctl_str(s, "user"),
		       ctl_str(s, "tty")[0] != '\0' ? ctl_str(s, "tty") : "-",
		       ctl_str(s, "first_ts"), ctl_str(s, "last_ts"), int_field(s, "commands"),
		       int_field(s, "events"));
	}
	printf("%zu session(s); a session's rows: vigilctl activity --host H --session N\n",
	       json_array_size(rows));
	json_decref(doc);
	return 0;
}
