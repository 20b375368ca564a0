/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sign-in, sessions, users and roles (see api_auth.h):
 *
 *   POST   /api/v1/session         sign in: {"user", "password"} or {"token"} (201, cookie)
 *   GET    /api/v1/session         the session of the cookie
 *   DELETE /api/v1/session         sign out (X-CSRF-Token)
 *   GET    /api/v1/users           the users (admin)
 *   POST   /api/v1/users           add one: {"name", "password", "role"} (201)
 *   PUT    /api/v1/users/{name}    {"password"?, "role"?}: its sessions end
 *   DELETE /api/v1/users/{name}    and its sessions with it
 *
 * and api_auth_request, the check every other handler starts with.
 */
#include "api/api_auth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <argon2.h>
#include <mbedtls/sha256.h>

#include "api/api_priv.h"
#include "api/throttle.h"
#include "log.h"
#include "tls.h"
#include "utf8.h"

/* peer_addr reads the connection's stream as nng 1.5 lays it out (as common/tls.c does). */
#if NNG_MAJOR_VERSION != 1 || NNG_MINOR_VERSION != 5
#error "api_auth.c reads nng 1.5's nng_http_conn; check peer_addr against this nng"
#endif

#define SESSION_PATH "/api/v1/session"
#define USERS_PATH   "/api/v1/users"
#define COOKIE_NAME  "vigil_session"

/*
 * argon2id as OWASP's password storage cheat sheet gives it (m=19 MiB, t=2,
 * p=1): about 30-60 ms a hash here, slow enough that a stolen table costs
 * an attacker dearly, fast enough for a sign-in.  p=1: no threads.
 */
#define HASH_T	      2
#define HASH_M_KIB    (19 * 1024)
#define HASH_P	      1
#define HASH_SALT_LEN 16
#define HASH_LEN      32

/* How long a request waits for one of the API_AUTH_HASHING slots before its 503. */
#define HASH_WAIT_S 5

/* Sign-in log lines per minute; the rest are counted and the count logged with the next. */
#define SIGNIN_LOG_PER_MIN 20

#define READ_ONLY_MSG "read-only user: this needs the admin role"
#define CSRF_MSG      "missing or wrong CSRF token"
#define WRONG_USER    "wrong user name or password"
#define WRONG_TOKEN   "wrong API token"

/* A throttle key: "u:" and a user name, or "a:" and an address. */
#define TH_KEY_MAX (2 + TLS_ADDR_TEXT + 8)

_Static_assert(TH_KEY_MAX <= THROTTLE_KEY_MAX, "a throttle key is kept whole");

struct api_auth {
	int session_hours;
	sem_t hashing;		   /* API_AUTH_HASHING slots */
	char dummy[USER_HASH_MAX]; /* verified for unknown names: same time as a known one */
	struct throttle *th;	   /* failed sign-ins per name and per address */
	pthread_mutex_t lock;	   /* guards everything below */
	int64_t log_minute;	   /* monotonic s the current log minute began */
	unsigned log_lines;	   /* sign-in lines logged in it */
	uint64_t log_suppressed;   /* ... and not logged, since the last one */
};

static int64_t now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* Compare without leaking through timing how much of want matched. */
static bool secret_equal(const char *given, const char *want)
{
	size_t n = strlen(want), g = strlen(given);
	unsigned char diff = g != n;

	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)((i < g ? given[i] : 0) ^ want[i]);
	return diff == 0;
}

static void hex_of(const unsigned char *raw, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[raw[i] >> 4];
		out[2 * i + 1] = digits[raw[i] & 15];
	}
	out[2 * n] = '\0';
}

/* SESSION_HEX_LEN / 2 random bytes as hex into out (SESSION_HEX_LEN + 1); -EIO without. */
static int random_hex(char *out)
{
	unsigned char raw[SESSION_HEX_LEN / 2];

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return -EIO;
	hex_of(raw, sizeof(raw), out);
	return 0;
}

/* The SHA-256 of a cookie as hex (what sessions.hash holds) into out (SESSION_HEX_LEN + 1). */
static void cookie_hash(const char *cookie, char *out)
{
	unsigned char sum[32];

	mbedtls_sha256_ret((const unsigned char *)cookie, strlen(cookie), sum, 0);
	hex_of(sum, sizeof(sum), out);
}

/*
 * The vigil_session cookie of req (SESSION_HEX_LEN lowercase hex) into out;
 * false when there is none of that form.
 */
