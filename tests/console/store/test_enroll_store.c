/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Join tokens, signed certificates and revocations (store/enroll_store.h)
 * against a real PostgreSQL: a token's secret is never stored; a one-time
 * token commits one enrollment, also when two race on their own
 * connections; a name taken is refused, a revoked name comes back only with
 * a token made since; revoking marks the certificates, says so with
 * NOTIFY, and the link's list has the names with their good serials; a
 * renewal of a revoked certificate, or too soon, is refused.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "pg/pgembed.h"
#include "pgfixture.h"
#include "store/enroll_store.h"
#include "store/store.h"
#include "storefixture.h"

const char pgfix_state_name[] = "state";

TestSuite(enroll_store, .init = storefix_setup, .fini = storefix_teardown, .timeout = 120);

#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

/* A token with id (16 hex) and HASH_A; fails the test when refused. */
static void token(const char *id, bool reusable, int64_t secs)
{
	const struct store_join_token_new t = {.id = id,
					       .hash = HASH_A,
					       .reusable = reusable,
					       .labels_json = "{\"env\":\"test\"}",
					       .expires_s = secs,
					       .created_by = "the API token"};
	json_t *j = NULL;
	vigil_err err = {0};

	cr_assert_eq(store_join_token_create(fx.st, &t, &j, &err), 0, "%s", err.msg);
	json_decref(j);
}

static int enroll(struct store *st, const char *id, const char *host, const char *serial,
		  vigil_err *err)
{
	const struct store_enrollment e = {.token_id = id,
					   .host_id = host,
					   .serial = serial,
					   .not_after = time(NULL) + 3600,
					   .address = "127.0.0.1"};

	return store_enroll_commit(st, &e, err);
}

Test(enroll_store, tokens_list_without_hashes_and_revoke)
{
	json_t *list = NULL, *t = NULL;
	vigil_err err = {0};

	token("00000000000000a1", false, 3600);
	token("00000000000000a2", true, 3600);
	cr_assert_eq(store_join_tokens_list(fx.st, &list, &err), 0, "%s", err.msg);
	cr_assert_eq(json_array_size(list), 2);
	char *text = json_dumps(list, 0);
	cr_expect_null(strstr(text, HASH_A), "no hash in the list: %s", text);
	free(text);
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "state")),
			 "active");
	json_decref(list);
	cr_assert_eq(store_join_token_revoke(fx.st, "00000000000000a1", &t, &err), 0, "%s",
		     err.msg);
	cr_expect_str_eq(json_string_value(json_object_get(t, "state")), "revoked");
	json_decref(t);
	cr_expect_eq(store_join_token_revoke(fx.st, "00000000000000ff", &t, &err), -ENOENT);
	/* The stored row holds the hash, never a secret: the only secret-like column. */
	cr_expect_str_eq(pgfix_q1(fx.sql, "SELECT hash FROM join_tokens WHERE id = "
					  "'00000000000000a2'"),
			 HASH_A);
}

Test(enroll_store, a_one_time_token_commits_one_enrollment)
{
	struct store_join_token t;
	vigil_err err = {0};

	token("00000000000000b1", false, 3600);
	cr_assert_eq(store_join_token_get(fx.st, "00000000000000b1", &t, &err), 0, "%s", err.msg);
	cr_expect(!t.used && !t.expired && !t.revoked && !t.reusable);
	cr_expect_str_eq(t.hash, HASH_A);
	store_join_token_fini(&t);
	cr_assert_eq(enroll(fx.st, "00000000000000b1", "host-1", "01a1", &err), 0, "%s", err.msg);
	cr_expect_eq(enroll(fx.st, "00000000000000b1", "host-2", "01a2", &err), -ESTALE);
	cr_assert_eq(store_join_token_get(fx.st, "00000000000000b1", &t, &err), 0);
	cr_expect(t.used);
	store_join_token_fini(&t);
	cr_expect_str_eq(pgfix_q1(fx.sql, "SELECT count(*) FROM host_certs"), "1");
	/* A reusable one: many. */
	token("00000000000000b2", true, 3600);
	cr_expect_eq(enroll(fx.st, "00000000000000b2", "host-3", "01a3", &err), 0, "%s", err.msg);
	cr_expect_eq(enroll(fx.st, "00000000000000b2", "host-4", "01a4", &err), 0, "%s", err.msg);
	cr_expect_str_eq(pgfix_q1(fx.sql, "SELECT uses FROM join_tokens WHERE id ="
					  " '00000000000000b2'"),
			 "2");
}

