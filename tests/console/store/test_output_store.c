/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The outputs' reading of audits and their cursors (store/output_store.h,
 * store_audits_after) against a real PostgreSQL: the order survives
 * transactions that commit out of id order, a new sink starts now, a
 * cursor is leased to one console, a skip is one transaction with its
 * output_dropped audit.  Same fixture as test_rules_store.c.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "pg/pgembed.h"
#include "pgfixture.h"
#include "store/audit_queries.h"
#include "store/output_store.h"
#include "store/store.h"
#include "storefixture.h"

const char pgfix_state_name[] = "state";

TestSuite(output_store, .init = storefix_setup, .fini = storefix_teardown, .timeout = 120);

static void sql_on(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);

	cr_assert(PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK,
		  "%s: %s", sql, PQerrorMessage(c));
	PQclear(res);
}

/* Insert an audit on c; returns its id. */
static long long audit_on(PGconn *c, const char *kind)
{
	char sql[256];
	PGresult *res;
	long long id;

	snprintf(sql, sizeof(sql),
		 "INSERT INTO audits (host_id, kind, severity, summary) VALUES ('h', '%s', 'high',"
		 " 'x') RETURNING id",
		 kind);
	res = PQexec(c, sql);
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
	id = atoll(PQgetvalue(res, 0, 0));
	PQclear(res);
	return id;
}

/* The audits after pos; *ret_n of them into items (decref'd here), ids into ids. */
static size_t after(struct audit_pos pos, long long *ids, size_t max, struct audit_pos *ret_last)
{
	struct audit_item items[64];
	vigil_err err = {0};
	size_t n = 0;

	cr_assert_eq(store_audits_after(fx.st, pos, max, items, &n, &err), 0, "%s", err.msg);
	for (size_t i = 0; i < n; i++) {
		ids[i] = (long long)json_integer_value(json_object_get(items[i].audit, "id"));
		cr_expect_eq(items[i].pos.id, ids[i]);
		if (ret_last != NULL)
			*ret_last = items[i].pos;
		json_decref(items[i].audit);
	}
	return n;
}

Test(output_store, a_running_transaction_holds_back_the_audits_after_it)
{
	PGconn *other = PQconnectdb(pgembed_dsn(fx.pg));
	struct audit_pos start = {0, 0};
	long long a, b, ids[64];

	cr_assert_eq(PQstatus(other), CONNECTION_OK);
	/* A takes the lower id but commits after B: an id cursor would read B and lose A. */
	sql_on(other, "BEGIN");
	a = audit_on(other, "first");
	b = audit_on(fx.sql, "second");
	cr_assert_lt(a, b);
	cr_expect_eq(after(start, ids, 64, NULL), 0, "B was read while A's transaction ran");
	sql_on(other, "COMMIT");
	cr_assert_eq(after(start, ids, 64, NULL), 2);
	cr_expect_eq(ids[0], a);
	cr_expect_eq(ids[1], b);
	/* An audit rolled back leaves a hole in the ids and nothing to wait for. */
	sql_on(other, "BEGIN");
	audit_on(other, "rolled_back");
	sql_on(other, "ROLLBACK");
	long long c = audit_on(fx.sql, "third");
	cr_assert_eq(after(start, ids, 64, NULL), 3);
	cr_expect_eq(ids[2], c);
	PQfinish(other);
}

Test(output_store, a_new_sink_starts_now_and_one_console_holds_it)
{
	struct audit_pos pos, pos2, last = {0, 0};
	vigil_err err = {0};
	long long ids[64], y;

	audit_on(fx.sql, "before");
	cr_assert_eq(output_store_claim(fx.st, "siem", "syslog", "a:/s", &pos, &err), 0, "%s",
		     err.msg);
	cr_expect_eq(after(pos, ids, 64, NULL), 0, "a new sink got an audit from before it");
	y = audit_on(fx.sql, "after");
	cr_assert_eq(after(pos, ids, 64, &last), 1);
	cr_expect_eq(ids[0], y);
	/* Another console waits for the lease; the first one renews it. */
	cr_expect_eq(output_store_claim(fx.st, "siem", "syslog", "b:/s", &pos2, &err), -EBUSY);
	cr_expect(strstr(err.msg, "a:/s") != NULL, "%s", err.msg);
	cr_assert_eq(output_store_save(fx.st, "siem", "a:/s", last, 1, 0, &err), 0, "%s", err.msg);
	cr_expect_eq(storefix_qn("SELECT delivered FROM output_cursors WHERE sink = 'siem'"), 1);
	/* The same console after a restart takes it back at once. */
	cr_assert_eq(output_store_claim(fx.st, "siem", "syslog", "a:/s", &pos2, &err), 0, "%s",
		     err.msg);
	cr_expect_eq(pos2.id, last.id);
	cr_expect_eq(pos2.tx, last.tx);
	/* Released: the other takes it over, and the first can no longer save. */
	cr_assert_eq(output_store_release(fx.st, "siem", "a:/s", &err), 0, "%s", err.msg);
	cr_assert_eq(output_store_claim(fx.st, "siem", "syslog", "b:/s", &pos2, &err), 0, "%s",
		     err.msg);
	cr_expect_eq(output_store_save(fx.st, "siem", "a:/s", last, 1, 0, &err), -EBUSY);
	/* An expired lease is taken over too. */
	sql_on(fx.sql, "UPDATE output_cursors SET lease_until = now() - interval '1 s'");
	cr_expect_eq(output_store_claim(fx.st, "siem", "syslog", "a:/s", &pos2, &err), 0, "%s",
		     err.msg);
}

