/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sign-in, sessions, users and roles end to end: a real vigil-console with
 * its private PostgreSQL, requests over real HTTPS that carry and read the
 * headers a browser would (Cookie, X-CSRF-Token, Set-Cookie, Retry-After),
 * and the vigilctl binary for the users commands.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "harness.h"
#include "tls.h"

static char dir[H_PATH];
static struct h_pki pki;
static struct h_console con;

#define ALICE_PW "correct horse battery"
#define BOB_PW	 "read only reader"
#define WRONG	 "wrong user name or password"
#define NO_AUTH	 "missing or wrong API token or session"
#define NO_CSRF	 "missing or wrong CSRF token"
#define READ_403 "read-only user: this needs the admin role"

static const char rule[] = "{\"name\":\"no-egress\",\"network\":{\"deny\":{\"effect\":"
			   "\"prevent\",\"connect\":[\"203.0.113.0/24:3333\"]}}}";

/* One answer: status, JSON body (may be NULL) and the headers the tests read. */
struct resp {
	int status;
	json_t *doc;
	char set_cookie[512]; /* "" when absent */
	char retry_after[32];
};

/* A browser's session: the cookie's value and the CSRF token. */
struct sess {
	char cookie[80];
	char csrf[80];
};

static void resp_free(struct resp *r)
{
	json_decref(r->doc);
	r->doc = NULL;
}

/*
 * method path on the console with body (JSON text or NULL) and headers
 * (name, value, ..., NULL), sent once over HTTPS; fails the test when no
 * answer comes.  The caller frees r with resp_free.
 */
static void send_req(const char *method, const char *path, const char *body,
		     const char *const *headers, struct resp *r)
{
	const struct tls_files files = {.ca = pki.ca};
	char full[512];
	vigil_err err = {0};
	nng_url *url = NULL;
	nng_http_client *client = NULL;
	nng_http_req *req = NULL;
	nng_http_res *res = NULL;
	nng_tls_config *tls = NULL;
	nng_aio *aio = NULL;
	const char *h;
	void *data;
	size_t len;
	int rv;

	memset(r, 0, sizeof(*r));
	cr_assert_eq(tls_engine_install(&err), 0, "%s", err.msg);
	snprintf(full, sizeof(full), "%s%s", con.api, path);
	cr_assert_eq(nng_url_parse(&url, full), 0);
	cr_assert_eq(tls_config_new(NNG_TLS_MODE_CLIENT, NNG_TLS_AUTH_MODE_REQUIRED, &files,
				    url->u_hostname, &tls, &err),
		     0, "%s", err.msg);
	cr_assert_eq(nng_http_client_alloc(&client, url), 0);
	cr_assert_eq(nng_http_client_set_tls(client, tls), 0);
	cr_assert_eq(nng_http_req_alloc(&req, url), 0);
	cr_assert_eq(nng_http_req_set_method(req, method), 0);
	if (body != NULL) {
		cr_assert_eq(nng_http_req_copy_data(req, body, strlen(body)), 0);
		cr_assert_eq(nng_http_req_set_header(req, "Content-Type", "application/json"), 0);
	}
	for (size_t i = 0; headers != NULL && headers[i] != NULL; i += 2)
		cr_assert_eq(nng_http_req_set_header(req, headers[i], headers[i + 1]), 0);
	cr_assert_eq(nng_http_res_alloc(&res), 0);
	cr_assert_eq(nng_aio_alloc(&aio, NULL, NULL), 0);
	nng_aio_set_timeout(aio, 30000);
	nng_http_client_transact(client, req, res, aio);
	nng_aio_wait(aio);
	rv = nng_aio_result(aio);
	cr_assert_eq(rv, 0, "%s %s: no answer: %s", method, path, nng_strerror(rv));
	r->status = nng_http_res_get_status(res);
	nng_http_res_get_data(res, &data, &len);
	if (len > 0)
		r->doc = json_loadb(data, len, 0, NULL);
	if ((h = nng_http_res_get_header(res, "Set-Cookie")) != NULL)
		snprintf(r->set_cookie, sizeof(r->set_cookie), "%s", h);
	if ((h = nng_http_res_get_header(res, "Retry-After")) != NULL)
		snprintf(r->retry_after, sizeof(r->retry_after), "%s", h);
	nng_aio_free(aio);
	nng_http_res_free(res);
	nng_http_req_free(req);
	nng_http_client_free(client);
	nng_tls_config_free(tls);
	nng_url_free(url);
}

