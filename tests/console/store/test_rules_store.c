/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rules and rule-set versions against a real PostgreSQL.  Same fixture as
 * test_learning_store.c: one initdb per program (PRE_ALL hook), each test
 * starts its own server on it, empties schema public and migrates; a lock
 * file serializes tests that share the cluster.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "pg/pgembed.h"
#include "pgfixture.h"
#include "rules/rule.h"
#include "store/rules_store.h"
#include "store/store.h"
#include "storefixture.h"

const char pgfix_state_name[] = "state";

TestSuite(rules_store, .init = storefix_setup, .fini = storefix_teardown, .timeout = 120);

static void sql_ok(const char *sql)
{
	PGresult *res = PQexec(fx.sql, sql);
	ExecStatusType s = PQresultStatus(res);

	cr_assert(s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK, "%s: %s", sql,
		  PQresultErrorMessage(res));
	PQclear(res);
}

static const struct rules_write anyone = {.actor = "api-token", .expected_version = -1};

/* A body as the API stores it for a rule called name. */
static const char *body(const char *name)
{
	static char buf[4][256];
	static int next;
	char *b = buf[next++ % 4];

	snprintf(b, 256, "{\"name\":\"%s\",\"enabled\":true,\"comment\":\"\",\"files\":{}}", name);
	return b;
}

static int64_t add(const char *name, int position)
{
	struct rules_outcome out;
	vigil_err err = {0};
	int64_t id;

	cr_assert_eq(store_rule_add(fx.st, body(name), position, &anyone, &out, &err), 0,
		     "add %s: %s", name, err.msg);
	id = json_integer_value(json_object_get(out.rule, "id"));
	cr_assert_gt(id, 0);
	rules_outcome_fini(&out);
	return id;
}

/* The names of the rule set in order, "a,b,c", and check positions are 1..n. */
static const char *order(int64_t *ret_version)
{
	static char buf[4096];
	json_t *rules, *r;
	int64_t version;
	vigil_err err = {0};
	size_t i, o = 0;

	cr_assert_eq(store_rules_list(fx.st, &rules, &version, &err), 0, "%s", err.msg);
	buf[0] = '\0';
	json_array_foreach(rules, i, r)
	{
		cr_expect_eq(json_integer_value(json_object_get(r, "position")), (json_int_t)i + 1);
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s", i ? "," : "",
				      json_string_value(json_object_get(r, "name")));
	}
	json_decref(rules);
	if (ret_version != NULL)
		*ret_version = version;
	return buf;
}

/* The names of version v's snapshot in order. */
static const char *snapshot_order(int64_t v)
{
	static char buf[4096];
	json_t *doc, *r;
	vigil_err err = {0};
	size_t i, o = 0;

	cr_assert_eq(store_rule_version_get(fx.st, v, &doc, &err), 0, "version %" PRId64 ": %s", v,
		     err.msg);
	buf[0] = '\0';
	json_array_foreach(json_object_get(doc, "rules"), i, r)
	{
		cr_expect_eq(json_integer_value(json_object_get(r, "position")), (json_int_t)i + 1);
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s", i ? "," : "",
				      json_string_value(json_object_get(r, "name")));
	}
	cr_expect_eq(json_integer_value(json_object_get(doc, "count")), (json_int_t)i);
	json_decref(doc);
	return buf;
}

