/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_IDENTITY_H
#define VIGIL_DEFENDER_IDENTITY_H

/*
 * The host's identity on disk: its private key (mode 0600), its
 * certificate and the CA, at the paths the configuration names (ca, cert,
 * key), and what enrollment added to it (the join token's labels, in
 * STATE/IDENTITY_LABELS_FILE).
 *
 * A renewal replaces key and certificate as a pair: both are written
 * beside the old ones (".new", each atomically), then the key is renamed
 * over the old key and the certificate over the old certificate.  A crash
 * at any point leaves a state identity_recover turns back into a matching
 * pair: the old one (nothing renamed yet) or the new one (the key renamed,
 * the certificate not).  Nothing here logs.
 */

#include <stdbool.h>

#include "config/defender_config.h"
#include "error.h"

#define IDENTITY_LABELS_FILE "enroll-labels"

/*
 * Finish or undo a renewal a crash interrupted (see above), for cert and
 * key.  *ret_what (may be NULL) gets what was done ("" nothing) for the log.
 */
int identity_recover(const char *cert, const char *key, char *ret_what, size_t len, vigil_err *err);

/*
 * Put key_pem and cert_pem in place of key and cert, as a pair (see
 * above).  With exclusive, neither may exist yet (a first enrollment).
 */
int identity_write(const char *cert, const char *key, const char *cert_pem, const char *key_pem,
		   bool exclusive, vigil_err *err);

/*
 * Write the join token's labels (a JSON object of strings, from the
 * console) as "key=value" lines into STATE/IDENTITY_LABELS_FILE, keeping
 * only those a configuration file would take.
 */
int identity_labels_save(const char *state_dir, const char *labels_json, vigil_err *err);

/*
 * Add the labels saved at enrollment to cfg, except those the configuration
 * sets itself (its own win).  No file: nothing to add.  *ret_added gets how
 * many were added.
 */
int identity_labels_merge(struct defender_config *cfg, int *ret_added, vigil_err *err);

#endif