static const char *jstr(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_string(v) ? json_string_value(v) : "<not a string>";
}

static const char *dump(json_t *doc)
{
	static char buf[2048];
	char *t = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;

	snprintf(buf, sizeof(buf), "%s", t != NULL ? t : "(no JSON)");
	free(t);
	return buf;
}

/* The request with s's cookie, and with csrf in X-CSRF-Token unless NULL. */
static void with_cookie(const char *method, const char *path, const char *body, const char *cookie,
			const char *csrf, struct resp *r)
{
	char c[128];
	const char *headers[5] = {"Cookie", c, NULL, NULL, NULL};

	snprintf(c, sizeof(c), "theme=dark; vigil_session=%s; lang=en", cookie);
	if (csrf != NULL) {
		headers[2] = "X-CSRF-Token";
		headers[3] = csrf;
	}
	send_req(method, path, body, headers, r);
}

/* The request with the API token; the status must be want; returns the body. */
static json_t *with_token(const char *method, const char *path, const char *body, int want)
{
	char auth[200];
	const char *headers[] = {"Authorization", auth, NULL};
	struct resp r;

	snprintf(auth, sizeof(auth), "Bearer %s", con.token);
	send_req(method, path, body, headers, &r);
	cr_assert_eq(r.status, want, "%s %s: %d, want %d: %s", method, path, r.status, want,
		     dump(r.doc));
	return r.doc;
}

static void add_user(const char *name, const char *pw, const char *role)
{
	char body[512];

	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"password\":\"%s\",\"role\":\"%s\"}", name,
		 pw, role);
	json_decref(with_token("POST", "/api/v1/users", body, 201));
}

/* POST /api/v1/session with body; the answer in r. */
static void sign_in_body(const char *body, struct resp *r)
{
	send_req("POST", "/api/v1/session", body, NULL, r);
}

/* Sign in as user with pw: must be 201; the cookie and CSRF token into s; returns the body. */
static json_t *sign_in(const char *user, const char *pw, struct sess *s)
{
	char body[512];
	struct resp r;

	snprintf(body, sizeof(body), "{\"user\":\"%s\",\"password\":\"%s\"}", user, pw);
	sign_in_body(body, &r);
	cr_assert_eq(r.status, 201, "sign-in of %s: %d: %s", user, r.status, dump(r.doc));
	cr_assert(strncmp(r.set_cookie, "vigil_session=", 14) == 0, "Set-Cookie: '%s'",
		  r.set_cookie);
	snprintf(s->cookie, sizeof(s->cookie), "%.*s", (int)strcspn(r.set_cookie + 14, ";"),
		 r.set_cookie + 14);
	snprintf(s->csrf, sizeof(s->csrf), "%s", jstr(r.doc, "csrf"));
	return r.doc;
}

/* GET path with s's cookie: the status. */
static int get_status(const struct sess *s, const char *path)
{
	struct resp r;

	with_cookie("GET", path, NULL, s->cookie, NULL, &r);
	resp_free(&r);
	return r.status;
}

static void db_exec(const char *sql)
{
	PGconn *db = h_db(&con);
	PGresult *res = PQexec(db, sql);

	cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s: %s", sql, PQerrorMessage(db));
	PQclear(res);
	PQfinish(db);
}

static void start(const char *const *extra)
{
	h_tmpdir(dir);
	h_pki_make(dir, &pki);
	h_console_start(&con, dir, &pki, extra);
	add_user("alice", ALICE_PW, "admin");
	add_user("bob", BOB_PW, "read");
}

static void setup(void)
{
	start(NULL);
}

static void teardown(void)
{
	if (con.pid > 0)
		h_console_kill(&con, SIGTERM);
	if (!getenv("VIGIL_KEEP_TEST_DIRS"))
		h_rmrf(dir);
}

TestSuite(ui_auth, .init = setup, .fini = teardown, .timeout = 240);

/* Whether the Set-Cookie attributes after the value are exactly want's, in any order. */
static void expect_attributes(const char *set_cookie, const char *const *want)
{
	char buf[512], *save = NULL, *part;
	size_t n = 0, nwant = 0;

	while (want[nwant] != NULL)
		nwant++;
	snprintf(buf, sizeof(buf), "%s", set_cookie);
	strtok_r(buf, ";", &save); /* the name=value */
	while ((part = strtok_r(NULL, ";", &save)) != NULL) {
		bool known = false;

		part += strspn(part, " ");
		for (size_t i = 0; i < nwant; i++)
			known = known || strcmp(part, want[i]) == 0;
		cr_expect(known, "unexpected cookie attribute '%s' in '%s'", part, set_cookie);
		n++;
	}
	cr_expect_eq(n, nwant, "attributes of '%s', want %zu", set_cookie, nwant);
}

