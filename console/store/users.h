/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_USERS_H
#define VIGIL_CONSOLE_USERS_H

/*
 * The console's users and their sign-in sessions (tables users and
 * sessions, migration 11).  This module stores what the API hands it and
 * never sees a password or a session cookie: users hold an encoded argon2id
 * hash (made by the API, api_auth.c), sessions the SHA-256 of the cookie
 * as 64 hex characters, so a read of the database gives neither passwords
 * nor live sessions.  A user's sessions go when the user does, when its
 * password is set, and when its role changes.
 *
 * Locking: every function takes the store's lock; any thread may call.
 * Errors as store.h: -ENOENT (no such user or session), -EEXIST (the name is
 * taken), -ECONNRESET, -EIO.
 */

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "error.h"
#include "store/store.h"

#define USER_NAME_MAX	64  /* bytes of [A-Za-z0-9._-] */
#define USER_HASH_MAX	256 /* an encoded argon2id string, with its NUL */
#define USER_ROLE_MAX	8   /* "admin" or "read", with its NUL */
#define SESSION_HEX_LEN 64  /* a cookie, its hash and a CSRF token: 32 bytes as hex */

/* Whether name is a user name: 1 to USER_NAME_MAX of [A-Za-z0-9._-]. */
bool users_name_ok(const char *name);

/* Whether role is one: "admin" or "read". */
bool users_role_ok(const char *role);

/*
 * Every user, by name, as a new JSON array (caller json_decref's it) of
 * {name, role, created_at, password_changed_at, last_login (null: never)};
 * never a hash.
 */
int store_users_list(struct store *st, json_t **ret_users, vigil_err *err);

/*
 * Add user name with the encoded hash and role (both checked by the
 * caller); *ret_user gets the new user as in store_users_list.  -EEXIST
 * when the name is taken.  Idempotent: a repeat after a lost connection
 * finds its own row (same hash) and succeeds.
 */
int store_user_add(struct store *st, const char *name, const char *hash, const char *role,
		   json_t **ret_user, vigil_err *err);

/*
 * The stored hash (into hash, USER_HASH_MAX) and role (into role,
 * USER_ROLE_MAX) of name, for a sign-in.  -ENOENT when there is no such user.
 */
int store_user_credentials(struct store *st, const char *name, char *hash, char *role,
			   vigil_err *err);

/*
 * Set the hash (NULL: keep; password_changed_at becomes now) and/or the role
 * (NULL: keep) of name, in one statement that also deletes the user's
 * sessions when the hash is set or the role changes.  *ret_user gets the
 * user as in store_users_list.  -ENOENT when there is no such user.
 */
int store_user_update(struct store *st, const char *name, const char *hash, const char *role,
		      json_t **ret_user, vigil_err *err);

/* Delete name and, with it, its sessions.  -ENOENT when there is no such user. */
int store_user_delete(struct store *st, const char *name, vigil_err *err);

/* A live session, as the API needs it. */
struct store_session {
	char user[USER_NAME_MAX + 1]; /* "" for a session signed in with the API token */
	bool has_user;
	char role[USER_ROLE_MAX];
	char csrf[SESSION_HEX_LEN + 1];
	char expires[40]; /* RFC 3339 UTC with microseconds */
};

/*
 * A new session: key_hash (SESSION_HEX_LEN hex, the SHA-256 of the cookie),
 * csrf (SESSION_HEX_LEN hex), expiring hours from now.  With user, the row
 * is written only while the user still has hash_seen (the hash the
 * password was verified against), and gets the user's role; its
 * last_login becomes now.  Without user (a sign-in with the API token) it
 * is an admin session.  Expired sessions of everybody are deleted first.
 * *ret gets the session.  -ENOENT when the user is gone or its password
 * changed since it was verified.  Not repeated after a lost connection
 * (the caller answers 503 and the client signs in again).
 */
int store_session_create(struct store *st, const char *key_hash, const char *user,
			 const char *hash_seen, const char *csrf, int hours,
			 struct store_session *ret, vigil_err *err);

/*
 * The live session of key_hash into *ret.  In the same statement an
 * expired row is deleted, and last_seen is set to now when it is a minute
 * old or more (so a busy session writes once a minute, not per request).
 * -ENOENT when there is no such session or it has expired.
 */
int store_session_get(struct store *st, const char *key_hash, struct store_session *ret,
		      vigil_err *err);

/* Delete the session of key_hash (none: 0 as well; signing out twice is no fault). */
int store_session_delete(struct store *st, const char *key_hash, vigil_err *err);

#endif
