/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_API_AUTH_H
#define VIGIL_CONSOLE_API_AUTH_H

/*
 * Who may use the API, and as what (docs/api.md, "Sign-in, sessions and
 * users").
 *
 * Two credentials.  "Authorization: Bearer <API token>" is an admin (what
 * vigilctl and scripts send; no CSRF token needed, a browser never sends
 * it by itself).  The cookie vigil_session of a session signed in at
 * POST /api/v1/session (a user's password, or the API token) has the role
 * the session got at sign-in, "admin" or "read"; with the cookie every
 * method but GET and HEAD needs X-CSRF-Token, the session's CSRF token,
 * and a "read" session may do nothing but GET and HEAD.
 *
 * Secrets: passwords are kept as argon2id hashes (libargon2; t=2, m=19 MiB,
 * p=1, 16-byte salt), at most API_AUTH_HASHING of them computed at once so
 * that a flood of sign-ins cannot take the console's memory; the cookie is
 * stored as its SHA-256 only.  Nothing here logs a password, a cookie, a
 * CSRF token or a hash.
 *
 * Failed sign-ins are throttled in memory: API_AUTH_FAILS_MAX within
 * API_AUTH_WINDOW_S for one user name or one source address (IPv6: its
 * /64) refuse further sign-ins of that name or address (429) until the
 * window has passed.  The table holds API_AUTH_THROTTLE_MAX names and
 * addresses; when full the one failed least recently is dropped (counted).
 *
 * Locking: the state locks itself; handlers run on the API's workers.
 */

#include <stdbool.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "error.h"
#include "store/users.h"

#define API_AUTH_HASHING      2	   /* argon2id hashes computed at once */
#define API_AUTH_FAILS_MAX    5	   /* failed sign-ins of a name or address in the window */
#define API_AUTH_WINDOW_S     300  /* the throttle's window */
#define API_AUTH_THROTTLE_MAX 4096 /* names and addresses the throttle remembers */
#define API_AUTH_PASSWORD_MIN 8	   /* bytes */
#define API_AUTH_PASSWORD_MAX 1024

/* The 401 of every request without a credential, or with a wrong one. */
#define API_AUTH_401 "missing or wrong API token or session"

struct api_auth;

/*
 * New sign-in state: sessions last session_hours
 * (API_SESSION_HOURS_MIN..MAX).  NULL with err set.
 */
struct api_auth *api_auth_new(int session_hours, vigil_err *err);

/* Free (logs what the throttle did).  Accepts NULL. */
void api_auth_free(struct api_auth *a);

/* What a request was authorized as, by api_auth (api_priv.h). */
struct api_caller {
	bool admin;		      /* else the "read" role */
	bool session;		      /* by a session cookie, else the Bearer token */
	char user[USER_NAME_MAX + 1]; /* the session's user; "" for the token */
};

/*
 * The request's credential as far as it can be told without the database:
 * API_CRED_TOKEN (the right Bearer token), API_CRED_WRONG (a Bearer header
 * with another token), API_CRED_COOKIE (a vigil_session cookie, not yet
 * looked up), API_CRED_NONE.  Any thread.
 */
enum api_cred { API_CRED_NONE, API_CRED_WRONG, API_CRED_TOKEN, API_CRED_COOKIE };
enum api_cred api_auth_cred(const char *token, nng_http_req *req);

/*
 * On a worker: authorize the handler's request (api_auth in api_priv.h
 * calls this).  true with *ret filled; false after answering 401 (no or a
 * wrong credential, a session unknown, expired or signed out), 403 (a
 * cookie request other than GET/HEAD without the right X-CSRF-Token, or a
 * "read" session's), or 503/504 (the database).
 */
bool api_auth_request(nng_aio *aio, struct api_caller *ret);

/* Handlers (on a worker) of /api/v1/session and of /api/v1/users[/{name}]. */
void api_handle_session(nng_aio *aio);
void api_handle_users(nng_aio *aio);

#endif