Test(ui_auth, sign_in_sets_a_strict_cookie_that_reads_the_api)
{
	static const char *const attrs[] = {"Path=/",	"Max-Age=43200",   "Secure",
					    "HttpOnly", "SameSite=Strict", NULL};
	struct sess s;
	struct resp r;
	json_t *doc;

	/* Without a credential nothing is read. */
	send_req("GET", "/api/v1/hosts", NULL, NULL, &r);
	cr_expect_eq(r.status, 401);
	cr_expect_str_eq(jstr(r.doc, "error"), NO_AUTH);
	resp_free(&r);

	sign_in_body("{\"user\":\"alice\",\"password\":\"" ALICE_PW "\"}", &r);
	cr_assert_eq(r.status, 201, "%s", dump(r.doc));
	expect_attributes(r.set_cookie, attrs);
	snprintf(s.cookie, sizeof(s.cookie), "%.*s", (int)strcspn(r.set_cookie + 14, ";"),
		 r.set_cookie + 14);
	cr_expect_eq(strlen(s.cookie), 64);
	cr_expect_eq(strspn(s.cookie, "0123456789abcdef"), 64);
	cr_expect_str_eq(jstr(r.doc, "user"), "alice");
	cr_expect_str_eq(jstr(r.doc, "role"), "admin");
	snprintf(s.csrf, sizeof(s.csrf), "%s", jstr(r.doc, "csrf"));
	cr_expect_eq(strlen(s.csrf), 64);
	cr_expect_str_neq(s.csrf, s.cookie);
	cr_expect_eq(strlen(jstr(r.doc, "expires")), 27, "expires: %s", jstr(r.doc, "expires"));
	resp_free(&r);

	/* The cookie reads the API. */
	with_cookie("GET", "/api/v1/hosts", NULL, s.cookie, NULL, &r);
	cr_expect_eq(r.status, 200, "%s", dump(r.doc));
	cr_expect(json_is_array(json_object_get(r.doc, "hosts")));
	resp_free(&r);

	/* GET /api/v1/session: the same session, no new cookie. */
	with_cookie("GET", "/api/v1/session", NULL, s.cookie, NULL, &r);
	cr_expect_eq(r.status, 200);
	cr_expect_str_eq(jstr(r.doc, "user"), "alice");
	cr_expect_str_eq(jstr(r.doc, "csrf"), s.csrf);
	cr_expect_str_eq(r.set_cookie, "");
	resp_free(&r);
	send_req("GET", "/api/v1/session", NULL, NULL, &r);
	cr_expect_eq(r.status, 401);
	resp_free(&r);

	/* last_login was set; the user list shows it. */
	doc = with_token("GET", "/api/v1/users", NULL, 200);
	cr_expect(json_is_string(json_object_get(json_array_get(json_object_get(doc, "users"), 0),
						 "last_login")),
		  "%s", dump(doc));
	json_decref(doc);
}

/* A console of its own: with --session-hours. */
TestSuite(ui_auth_hours, .fini = teardown, .timeout = 240);

Test(ui_auth_hours, session_hours_sets_max_age_and_expiry)
{
	static const char *const extra[] = {"--session-hours", "2", NULL};
	struct resp r;

	start(extra);
	sign_in_body("{\"user\":\"alice\",\"password\":\"" ALICE_PW "\"}", &r);
	cr_assert_eq(r.status, 201, "%s", dump(r.doc));
	cr_expect(strstr(r.set_cookie, "; Max-Age=7200;") != NULL, "Set-Cookie: %s", r.set_cookie);
	resp_free(&r);
	cr_expect_eq(h_db_count(&con, "SELECT round(extract(epoch FROM expires_at - created_at))"
				      "::bigint FROM sessions"),
		     7200);
}

