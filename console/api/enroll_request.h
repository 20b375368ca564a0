/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_ENROLL_REQUEST_H
#define VIGIL_CONSOLE_ENROLL_REQUEST_H

/*
 * The request bodies of enrollment (api_enroll.c), parsed and checked
 * without the database: what arrives from hosts that hold no certificate
 * yet (POST /api/v1/enroll), and what an admin sends to make a join token
 * (POST /api/v1/join-tokens).  Pure: no state, no locks, no logging; each
 * refusal names the field and says what is wrong, never quoting a secret.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "store/enroll_store.h"

/* Largest POST /api/v1/enroll body taken: a CSR (PKI_CSR_MAX) and a token, with room. */
#define ENROLL_BODY_MAX (16 * 1024)
/* A join token as handed out: "<id>.<secret>", both lowercase hex. */
#define JOIN_TOKEN_LEN (JOIN_TOKEN_ID_HEX + 1 + JOIN_TOKEN_SECRET_HEX)

/* Labels a join token gives its hosts, at most; their sizes as a hello's (defender config). */
#define JOIN_TOKEN_LABELS_MAX	   16
#define JOIN_TOKEN_LABEL_KEY_MAX   63
#define JOIN_TOKEN_LABEL_VALUE_MAX 255
/* How long a join token lives: 1 s (tests) to 90 days; one day unless said. */
#define JOIN_TOKEN_EXPIRES_MIN_S     1
#define JOIN_TOKEN_EXPIRES_MAX_S     (90 * 86400)
#define JOIN_TOKEN_EXPIRES_DEFAULT_S 86400

/* A refusal: the field at fault ("" for the body) and why. */
struct enroll_why {
	char field[32];
	char msg[256];
};

/* POST /api/v1/enroll: {"token": "<id>.<secret>", "csr": "<PEM>"}. */
struct enroll_request {
	char id[JOIN_TOKEN_ID_HEX + 1];
	char secret[JOIN_TOKEN_SECRET_HEX + 1]; /* wipe it when done (enroll_request_fini) */
	char *csr;				/* new; enroll_request_fini frees */
	size_t csr_len;
};

/*
 * Parse body (len bytes): a JSON object with exactly the fields "token"
 * and "csr", both strings without U+0000, the token of the form above, the
 * CSR at most PKI_CSR_MAX bytes (checked for what it is by pki_csr_check).
 * Returns 0 with *ret filled, -E2BIG for a body over ENROLL_BODY_MAX, or
 * -EINVAL with *why set.  *ret needs enroll_request_fini either way.
 */
int enroll_request_parse(const char *body, size_t len, struct enroll_request *ret,
			 struct enroll_why *why);
void enroll_request_fini(struct enroll_request *r);

/*
 * Whether text is a join token as handed out; its id and secret into id and
 * secret (may be NULL).
 */
bool join_token_split(const char *text, size_t len, char id[JOIN_TOKEN_ID_HEX + 1],
		      char secret[JOIN_TOKEN_SECRET_HEX + 1]);

/* POST /api/v1/join-tokens: {"reusable"?, "group"?, "labels"?, "expires_in_s"?}. */
struct join_token_request {
	bool reusable;
	char group[JOIN_TOKEN_GROUP_MAX + 1]; /* "" none */
	char *labels_json;		      /* new compact JSON object; _fini frees */
	int64_t expires_s;
};

/*
 * Parse body: a JSON object (an empty body reads as {}) with at most those
 * fields: reusable a boolean; group a name (1..64 of [A-Za-z0-9._-]);
 * labels an object of at most JOIN_TOKEN_LABELS_MAX string values, keys
 * 1..63 of [A-Za-z0-9._-] and values valid UTF-8 of at most 255 bytes
 * without control characters, and no key "group" when group is given
 * (group becomes the label group=NAME); expires_in_s an integer from
 * JOIN_TOKEN_EXPIRES_MIN_S to _MAX_S.  0 with *ret filled, or -EINVAL with
 * *why set.  *ret needs join_token_request_fini either way.
 */
int join_token_request_parse(const char *body, size_t len, struct join_token_request *ret,
			     struct enroll_why *why);
void join_token_request_fini(struct join_token_request *r);

#endif
