/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_ENROLL_STORE_H
#define VIGIL_CONSOLE_ENROLL_STORE_H

/*
 * Join tokens, the certificates the console signed, and revoked hosts
 * (tables join_tokens, host_certs and host_revocations, migration 15;
 * docs/operations.md "Enrolling hosts").
 *
 * This module never sees a token's secret: the API hands it the SHA-256
 * (hex) of the secret, and reads the stored hash back to compare it in
 * constant time itself (api_enroll.c).  A one-time token is consumed in the
 * same transaction that records the certificate, by one conditional
 * UPDATE: of two enrollments racing on one token exactly one commits.
 *
 * Names: a certificate's CN is its host's identity, so an enrollment is
 * refused a name that is taken: one with a live certificate the console
 * signed, or one the console has heard from (hosts) and that was never
 * revoked.  A revoked name may be enrolled again, with a join token made
 * after the revocation only (a token the revoked host may still hold does
 * not bring it back).  Enrollments of one name are serialized (an
 * advisory lock on the name), so two cannot both take it.
 *
 * Revocation is by name: every certificate of the host recorded so far is
 * marked revoked, and the name is listed in host_revocations, so that
 * certificates the console never recorded (issued by hand) are refused
 * too.  Every revocation is announced with NOTIFY on ENROLL_REVOKE_CHANNEL
 * when it commits (store/pg_listen.h).
 *
 * Locking: every function takes the store's lock; any thread may call.
 * Errors as store.h, and those each function names.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "error.h"
#include "store/store.h"

#define ENROLL_REVOKE_CHANNEL "vigil_revoked"

/* A join token's public id and its secret, as hex. */
#define JOIN_TOKEN_ID_HEX     16
#define JOIN_TOKEN_SECRET_HEX 64
#define JOIN_TOKEN_HASH_HEX   64

/* A group's name: as a host name, 1..64 of [A-Za-z0-9._-]. */
#define JOIN_TOKEN_GROUP_MAX 64

/* Tokens listed at most (newest first); expired ones go 30 days after their expiry. */
#define JOIN_TOKENS_LIST_MAX 1000

/* A new join token as the API made it. */
struct store_join_token_new {
	const char *id;		 /* JOIN_TOKEN_ID_HEX lowercase hex */
	const char *hash;	 /* SHA-256 of the secret, JOIN_TOKEN_HASH_HEX lowercase hex */
	bool reusable;		 /* false: one enrollment consumes it */
	const char *group;	 /* NULL, or a name (pki_name_valid) */
	const char *labels_json; /* a JSON object of string values, checked by the caller */
	int64_t expires_s;	 /* from now, > 0 */
	const char *created_by;	 /* who made it, for the list ("the API token", "user alice") */
};

/*
 * Store t.  *ret_token gets it as in store_join_tokens_list.  Tokens that
 * expired over 30 days ago are deleted on the way.  Idempotent: a repeat
 * after a lost connection finds its own row (same id and hash).
 */
int store_join_token_create(struct store *st, const struct store_join_token_new *t,
			    json_t **ret_token, vigil_err *err);

/*
 * The tokens, newest first (at most JOIN_TOKENS_LIST_MAX), as a new JSON
 * array of {id, reusable, group (or null), labels, created_at, created_by,
 * expires_at, uses, last_used_at, revoked_at, state: "active", "used",
 * "expired" or "revoked"}; never a hash.
 */
int store_join_tokens_list(struct store *st, json_t **ret_tokens, vigil_err *err);

/* Revoke token id (again: no change); *ret_token as in the list.  -ENOENT when unknown. */
int store_join_token_revoke(struct store *st, const char *id, json_t **ret_token, vigil_err *err);

/* A token as an enrollment checks it. */
struct store_join_token {
	char hash[JOIN_TOKEN_HASH_HEX + 1];
	bool reusable, revoked, expired, used; /* used: a one-time token consumed */
	char *labels_json;		       /* new; store_join_token_fini frees */
	char group[JOIN_TOKEN_GROUP_MAX + 1];  /* "" when none */
};

/* Token id into *ret (store_join_token_fini it).  -ENOENT when unknown. */
int store_join_token_get(struct store *st, const char *id, struct store_join_token *ret,
			 vigil_err *err);
void store_join_token_fini(struct store_join_token *t);

/* A certificate signed for an enrollment, to be recorded with the token's use. */
struct store_enrollment {
	const char *token_id;
	const char *host_id; /* the certificate's CN */
	const char *serial;  /* lowercase hex */
	time_t not_after;
	const char *address; /* where the request came from, for the record */
};

/*
 * In one transaction: consume token e->token_id (a one-time token's only
 * use; a reusable one's next), check that e->host_id is free, and record
 * the certificate.  Nothing is written unless all of it is.  Returns 0;
 * -ESTALE when the token is no longer usable (used, expired or revoked
 * since it was checked: a race lost); -EEXIST when the name is taken;
 * -EPERM when the name was revoked after the token was made; or a store
 * error.  err says which.  Not repeated after a lost connection (the
 * caller answers 503 and the host enrolls again, with a new token if its
 * one-time token was consumed).
 */
int store_enroll_commit(struct store *st, const struct store_enrollment *e, vigil_err *err);

/* A certificate signed for a renewal. */
struct store_renewal {
	const char *host_id;	/* the current certificate's CN */
	const char *old_serial; /* the current certificate's serial */
	const char *serial;	/* the new one's */
	time_t not_after;
	int min_interval_s; /* a host renews at most once in this long */
};

/*
 * In one transaction: check that the current certificate (old_serial of
 * host_id) is not revoked and that the host did not get a certificate
 * within min_interval_s, record the new one, and drop the host's records
 * of certificates expired over a day ago.  Returns 0; -EPERM (revoked);
 * -EAGAIN (renewed too recently); or a store error.  Not repeated after a
 * lost connection.
 */
int store_renew_commit(struct store *st, const struct store_renewal *r, vigil_err *err);

/*
 * Revoke host_id: mark its recorded certificates revoked and list the name
 * in host_revocations (again: the revocation's time moves to now), and
 * NOTIFY ENROLL_REVOKE_CHANNEL with the name, all in one statement.
 * *ret_revoked (may be NULL) gets {host, revoked_at, revoked_by,
 * certificates: how many were marked now}.  -ENOENT when the console knows
 * no such host (neither heard from nor enrolled).
 */
int store_host_revoke(struct store *st, const char *host_id, const char *actor,
		      json_t **ret_revoked, vigil_err *err);

/*
 * The revoked hosts, newest revocation first, as a new JSON array of
 * {host, revoked_at, revoked_by, certificates: live certificates signed
 * since (a host enrolled again)}.
 */
int store_revocations_list(struct store *st, json_t **ret_list, vigil_err *err);

/* A revoked name, and the certificates of it that are good again (signed since, live). */
struct store_revoked {
	char *host_id;
	char **serials;
	size_t nserials;
};

/*
 * Every revoked name with its good serials (for the link's in-memory set,
 * link/revocation.h), as a new array (*ret, *ret_n; store_revoked_free
 * it).
 */
int store_revoked_load(struct store *st, struct store_revoked **ret, size_t *ret_n, vigil_err *err);
void store_revoked_free(struct store_revoked *v, size_t n);

#endif