Test(ui_auth, wrong_password_and_unknown_user_get_the_same_401)
{
	struct resp r1, r2, r3;

	sign_in_body("{\"user\":\"alice\",\"password\":\"not her password\"}", &r1);
	cr_expect_eq(r1.status, 401);
	cr_expect_str_eq(r1.set_cookie, "", "a cookie on a 401: %s", r1.set_cookie);
	cr_expect_str_eq(jstr(r1.doc, "error"), WRONG);

	sign_in_body("{\"user\":\"mallory\",\"password\":\"not her password\"}", &r2);
	cr_expect_eq(r2.status, 401);
	cr_expect_str_eq(r2.set_cookie, "");
	cr_expect_str_eq(dump(r2.doc), dump(r1.doc), "the answers differ");
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM sessions"), 0);

	/* Malformed bodies name the field; they are no failed sign-ins. */
	sign_in_body("{\"user\":\"alice\"}", &r3);
	cr_expect_eq(r3.status, 400);
	cr_expect_str_eq(jstr(r3.doc, "field"), "password");
	resp_free(&r3);
	sign_in_body("{\"user\":7,\"password\":\"x\"}", &r3);
	cr_expect_eq(r3.status, 400);
	cr_expect_str_eq(jstr(r3.doc, "field"), "user");
	resp_free(&r3);
	sign_in_body("{\"user\":\"alice\",\"password\":\"x\",\"remember\":true}", &r3);
	cr_expect_eq(r3.status, 400);
	cr_expect_str_eq(jstr(r3.doc, "field"), "remember");
	resp_free(&r3);
	sign_in_body("not json", &r3);
	cr_expect_eq(r3.status, 400);
	resp_free(&r3);
	/* A form posted by another site's page: the right password, and still no session. */
	const char *form[] = {"Content-Type", "application/x-www-form-urlencoded", NULL};
	send_req("POST", "/api/v1/session", "{\"user\":\"alice\",\"password\":\"" ALICE_PW "\"}",
		 form, &r3);
	cr_expect_eq(r3.status, 400, "%s", dump(r3.doc));
	cr_expect_str_eq(jstr(r3.doc, "field"), "Content-Type");
	cr_expect_str_eq(r3.set_cookie, "");
	resp_free(&r3);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM sessions"), 0);

	/* The right password: a session (the positive control). */
	json_decref(sign_in("alice", ALICE_PW, &(struct sess){0}));
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM sessions"), 1);
	resp_free(&r1);
	resp_free(&r2);
}

Test(ui_auth, an_expired_session_is_refused_and_deleted)
{
	struct sess s;

	json_decref(sign_in("alice", ALICE_PW, &s));
	cr_expect_eq(get_status(&s, "/api/v1/hosts"), 200);
	db_exec("UPDATE sessions SET expires_at = now() - interval '1 second'");
	cr_expect_eq(get_status(&s, "/api/v1/hosts"), 401);
	cr_expect_eq(get_status(&s, "/api/v1/session"), 401);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM sessions"), 0, "the row stayed");
}

Test(ui_auth, forged_cookies_are_refused_before_anything_else)
{
	unsigned char raw[32];
	struct sess s, forged;
	struct resp r;

	json_decref(sign_in("alice", ALICE_PW, &s));
	cr_assert_eq(getrandom(raw, sizeof(raw), 0), (ssize_t)sizeof(raw));
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(forged.cookie + 2 * i, 3, "%02x", raw[i]);
	cr_expect_eq(get_status(&forged, "/api/v1/hosts"), 401);

	forged = s;
	forged.cookie[10] = forged.cookie[10] == 'a' ? 'b' : 'a';
	cr_expect_eq(get_status(&forged, "/api/v1/hosts"), 401);
	cr_expect_eq(get_status(&forged, "/api/v1/rules"), 401);
	/* 401 before 404, as with the token: probing reveals nothing. */
	cr_expect_eq(get_status(&forged, "/api/v1/no-such-thing"), 401);
	cr_expect_eq(get_status(&s, "/api/v1/no-such-thing"), 404);

	/* A wrong Bearer token is refused even with a live cookie. */
	{
		char c[128];
		const char *headers[] = {"Cookie", c, "Authorization", "Bearer 0000", NULL};

		snprintf(c, sizeof(c), "vigil_session=%s", s.cookie);
		send_req("GET", "/api/v1/hosts", NULL, headers, &r);
		cr_expect_eq(r.status, 401);
		resp_free(&r);
	}
	/* The live one still reads (the positive control). */
	cr_expect_eq(get_status(&s, "/api/v1/hosts"), 200);
}