Test(output_store, a_skip_moves_the_cursor_and_audits_it_in_one_transaction)
{
	struct audit_pos pos, to;
	struct output_drop d = {.reason = "backlog"};
	vigil_err err = {0};
	long long first = 0, ids[64];
	int64_t count;
	double age;

	cr_assert_eq(output_store_claim(fx.st, "hook", "webhook", "a:/s", &pos, &err), 0, "%s",
		     err.msg);
	for (int i = 0; i < 10; i++) {
		long long id = audit_on(fx.sql, "new_program");

		if (i == 0)
			first = id;
	}
	cr_assert_eq(output_store_backlog(fx.st, pos, 100, &count, &age, &err), 0, "%s", err.msg);
	cr_expect_eq(count, 10);
	cr_expect_lt(age, 60);
	cr_assert_eq(output_store_backlog(fx.st, pos, 4, &count, &age, &err), 0, "%s", err.msg);
	cr_expect_eq(count, 4, "the count stops at its limit");
	cr_assert_eq(output_store_skip_range(fx.st, pos, 4, -1, &to, &d, &err), 0, "%s", err.msg);
	cr_expect_eq(d.count, 4);
	cr_expect_eq(d.first_id, first);
	cr_expect_eq(d.last_id, first + 3);
	cr_expect_eq(to.id, first + 3);
	/* By age: none of them is an hour old. */
	struct output_drop none = {0};
	struct audit_pos same;
	cr_assert_eq(output_store_skip_range(fx.st, pos, 100, 3600, &same, &none, &err), 0, "%s",
		     err.msg);
	cr_expect_eq(none.count, 0);
	cr_expect_eq(same.id, pos.id);
	snprintf(d.why, sizeof(d.why), "a test");
	cr_assert_eq(output_store_drop(fx.st, "hook", "webhook", "a:/s", to, 0, &d, &err), 0, "%s",
		     err.msg);
	cr_expect_eq(storefix_qn("SELECT last_id FROM output_cursors WHERE sink = 'hook'"),
		     first + 3);
	cr_expect_eq(storefix_qn("SELECT dropped FROM output_cursors WHERE sink = 'hook'"), 4);
	cr_expect_eq(
	    storefix_qn("SELECT count(*) FROM audits WHERE kind = 'output_dropped' AND host_id = ''"
			" AND detail->>'sink' = 'hook' AND detail->>'reason' = 'backlog'"
			" AND (detail->>'count')::int = 4"),
	    1);
	/* What is left: the other 6, then the report. */
	cr_assert_eq(after(to, ids, 64, NULL), 7);
	cr_expect_eq(ids[0], first + 4);
	cr_expect_eq(ids[6], storefix_qn("SELECT id FROM audits WHERE kind = 'output_dropped'"));
	/* Another owner's drop changes nothing. */
	cr_expect_eq(output_store_drop(fx.st, "hook", "webhook", "b:/s", to, 0, &d, &err), -EBUSY);
	cr_expect_eq(storefix_qn("SELECT count(*) FROM audits WHERE kind = 'output_dropped'"), 1);
}

/* The order is the transactions' numbers, not their text: 999 before 1000. */
Test(output_store, the_order_holds_across_a_power_of_ten_in_transaction_ids)
{
	struct audit_pos pos = {0, 0};
	long long xid = atoll(pgfix_q1(fx.sql, "SELECT pg_current_xact_id()")), ten = 10;
	long long want[12], ids[64];
	size_t got = 0, n;

	while (ten <= xid + 3)
		ten *= 10;
	cr_assert_lt(ten - xid, 200000, "transaction %lld: too far from a power of ten", xid);
	/* Each autocommitted call takes a transaction number. */
	while (atoll(pgfix_q1(fx.sql, "SELECT pg_current_xact_id()")) < ten - 7)
		;
	for (int i = 0; i < 12; i++)
		want[i] = audit_on(fx.sql, "new_program"); /* one transaction each, 9.. then 10.. */
	cr_assert_geq(atoll(pgfix_q1(fx.sql, "SELECT max(tx::text::bigint) FROM audits")), ten);
	/* Read three at a time, as a sink would: each once, in order. */
	while ((n = after(pos, ids + got, 3, &pos)) > 0)
		got += n;
	cr_assert_eq(got, 12);
	for (int i = 0; i < 12; i++)
		cr_expect_eq(ids[i], want[i], "audit %d: %lld, want %lld", i, ids[i], want[i]);
}
