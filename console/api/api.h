/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_API_H
#define VIGIL_CONSOLE_API_H

/*
 * The console's HTTPS REST API (nng's HTTP server over Vigil's TLS engine).
 * Every /api/ request needs "Authorization: Bearer <token>" (an admin) or
 * the cookie of a session signed in at /api/v1/session (with its user's
 * role, and an X-CSRF-Token header on anything but GET and HEAD); without
 * one the answer is 401 and no data (api_auth.h).  Responses are JSON.
 *
 *   POST|GET|DELETE /api/v1/session        sign in, the session, sign out
 *   GET|POST /api/v1/users,
 *   PUT|DELETE /api/v1/users/{name}        the console's users (admin only)
 *   GET  /api/v1/hosts                     the fleet (store_hosts_list)
 *   GET  /api/v1/audits                    audits, filtered and paged
 *   GET  /api/v1/models                    models, filtered and paged
 *   GET  /api/v1/models/{id}               one model with its entries
 *   POST /api/v1/models/{id}/relearn       queue a relearn command (202)
 *   GET  /api/v1/activity                  interactive sessions' activity log
 *   GET|POST /api/v1/rules, GET|PUT|DELETE /api/v1/rules/{id},
 *   POST /api/v1/rules/{id}/move, POST /api/v1/rules/import,
 *   GET  /api/v1/rules/versions[/{n}]      the operators' rules (api_rules.c)
 *   GET|POST /api/v1/join-tokens, DELETE /api/v1/join-tokens/{id},
 *   POST /api/v1/enroll, GET /api/v1/enroll/ca,
 *   GET|POST /api/v1/revocations           enrollment (api_enroll.c; /enroll
 *                                          takes a join token, not a credential)
 *
 * Unknown or malformed query parameters get 400 {"error", "parameter"}.
 * Handlers run on the API's own workers, each with its own database
 * connection and a statement timeout (504 when a query takes longer); when
 * every worker is busy and the queue is full a request gets 503 with
 * Retry-After.  Answers over 16 MiB are refused (500).  A request that asks
 * to close the connection gets its answer whole before the close
 * (api_linger.h).  Idle connections are closed, and connections over a cap
 * per address or in all refused (api_opts, api_limits.h).  docs/api.md has
 * the fields.
 */

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "error.h"
#include "pki_enroll.h"
#include "tls.h"

/* API tokens are 64 hex characters (32 random bytes). */
#define API_TOKEN_LEN 64

struct api;

struct api_opts {
	const char *url;     /* https://addr:port */
	nng_tls_config *tls; /* held while the API runs */
	const char *dsn;     /* each worker opens its own connection */
	const char *token;   /* copied */
	int workers;	     /* 1..API_POOL_WORKERS_MAX */
	int query_timeout_ms;
	/*
	 * Connection limits (api_limits.h, tls.h: tls_conn_limits); 0 takes the
	 * default below.  idle_timeout_ms: a connection that has not sent a whole
	 * request within it, from its accept or from its last answer (however
	 * slowly it trickles one), or that stops taking an answer for that long,
	 * is closed; a request being answered is never idle.  conns_per_addr,
	 * conns_max: connections open at once per source address (IPv6: per
	 * /64) and in all; one more is closed at accept.  Set on o->tls, which
	 * must be the API's own configuration (they stay with it).
	 */
	int idle_timeout_ms; /* API_IDLE_TIMEOUT_MS_MIN..TLS_HANDSHAKE_MS_MAX */
	int conns_per_addr;  /* 1..conns_max */
	int conns_max;	     /* 1..TLS_CONNS_MAX */
	/* How long a signed-in session lasts; 0 takes API_SESSION_HOURS_DEFAULT. */
	int session_hours; /* API_SESSION_HOURS_MIN..API_SESSION_HOURS_MAX */
	/*
	 * Enrollment (api_enroll.h): the CA that signs hosts' certificates
	 * (held, not owned; NULL: not set up), their lifetime, and the port of
	 * the defenders' link, told to hosts that enroll.
	 */
	struct pki_signer *enroll_signer;
	int64_t host_cert_secs;
	int link_port;
};

#define API_QUERY_TIMEOUT_MS_DEFAULT 10000
#define API_IDLE_TIMEOUT_MS_DEFAULT  30000
#define API_IDLE_TIMEOUT_MS_MIN	     100
#define API_CONNS_PER_ADDR_DEFAULT   64
#define API_CONNS_MAX_DEFAULT	     1024
#define API_SESSION_HOURS_DEFAULT    12
#define API_SESSION_HOURS_MIN	     1
#define API_SESSION_HOURS_MAX	     720

/*
 * Serve o->url with o->tls, answering from the database at o->dsn.  NULL
 * with err naming the address (or the database, or the limit out of range)
 * when it cannot start.
 */
struct api *api_start(const struct api_opts *o, vigil_err *err);

/* Stop serving: waits for the requests being answered.  Accepts NULL. */
void api_stop(struct api *api);

/*
 * Read the token from path, or create it (mode 0600, 32 random bytes as hex)
 * when missing.  buf must hold API_TOKEN_LEN + 1.
 */
int api_token_load_or_create(const char *path, char *buf, vigil_err *err);

#endif