struct racer {
	const char *dsn;
	const char *host, *serial;
	pthread_barrier_t *go;
	int rc;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	vigil_err err = {0};
	struct store *st = store_open(r->dsn, &err);

	pthread_barrier_wait(r->go);
	r->rc = st != NULL ? enroll(st, "00000000000000c1", r->host, r->serial, &err) : -EIO;
	store_close(st);
	return NULL;
}

Test(enroll_store, of_enrollments_racing_on_a_one_time_token_exactly_one_commits)
{
	enum { N = 6 };
	static const char *hosts[N] = {"r0", "r1", "r2", "r3", "r4", "r5"};
	static const char *serials[N] = {"0c00", "0c01", "0c02", "0c03", "0c04", "0c05"};
	struct racer rs[N];
	pthread_t th[N];
	pthread_barrier_t go;
	int won = 0, stale = 0;

	token("00000000000000c1", false, 3600);
	pthread_barrier_init(&go, NULL, N);
	for (int i = 0; i < N; i++) {
		rs[i] = (struct racer){
		    .dsn = pgembed_dsn(fx.pg), .host = hosts[i], .serial = serials[i], .go = &go};
		cr_assert_eq(pthread_create(&th[i], NULL, race, &rs[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		won += rs[i].rc == 0;
		stale += rs[i].rc == -ESTALE;
	}
	pthread_barrier_destroy(&go);
	cr_expect_eq(won, 1, "%d of %d committed", won, N);
	cr_expect_eq(stale, N - 1);
	cr_expect_str_eq(pgfix_q1(fx.sql, "SELECT count(*) FROM host_certs"), "1");
	cr_expect_str_eq(pgfix_q1(fx.sql, "SELECT uses FROM join_tokens"), "1");
}

Test(enroll_store, expired_and_revoked_tokens_commit_nothing)
{
	struct store_join_token t;
	vigil_err err = {0};

	token("00000000000000d1", true, 1);
	token("00000000000000d2", true, 3600);
	{
		json_t *j = NULL;

		cr_assert_eq(store_join_token_revoke(fx.st, "00000000000000d2", &j, &err), 0);
		json_decref(j);
	}
	struct timespec ts = {1, 200 * 1000000};
	nanosleep(&ts, NULL);
	cr_assert_eq(store_join_token_get(fx.st, "00000000000000d1", &t, &err), 0);
	cr_expect(t.expired);
	store_join_token_fini(&t);
	cr_expect_eq(enroll(fx.st, "00000000000000d1", "e1", "0d01", &err), -ESTALE);
	cr_expect_eq(enroll(fx.st, "00000000000000d2", "e2", "0d02", &err), -ESTALE);
	cr_expect_str_eq(pgfix_q1(fx.sql, "SELECT count(*) FROM host_certs"), "0");
}

Test(enroll_store, names_taken_and_revoked_names)
{
	struct store_revoked *v = NULL;
	json_t *r = NULL;
	vigil_err err = {0};
	size_t n = 0;

	token("00000000000000e1", true, 3600);
	cr_assert_eq(enroll(fx.st, "00000000000000e1", "web-01", "0e01", &err), 0, "%s", err.msg);
	/* Taken by a live certificate. */
	cr_expect_eq(enroll(fx.st, "00000000000000e1", "web-01", "0e02", &err), -EEXIST);
	cr_expect_not_null(strstr(err.msg, "revoke it first"), "%s", err.msg);
	/* Taken by a host heard from (a hand-issued certificate). */
	{
		PGresult *res = PQexec(fx.sql, "INSERT INTO hosts (host_id, hostname) VALUES"
					       " ('hand-1', 'hand-1')");

		cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK);
		PQclear(res);
	}
	cr_expect_eq(enroll(fx.st, "00000000000000e1", "hand-1", "0e03", &err), -EEXIST);
	/* Unknown names cannot be revoked. */
	cr_expect_eq(store_host_revoke(fx.st, "nobody", "t", &r, &err), -ENOENT);
	/* Revoked: the certificate is marked, the name listed with no good serial. */
	cr_assert_eq(store_host_revoke(fx.st, "web-01", "the API token", &r, &err), 0, "%s",
		     err.msg);
	cr_expect_eq(json_integer_value(json_object_get(r, "certificates")), 1);
	json_decref(r);
	cr_expect_str_eq(pgfix_q1(fx.sql, "SELECT revoked_at IS NOT NULL FROM host_certs WHERE"
					  " serial = '0e01'"),
			 "t");
	cr_assert_eq(store_revoked_load(fx.st, &v, &n, &err), 0, "%s", err.msg);
	cr_assert_eq(n, 1);
	cr_expect_str_eq(v[0].host_id, "web-01");
	cr_expect_eq(v[0].nserials, 0);
	store_revoked_free(v, n);
	/* The token made before the revocation cannot bring it back; one made since can. */
	cr_expect_eq(enroll(fx.st, "00000000000000e1", "web-01", "0e04", &err), -EPERM);
	token("00000000000000e2", false, 3600);
	cr_expect_eq(enroll(fx.st, "00000000000000e2", "web-01", "0e05", &err), 0, "%s", err.msg);
	cr_assert_eq(store_revoked_load(fx.st, &v, &n, &err), 0, "%s", err.msg);
	cr_assert_eq(n, 1);
	cr_assert_eq(v[0].nserials, 1, "the certificate signed since is good");
	cr_expect_str_eq(v[0].serials[0], "0e05");
	store_revoked_free(v, n);
	/* The enrolled-again name is taken again. */
	token("00000000000000e3", false, 3600);
	cr_expect_eq(enroll(fx.st, "00000000000000e3", "web-01", "0e06", &err), -EEXIST);
}

Test(enroll_store, a_revocation_is_announced_when_it_commits)
{
	PGnotify *note = NULL;
	json_t *r = NULL;
	vigil_err err = {0};

	token("00000000000000f1", false, 3600);
	cr_assert_eq(enroll(fx.st, "00000000000000f1", "n-1", "0f01", &err), 0, "%s", err.msg);
	PQclear(PQexec(fx.sql, "LISTEN " ENROLL_REVOKE_CHANNEL));
	cr_assert_eq(store_host_revoke(fx.st, "n-1", "t", &r, &err), 0, "%s", err.msg);
	json_decref(r);
	for (int i = 0; i < 50 && note == NULL; i++) {
		PQconsumeInput(fx.sql);
		if ((note = PQnotifies(fx.sql)) == NULL) {
			struct timespec ts = {0, 20 * 1000000};
			nanosleep(&ts, NULL);
		}
	}
	cr_assert_not_null(note, "no NOTIFY " ENROLL_REVOKE_CHANNEL);
	cr_expect_str_eq(note->extra, "n-1");
	PQfreemem(note);
}

Test(enroll_store, renewals_of_revoked_certificates_or_too_soon_are_refused)
{
	json_t *r = NULL;
	vigil_err err = {0};
	struct store_renewal rn = {.host_id = "rn-1",
				   .old_serial = "1a01",
				   .serial = "1a02",
				   .not_after = time(NULL) + 60,
				   .min_interval_s = 60};

	token("0000000000000a11", false, 3600);
	cr_assert_eq(enroll(fx.st, "0000000000000a11", "rn-1", "1a01", &err), 0, "%s", err.msg);
	cr_expect_eq(store_renew_commit(fx.st, &rn, &err), -EAGAIN, "just enrolled");
	rn.min_interval_s = 1;
	PQclear(PQexec(fx.sql, "UPDATE host_certs SET issued_at = now() - interval '5 seconds'"));
	cr_expect_eq(store_renew_commit(fx.st, &rn, &err), 0, "%s", err.msg);
	cr_expect_str_eq(pgfix_q1(fx.sql, "SELECT via || ' from ' || renewed_from FROM host_certs"
					  " WHERE serial = '1a02'"),
			 "renew from 1a01");
	PQclear(PQexec(fx.sql, "UPDATE host_certs SET issued_at = now() - interval '5 seconds'"));
	cr_assert_eq(store_host_revoke(fx.st, "rn-1", "t", &r, &err), 0, "%s", err.msg);
	json_decref(r);
	rn.old_serial = "1a02";
	rn.serial = "1a03";
	cr_expect_eq(store_renew_commit(fx.st, &rn, &err), -EPERM);
	/* A hand-issued certificate of a revoked name: refused too. */
	rn.old_serial = "99";
	cr_expect_eq(store_renew_commit(fx.st, &rn, &err), -EPERM);
	cr_expect_str_eq(pgfix_q1(fx.sql, "SELECT count(*) FROM host_certs WHERE host_id = 'rn-1'"),
			 "2");
}