static bool cookie_of(nng_http_req *req, char *out)
{
	const char *h = nng_http_req_get_header(req, "Cookie");
	const size_t nlen = strlen(COOKIE_NAME);

	while (h != NULL && *h != '\0') {
		size_t len;

		h += strspn(h, " \t;");
		len = strcspn(h, ";");
		if (len == nlen + 1 + SESSION_HEX_LEN &&
		    strncmp(h, COOKIE_NAME "=", nlen + 1) == 0 &&
		    strspn(h + nlen + 1, "0123456789abcdef") >= SESSION_HEX_LEN) {
			memcpy(out, h + nlen + 1, SESSION_HEX_LEN);
			out[SESSION_HEX_LEN] = '\0';
			return true;
		}
		h += len;
	}
	return false;
}

/* api_auth_cred, with the cookie (when API_CRED_COOKIE) into cookie. */
static enum api_cred cred_of(const char *token, nng_http_req *req, char *cookie)
{
	const char *h = nng_http_req_get_header(req, "Authorization");

	/* Only Bearer is ours: another scheme (a proxy's Basic) leaves the cookie to decide. */
	if (h != NULL && strncmp(h, "Bearer ", 7) == 0)
		return secret_equal(h + 7, token) ? API_CRED_TOKEN : API_CRED_WRONG;
	return cookie_of(req, cookie) ? API_CRED_COOKIE : API_CRED_NONE;
}

enum api_cred api_auth_cred(const char *token, nng_http_req *req)
{
	char cookie[SESSION_HEX_LEN + 1];

	return cred_of(token, req, cookie);
}

/*
 * The request's source address: for logs into text ("10.0.0.7",
 * "2001:db8::7"), and as the throttle counts it into key (IPv6: the /64, the
 * block one host usually has, as common/tls.c counts connections).  Both
 * TLS_ADDR_TEXT.  nng 1.5.2 has no call for a server connection's address:
 * an nng_http_conn starts with its stream (http_conn.c, struct
 * nng_http_conn), and the TLS stream answers NNG_OPT_REMADDR from TCP.
 */
void api_peer_addr(nng_aio *aio, char *text, char *key)
{
	nng_http_conn *conn = nng_aio_get_input(aio, 2);
	nng_stream *s = conn != NULL ? *(nng_stream **)conn : NULL;
	nng_sockaddr sa;

	snprintf(text, TLS_ADDR_TEXT, "unknown");
	snprintf(key, TLS_ADDR_TEXT, "unknown");
	if (s == NULL || nng_stream_get_addr(s, NNG_OPT_REMADDR, &sa) != 0)
		return;
	if (sa.s_family == NNG_AF_INET) {
		inet_ntop(AF_INET, &sa.s_in.sa_addr, text, TLS_ADDR_TEXT);
		snprintf(key, TLS_ADDR_TEXT, "%s", text);
	} else if (sa.s_family == NNG_AF_INET6) {
		unsigned char net[16] = {0};
		char t[INET6_ADDRSTRLEN];

		inet_ntop(AF_INET6, sa.s_in6.sa_addr, text, TLS_ADDR_TEXT);
		memcpy(net, sa.s_in6.sa_addr, 8);
		inet_ntop(AF_INET6, net, t, sizeof(t));
		snprintf(key, TLS_ADDR_TEXT, "%s/64", t);
	}
}

/* ---- the sign-in log, at most SIGNIN_LOG_PER_MIN lines a minute ---- */

static void signin_log(struct api_auth *a, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void signin_log(struct api_auth *a, enum log_level level, const char *fmt, ...)
{
	int64_t now = now_s();
	uint64_t suppressed = 0;
	char line[512];
	va_list ap;

	pthread_mutex_lock(&a->lock);
	if (now - a->log_minute >= 60) {
		a->log_minute = now;
		a->log_lines = 0;
	}
	if (a->log_lines >= SIGNIN_LOG_PER_MIN) {
		a->log_suppressed++;
		pthread_mutex_unlock(&a->lock);
		return;
	}
	a->log_lines++;
	suppressed = a->log_suppressed;
	a->log_suppressed = 0;
	pthread_mutex_unlock(&a->lock);
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (suppressed > 0)
		log_msg(level,
			"%s (and %" PRIu64 " sign-in line(s) not logged before, over %d a"
			" minute)",
			line, suppressed, SIGNIN_LOG_PER_MIN);
	else
		log_msg(level, "%s", line);
}

/* ---- the throttle of failed sign-ins ---- */

/* How a sign-in that throttle_begin let through ended. */
enum th_outcome {
	TH_FAILED,    /* wrong credentials: the charge stays */
	TH_UNDECIDED, /* the database, no hashing slot: the charge is refunded */
	TH_SUCCEEDED, /* refunded, and the user name's failures forgotten (its owner knows the
			 password); the address's stay */
};

/* After throttle_begin let keys[0..n) through; keys[0] is the user name's when user_key. */
static void th_done(struct api_auth *a, const char *const *keys, int n, bool user_key,
		    enum th_outcome how)
{
	if (how == TH_FAILED)
		return;
	for (int i = 0; i < n; i++) {
		if (i == 0 && user_key && how == TH_SUCCEEDED)
			throttle_forget(a->th, keys[i]);
		else
			throttle_refund(a->th, keys[i]);
	}
}

/* ---- passwords ---- */

/* One of the hashing slots; -EBUSY when none came free within HASH_WAIT_S. */
static int hash_slot_take(struct api_auth *a)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += HASH_WAIT_S;
	while (sem_timedwait(&a->hashing, &until) != 0)
		if (errno != EINTR)
			return -EBUSY;
	return 0;
}

