/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Enrollment over the API (docs/api.md, "Enrollment"):
 *
 *   POST   /api/v1/join-tokens         make a join token (admin; shown once, 201)
 *   GET    /api/v1/join-tokens         the tokens, never their secrets (admin)
 *   DELETE /api/v1/join-tokens/{id}    revoke one (admin)
 *   POST   /api/v1/enroll              a host joins: {"token", "csr"} -> its certificate (201)
 *   GET    /api/v1/enroll/ca           the CA, for hosts that pin its SHA-256
 *   GET    /api/v1/revocations         revoked hosts (admin)
 *   POST   /api/v1/revocations         revoke a host: {"host"} (admin)
 *
 * /api/v1/enroll takes no credential but the join token in its body: the
 * host has no certificate yet, and the API's port asks for none.  Its
 * failures are throttled per source address (as sign-ins, api_auth.h):
 * ENROLL_FAILS_MAX within ENROLL_WINDOW_S refuse the address (429) until
 * the window has passed.  A token is compared by the SHA-256 of its secret,
 * in constant time; a wrong secret and an unknown id get the same answer.
 * Nothing here logs a token's secret or a key.
 */
#include "api/api_enroll.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <mbedtls/sha256.h>

#include "api/api_priv.h"
#include "api/enroll_request.h"
#include "api/throttle.h"
#include "log.h"
#include "pki.h"
#include "pki_enroll.h"
#include "store/enroll_store.h"
#include "tls.h"

#define TOKENS_PATH	 "/api/v1/join-tokens"
#define ENROLL_PATH	 "/api/v1/enroll"
#define REVOCATIONS_PATH "/api/v1/revocations"

#define READ_ONLY_MSG "read-only user: this needs the admin role"
#define WRONG_TOKEN   "unknown or wrong join token"
#define NOT_SET_UP                                                                                 \
	"enrollment is not set up on this console (vigil-console --enroll-ca-dir DIR, the"         \
	" directory of the CA's ca.crt and ca.key)"

struct api_enroll {
	struct pki_signer *signer; /* NULL: not set up */
	int64_t cert_secs;
	int link_port;
	struct throttle *th; /* failed enrollments per source address */
};

static int64_t now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

