/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_COMMON_PKI_ENROLL_H
#define VIGIL_COMMON_PKI_ENROLL_H

/*
 * The certificate side of enrollment and renewal (docs/operations.md,
 * "Enrolling hosts"), with mbedTLS:
 *
 *  - a defender makes its own P-256 key and a certificate signing request
 *    (PKCS#10) for its name: the private key never leaves the host;
 *  - the console checks a CSR that came over the network (size, signature,
 *    key type and curve, subject) and signs it with its CA as a client
 *    certificate (clientAuth) for "CN=<name>,O=Vigil";
 *  - both read what a certificate says (CN, serial, validity, SHA-256) and
 *    check that a certificate, its key and a CA belong together.
 *
 * Only EC P-256 keys are taken: the key every Vigil certificate has
 * (pki.h), and the one the link's ECDHE-ECDSA suites were chosen for.
 * Serials are written as lowercase hex of their DER bytes, as the TLS
 * engine reports a peer's (tls.h).  Nothing here logs; failures return a
 * negative errno and explain in err, never quoting a key.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "error.h"

/* Largest CSR parsed (PEM or DER): a P-256 CSR is about 400 bytes of PEM. */
#define PKI_CSR_MAX (8 * 1024)
/* Largest certificate serial we keep, as hex (RFC 5280 allows 20 bytes; room for others). */
#define PKI_SERIAL_HEX_MAX 64
/* A SHA-256 as lowercase hex. */
#define PKI_SHA256_HEX 64
/* A CN as pki_name_valid takes it, with its NUL. */
#define PKI_CN_MAX 65

/*
 * A fresh P-256 key and a CSR for cn (pki_name_valid), signed with it.
 * *ret_key_pem and *ret_csr_pem are new NUL-terminated PEM strings: free
 * the key with pki_secret_free (it is wiped), the CSR with free.
 */
int pki_csr_new(const char *cn, char **ret_key_pem, char **ret_csr_pem, vigil_err *err);

/* What a CSR that passed pki_csr_check asks for. */
struct pki_csr_info {
	char cn[PKI_CN_MAX];
};

/*
 * Check a CSR from the network: at most PKI_CSR_MAX bytes of PEM (one
 * CERTIFICATE REQUEST block) or DER; it parses; its signature verifies with
 * its own key (proof that the sender holds the private key); the key is EC
 * P-256; the signature is ECDSA with SHA-256, -384 or -512; the subject has
 * exactly one CN, a valid name (pki_name_valid).  Other subject attributes
 * and requested extensions are ignored: the certificate gets its own.
 * Returns 0 with *ret filled, -E2BIG (too large) or -EINVAL, with err
 * saying what was wrong ("the CSR's key is RSA; only EC P-256 keys are
 * taken").
 */
int pki_csr_check(const char *csr, size_t len, struct pki_csr_info *ret, vigil_err *err);

/*
 * A CA loaded once to sign CSRs (the console's, for enrollment and
 * renewal).  Any thread may sign: signing takes the signer's lock
 * (mbedTLS's EC code caches tables in the CA key's group).
 */
struct pki_signer;

/*
 * Load ca_dir/ca.crt and ca_dir/ca.key (pki_ca_create's files) and check
 * that they are a CA and belong together.  NULL with errno and err set.
 */
struct pki_signer *pki_signer_open(const char *ca_dir, vigil_err *err);

/* Accepts NULL. */
void pki_signer_free(struct pki_signer *s);

/* The CA certificate as PEM (the first one of ca.crt), owned by s. */
const char *pki_signer_ca_pem(const struct pki_signer *s);

/* SHA-256 of the CA certificate's DER as lowercase hex, owned by s. */
const char *pki_signer_ca_sha256(const struct pki_signer *s);

/* A certificate pki_signer_sign made. */
struct pki_signed {
	char *cert_pem; /* NUL-terminated; the caller frees */
	char serial[PKI_SERIAL_HEX_MAX + 1];
	time_t not_before, not_after;
};

/*
 * Check csr (pki_csr_check) and sign it as a client certificate for
 * "CN=<cn>,O=Vigil" valid from not_before to not_after, with the CSR's key.
 * The CSR's CN must be cn (-EINVAL otherwise: a renewal cannot change its
 * name).  Returns 0 with *ret filled, or a negative errno with err set.
 */
int pki_signer_sign(struct pki_signer *s, const char *csr, size_t len, const char *cn,
		    time_t not_before, time_t not_after, struct pki_signed *ret, vigil_err *err);

/* Free what *sg holds (accepts a zeroed one). */
void pki_signed_fini(struct pki_signed *sg);

/*
 * The validity of a host certificate signed now to last secs: not_before a
 * little in the past for clocks behind ours (5 minutes, or a tenth of a
 * short lifetime, so that renewal at two thirds still falls after the
 * signing), not_after secs from now.
 */
void pki_host_validity(int64_t secs, time_t *ret_not_before, time_t *ret_not_after);

/*
 * How soon after its last certificate a host may renew: a third of the
 * lifetime (a defender renews at two thirds), at most a minute, at least 1 s.
 */
int pki_renew_min_interval(int64_t secs);

/*
 * When a defender renews the certificate valid from not_before to
 * not_after: at two thirds of its lifetime.
 */
time_t pki_renew_at(time_t not_before, time_t not_after);

/* What a certificate says, for renewal and for checks. */
struct pki_cert_info {
	char cn[PKI_CN_MAX]; /* "" when it has no single acceptable CN */
	char serial[PKI_SERIAL_HEX_MAX + 1];
	time_t not_before, not_after;
	char sha256[PKI_SHA256_HEX + 1]; /* of the DER */
};

/*
 * The first certificate of pem (len bytes, PEM or DER) into *ret.
 * -EINVAL when it holds none that parses.
 */
int pki_cert_info(const char *pem, size_t len, struct pki_cert_info *ret, vigil_err *err);

/*
 * Whether cert_pem is a certificate for cn that verifies against ca_pem
 * now, and key_pem its private key.  0, or -EINVAL with err saying which
 * part failed.  For a defender about to use what the console sent it.
 */
int pki_identity_check(const char *ca_pem, const char *cert_pem, const char *key_pem,
		       const char *cn, vigil_err *err);

/*
 * A SHA-256 fingerprint as people write it (64 hex digits, either case,
 * pairs optionally separated by ':' as openssl prints them) into out as
 * lowercase hex.  -EINVAL when it is not one.
 */
int pki_sha256_parse(const char *text, char out[PKI_SHA256_HEX + 1]);

/* Wipe and free a secret string (a private key's PEM).  Accepts NULL. */
void pki_secret_free(char *s);

#endif