/* Hash pw[0..len) into out (USER_HASH_MAX) without the semaphore; -EIO when argon2 fails. */
static int hash_now(const char *pw, size_t len, char *out)
{
	unsigned char salt[HASH_SALT_LEN];

	if (getrandom(salt, sizeof(salt), 0) != (ssize_t)sizeof(salt))
		return -EIO;
	if (argon2id_hash_encoded(HASH_T, HASH_M_KIB, HASH_P, pw, len, salt, sizeof(salt), HASH_LEN,
				  out, USER_HASH_MAX) != ARGON2_OK)
		return -EIO;
	return 0;
}

/* hash_now within a hashing slot: 0, -EBUSY (no slot), -EIO. */
static int password_hash(struct api_auth *a, const char *pw, size_t len, char *out)
{
	int rc;

	if ((rc = hash_slot_take(a)) < 0)
		return rc;
	rc = hash_now(pw, len, out);
	sem_post(&a->hashing);
	return rc;
}

/*
 * Whether pw[0..len) matches encoded (NULL: the dummy, which nothing
 * matches but which costs as much), within a hashing slot: 1, 0, or
 * -EBUSY.  who names the user for the log when the stored hash is unusable.
 */
static int password_verify(struct api_auth *a, const char *encoded, const char *pw, size_t len,
			   const char *who)
{
	int rc;

	if ((rc = hash_slot_take(a)) < 0)
		return rc;
	rc = argon2id_verify(encoded != NULL ? encoded : a->dummy, pw, len);
	sem_post(&a->hashing);
	if (rc != ARGON2_OK && rc != ARGON2_VERIFY_MISMATCH && encoded != NULL)
		log_warn("user %s: the stored password hash cannot be used (%s): nobody can sign"
			 " in as this user until its password is set again",
			 who, argon2_error_message(rc));
	return encoded != NULL && rc == ARGON2_OK;
}

struct api_auth *api_auth_new(int session_hours, vigil_err *err)
{
	struct api_auth *a;
	char pw[SESSION_HEX_LEN + 1];