Test(rules_store, every_change_makes_the_next_version_with_the_whole_set)
{
	struct rules_outcome out;
	vigil_err err = {0};
	int64_t a, b, c, v;
	json_t *doc;

	cr_expect_str_eq(order(&v), "");
	cr_expect_eq(v, 0);
	a = add("a", 0);
	b = add("b", 0);
	c = add("c", 1);
	cr_expect_str_eq(order(&v), "c,a,b");
	cr_expect_eq(v, 3);
	cr_assert_eq(store_rule_move(fx.st, b, 1, &anyone, &out, &err), 0, "%s", err.msg);
	cr_expect_eq(out.version, 4);
	cr_expect_eq(json_integer_value(json_object_get(out.rule, "position")), 1);
	rules_outcome_fini(&out);
	cr_expect_str_eq(order(NULL), "b,c,a");
	cr_assert_eq(store_rule_edit(fx.st, a, body("a2"), 2, &anyone, &out, &err), 0, "%s",
		     err.msg);
	cr_expect_eq(out.version, 5);
	rules_outcome_fini(&out);
	cr_expect_str_eq(order(NULL), "b,a2,c");
	cr_assert_eq(store_rule_delete(fx.st, b, &anyone, &out, &err), 0, "%s", err.msg);
	cr_expect_eq(out.version, 6);
	cr_expect_str_eq(json_string_value(json_object_get(out.rule, "name")), "b");
	rules_outcome_fini(&out);
	cr_expect_str_eq(order(&v), "a2,c");
	cr_expect_eq(v, 6);

	/* Versions are dense and each holds the set as it was then. */
	cr_expect_eq(storefix_qn("SELECT count(*) FROM rule_versions"), 6);
	cr_expect_eq(storefix_qn("SELECT max(version) - min(version) + 1 FROM rule_versions"), 6);
	cr_expect_eq(storefix_qn("SELECT version FROM rule_set"), 6);
	cr_expect_str_eq(snapshot_order(1), "a");
	cr_expect_str_eq(snapshot_order(2), "a,b");
	cr_expect_str_eq(snapshot_order(3), "c,a,b");
	cr_expect_str_eq(snapshot_order(4), "b,c,a");
	cr_expect_str_eq(snapshot_order(5), "b,a2,c");
	cr_expect_str_eq(snapshot_order(6), "a2,c");

	/* What changed, who, and the rule before and after. */
	cr_assert_eq(store_rule_version_get(fx.st, 3, &doc, &err), 0, "%s", err.msg);
	cr_expect_str_eq(json_string_value(json_object_get(doc, "change")),
			 "added rule \"c\" at 1");
	cr_expect_str_eq(json_string_value(json_object_get(doc, "actor")), "api-token");
	cr_expect_str_eq(json_string_value(json_object_get(doc, "kind")), "add");
	cr_expect_eq(json_integer_value(json_object_get(doc, "rule_id")), c);
	cr_expect(json_is_null(json_object_get(doc, "before")));
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(doc, "after"), "id")), c);
	cr_expect_eq(strlen(json_string_value(json_object_get(doc, "created_at"))), 27);
	json_decref(doc);
	cr_assert_eq(store_rule_version_get(fx.st, 4, &doc, &err), 0, "%s", err.msg);
	cr_expect_str_eq(json_string_value(json_object_get(doc, "change")),
			 "moved rule \"b\" from 3 to 1");
	json_decref(doc);
	cr_assert_eq(store_rule_version_get(fx.st, 5, &doc, &err), 0, "%s", err.msg);
	cr_expect_str_eq(json_string_value(json_object_get(doc, "change")),
			 "edited rule \"a2\" (renamed from \"a\") and moved it from 3 to 2");
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(doc, "before"), "name")),
			 "a");
	cr_expect_eq(
	    json_integer_value(json_object_get(json_object_get(doc, "before"), "position")), 3);
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(doc, "after"), "name")),
			 "a2");
	json_decref(doc);
	cr_assert_eq(store_rule_version_get(fx.st, 6, &doc, &err), 0, "%s", err.msg);
	cr_expect_str_eq(json_string_value(json_object_get(doc, "change")),
			 "deleted rule \"b\" (was at 1)");
	cr_expect(json_is_null(json_object_get(doc, "after")));
	json_decref(doc);

	/* The list: newest first, paged. */
	cr_assert_eq(store_rule_versions_list(fx.st, 0, 2, &doc, &v, &err), 0, "%s", err.msg);
	cr_expect_eq(v, 6);
	cr_assert_eq(json_array_size(doc), 2);
	cr_expect_eq(json_integer_value(json_object_get(json_array_get(doc, 0), "version")), 6);
	cr_expect_eq(json_integer_value(json_object_get(json_array_get(doc, 0), "count")), 2);
	cr_expect(json_is_true(json_object_get(json_array_get(doc, 0), "snapshot_kept")));
	json_decref(doc);
	cr_assert_eq(store_rule_versions_list(fx.st, 2, 100, &doc, &v, &err), 0, "%s", err.msg);
	cr_assert_eq(json_array_size(doc), 1);
	cr_expect_eq(json_integer_value(json_object_get(json_array_get(doc, 0), "version")), 1);
	json_decref(doc);
	cr_expect_eq(store_rule_version_get(fx.st, 7, &doc, &err), -ENOENT);
}