Test(ui_auth, a_write_with_the_cookie_needs_the_csrf_token)
{
	struct sess s;
	struct resp r;

	json_decref(sign_in("alice", ALICE_PW, &s));
	with_cookie("POST", "/api/v1/rules", rule, s.cookie, NULL, &r);
	cr_expect_eq(r.status, 403, "%s", dump(r.doc));
	cr_expect_str_eq(jstr(r.doc, "error"), NO_CSRF);
	resp_free(&r);
	with_cookie("POST", "/api/v1/rules", rule, s.cookie, s.cookie, &r);
	cr_expect_eq(r.status, 403, "%s", dump(r.doc));
	resp_free(&r);
	with_cookie("POST", "/api/v1/rules", rule, s.cookie, "", &r);
	cr_expect_eq(r.status, 403, "%s", dump(r.doc));
	resp_free(&r);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM rules"), 0, "a refused write wrote");

	with_cookie("POST", "/api/v1/rules", rule, s.cookie, s.csrf, &r);
	cr_expect_eq(r.status, 201, "%s", dump(r.doc));
	resp_free(&r);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM rules"), 1);
	/* The version names who made it. */
	cr_expect_eq(
	    h_db_count(&con, "SELECT count(*) FROM rule_versions WHERE actor = 'user:alice'"), 1);
}

Test(ui_auth, a_read_user_may_only_look)
{
	struct sess bob, alice;
	struct resp r;
	json_t *doc;

	doc = sign_in("bob", BOB_PW, &bob);
	cr_expect_str_eq(jstr(doc, "role"), "read");
	json_decref(doc);
	cr_expect_eq(get_status(&bob, "/api/v1/hosts"), 200);
	cr_expect_eq(get_status(&bob, "/api/v1/rules"), 200);

	with_cookie("POST", "/api/v1/rules", rule, bob.cookie, bob.csrf, &r);
	cr_expect_eq(r.status, 403, "%s", dump(r.doc));
	cr_expect_str_eq(jstr(r.doc, "error"), READ_403);
	resp_free(&r);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM rules"), 0);

	with_cookie("GET", "/api/v1/users", NULL, bob.cookie, NULL, &r);
	cr_expect_eq(r.status, 403, "%s", dump(r.doc));
	cr_expect(json_object_get(r.doc, "users") == NULL);
	resp_free(&r);
	with_cookie("POST", "/api/v1/users",
		    "{\"name\":\"eve\",\"password\":\"12345678\",\"role\":\"admin\"}", bob.cookie,
		    bob.csrf, &r);
	cr_expect_eq(r.status, 403);
	resp_free(&r);
	with_cookie("PUT", "/api/v1/users/bob", "{\"role\":\"admin\"}", bob.cookie, bob.csrf, &r);
	cr_expect_eq(r.status, 403);
	resp_free(&r);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM users WHERE role = 'admin'"), 1);

	/* A read user may sign out. */
	with_cookie("DELETE", "/api/v1/session", NULL, bob.cookie, bob.csrf, &r);
	cr_expect_eq(r.status, 200, "%s", dump(r.doc));
	resp_free(&r);

	/* The same writes by an admin session go through (the positive control). */
	json_decref(sign_in("alice", ALICE_PW, &alice));
	with_cookie("POST", "/api/v1/rules", rule, alice.cookie, alice.csrf, &r);
	cr_expect_eq(r.status, 201, "%s", dump(r.doc));
	resp_free(&r);
	with_cookie("GET", "/api/v1/users", NULL, alice.cookie, NULL, &r);
	cr_expect_eq(r.status, 200, "%s", dump(r.doc));
	cr_expect_eq(json_array_size(json_object_get(r.doc, "users")), 2);
	resp_free(&r);
}

Test(ui_auth, sign_out_ends_the_session)
{
	static const char clear[] =
	    "vigil_session=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict";
	struct sess s;
	struct resp r;

	json_decref(sign_in("alice", ALICE_PW, &s));
	/* Without the CSRF token nobody can sign a user out. */
	with_cookie("DELETE", "/api/v1/session", NULL, s.cookie, NULL, &r);
	cr_expect_eq(r.status, 403);
	resp_free(&r);
	cr_expect_eq(get_status(&s, "/api/v1/hosts"), 200);

	with_cookie("DELETE", "/api/v1/session", NULL, s.cookie, s.csrf, &r);
	cr_expect_eq(r.status, 200, "%s", dump(r.doc));
	cr_expect(json_is_true(json_object_get(r.doc, "signed_out")));
	cr_expect_str_eq(r.set_cookie, clear);
	resp_free(&r);
	cr_expect_eq(get_status(&s, "/api/v1/hosts"), 401);
	cr_expect_eq(get_status(&s, "/api/v1/session"), 401);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM sessions"), 0);
}

