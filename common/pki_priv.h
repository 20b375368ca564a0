/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_COMMON_PKI_PRIV_H
#define VIGIL_COMMON_PKI_PRIV_H

/*
 * What pki.c (the CA and hand-issued certificates) and pki_enroll.c (CSRs,
 * signing for enrollment and renewal) share.  Not for use outside them.
 * Nothing here logs; failures return a negative errno and explain in err.
 */

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "error.h"
#include "pki.h"

#define PKI_SKEW_SECS	 300
#define PKI_KEY_PEM_MAX	 1024	      /* a P-256 SEC1 PEM key is about 230 bytes */
#define PKI_CRT_PEM_BASE 4096	      /* everything in a certificate but the SANs */
#define PKI_FILE_MAX	 (64u * 1024) /* ca.crt / ca.key larger than this are not ours */
#define PKI_SUBJECT_MAX	 128
#define PKI_SERIAL_LEN	 16

/* One random generator per operation: nothing is shared between threads. */
struct pki_rng {
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
};

/* Everything a certificate is built from; pki_cert_fini frees it all. */
struct pki_cert {
	mbedtls_pk_context key; /* the subject's new key (has_key), else unused */
	bool has_key;
	mbedtls_x509write_cert crt;
	mbedtls_mpi serial;
	unsigned char *pem; /* certificate PEM, NUL-terminated */
	size_t pem_size;
	unsigned char key_pem[PKI_KEY_PEM_MAX]; /* has_key: the key as PEM, after finish */
};

/* Record an mbedTLS failure as code, with mbedTLS's own words for it. */
int pki_mbed_err(vigil_err *err, int code, int mret, const char *what);

/* time_t -> "YYYYMMDDhhmmss" UTC, the form mbedtls_x509write_crt_set_validity takes. */
int pki_time_str(time_t t, char out[16], const char *what, vigil_err *err);

int pki_rng_init(struct pki_rng *rng, vigil_err *err);
void pki_rng_fini(struct pki_rng *rng);

void pki_cert_init(struct pki_cert *c);
void pki_cert_fini(struct pki_cert *c);

/*
 * Start a certificate for subject "CN=<cn>,O=Vigil" with a random serial,
 * SHA-256, the validity given and the subject key id, for subject_key (a
 * CSR's public key; borrowed, it must outlive c's finish) or, with NULL, a
 * fresh P-256 key (c->has_key).  The caller sets the issuer, its key and
 * the rest of the extensions.
 */
int pki_cert_begin(struct pki_cert *c, struct pki_rng *rng, const char *cn, time_t not_before,
		   time_t not_after, mbedtls_pk_context *subject_key, vigil_err *err);

/*
 * Sign the certificate (issuer and its key already set) into c->pem and,
 * with a key of its own, encode the key into c->key_pem.  extra: bytes of
 * extensions beyond the base (SANs), for the PEM buffer's size.
 */
int pki_cert_finish(struct pki_cert *c, struct pki_rng *rng, size_t extra, vigil_err *err);

/* extendedKeyUsage serverAuth or clientAuth; an mbedTLS code. */
int pki_set_eku(mbedtls_x509write_cert *crt, enum pki_kind kind);

/*
 * Load ca_dir/ca.crt and ca_dir/ca.key into ca and ca_key (initialized by
 * the caller) and check that they are a CA and belong together.
 */
int pki_ca_load(const char *ca_dir, mbedtls_x509_crt *ca, mbedtls_pk_context *ca_key,
		vigil_err *err);

#endif
