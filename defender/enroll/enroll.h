/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_ENROLL_H
#define VIGIL_DEFENDER_ENROLL_H

/*
 * Joining a console with a join token (vigil-defender --enroll;
 * docs/operations.md, "Enrolling hosts").
 *
 * The defender makes its own P-256 key, which never leaves the host, and
 * sends a certificate request with the token to the console's API
 * (POST /api/v1/enroll) over TLS, having made sure it talks to the right
 * console: the console's certificate must chain to a CA the operator gave,
 * either as a file (--ca) or as the SHA-256 of the CA's certificate
 * (--ca-sha256, printed by vigilctl enroll token create).  With the
 * fingerprint, the CA is fetched first (GET /api/v1/enroll/ca, without
 * verification) and kept only when its SHA-256 is the one given; from then
 * on every connection verifies against it.  So nothing needs copying to
 * the host but a command line.
 *
 * What is written: the key (0600), the certificate and the CA at the
 * configuration's ca/cert/key paths, and the token's labels
 * (identity.h).  Without a configuration file, STATE/defender.conf is
 * written too (the console's link at the API's host and the port the
 * console says, the identity in STATE/identity/) and the defender runs
 * with it; later starts use it as they would any.
 *
 * Already enrolled (the configuration's cert and key exist): nothing is
 * sent, so an --enroll left in a unit file does not spend a token again.
 * One thread; logs one line per step to the daemon's log.
 */

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#define ENROLL_DEFAULT_STATE_DIR "/var/lib/vigil/defender"
#define ENROLL_CONFIG_FILE	 "defender.conf"
#define ENROLL_TOKEN_FILE_MAX	 4096

struct enroll_opts {
	const char *token;	/* the join token; or ... */
	const char *token_file; /* ... its first line */
	const char *console;	/* the console's API: HOST:PORT or https://HOST:PORT */
	const char *ca_file;	/* trust the console's certificate by this CA; or ... */
	const char *ca_sha256;	/* ... by the SHA-256 of its CA's certificate */
	const char *name;	/* the host's name (its certificate's CN); NULL: the hostname */
	const char *config;	/* a configuration naming where things go; NULL: see above */
	const char *state_dir;	/* without config: where; NULL: ENROLL_DEFAULT_STATE_DIR */
};

/*
 * Enroll unless already enrolled (see above), and put the configuration to
 * run with into ret_config (len bytes).  *ret_enrolled (may be NULL) says
 * whether this call enrolled.  Returns 0, or a negative errno with err
 * saying what the operator must fix (a refusal quotes the console's
 * reason: "join token expired").
 */
int enroll_ensure(const struct enroll_opts *o, char *ret_config, size_t len, bool *ret_enrolled,
		  vigil_err *err);

/*
 * This host's name as a certificate CN: the hostname with every character
 * outside [A-Za-z0-9._-] made '-', cut to 64.  -EINVAL when none is left.
 */
int enroll_default_name(char out[65], vigil_err *err);

#endif