Test(ui_auth, failed_sign_ins_are_throttled)
{
	struct resp r;
	long after;

	/* The right password works before (the positive control). */
	json_decref(sign_in("alice", ALICE_PW, &(struct sess){0}));
	for (int i = 0; i < 5; i++) {
		sign_in_body("{\"user\":\"alice\",\"password\":\"guess guess\"}", &r);
		cr_expect_eq(r.status, 401, "attempt %d: %d", i + 1, r.status);
		resp_free(&r);
	}
	sign_in_body("{\"user\":\"alice\",\"password\":\"" ALICE_PW "\"}", &r);
	cr_expect_eq(r.status, 429, "%s", dump(r.doc));
	cr_expect_str_eq(r.set_cookie, "");
	after = strtol(r.retry_after, NULL, 10);
	cr_expect(after >= 1 && after <= 300, "Retry-After: '%s'", r.retry_after);
	cr_expect_eq(json_integer_value(json_object_get(r.doc, "retry_after_s")), after);
	resp_free(&r);

	/* The address is throttled too: another user, and the token. */
	sign_in_body("{\"user\":\"bob\",\"password\":\"" BOB_PW "\"}", &r);
	cr_expect_eq(r.status, 429);
	resp_free(&r);
	{
		char body[200];

		snprintf(body, sizeof(body), "{\"token\":\"%s\"}", con.token);
		sign_in_body(body, &r);
		cr_expect_eq(r.status, 429);
		resp_free(&r);
	}
	/* Requests with the token are no sign-ins: they go on. */
	json_decref(with_token("GET", "/api/v1/hosts", NULL, 200));
}

Test(ui_auth, a_token_sign_in_gives_an_admin_session)
{
	char body[200];
	struct resp r;
	struct sess s;

	sign_in_body("{\"token\":\"00000000000000000000000000000000\"}", &r);
	cr_expect_eq(r.status, 401);
	cr_expect_str_eq(jstr(r.doc, "error"), "wrong API token");
	cr_expect_str_eq(r.set_cookie, "");
	resp_free(&r);
	sign_in_body("{\"token\":\"x\",\"user\":\"alice\"}", &r);
	cr_expect_eq(r.status, 400);
	cr_expect_str_eq(jstr(r.doc, "field"), "token");
	resp_free(&r);

	snprintf(body, sizeof(body), "{\"token\":\"%s\"}", con.token);
	sign_in_body(body, &r);
	cr_assert_eq(r.status, 201, "%s", dump(r.doc));
	cr_expect(json_is_null(json_object_get(r.doc, "user")));
	cr_expect_str_eq(jstr(r.doc, "role"), "admin");
	snprintf(s.cookie, sizeof(s.cookie), "%.*s", (int)strcspn(r.set_cookie + 14, ";"),
		 r.set_cookie + 14);
	snprintf(s.csrf, sizeof(s.csrf), "%s", jstr(r.doc, "csrf"));
	resp_free(&r);

	with_cookie("POST", "/api/v1/rules", rule, s.cookie, s.csrf, &r);
	cr_expect_eq(r.status, 201, "%s", dump(r.doc));
	resp_free(&r);
	cr_expect_eq(get_status(&s, "/api/v1/users"), 200);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM sessions WHERE user_name IS NULL"
				      " AND role = 'admin'"),
		     1);
}

Test(ui_auth, passwords_and_cookies_are_stored_hashed)
{
	char sql[512];
	PGconn *db;
	PGresult *res;
	struct sess s;
	const char *hash;

	json_decref(sign_in("alice", ALICE_PW, &s));
	db = h_db(&con);
	res = PQexec(db, "SELECT password_hash FROM users WHERE name = 'alice'");
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK);
	hash = PQgetvalue(res, 0, 0);
	cr_expect(strncmp(hash, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0, "hash: %s", hash);
	cr_expect(strstr(hash, ALICE_PW) == NULL);
	PQclear(res);
	PQfinish(db);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM users WHERE password_hash NOT LIKE"
				      " '$argon2id$%'"),
		     0);
	/* The table holds the cookie's SHA-256, not the cookie. */
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM sessions WHERE hash = '%s'", s.cookie);
	cr_expect_eq(h_db_count(&con, sql), 0);
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM sessions WHERE hash = encode(sha256('%s'::bytea), 'hex')",
		 s.cookie);
	cr_expect_eq(h_db_count(&con, sql), 1);
}