Test(rules_store, a_change_that_changes_nothing_makes_no_version)
{
	struct rules_outcome out;
	vigil_err err = {0};
	int64_t a = add("a", 0);

	add("b", 0);
	cr_assert_eq(store_rule_edit(fx.st, a, body("a"), 0, &anyone, &out, &err), 0, "%s",
		     err.msg);
	cr_expect(out.unchanged);
	cr_expect_eq(out.version, 2);
	rules_outcome_fini(&out);
	cr_assert_eq(store_rule_move(fx.st, a, 1, &anyone, &out, &err), 0, "%s", err.msg);
	cr_expect(out.unchanged);
	rules_outcome_fini(&out);
	/* Key order is no change: the database compares the JSON, not the text. */
	cr_assert_eq(
	    store_rule_edit(fx.st, a,
			    "{\"files\":{},\"comment\":\"\",\"enabled\":true,\"name\":\"a\"}", 0,
			    &anyone, &out, &err),
	    0, "%s", err.msg);
	cr_expect(out.unchanged);
	rules_outcome_fini(&out);
	cr_expect_eq(storefix_qn("SELECT count(*) FROM rule_versions"), 2);
}

Test(rules_store, refused_changes_change_nothing)
{
	struct rules_outcome out;
	vigil_err err = {0};
	int64_t a = add("a", 0), b = add("b", 0);

	cr_expect_eq(store_rule_add(fx.st, body("a"), 0, &anyone, &out, &err), -EEXIST);
	cr_expect_eq(out.conflict_id, a);
	cr_expect(strstr(err.msg, "a rule named \"a\" already exists") != NULL, "%s", err.msg);
	rules_outcome_fini(&out);
	cr_expect_eq(store_rule_edit(fx.st, b, body("a"), 0, &anyone, &out, &err), -EEXIST);
	cr_expect_eq(out.conflict_id, a);
	rules_outcome_fini(&out);
	cr_expect_eq(store_rule_add(fx.st, body("c"), 4, &anyone, &out, &err), -ERANGE);
	cr_expect_eq(out.count, 2);
	rules_outcome_fini(&out);
	cr_expect_eq(store_rule_move(fx.st, a, 3, &anyone, &out, &err), -ERANGE);
	rules_outcome_fini(&out);
	cr_expect_eq(store_rule_move(fx.st, a, 0, &anyone, &out, &err), -ERANGE);
	cr_expect_eq(store_rule_edit(fx.st, a, body("a"), 5, &anyone, &out, &err), -ERANGE);
	rules_outcome_fini(&out);
	cr_expect_eq(store_rule_edit(fx.st, 999, body("z"), 0, &anyone, &out, &err), -ENOENT);
	cr_expect_eq(store_rule_move(fx.st, 999, 1, &anyone, &out, &err), -ENOENT);
	cr_expect_eq(store_rule_delete(fx.st, 999, &anyone, &out, &err), -ENOENT);
	{
		json_t *r;
		int64_t v;

		cr_expect_eq(store_rule_get(fx.st, 999, &r, &v, &err), -ENOENT);
		cr_assert_eq(store_rule_get(fx.st, b, &r, &v, &err), 0, "%s", err.msg);
		cr_expect_str_eq(json_string_value(json_object_get(r, "name")), "b");
		cr_expect_eq(v, 2);
		json_decref(r);
	}
	/* The connection is usable after every refusal, and nothing moved. */
	cr_expect_str_eq(order(NULL), "a,b");
	cr_expect_eq(storefix_qn("SELECT count(*) FROM rule_versions"), 2);
	cr_expect_eq(storefix_qn("SELECT version FROM rule_set"), 2);
}

Test(rules_store, an_expected_version_that_moved_on_is_a_conflict)
{
	struct rules_write w = anyone;
	struct rules_outcome out;
	vigil_err err = {0};
	int64_t a = add("a", 0);

	w.expected_version = 1;
	cr_assert_eq(store_rule_move(fx.st, a, 1, &w, &out, &err), 0, "%s", err.msg);
	rules_outcome_fini(&out);
	cr_assert_eq(store_rule_add(fx.st, body("b"), 0, &w, &out, &err), 0, "%s", err.msg);
	cr_expect_eq(out.version, 2);
	rules_outcome_fini(&out);
	/* Still expecting 1: the set is at 2 now. */
	cr_expect_eq(store_rule_add(fx.st, body("c"), 0, &w, &out, &err), -ESTALE);
	cr_expect_eq(out.version, 2);
	cr_expect(strstr(err.msg, "version 2, not 1") != NULL, "%s", err.msg);
	cr_expect_eq(store_rule_delete(fx.st, a, &w, &out, &err), -ESTALE);
	cr_expect_eq(store_rule_edit(fx.st, a, body("x"), 0, &w, &out, &err), -ESTALE);
	cr_expect_str_eq(order(NULL), "a,b");
}

