/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_COMMON_PKI_H
#define VIGIL_COMMON_PKI_H

/*
 * Development and enrollment PKI, written with mbedTLS: a CA (EC P-256,
 * self-signed) and the certificates it issues to consoles (server) and to
 * defenders (client).  A defender's host identity is the CN of its
 * certificate; the console never trusts a host id written in a message.
 *
 * Files are PEM.  Private keys are created with mode 0600 and existing files
 * are never overwritten (an overwritten CA key would orphan a fleet).
 * Nothing here logs; failures return a negative errno and explain in err.
 */

#include <stddef.h>
#include <time.h>

#include "error.h"

#define PKI_CA_CERT "ca.crt"
#define PKI_CA_KEY  "ca.key"

/* At most this many subjectAltName entries (DNS names and IPs together) per certificate. */
#define PKI_MAX_SAN 64

enum pki_kind {
	PKI_CLIENT, /* extendedKeyUsage clientAuth: a defender */
	PKI_SERVER, /* extendedKeyUsage serverAuth: a console (TLS link and HTTPS API) */
};

struct pki_issue_opts {
	const char *cn; /* subject CN; [A-Za-z0-9._-], 1..64 chars */
	enum pki_kind kind;
	const char *const *dns; /* subjectAltName dNSName entries, ndns of them */
	size_t ndns;
	const char *const *ips; /* subjectAltName iPAddress entries (IPv4/IPv6 text) */
	size_t nips;
	time_t not_before; /* 0: now - 5 minutes (clock skew) */
	time_t not_after;  /* 0: not_before + days */
	int days;	   /* used when not_after is 0; 0 means 825 */
};

/* True when name is acceptable as a certificate CN / host id: [A-Za-z0-9._-], 1..64 chars. */
int pki_name_valid(const char *name);

/*
 * Create dir (mode 0700, if missing) holding ca.crt and ca.key for a new CA
 * named cn, valid for days (0: 3650).  cn follows pki_name_valid but may also
 * hold inner spaces ("Vigil CA").  The CA may issue leaf certificates only
 * (pathlen 0).  Returns 0, -EEXIST if either file already exists (nothing is
 * changed; err reads "CA already exists in DIR (FILE); refusing to overwrite
 * it"), -EINVAL for a bad cn or days, or another negative errno.
 */
int pki_ca_create(const char *dir, const char *cn, int days, vigil_err *err);

/*
 * Issue a certificate signed by the CA in ca_dir, with a fresh P-256 key.
 * Writes cert_path (0644) and key_path (0600), the key first; when the
 * certificate cannot be written the key is removed again, so a failure leaves
 * neither file.  The directories of both paths must exist.  DNS names are
 * letters, digits, '-' and '.', 1..253 chars, with '*' only as a whole
 * leftmost label.  Returns 0, -EEXIST if either output exists, -EINVAL for
 * bad options (err names the option or value), or another negative errno.
 */
int pki_issue(const char *ca_dir, const struct pki_issue_opts *opts, const char *cert_path,
	      const char *key_path, vigil_err *err);

#endif