Test(ui_auth, users_crud_and_what_changes_end_sessions)
{
	struct sess a1, b1;
	struct resp r;
	json_t *doc, *u;

	/* Refusals name the field; nothing is written. */
	doc = with_token("POST", "/api/v1/users",
			 "{\"name\":\"a b\",\"password\":\"12345678\",\"role\":\"read\"}", 400);
	cr_expect_str_eq(jstr(doc, "field"), "name");
	json_decref(doc);
	doc = with_token("POST", "/api/v1/users",
			 "{\"name\":\"carol\",\"password\":\"1234567\",\"role\":\"read\"}", 400);
	cr_expect_str_eq(jstr(doc, "field"), "password");
	json_decref(doc);
	doc = with_token("POST", "/api/v1/users",
			 "{\"name\":\"carol\",\"password\":\"12345678\",\"role\":\"root\"}", 400);
	cr_expect_str_eq(jstr(doc, "field"), "role");
	json_decref(doc);
	doc = with_token("POST", "/api/v1/users",
			 "{\"name\":\"alice\",\"password\":\"12345678\",\"role\":\"read\"}", 409);
	cr_expect_str_eq(jstr(doc, "field"), "name");
	json_decref(doc);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM users"), 2);

	/* The list never has a hash. */
	doc = with_token("GET", "/api/v1/users", NULL, 200);
	u = json_array_get(json_object_get(doc, "users"), 0);
	cr_expect_str_eq(jstr(u, "name"), "alice");
	cr_expect_eq(json_object_size(u), 5, "%s", dump(u));
	cr_expect_null(json_object_get(u, "password_hash"));
	json_decref(doc);

	/* A new password ends the user's sessions, not the others'. */
	json_decref(sign_in("alice", ALICE_PW, &a1));
	json_decref(sign_in("bob", BOB_PW, &b1));
	doc = with_token("PUT", "/api/v1/users/alice", "{\"password\":\"a new password\"}", 200);
	cr_expect_str_eq(jstr(json_object_get(doc, "user"), "name"), "alice");
	json_decref(doc);
	cr_expect_eq(get_status(&a1, "/api/v1/hosts"), 401);
	cr_expect_eq(get_status(&b1, "/api/v1/hosts"), 200);
	sign_in_body("{\"user\":\"alice\",\"password\":\"" ALICE_PW "\"}", &r);
	cr_expect_eq(r.status, 401);
	resp_free(&r);
	json_decref(sign_in("alice", "a new password", &a1));

	/* A role that changes ends them; one that stays does not. */
	json_decref(with_token("PUT", "/api/v1/users/alice", "{\"role\":\"admin\"}", 200));
	cr_expect_eq(get_status(&a1, "/api/v1/hosts"), 200);
	json_decref(with_token("PUT", "/api/v1/users/alice", "{\"role\":\"read\"}", 200));
	cr_expect_eq(get_status(&a1, "/api/v1/hosts"), 401);

	/* Deleting a user ends its sessions at once. */
	cr_expect_eq(get_status(&b1, "/api/v1/hosts"), 200);
	doc = with_token("DELETE", "/api/v1/users/bob", NULL, 200);
	cr_expect_str_eq(jstr(doc, "deleted"), "bob");
	json_decref(doc);
	cr_expect_eq(get_status(&b1, "/api/v1/hosts"), 401);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM sessions WHERE user_name = 'bob'"), 0);

	/* Unknown names. */
	json_decref(with_token("DELETE", "/api/v1/users/bob", NULL, 404));
	json_decref(with_token("PUT", "/api/v1/users/nobody", "{\"role\":\"read\"}", 404));
	doc = with_token("PUT", "/api/v1/users/alice", "{}", 400);
	json_decref(doc);
	doc = with_token("PUT", "/api/v1/users/alice", "{\"name\":\"alicia\"}", 400);
	cr_expect_str_eq(jstr(doc, "field"), "name");
	json_decref(doc);
}

/* Run vigilctl with args after the API options; its output (caller frees), *ret_exit its code.
 */
static char *vigilctl(const char *const *args, int *ret_exit)
{
	char out[H_PATH];

	snprintf(out, sizeof(out), "%s/vigilctl.out", dir);
	*ret_exit = h_vigilctl(&con, &pki, args, out);
	return h_slurp(out);
}