struct api_enroll *api_enroll_new(struct pki_signer *signer, int64_t cert_secs, int link_port,
				  vigil_err *err)
{
	struct api_enroll *e;

	if (signer != NULL &&
	    (cert_secs < ENROLL_CERT_SECS_MIN || cert_secs > ENROLL_CERT_SECS_MAX)) {
		verr_set(err, -EINVAL,
			 "host certificate lifetime %" PRId64 " s is not from %d s to %d"
			 " days",
			 cert_secs, ENROLL_CERT_SECS_MIN, ENROLL_CERT_SECS_MAX / 86400);
		errno = EINVAL;
		return NULL;
	}
	if ((e = calloc(1, sizeof(*e))) == NULL ||
	    (e->th = throttle_new(ENROLL_THROTTLE_MAX, ENROLL_FAILS_MAX, ENROLL_WINDOW_S,
				  "enrollment throttle")) == NULL) {
		free(e);
		verr_set(err, -ENOMEM, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	e->signer = signer;
	e->cert_secs = cert_secs;
	e->link_port = link_port;
	return e;
}

void api_enroll_free(struct api_enroll *e)
{
	uint64_t refused, evicted;

	if (e == NULL)
		return;
	throttle_counts(e->th, &refused, &evicted);
	if (refused > 0 || evicted > 0)
		log_info("enrollment: %" PRIu64
			 " request(s) refused by the throttle (429), %" PRIu64
			 " throttle entries dropped for room",
			 refused, evicted);
	throttle_free(e->th);
	free(e);
}

/* ---- helpers ---- */

static void hex_of(const unsigned char *raw, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[raw[i] >> 4];
		out[2 * i + 1] = digits[raw[i] & 15];
	}
	out[2 * n] = '\0';
}

/* The SHA-256 (hex) of a token's secret: what join_tokens.hash holds. */
static void secret_hash(const char *secret, char out[JOIN_TOKEN_HASH_HEX + 1])
{
	unsigned char sum[32];

	mbedtls_sha256_ret((const unsigned char *)secret, strlen(secret), sum, 0);
	hex_of(sum, sizeof(sum), out);
}

/* Equal strings of the same length, compared without leaking where they differ. */
static bool hash_equal(const char *a, const char *b, size_t n)
{
	unsigned char diff = 0;

	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

/* Who made a change, for the record and the log. */
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

/* The request's body (may be empty). */
static void body_of(nng_aio *aio, const char **ret, size_t *ret_len)
{
	void *data = NULL;
	size_t len = 0;

	nng_http_req_get_data(nng_aio_get_input(aio, 0), &data, &len);
	*ret = data != NULL ? data : "";
	*ret_len = len;
}

static void respond_why(nng_aio *aio, uint16_t status, const struct enroll_why *why)
{
	api_respond_json(aio, status,
			 json_pack("{s:s,s:s}", "error", why->msg, "field", why->field));
}

/* An admin's request to path prefix: the rest of the path, or NULL after answering. */
static const char *admin_subpath(nng_aio *aio, const char *prefix, char *buf, size_t len)
{
	const char *rest = api_subpath(aio, prefix, buf, len);

	if (rest == NULL)
		return NULL;
	/* Writes by a "read" session were refused by api_auth already; this is for GET. */
	if (!api_caller(aio)->admin) {
		api_respond_error(aio, 403, READ_ONLY_MSG);
		return NULL;
	}
	return rest;
}

/* ---- /api/v1/join-tokens ---- */

static void token_create(nng_aio *aio, struct api_enroll *e)
{
	unsigned char raw[JOIN_TOKEN_ID_HEX / 2 + JOIN_TOKEN_SECRET_HEX / 2];
	char id[JOIN_TOKEN_ID_HEX + 1], secret[JOIN_TOKEN_SECRET_HEX + 1];
	char hash[JOIN_TOKEN_HASH_HEX + 1], full[JOIN_TOKEN_LEN + 1], by[96];
	struct join_token_request req;
	struct enroll_why why;
	vigil_err err = {0};
	json_t *token = NULL;
	const char *body;
	size_t len;
	int rc;

	body_of(aio, &body, &len);
	if (join_token_request_parse(body, len, &req, &why) < 0) {
		respond_why(aio, 400, &why);
		goto out;
	}
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
		api_respond_error(aio, 503, "no random bytes for a token now; retry");
		goto out;
	}
	hex_of(raw, JOIN_TOKEN_ID_HEX / 2, id);
	hex_of(raw + JOIN_TOKEN_ID_HEX / 2, JOIN_TOKEN_SECRET_HEX / 2, secret);
	secret_hash(secret, hash);
	snprintf(full, sizeof(full), "%s.%s", id, secret);
	const struct store_join_token_new t = {.id = id,
					       .hash = hash,
					       .reusable = req.reusable,
					       .group = req.group[0] != '\0' ? req.group : NULL,
					       .labels_json = req.labels_json,
					       .expires_s = req.expires_s,
					       .created_by = actor(aio, by, sizeof(by))};
	rc = store_join_token_create(api_store(aio), &t, &token, &err);
	if (rc < 0) {
		api_respond_store_error(aio, rc, "POST " TOKENS_PATH, err.msg);
		goto out;
	}
	log_info("enrollment: %s made join token %s (%s%s%s, for %" PRId64 " s)", by, id,
		 req.reusable ? "reusable" : "one-time", req.group[0] != '\0' ? ", group " : "",
		 req.group, req.expires_s);
	/* The only time the secret leaves the console: it keeps the hash. */
	json_object_set_new(token, "token", json_string(full));
	json_object_set_new(token, "ca_sha256", json_string(pki_signer_ca_sha256(e->signer)));
	json_object_set_new(token, "link_port", json_integer(e->link_port));
	api_respond_json(aio, 201, json_pack("{s:o}", "token", token));
out:
	explicit_bzero(secret, sizeof(secret));
	explicit_bzero(full, sizeof(full));
	explicit_bzero(raw, sizeof(raw));
	join_token_request_fini(&req);
}

static void tokens_list(nng_aio *aio)
{
	json_t *tokens = NULL;
	vigil_err err = {0};
	int rc;

	if ((rc = store_join_tokens_list(api_store(aio), &tokens, &err)) < 0) {
		api_respond_store_error(aio, rc, "GET " TOKENS_PATH, err.msg);
		return;
	}
	api_respond_json(aio, 200, json_pack("{s:o}", "tokens", tokens));
}

static void token_revoke(nng_aio *aio, const char *id)
{
	json_t *token = NULL;
	vigil_err err = {0};
	char by[96];
	int rc;

	rc = store_join_token_revoke(api_store(aio), id, &token, &err);
	if (!api_store_done(aio, rc, "no such join token", "DELETE " TOKENS_PATH "/{id}", err.msg))
		return;
	log_info("enrollment: %s revoked join token %s", actor(aio, by, sizeof(by)), id);
	api_respond_json(aio, 200, json_pack("{s:o}", "token", token));
}

void api_handle_join_tokens(nng_aio *aio)
{
	const char *method = nng_http_req_get_method(nng_aio_get_input(aio, 0));
	struct api_enroll *e = api_of(aio)->enroll;
	char buf[256], id[JOIN_TOKEN_ID_HEX + 2];
	const char *rest = admin_subpath(aio, TOKENS_PATH, buf, sizeof(buf));
	size_t len;

	if (rest == NULL)
		return;
	if (rest[0] == '\0' || strcmp(rest, "/") == 0) {
		if (api_method_get(aio))
			tokens_list(aio);
		else if (strcmp(method, "POST") != 0)
			api_respond_not_allowed(aio, "GET, HEAD, POST",
						"use GET or POST on " TOKENS_PATH);
		else if (e->signer == NULL)
			api_respond_error(aio, 503, NOT_SET_UP);
		else
			token_create(aio, e);
		return;
	}
	/* "/{id}" or "/{id}/": an id needs no escaping, so nothing is decoded. */
	len = strlen(rest + 1);
	if (len > 0 && rest[len] == '/')
		len--;
	if (len != JOIN_TOKEN_ID_HEX) {
		api_respond_error(aio, 404, "no such join token");
		return;
	}
	memcpy(id, rest + 1, len);
	id[len] = '\0';
	if (strspn(id, "0123456789abcdef") != len)
		api_respond_error(aio, 404, "no such join token");
	else if (strcmp(method, "DELETE") == 0)
		token_revoke(aio, id);
	else
		api_respond_not_allowed(aio, "DELETE", "use DELETE on " TOKENS_PATH "/{id}");
}

/* ---- /api/v1/enroll ---- */

/* 401 for a token that cannot be used, logged with the address (never the secret). */
static void refuse_token(nng_aio *aio, const char *addr, const char *id, const char *msg)
{
	log_warn("enrollment from %s refused: join token %s: %s", addr, id, msg);
	api_respond_error(aio, 401, msg);
}

/* The host's labels for the answer: the token's, as stored. */
static json_t *labels_answer(const char *labels_json)
{
	json_t *l = labels_json != NULL ? json_loads(labels_json, 0, NULL) : NULL;

	return json_is_object(l) ? l : (json_decref(l), json_object());
}

/*
 * Check the token of req: 1 with *tok filled (store_join_token_fini it), 0
 * after answering 401, -1 after answering 503/504 (the database: no failure
 * of the address's).
 */
static int token_usable(nng_aio *aio, const struct enroll_request *req, const char *addr,
			struct store_join_token *tok)
{
	char hash[JOIN_TOKEN_HASH_HEX + 1];
	vigil_err err = {0};
	int rc;

	secret_hash(req->secret, hash);
	rc = store_join_token_get(api_store(aio), req->id, tok, &err);
	if (rc < 0 && rc != -ENOENT) {
		api_respond_store_error(aio, rc, "POST " ENROLL_PATH, err.msg);
		return -1;
	}
	/* Unknown, or the secret is wrong: one answer, so that ids cannot be probed. */
	if (rc == -ENOENT || !hash_equal(hash, tok->hash, JOIN_TOKEN_HASH_HEX)) {
		refuse_token(aio, addr, req->id, WRONG_TOKEN);
		return 0;
	}
	if (tok->revoked)
		refuse_token(aio, addr, req->id, "join token revoked");
	else if (tok->used)
		refuse_token(aio, addr, req->id, "join token already used (it was for one host)");
	else if (tok->expired)
		refuse_token(aio, addr, req->id, "join token expired");
	else
		return 1;
	return 0;
}

/* The enrollment proper, after the throttle let it through; true when it did not fail. */
static bool enroll(nng_aio *aio, struct api_enroll *e, const char *addr)
{
	struct store_join_token tok = {0};
	struct enroll_request req;
	struct pki_csr_info info;
	struct pki_signed sg = {0};
	struct enroll_why why;
	vigil_err err = {0};
	const char *body;
	time_t nb, na;
	bool ok = false;
	size_t len;
	int rc;

	body_of(aio, &body, &len);
	rc = enroll_request_parse(body, len, &req, &why);
	if (rc < 0) {
		respond_why(aio, rc == -E2BIG ? 413 : 400, &why);
		goto out;
	}
	if ((rc = token_usable(aio, &req, addr, &tok)) <= 0) {
		ok = rc < 0;
		goto out;
	}
	if ((rc = pki_csr_check(req.csr, req.csr_len, &info, &err)) < 0) {
		log_warn("enrollment from %s with join token %s refused: %s", addr, req.id,
			 err.msg);
		api_respond_json(aio, 400,
				 json_pack("{s:s,s:s}", "error", err.msg, "field", "csr"));
		goto out;
	}
	pki_host_validity(e->cert_secs, &nb, &na);
	if ((rc = pki_signer_sign(e->signer, req.csr, req.csr_len, info.cn, nb, na, &sg, &err)) <
	    0) {
		log_error("enrollment of %s from %s: cannot sign: %s", info.cn, addr, err.msg);
		api_respond_error(aio, 500, "cannot sign the certificate");
		goto out;
	}
	const struct store_enrollment rec = {.token_id = req.id,
					     .host_id = info.cn,
					     .serial = sg.serial,
					     .not_after = sg.not_after,
					     .address = addr};
	rc = store_enroll_commit(api_store(aio), &rec, &err);
	if (rc == -ESTALE) {
		/* Another enrollment took the one-time token (or it expired) since the check. */
		refuse_token(aio, addr, req.id, "join token already used (it was for one host)");
		goto out;
	}
	ok = true; /* the token was good: what follows is not the address's failure */
	if (rc == -EEXIST || rc == -EPERM) {
		log_warn("enrollment of %s from %s with join token %s refused: %s", info.cn, addr,
			 req.id, err.msg);
		api_respond_json(aio, rc == -EEXIST ? 409 : 403,
				 json_pack("{s:s,s:s}", "error", err.msg, "field", "csr"));
		goto out;
	}
	if (rc < 0) {
		api_respond_store_error(aio, rc, "POST " ENROLL_PATH, err.msg);
		goto out;
	}
	struct tm tm;
	char until[32];

	gmtime_r(&sg.not_after, &tm);
	strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm);
	log_info("enrollment: host %s enrolled from %s with join token %s: certificate %s, valid"
		 " until %s",
		 info.cn, addr, req.id, sg.serial, until);
	api_respond_json(aio, 201,
			 json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:i}", "host_id", info.cn,
				   "certificate", sg.cert_pem, "ca", pki_signer_ca_pem(e->signer),
				   "serial", sg.serial, "not_after", until, "labels",
				   labels_answer(tok.labels_json), "link_port", e->link_port));