Test(rules_store, a_repeated_request_id_replays_instead_of_changing_again)
{
	struct rules_write w = anyone;
	struct rules_outcome out;
	vigil_err err = {0};
	int64_t id;

	w.request_id = "req-0123456789abcdef";
	cr_assert_eq(store_rule_add(fx.st, body("a"), 0, &w, &out, &err), 0, "%s", err.msg);
	cr_expect_not(out.replayed);
	id = json_integer_value(json_object_get(out.rule, "id"));
	rules_outcome_fini(&out);
	/* The answer was lost; the client sends it again. */
	cr_assert_eq(store_rule_add(fx.st, body("a"), 0, &w, &out, &err), 0, "%s", err.msg);
	cr_expect(out.replayed);
	cr_expect_eq(out.version, 1);
	cr_expect_eq(json_integer_value(json_object_get(out.rule, "id")), id);
	rules_outcome_fini(&out);
	cr_expect_eq(storefix_qn("SELECT count(*) FROM rules"), 1);
	/* The same id for another kind of change is refused. */
	cr_expect_eq(store_rule_delete(fx.st, id, &w, &out, &err), -EALREADY);
	/* A delete replays with the rule as it was. */
	w.request_id = "req-delete-00000001";
	cr_assert_eq(store_rule_delete(fx.st, id, &w, &out, &err), 0, "%s", err.msg);
	rules_outcome_fini(&out);
	cr_assert_eq(store_rule_delete(fx.st, id, &w, &out, &err), 0, "%s", err.msg);
	cr_expect(out.replayed);
	cr_expect_str_eq(json_string_value(json_object_get(out.rule, "name")), "a");
	rules_outcome_fini(&out);
	cr_expect_eq(storefix_qn("SELECT count(*) FROM rule_versions"), 2);
}