/* vigilctl that must exit with want; returns its output (caller frees). */
static char *ctl(int want, const char *const *args)
{
	int rc;
	char *text = vigilctl(args, &rc);

	cr_assert_eq(rc, want, "vigilctl users %s exited %d, want %d:\n%s", args[1], rc, want,
		     text);
	return text;
}

#define EXPECT_IN(text, what) cr_expect(strstr(text, what) != NULL, "no '%s' in:\n%s", what, text)

Test(ui_auth, users_through_vigilctl)
{
	char pwfile[H_PATH], cmd[2048], out[H_PATH], tokfile[H_PATH];
	char *t;
	json_t *arr, *u;
	size_t i;
	bool seen = false;
	int rc;

	h_write_file(dir, "pw", "carols password\n", pwfile);
	free(ctl(0, (const char *const[]){"users", "add", "carol", "--role", "read",
					  "--password-file", pwfile, NULL}));
	json_decref(sign_in("carol", "carols password", &(struct sess){0}));

	t = ctl(0, (const char *const[]){"users", "list", NULL});
	EXPECT_IN(t, "NAME");
	EXPECT_IN(t, "carol");
	EXPECT_IN(t, "3 user(s)");
	free(t);

	t = ctl(0, (const char *const[]){"users", "list", "--json", NULL});
	arr = json_loads(t, 0, NULL);
	cr_assert(json_is_array(arr), "not a JSON array:\n%s", t);
	json_array_foreach(arr, i, u)
	{
		cr_expect_null(json_object_get(u, "password_hash"));
		if (strcmp(jstr(u, "name"), "carol") == 0) {
			seen = true;
			cr_expect_str_eq(jstr(u, "role"), "read");
			cr_expect(json_is_string(json_object_get(u, "last_login")));
		}
	}
	cr_expect(seen, "no carol in:\n%s", t);
	json_decref(arr);
	free(t);

	/* The password from stdin (not a terminal: its first line). */
	snprintf(out, sizeof(out), "%s/vigilctl.out", dir);
	snprintf(tokfile, sizeof(tokfile), "%s/api-token", con.state);
	snprintf(cmd, sizeof(cmd),
		 "printf 'another password\\nignored\\n' | %s --api %s --ca %s --token-file %s"
		 " users passwd carol",
		 h_bin("vigilctl"), con.api, pki.ca, tokfile);
	rc = h_run(out, 60000, (char *const[]){"/bin/sh", "-c", cmd, NULL});
	t = h_slurp(out);
	cr_expect_eq(rc, 0, "passwd from stdin exited %d:\n%s", rc, t);
	free(t);
	json_decref(sign_in("carol", "another password", &(struct sess){0}));

	free(ctl(0, (const char *const[]){"users", "role", "carol", "admin", NULL}));
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM users WHERE name = 'carol'"
				      " AND role = 'admin'"),
		     1);
	free(ctl(0, (const char *const[]){"users", "rm", "carol", NULL}));
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM users WHERE name = 'carol'"), 0);

	/* Refusals and usage errors keep vigilctl's exit codes. */
	t = ctl(1, (const char *const[]){"users", "rm", "carol", NULL});
	EXPECT_IN(t, "404");
	free(t);
	free(ctl(1, (const char *const[]){"users", "add", "alice", "--role", "read",
					  "--password-file", pwfile, NULL}));
	h_write_file(dir, "short", "short\n", pwfile);
	free(ctl(1, (const char *const[]){"users", "add", "dave", "--role", "read",
					  "--password-file", pwfile, NULL}));
	free(ctl(2, (const char *const[]){"users", "add", "dave", "--role", "root", NULL}));
	free(ctl(2, (const char *const[]){"users", "add", "dave", NULL}));
	free(ctl(2, (const char *const[]){"users", "role", "bad name", "read", NULL}));
	free(ctl(2, (const char *const[]){"users", "frobnicate", NULL}));
	t = ctl(0, (const char *const[]){"users", "--help", NULL});
	EXPECT_IN(t, "passwd NAME");
	free(t);
	t = ctl(0, (const char *const[]){"users", "add", "--help", NULL});
	EXPECT_IN(t, "--role admin|read");
	free(t);
	{
		char *argv[] = {(char *)h_bin("vigilctl"),
				"--api",
				"https://127.0.0.1:1",
				"--ca",
				pki.ca,
				"--token-file",
				tokfile,
				"users",
				"list",
				NULL};

		rc = h_run(out, 60000, argv);
		cr_expect_eq(rc, 3, "an unreachable console: exit %d", rc);
	}
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM users"), 2);
}