out:
	pki_signed_fini(&sg);
	store_join_token_fini(&tok);
	enroll_request_fini(&req);
	return ok;
}

void api_handle_enroll(nng_aio *aio)
{
	const char *method = nng_http_req_get_method(nng_aio_get_input(aio, 0));
	struct api_enroll *e = api_of(aio)->enroll;
	char buf[64], addr[TLS_ADDR_TEXT], key[TLS_ADDR_TEXT];
	const char *path = api_path(aio, buf, sizeof(buf));
	int64_t wait;

	if (path != NULL && strcmp(path, ENROLL_PATH "/ca") == 0) {
		if (!api_method_get(aio))
			api_respond_not_allowed(aio, "GET, HEAD", "use GET on " ENROLL_PATH "/ca");
		else if (e->signer == NULL)
			api_respond_error(aio, 503, NOT_SET_UP);
		else
			api_respond_json(aio, 200,
					 json_pack("{s:s,s:s}", "ca", pki_signer_ca_pem(e->signer),
						   "sha256", pki_signer_ca_sha256(e->signer)));
		return;
	}
	if (path == NULL || strcmp(path, ENROLL_PATH) != 0) {
		api_respond_error(aio, 404, "no such API endpoint");
		return;
	}
	if (strcmp(method, "POST") != 0) {
		api_respond_not_allowed(aio, "POST", "use POST on " ENROLL_PATH);
		return;
	}
	if (e->signer == NULL) {
		api_respond_error(aio, 503, NOT_SET_UP);
		return;
	}
	api_peer_addr(aio, addr, key);
	const char *keys[] = {key};

	if ((wait = throttle_begin(e->th, keys, 1, now_s())) > 0) {
		char after[24], msg[160];
		const char *extra[] = {"Retry-After", after, NULL};

		log_warn("enrollment from %s refused: %d failed enrollments from the address within"
			 " %d s (refused for %" PRId64 " s more)",
			 addr, ENROLL_FAILS_MAX, ENROLL_WINDOW_S, wait);
		snprintf(after, sizeof(after), "%" PRId64, wait);
		snprintf(msg, sizeof(msg),
			 "too many failed enrollments from this address; retry after %" PRId64 " s",
			 wait);
		api_respond_headers(
		    aio, 429,
		    json_pack("{s:s,s:I}", "error", msg, "retry_after_s", (json_int_t)wait), extra);
		return;
	}
	if (enroll(aio, e, addr))
		throttle_refund(e->th, key);
}