/* Wait up to ms for a notification on c; its payload (static) or NULL. */
static const char *wait_notify(PGconn *c, int ms)
{
	static char payload[64];
	long long until = 0;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	until = ts.tv_sec * 1000LL + ts.tv_nsec / 1000000 + ms;
	for (;;) {
		PGnotify *n;
		struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
		long long now;

		cr_assert_eq(PQconsumeInput(c), 1, "%s", PQerrorMessage(c));
		if ((n = PQnotifies(c)) != NULL) {
			cr_expect_str_eq(n->relname, RULES_NOTIFY_CHANNEL);
			snprintf(payload, sizeof(payload), "%s", n->extra);
			PQfreemem(n);
			return payload;
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
		if (now >= until)
			return NULL;
		poll(&p, 1, (int)(until - now));
	}
}

Test(rules_store, every_version_is_notified_after_commit)
{
	PGconn *listener = PQconnectdb(pgembed_dsn(fx.pg));
	struct rules_outcome out;
	vigil_err err = {0};
	const char *got;
	int64_t a;
	PGresult *res;

	cr_assert_eq(PQstatus(listener), CONNECTION_OK, "%s", PQerrorMessage(listener));
	res = PQexec(listener, "LISTEN " RULES_NOTIFY_CHANNEL);
	cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	a = add("a", 0);
	got = wait_notify(listener, 5000);
	cr_assert_not_null(got, "no notification for version 1");
	cr_expect_str_eq(got, "1");
	cr_assert_eq(store_rule_move(fx.st, add("b", 0), 1, &anyone, &out, &err), 0, "%s", err.msg);
	rules_outcome_fini(&out);
	got = wait_notify(listener, 5000);
	cr_expect_str_eq(got != NULL ? got : "<none>", "2");
	got = wait_notify(listener, 5000);
	cr_expect_str_eq(got != NULL ? got : "<none>", "3");
	/* Refused or unchanged: nothing committed, nothing sent. */
	cr_expect_eq(store_rule_add(fx.st, body("a"), 0, &anyone, &out, &err), -EEXIST);
	cr_assert_eq(store_rule_move(fx.st, a, 2, &anyone, &out, &err), 0, "%s", err.msg);
	cr_expect(out.unchanged);
	rules_outcome_fini(&out);
	cr_expect_null(wait_notify(listener, 500));
	PQfinish(listener);
}

struct racer {
	const char *dsn;
	int idx;
	int added;
	char msg[512];
};

/* Add 10 rules through a store of its own; failures recorded, not asserted (a thread). */
static void *race_add(void *arg)
{
	struct racer *r = arg;
	vigil_err err = {0};
	struct store *st = store_open(r->dsn, &err);

	if (st == NULL) {
		snprintf(r->msg, sizeof(r->msg), "store_open: %s", err.msg);
		return NULL;
	}
	for (int i = 0; i < 10; i++) {
		char b[128];
		struct rules_outcome out;

		snprintf(b, sizeof(b), "{\"name\":\"t%d-%d\",\"files\":{}}", r->idx, i);
		/* Half at the top, half at the end: the shifts interleave. */
		if (store_rule_add(st, b, i % 2 ? 1 : 0, &anyone, &out, &err) < 0) {
			snprintf(r->msg, sizeof(r->msg), "add: %s", err.msg);
			break;
		}
		rules_outcome_fini(&out);
		r->added++;
	}
	store_close(st);
	return NULL;
}

Test(rules_store, concurrent_changes_from_many_consoles_serialize)
{
	struct racer r[6];
	pthread_t t[6];
	int64_t v;

	for (int i = 0; i < 6; i++) {
		r[i] = (struct racer){.dsn = pgembed_dsn(fx.pg), .idx = i};
		cr_assert_eq(pthread_create(&t[i], NULL, race_add, &r[i]), 0);
	}
	for (int i = 0; i < 6; i++) {
		pthread_join(t[i], NULL);
		cr_expect_eq(r[i].added, 10, "racer %d: %s", i, r[i].msg);
	}
	order(&v);
	cr_expect_eq(v, 60);
	cr_expect_eq(storefix_qn("SELECT count(*) FROM rules"), 60);
	/* Dense versions, each snapshot one rule larger than the one before, positions dense. */
	cr_expect_eq(storefix_qn("SELECT count(*) FROM rule_versions"), 60);
	cr_expect_eq(storefix_qn("SELECT count(*) FROM rule_versions WHERE rules_count = version"),
		     60);
	cr_expect_eq(
	    storefix_qn("SELECT count(*) FROM rule_versions WHERE jsonb_array_length(snapshot)"
			" = version"),
	    60);
	cr_expect_eq(
	    storefix_qn(
		"SELECT count(DISTINCT position) FROM rules WHERE position BETWEEN 1 AND 60"),
	    60);
	/* Each version's snapshot is the previous one plus the rule it added. */
	cr_expect_eq(
	    storefix_qn("SELECT count(*) FROM rule_versions v JOIN rule_versions p"
			" ON p.version = v.version - 1 WHERE (SELECT count(*) FROM"
			" jsonb_array_elements(v.snapshot) e WHERE e->>'name' NOT IN"
			" (SELECT f->>'name' FROM jsonb_array_elements(p.snapshot) f)) <> 1"),
	    0);
}

/* Two consoles edit on the same expected version: exactly one wins. */
Test(rules_store, racing_writers_on_one_expected_version_one_wins)
{
	vigil_err err = {0};
	struct store *other = store_open(pgembed_dsn(fx.pg), &err);
	struct rules_write w = anyone;
	struct rules_outcome o1, o2;
	int64_t a = add("a", 0);
	int rc1, rc2;

	cr_assert_not_null(other, "%s", err.msg);
	w.expected_version = 1;
	rc1 = store_rule_edit(fx.st, a, body("one"), 0, &w, &o1, &err);
	rc2 = store_rule_edit(other, a, body("two"), 0, &w, &o2, &err);
	cr_expect_eq(rc1, 0);
	cr_expect_eq(rc2, -ESTALE);
	cr_expect_eq(o2.version, 2);
	rules_outcome_fini(&o1);
	rules_outcome_fini(&o2);
	cr_expect_str_eq(order(NULL), "one");
	store_close(other);
}

static int import(const char *key, int part, bool last, const char *rules, int64_t expected,
		  struct rules_outcome *out, vigil_err *err)
{
	struct rules_import_part p = {.key = key, .part = part, .last = last, .rules = rules};
	struct rules_write w = anyone;

	w.expected_version = expected;
	return store_rules_import(fx.st, &p, &w, out, err);
}

Test(rules_store, an_import_replaces_the_set_in_one_version_keeping_ids_by_name)
{
	struct rules_outcome out;
	vigil_err err = {0};
	int64_t a = add("a", 0), v;
	const char *key = "import-0000000000000001";

	add("b", 0);
	add("gone", 0);
	cr_assert_eq(import(key, 1, false, "[{\"name\":\"new\",\"files\":{}}]", -1, &out, &err), 0,
		     "%s", err.msg);
	cr_expect_eq(out.staged, 1);
	rules_outcome_fini(&out);
	/* The same part again (its answer lost): nothing more staged. */
	cr_assert_eq(import(key, 1, false, "[{\"name\":\"new\",\"files\":{}}]", -1, &out, &err), 0,
		     "%s", err.msg);
	cr_expect(out.replayed);
	cr_expect_eq(out.staged, 1);
	rules_outcome_fini(&out);
	cr_expect_eq(import(key, 3, true, "[]", -1, &out, &err), -EILSEQ);
	cr_assert_eq(import(key, 2, true,
			    "[{\"name\":\"b\",\"files\":{}},"
			    "{\"name\":\"a\",\"enabled\":true,\"comment\":\"\",\"files\":{}}]",
			    3, &out, &err),
		     0, "%s", err.msg);
	cr_expect_eq(out.version, 4);
	cr_expect_eq(json_integer_value(json_object_get(out.result, "added")), 1);
	cr_expect_eq(json_integer_value(json_object_get(out.result, "changed")), 2,
		     "b's body, a's place");
	cr_expect_eq(json_integer_value(json_object_get(out.result, "removed")), 1);
	cr_expect_eq(json_integer_value(json_object_get(out.result, "rules")), 3);
	rules_outcome_fini(&out);
	cr_expect_str_eq(order(&v), "new,b,a");
	cr_expect_eq(v, 4);
	cr_expect_eq(storefix_qn("SELECT id FROM rules WHERE name = 'a'"), a, "a kept its id");
	cr_expect_eq(storefix_qn("SELECT count(*) FROM rule_versions"), 4);
	cr_expect_str_eq(storefix_q1("SELECT change FROM rule_versions WHERE version = 4"),
			 "imported 3 rules: 1 added, 2 changed, 1 removed");
	cr_expect_str_eq(snapshot_order(4), "new,b,a");
	/* The last part again: its result, not a second import. */
	cr_assert_eq(import(key, 2, true, "[]", 3, &out, &err), 0, "%s", err.msg);
	cr_expect(out.replayed);
	cr_expect_eq(json_integer_value(json_object_get(out.result, "version")), 4);
	rules_outcome_fini(&out);

	/* The same set again: nothing changes, no version. */
	cr_assert_eq(import("import-0000000000000002", 1, true,
			    "[{\"name\":\"new\",\"files\":{}},{\"name\":\"b\",\"files\":{}},"
			    "{\"name\":\"a\",\"files\":{},\"comment\":\"\",\"enabled\":true}]",
			    -1, &out, &err),
		     0, "%s", err.msg);
	cr_expect(out.unchanged);
	cr_expect_eq(out.version, 4);
	rules_outcome_fini(&out);
	cr_expect_eq(storefix_qn("SELECT count(*) FROM rule_versions"), 4);

	/* An empty set empties the rule set. */
	cr_assert_eq(import("import-0000000000000003", 1, true, "[]", -1, &out, &err), 0, "%s",
		     err.msg);
	cr_expect_eq(out.version, 5);
	rules_outcome_fini(&out);
	cr_expect_str_eq(order(NULL), "");
}

Test(rules_store, a_bad_import_changes_nothing)
{
	struct rules_outcome out;
	vigil_err err = {0};

	add("a", 0);
	cr_assert_eq(import("import-dup-000000001", 1, false, "[{\"name\":\"x\",\"files\":{}}]", -1,
			    &out, &err),
		     0, "%s", err.msg);
	rules_outcome_fini(&out);
	cr_expect_eq(import("import-dup-000000001", 2, true,
			    "[{\"name\":\"y\",\"files\":{}},{\"name\":\"x\",\"files\":{}}]", -1,
			    &out, &err),
		     -EEXIST);
	cr_expect_str_eq(out.dup_name, "x");
	cr_expect_eq(out.dup_first, 0);
	cr_expect_eq(out.dup_second, 2);
	rules_outcome_fini(&out);
	cr_expect_eq(import("import-stale-0000001", 1, true, "[]", 0, &out, &err), -ESTALE);
	cr_expect_eq(out.version, 1);
	rules_outcome_fini(&out);
	cr_expect_eq(import("import-unknown-00001", 2, true, "[]", -1, &out, &err), -ENOENT);
	cr_expect_str_eq(order(NULL), "a");
	cr_expect_eq(storefix_qn("SELECT count(*) FROM rule_versions"), 1);

	/* At most RULES_IMPORTS_MAX in progress at once; expired ones do not count. */
	for (int i = 0; i < RULES_IMPORTS_MAX - 1; i++) {
		char key[32];

		snprintf(key, sizeof(key), "import-busy-%08d", i);
		cr_assert_eq(import(key, 1, false, "[]", -1, &out, &err), 0, "%s", err.msg);
	}
	cr_expect_eq(import("import-one-too-many1", 1, false, "[]", -1, &out, &err), -ENOSPC);
	sql_ok("UPDATE rule_imports SET created_at = now() - interval '2 hours'"
	       " WHERE key = 'import-busy-00000000'");
	cr_expect_eq(import("import-one-too-many1", 1, false, "[]", -1, &out, &err), 0, "%s",
		     err.msg);
	cr_expect_eq(
	    storefix_qn("SELECT count(*) FROM rule_imports WHERE key = 'import-busy-00000000'"), 0);
}

Test(rules_store, limits_hold_and_old_snapshots_are_dropped)
{
	struct rules_outcome out;
	vigil_err err = {0};
	int64_t a;

	/* Versions 1..1000 already there (made behind the store's back, for speed). */
	sql_ok("INSERT INTO rule_versions (version, actor, kind, change, rules_count, snapshot)"
	       " SELECT g, 'test', 'add', 'filler', 0, '[]' FROM generate_series(1, 1000) g");
	sql_ok("UPDATE rule_set SET version = 1000");
	a = add("a", 0);
	cr_expect_eq(storefix_qn("SELECT version FROM rule_set"), 1001);
	cr_expect_str_eq(
	    storefix_q1("SELECT snapshot IS NULL FROM rule_versions WHERE version = 1"), "t");
	cr_expect_str_eq(
	    storefix_q1("SELECT snapshot IS NULL FROM rule_versions WHERE version = 2"), "f");
	{
		json_t *doc;

		cr_assert_eq(store_rule_version_get(fx.st, 1, &doc, &err), 0, "%s", err.msg);
		cr_expect(json_is_null(json_object_get(doc, "rules")));
		cr_expect(json_is_false(json_object_get(doc, "snapshot_kept")));
		json_decref(doc);
	}

	/* RULES_MAX rules: one more is refused. */
	sql_ok("INSERT INTO rules (body, position) SELECT jsonb_build_object('name', 'r' || g),"
	       " g + 1 FROM generate_series(1, 1023) g");
	cr_expect_eq(store_rule_add(fx.st, body("one-too-many"), 0, &anyone, &out, &err), -E2BIG);
	cr_expect(strstr(err.msg, "1024 rules") != NULL, "%s", err.msg);
	sql_ok("DELETE FROM rules WHERE name <> 'a'");

	/* A set over RULES_SET_JSON_MAX is refused whole. */
	sql_ok("INSERT INTO rules (body, position) SELECT jsonb_build_object('name', 'r' || g,"
	       " 'comment', repeat('x', 45000)), g + 1 FROM generate_series(1, 190) g");
	cr_expect_eq(store_rule_move(fx.st, a, 2, &anyone, &out, &err), -E2BIG);
	cr_expect(strstr(err.msg, "bytes of JSON") != NULL, "%s", err.msg);
	cr_expect_eq(storefix_qn("SELECT version FROM rule_set"), 1001);
	cr_expect_eq(storefix_qn("SELECT position FROM rules WHERE name = 'a'"), 1);
}