	if (session_hours < API_SESSION_HOURS_MIN || session_hours > API_SESSION_HOURS_MAX) {
		verr_set(err, -EINVAL, "session hours %d is not from %d to %d", session_hours,
			 API_SESSION_HOURS_MIN, API_SESSION_HOURS_MAX);
		errno = EINVAL;
		return NULL;
	}
	a = calloc(1, sizeof(*a));
	if (a == NULL || (a->th = throttle_new(API_AUTH_THROTTLE_MAX, API_AUTH_FAILS_MAX,
					       API_AUTH_WINDOW_S, "sign-in throttle")) == NULL) {
		free(a);
		verr_set(err, -ENOMEM, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	a->session_hours = session_hours;
	a->log_minute = now_s();
	/* The dummy: a hash of a random password nobody knows, with the same parameters. */
	if (random_hex(pw) < 0 || hash_now(pw, strlen(pw), a->dummy) < 0) {
		verr_set(err, -EIO, "cannot hash a password with argon2id (out of memory?)");
		throttle_free(a->th);
		free(a);
		errno = EIO;
		return NULL;
	}
	sem_init(&a->hashing, 0, API_AUTH_HASHING);
	pthread_mutex_init(&a->lock, NULL);
	return a;
}

void api_auth_free(struct api_auth *a)
{
	uint64_t refused, evicted;

	if (a == NULL)
		return;
	throttle_counts(a->th, &refused, &evicted);
	if (refused > 0 || evicted > 0 || a->log_suppressed > 0)
		log_info("sign-ins: %" PRIu64 " refused by the throttle (429), %" PRIu64
			 " throttle entries dropped for room, %" PRIu64
			 " sign-in line(s) not logged",
			 refused, evicted, a->log_suppressed);
	throttle_free(a->th);
	sem_destroy(&a->hashing);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

/* ---- answers ---- */

/* 400 {"error": msg, "field": field}. */
static void respond_field(nng_aio *aio, uint16_t status, const char *field, const char *msg)
{
	api_respond_json(aio, status, json_pack("{s:s,s:s}", "error", msg, "field", field));
}

/* A session as the API shows it: {"user", "role", "csrf", "expires"}. */
static json_t *session_json(const struct store_session *s)
{
	return json_pack("{s:o,s:s,s:s,s:s}", "user",
			 s->has_user ? json_string(s->user) : json_null(), "role", s->role, "csrf",
			 s->csrf, "expires", s->expires);
}

/* Who made a change, for the log: "the API token", "user alice", "a token session". */
static const char *actor(nng_aio *aio, char *buf, size_t len)
{
	const struct api_caller *c = api_caller(aio);

	if (!c->session)
		snprintf(buf, len, "the API token");
	else if (c->user[0] == '\0')
		snprintf(buf, len, "a session signed in with the API token");
	else
		snprintf(buf, len, "user %s", c->user);
	return buf;
}

/*
 * The request's body as a JSON object into *ret (caller decrefs), with no
 * field but those in allowed; false after answering 400.
 */
static bool read_object(nng_aio *aio, const char *const *allowed, json_t **ret)
{
	nng_http_req *req = nng_aio_get_input(aio, 0);
	json_error_t jerr;
	const char *k;
	json_t *v;
	void *data;
	size_t len;

	nng_http_req_get_data(req, &data, &len);
	*ret = len > 0 ? json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
	if (!json_is_object(*ret)) {
		json_decref(*ret);
		*ret = NULL;
		respond_field(aio, 400, "", "the body must be a JSON object");
		return false;
	}
	json_object_foreach(*ret, k, v)
	{
		bool known = false;

		for (size_t i = 0; allowed[i] != NULL && !known; i++)
			known = strcmp(k, allowed[i]) == 0;
		if (!known) {
			char msg[160], field[80];

			/* A long key is cut, and written out so that the answer stays UTF-8. */
			utf8_escape_controls(k, strnlen(k, 48), field, sizeof(field));
			snprintf(msg, sizeof(msg), "unknown field '%s'", field);
			respond_field(aio, 400, field, msg);
			json_decref(*ret);
			*ret = NULL;
			return false;
		}
	}
	return true;
}

/*
 * A string field of body into *ret (NULL when absent and not required),
 * its length into *ret_len (may be NULL); nul_ok: it may hold U+0000 (a
 * password).  false after answering 400.
 */
static bool str_field(nng_aio *aio, json_t *body, const char *name, bool required, bool nul_ok,
		      const char **ret, size_t *ret_len)
{
	json_t *v = json_object_get(body, name);
	char msg[96];

	*ret = NULL;
	if (v == NULL && !required)
		return true;
	if (v == NULL)
		snprintf(msg, sizeof(msg), "'%s' is required", name);
	else if (!json_is_string(v))
		snprintf(msg, sizeof(msg), "'%s' must be a string", name);
	else if (!nul_ok && strlen(json_string_value(v)) != json_string_length(v))
		snprintf(msg, sizeof(msg), "'%s' must not contain U+0000", name);
	else {
		*ret = json_string_value(v);
		if (ret_len != NULL)
			*ret_len = json_string_length(v);
		return true;
	}
	respond_field(aio, 400, name, msg);
	return false;
}

/* The live session of cookie into *ret; false after answering 401, or 503/504. */
static bool session_of_cookie(nng_aio *aio, const char *cookie, struct store_session *ret)
{
	char key[SESSION_HEX_LEN + 1];
	vigil_err err = {0};
	int rc;

	cookie_hash(cookie, key);
	rc = store_session_get(api_store(aio), key, ret, &err);
	if (rc == -ENOENT) {
		api_respond_error(aio, 401, API_AUTH_401);
		return false;
	}
	if (rc < 0) {
		api_respond_store_error(aio, rc, "reading a session", err.msg);
		return false;
	}
	return true;
}

/* Whether the request carries the session's CSRF token. */
static bool csrf_ok(nng_aio *aio, const struct store_session *s)
{
	const char *h = nng_http_req_get_header(nng_aio_get_input(aio, 0), "X-CSRF-Token");

	return h != NULL && secret_equal(h, s->csrf);
}

bool api_auth_request(nng_aio *aio, struct api_caller *ret)
{
	struct api *api = api_of(aio);
	char cookie[SESSION_HEX_LEN + 1];
	struct store_session s;

	*ret = (struct api_caller){0};
	switch (cred_of(api->token, nng_aio_get_input(aio, 0), cookie)) {
	case API_CRED_TOKEN:
		ret->admin = true;
		return true;
	case API_CRED_COOKIE:
		break;
	default:
		api_respond_error(aio, 401, API_AUTH_401);
		return false;
	}
	if (!session_of_cookie(aio, cookie, &s))
		return false;
	/*
	 * A browser sends the cookie with whatever a page makes it send; only
	 * our page can read the CSRF token (from the sign-in's answer) to send
	 * it back.  The CSRF check comes first: a forged request learns
	 * nothing of the session's role.
	 */
	if (!api_method_get(aio)) {
		if (!csrf_ok(aio, &s)) {
			api_respond_error(aio, 403, CSRF_MSG);
			return false;
		}
		if (strcmp(s.role, "admin") != 0) {
			api_respond_error(aio, 403, READ_ONLY_MSG);
			return false;
		}
	}
	ret->admin = strcmp(s.role, "admin") == 0;
	ret->session = true;
	snprintf(ret->user, sizeof(ret->user), "%s", s.user);
	return true;
}

/* ---- /api/v1/session ---- */

/* 201 with the new session and its cookie. */
static void respond_signed_in(nng_aio *aio, const char *cookie, const struct store_session *s)
{
	char set[256];
	const char *extra[] = {"Set-Cookie", set, NULL};

	snprintf(set, sizeof(set),
		 COOKIE_NAME "=%s; Path=/; Max-Age=%d; Secure; HttpOnly; SameSite=Strict", cookie,
		 api_of(aio)->auth->session_hours * 3600);
	api_respond_headers(aio, 201, session_json(s), extra);
}

/* The user's password against its stored hash (the dummy's when unknown): 1, 0, -EBUSY, or a
 * store error answered (-EIO). */
static int check_password(nng_aio *aio, const char *user, bool named, const char *pw, size_t len,
			  char *hash, bool *ret_known)
{
	vigil_err err = {0};
	char role[USER_ROLE_MAX];
	const char *encoded = NULL;
	int rc;

	*ret_known = false;
	if (named) {
		rc = store_user_credentials(api_store(aio), user, hash, role, &err);
		if (rc < 0 && rc != -ENOENT) {
			api_respond_store_error(aio, rc, "POST " SESSION_PATH, err.msg);
			return -EIO;
		}
		if (rc == 0)
			encoded = hash;
	}
	*ret_known = encoded != NULL;
	/* No stored password is longer: check the dummy, with as much work as the longest. */
	if (len > API_AUTH_PASSWORD_MAX) {
		encoded = NULL;
		len = API_AUTH_PASSWORD_MAX;
	}
	return password_verify(api_of(aio)->auth, encoded, pw, len, user);
}

/* Whether the request's body is declared JSON ("application/json", parameters allowed). */
static bool json_request(nng_aio *aio)
{
	const char *t = nng_http_req_get_header(nng_aio_get_input(aio, 0), "Content-Type");
	size_t n = strlen("application/json");

	return t != NULL && strncasecmp(t, "application/json", n) == 0 &&
	       (t[n] == '\0' || t[n] == ';' || t[n] == ' ');
}

static void sign_in(nng_aio *aio)
{
	static const char *const allowed[] = {"user", "password", "token", NULL};
	struct api *api = api_of(aio);
	struct api_auth *a = api->auth;
	char addr[TLS_ADDR_TEXT], addr_key[TLS_ADDR_TEXT], keys[2][TH_KEY_MAX];
	char hash[USER_HASH_MAX], cookie[SESSION_HEX_LEN + 1], key[SESSION_HEX_LEN + 1],
	    csrf[SESSION_HEX_LEN + 1], who[96];
	const char *user = NULL, *pw = NULL, *token = NULL, *kp[2] = {keys[0], keys[1]};
	struct store_session s;
	vigil_err err = {0};
	bool named, known = false;
	size_t pwlen = 0;
	int nkeys = 0, ok, rc;
	int64_t wait;
	json_t *body;

	/*
	 * JSON only: a form another site's page posts here (a form can send
	 * only form and text types without a CORS preflight) must not sign the
	 * visitor in as someone else.
	 */
	if (!json_request(aio)) {
		respond_field(aio, 400, "Content-Type",
			      "a sign-in must be sent as application/json");
		return;
	}
	if (!read_object(aio, allowed, &body))
		return;
	if (!str_field(aio, body, "token", false, false, &token, NULL))
		goto out;
	if (token != NULL &&
	    (json_object_get(body, "user") != NULL || json_object_get(body, "password") != NULL)) {
		respond_field(aio, 400, "token", "give either 'token', or 'user' and 'password'");
		goto out;
	}
	if (token == NULL && (!str_field(aio, body, "user", true, false, &user, NULL) ||
			      !str_field(aio, body, "password", true, true, &pw, &pwlen)))
		goto out;
	api_peer_addr(aio, addr, addr_key);
	/* A name that cannot be a user's is throttled by its address only (and never logged). */
	named = user != NULL && users_name_ok(user);
	if (named)
		snprintf(keys[nkeys++], TH_KEY_MAX, "u:%s", user);
	snprintf(keys[nkeys++], TH_KEY_MAX, "a:%s", addr_key);
	if (token != NULL)
		snprintf(who, sizeof(who), "the API token");
	else if (named)
		snprintf(who, sizeof(who), "user %s", user);
	else
		snprintf(who, sizeof(who), "a name that is no user name");

	if ((wait = throttle_begin(a->th, kp, nkeys, now_s())) > 0) {
		char after[24], msg[200];
		const char *extra[] = {"Retry-After", after, NULL};

		signin_log(a, LOG_LVL_WARN,
			   "sign-in refused: %s from %s: %d failed sign-ins of the name or"
			   " address within %d s (refused for %" PRId64 " s more)",
			   who, addr, API_AUTH_FAILS_MAX, API_AUTH_WINDOW_S, wait);
		snprintf(after, sizeof(after), "%" PRId64, wait);
		snprintf(msg, sizeof(msg),
			 "too many failed sign-ins for this user name or from this address; retry"
			 " after %" PRId64 " s",
			 wait);
		api_respond_headers(
		    aio, 429,
		    json_pack("{s:s,s:I}", "error", msg, "retry_after_s", (json_int_t)wait), extra);
		goto out;
	}
	if (token != NULL) {
		ok = secret_equal(token, api->token);
	} else {
		ok = check_password(aio, user, named, pw, pwlen, hash, &known);
		if (ok == -EIO) {
			th_done(a, kp, nkeys, named, TH_UNDECIDED);
			goto out;
		}
	}
	if (ok < 0) {
		th_done(a, kp, nkeys, named, TH_UNDECIDED);
		signin_log(a, LOG_LVL_WARN,
			   "sign-in of %s from %s not checked: %d sign-ins or"
			   " password changes are being hashed already",
			   who, addr, API_AUTH_HASHING);
		api_respond_error(aio, 503, "too many sign-ins at once; retry");
		goto out;
	}
	if (!ok) {
		signin_log(a, LOG_LVL_WARN, "sign-in refused: %s from %s: %s", who, addr,
			   token != NULL ? "wrong API token"
			   : known	 ? "wrong password"
					 : "no such user");
		api_respond_error(aio, 401, token != NULL ? WRONG_TOKEN : WRONG_USER);
		goto out;
	}
	if (random_hex(cookie) < 0 || random_hex(csrf) < 0) {
		th_done(a, kp, nkeys, named, TH_UNDECIDED);
		log_error("sign-in of %s from %s: no random bytes for the session", who, addr);
		api_respond_error(aio, 503, "cannot start a session now; retry");
		goto out;
	}
	cookie_hash(cookie, key);
	rc = store_session_create(api_store(aio), key, token != NULL ? NULL : user,
				  token != NULL ? NULL : hash, csrf, a->session_hours, &s, &err);
	if (rc == -ENOENT) {
		/* The password changed, or the user went, since it was checked. */
		th_done(a, kp, nkeys, named, TH_UNDECIDED);
		api_respond_error(aio, 401, WRONG_USER);
		goto out;
	}
	if (rc < 0) {
		th_done(a, kp, nkeys, named, TH_UNDECIDED);
		api_respond_store_error(aio, rc, "POST " SESSION_PATH, err.msg);
		goto out;
	}
	th_done(a, kp, nkeys, named, TH_SUCCEEDED);
	signin_log(a, LOG_LVL_INFO, "sign-in: %s (role %s) from %s, session until %s", who, s.role,
		   addr, s.expires);
	respond_signed_in(aio, cookie, &s);
out:
	json_decref(body);
}

static void sign_out(nng_aio *aio)
{
	static const char *const extra[] = {
	    "Set-Cookie", COOKIE_NAME "=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict",
	    NULL};
	char cookie[SESSION_HEX_LEN + 1], key[SESSION_HEX_LEN + 1];
	struct store_session s;
	vigil_err err = {0};
	int rc;

	if (!cookie_of(nng_aio_get_input(aio, 0), cookie)) {
		api_respond_error(aio, 401, API_AUTH_401);
		return;
	}
	if (!session_of_cookie(aio, cookie, &s))
		return;
	/* Else any page could sign the user out. */
	if (!csrf_ok(aio, &s)) {
		api_respond_error(aio, 403, CSRF_MSG);
		return;
	}
	cookie_hash(cookie, key);
	if ((rc = store_session_delete(api_store(aio), key, &err)) < 0) {
		api_respond_store_error(aio, rc, "DELETE " SESSION_PATH, err.msg);
		return;
	}
	api_respond_headers(aio, 200, json_pack("{s:b}", "signed_out", 1), extra);
}

void api_handle_session(nng_aio *aio)
{
	const char *method = nng_http_req_get_method(nng_aio_get_input(aio, 0));
	char cookie[SESSION_HEX_LEN + 1];
	struct store_session s;

	if (strcmp(method, "POST") == 0) {
		sign_in(aio); /* needs no credential: it is how one gets one */
	} else if (strcmp(method, "DELETE") == 0) {
		sign_out(aio);
	} else if (!api_method_get(aio)) {
		api_respond_not_allowed(aio, "GET, HEAD, POST, DELETE",
					"use POST on " SESSION_PATH " to sign in, GET to see the"
					" session, DELETE to sign out");
	} else if (!cookie_of(nng_aio_get_input(aio, 0), cookie)) {
		api_respond_error(aio, 401, API_AUTH_401);
	} else if (session_of_cookie(aio, cookie, &s)) {
		api_respond_json(aio, 200, session_json(&s));
	}
}

/* ---- /api/v1/users ---- */

/* Whether a new password's length is acceptable; false after answering 400. */
static bool password_len_ok(nng_aio *aio, size_t len)
{
	if (len >= API_AUTH_PASSWORD_MIN && len <= API_AUTH_PASSWORD_MAX)
		return true;
	respond_field(aio, 400, "password", "must be 8 to 1024 bytes");
	return false;
}

static bool role_ok(nng_aio *aio, const char *role)
{
	if (role == NULL || users_role_ok(role))
		return true;
	respond_field(aio, 400, "role", "must be \"admin\" or \"read\"");
	return false;
}

/* Hash a new password into hash; false after answering 503 (no hashing slot) or 500. */
static bool new_hash(nng_aio *aio, const char *pw, size_t len, char *hash)
{
	int rc = password_hash(api_of(aio)->auth, pw, len, hash);

	if (rc == -EBUSY)
		api_respond_error(aio, 503, "too many passwords are being hashed at once; retry");
	else if (rc < 0)
		api_respond_error(aio, 500, "cannot hash the password (out of memory?)");
	return rc == 0;
}

static void users_list(nng_aio *aio)
{
	json_t *users = NULL;
	vigil_err err = {0};
	int rc;

	if ((rc = store_users_list(api_store(aio), &users, &err)) < 0) {
		api_respond_store_error(aio, rc, "GET " USERS_PATH, err.msg);
		return;
	}
	api_respond_json(aio, 200, json_pack("{s:o}", "users", users));
}

static void user_add(nng_aio *aio)
{
	static const char *const allowed[] = {"name", "password", "role", NULL};
	const char *name, *pw, *role;
	char hash[USER_HASH_MAX], by[96];
	json_t *body, *user = NULL;
	vigil_err err = {0};
	size_t pwlen = 0;
	int rc;

	if (!read_object(aio, allowed, &body))
		return;
	if (!str_field(aio, body, "name", true, false, &name, NULL) ||
	    !str_field(aio, body, "password", true, true, &pw, &pwlen) ||
	    !str_field(aio, body, "role", true, false, &role, NULL))
		goto out;
	if (!users_name_ok(name)) {
		respond_field(aio, 400, "name", "must be 1 to 64 letters, digits, '.', '_' or '-'");
		goto out;
	}
	if (!password_len_ok(aio, pwlen) || !role_ok(aio, role) || !new_hash(aio, pw, pwlen, hash))
		goto out;
	rc = store_user_add(api_store(aio), name, hash, role, &user, &err);
	if (rc == -EEXIST) {
		respond_field(aio, 409, "name", err.msg);
		goto out;
	}
	if (rc < 0) {
		api_respond_store_error(aio, rc, "POST " USERS_PATH, err.msg);
		goto out;
	}
	log_info("users: %s added user %s (role %s)", actor(aio, by, sizeof(by)), name, role);
	api_respond_json(aio, 201, json_pack("{s:o}", "user", user));
out:
	json_decref(body);
}

static void user_put(nng_aio *aio, const char *name)
{
	static const char *const allowed[] = {"password", "role", NULL};
	const char *pw, *role;
	char hash[USER_HASH_MAX], by[96];
	json_t *body, *user = NULL;
	vigil_err err = {0};
	size_t pwlen = 0;
	int rc;

	if (!read_object(aio, allowed, &body))
		return;
	if (!str_field(aio, body, "password", false, true, &pw, &pwlen) ||
	    !str_field(aio, body, "role", false, false, &role, NULL))
		goto out;
	if (pw == NULL && role == NULL) {
		respond_field(aio, 400, "", "give 'password', 'role' or both");
		goto out;
	}
	if ((pw != NULL && !password_len_ok(aio, pwlen)) || !role_ok(aio, role) ||
	    (pw != NULL && !new_hash(aio, pw, pwlen, hash)))
		goto out;
	rc = store_user_update(api_store(aio), name, pw != NULL ? hash : NULL, role, &user, &err);
	if (!api_store_done(aio, rc, NULL, "PUT " USERS_PATH "/{name}", err.msg))
		goto out;
	log_info("users: %s set %s%s%s of user %s%s", actor(aio, by, sizeof(by)),
		 pw != NULL ? "the password" : "", pw != NULL && role != NULL ? " and " : "",
		 role != NULL ? "the role" : "", name,
		 pw != NULL ? " (its sessions ended)"
			    : " (its sessions ended if the role changed)");
	api_respond_json(aio, 200, json_pack("{s:o}", "user", user));
out:
	json_decref(body);
}

static void user_delete(nng_aio *aio, const char *name)
{
	vigil_err err = {0};
	char by[96];
	int rc;

	rc = store_user_delete(api_store(aio), name, &err);
	if (!api_store_done(aio, rc, NULL, "DELETE " USERS_PATH "/{name}", err.msg))
		return;
	log_info("users: %s deleted user %s and its sessions", actor(aio, by, sizeof(by)), name);
	api_respond_json(aio, 200, json_pack("{s:s}", "deleted", name));
}

void api_handle_users(nng_aio *aio)
{
	const char *method = nng_http_req_get_method(nng_aio_get_input(aio, 0));
	char buf[256], name[USER_NAME_MAX + 2];
	const char *rest = api_subpath(aio, USERS_PATH, buf, sizeof(buf));
	size_t len;

	if (rest == NULL)
		return;
	/* Writes by a "read" session were refused by api_auth already; this is for GET. */
	if (!api_caller(aio)->admin) {
		api_respond_error(aio, 403, READ_ONLY_MSG);
		return;
	}
	if (rest[0] == '\0' || strcmp(rest, "/") == 0) {
		if (api_method_get(aio))
			users_list(aio);
		else if (strcmp(method, "POST") == 0)
			user_add(aio);
		else
			api_respond_not_allowed(aio, "GET, HEAD, POST",
						"use GET or POST on " USERS_PATH);
		return;
	}
	/* "/{name}" or "/{name}/"; a name needs no escaping, so nothing is decoded. */
	len = strlen(rest + 1);
	if (len > 0 && rest[len] == '/')
		len--;
	snprintf(name, sizeof(name), "%.*s", (int)(len < sizeof(name) ? len : sizeof(name) - 1),
		 rest + 1);
	if (len >= sizeof(name) || !users_name_ok(name)) {
		api_respond_error(aio, 404, "no such user");
		return;
	}
	if (strcmp(method, "PUT") == 0)
		user_put(aio, name);
	else if (strcmp(method, "DELETE") == 0)
		user_delete(aio, name);
	else
		api_respond_not_allowed(aio, "PUT, DELETE",
					"use PUT or DELETE on " USERS_PATH "/{name}");
}