/* ---- /api/v1/revocations ---- */

static void host_revoke(nng_aio *aio)
{
	static const char *const allowed[] = {"host", NULL};
	json_t *body = NULL, *h, *revoked = NULL;
	const char *data, *host, *k;
	vigil_err err = {0};
	char by[96];
	size_t len;
	json_t *v;
	int rc;

	body_of(aio, &data, &len);
	body = len > 0 && len <= ENROLL_BODY_MAX
		   ? json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL)
		   : NULL;
	if (!json_is_object(body)) {
		api_respond_json(
		    aio, 400,
		    json_pack("{s:s,s:s}", "error", "the body must be a JSON object", "field", ""));
		goto out;
	}
	json_object_foreach(body, k, v)
	{
		if (strcmp(k, allowed[0]) != 0) {
			api_respond_json(aio, 400,
					 json_pack("{s:s,s:s}", "error",
						   "unknown field (only 'host')", "field", ""));
			goto out;
		}
	}
	h = json_object_get(body, "host");
	host = json_is_string(h) ? json_string_value(h) : NULL;
	if (host == NULL || strlen(host) != json_string_length(h) || !pki_name_valid(host)) {
		api_respond_json(aio, 400,
				 json_pack("{s:s,s:s}", "error",
					   "'host' must be a host name, 1..64 of"
					   " [A-Za-z0-9._-]",
					   "field", "host"));
		goto out;
	}
	rc = store_host_revoke(api_store(aio), host, actor(aio, by, sizeof(by)), &revoked, &err);
	if (rc == -ENOENT) {
		api_respond_json(aio, 404,
				 json_pack("{s:s,s:s}", "error", err.msg, "field", "host"));
		goto out;
	}
	if (rc < 0) {
		api_respond_store_error(aio, rc, "POST " REVOCATIONS_PATH, err.msg);
		goto out;
	}
	log_warn("enrollment: %s revoked host %s (%lld certificate(s) marked): its connections"
		 " are closed and it is refused from now on",
		 by, host, (long long)json_integer_value(json_object_get(revoked, "certificates")));
	api_respond_json(aio, 200, json_pack("{s:o}", "revoked", revoked));
out:
	json_decref(body);
}

void api_handle_revocations(nng_aio *aio)
{
	const char *method = nng_http_req_get_method(nng_aio_get_input(aio, 0));
	char buf[256];
	const char *rest = admin_subpath(aio, REVOCATIONS_PATH, buf, sizeof(buf));
	json_t *list = NULL;
	vigil_err err = {0};
	int rc;

	if (rest == NULL)
		return;
	if (rest[0] != '\0' && strcmp(rest, "/") != 0) {
		api_respond_error(aio, 404, "no such API endpoint");
		return;
	}
	if (strcmp(method, "POST") == 0) {
		host_revoke(aio);
		return;
	}
	if (!api_method_get(aio)) {
		api_respond_not_allowed(aio, "GET, HEAD, POST",
					"use GET or POST on " REVOCATIONS_PATH);
		return;
	}
	if ((rc = store_revocations_list(api_store(aio), &list, &err)) < 0) {
		api_respond_store_error(aio, rc, "GET " REVOCATIONS_PATH, err.msg);
		return;
	}
	api_respond_json(aio, 200, json_pack("{s:o}", "revocations", list));
}
