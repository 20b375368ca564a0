/* SPDX-License-Identifier: Apache-2.0 */
#include "pki.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/asn1write.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/x509_crt.h>

#include "fsutil.h"
#include "pki_priv.h"

#define PKI_CA_DAYS   3650
#define PKI_LEAF_DAYS 825

int pki_mbed_err(vigil_err *err, int code, int mret, const char *what)
{
	char buf[128];

	if (mret == MBEDTLS_ERR_MPI_ALLOC_FAILED || mret == MBEDTLS_ERR_PK_ALLOC_FAILED ||
	    mret == MBEDTLS_ERR_X509_ALLOC_FAILED || mret == MBEDTLS_ERR_ASN1_ALLOC_FAILED)
		code = -ENOMEM;
	mbedtls_strerror(mret, buf, sizeof(buf));
	return verr_set(err, code, "%s: %s (mbedTLS -0x%04x)", what, buf, (unsigned)-mret);
}

int pki_name_valid(const char *name)
{
	size_t n;

	if (name == NULL)
		return 0;
	for (n = 0; name[n] != '\0'; n++) {
		char c = name[n];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
		if (n >= 64)
			return 0;
	}
	return n >= 1;
}

/*
 * A CA name is shown to people ("Vigil CA"), so unlike a host id it may hold
 * inner spaces.  Still no ',', '=', '+' or '\\', which would change the
 * meaning of the "CN=...,O=Vigil" string mbedTLS parses.
 */
static int pki_ca_name_valid(const char *name)
{
	size_t n = name != NULL ? strlen(name) : 0;
	char buf[65];

	if (n == 0 || n > 64 || name[0] == ' ' || name[n - 1] == ' ')
		return 0;
	memcpy(buf, name, n + 1);
	for (size_t i = 0; i < n; i++)
		if (buf[i] == ' ')
			buf[i] = '_';
	return pki_name_valid(buf);
}

/*
 * A dNSName: letters, digits, '-', '.', and '*' as a whole leftmost label
 * (a wildcard), 1..253 chars, no empty label, labels at most 63 chars.
 */
static int pki_dns_valid(const char *name)
{
	size_t n = strlen(name), label = 0;

	if (n == 0 || n > 253)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (c == '*') {
			if (i != 0 || (name[1] != '.' && name[1] != '\0'))
				return 0;
		} else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9') || c == '-')) {
			return 0;
		}
		if (++label > 63)
			return 0;
	}
	return label > 0;
}

/* Parse an IPv4 or IPv6 address into out; returns its length (4 or 16) or 0. */
static size_t pki_ip_parse(const char *text, unsigned char out[16])
{
	if (inet_pton(AF_INET, text, out) == 1)
		return 4;
	if (inet_pton(AF_INET6, text, out) == 1)
		return 16;
	return 0;
}

/* time_t -> "YYYYMMDDhhmmss" UTC, the form mbedtls_x509write_crt_set_validity takes. */
int pki_time_str(time_t t, char out[16], const char *what, vigil_err *err)
{
	struct tm tm;

	/* UTCTime starts at 1950; GeneralizedTime has four year digits. */
	if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 1950 || tm.tm_year + 1900 > 9999 ||
	    strftime(out, 16, "%Y%m%d%H%M%S", &tm) != 14)
		return verr_set(err, -EINVAL, "%s is out of the range X.509 can express", what);
	return 0;
}

int pki_rng_init(struct pki_rng *rng, vigil_err *err)
{
	static const char pers[] = "vigil-pki";
	int mret;

	mbedtls_entropy_init(&rng->entropy);
	mbedtls_ctr_drbg_init(&rng->drbg);
	mret = mbedtls_ctr_drbg_seed(&rng->drbg, mbedtls_entropy_func, &rng->entropy,
				     (const unsigned char *)pers, sizeof(pers) - 1);
	if (mret != 0)
		return pki_mbed_err(err, -EIO, mret, "cannot seed the random generator");
	return 0;
}

void pki_rng_fini(struct pki_rng *rng)
{
	mbedtls_ctr_drbg_free(&rng->drbg);
	mbedtls_entropy_free(&rng->entropy);
}

void pki_cert_init(struct pki_cert *c)
{
	mbedtls_pk_init(&c->key);
	mbedtls_x509write_crt_init(&c->crt);
	mbedtls_mpi_init(&c->serial);
	c->pem = NULL;
	c->pem_size = 0;
	c->key_pem[0] = '\0';
	c->has_key = false;
}

void pki_cert_fini(struct pki_cert *c)
{
	mbedtls_platform_zeroize(c->key_pem, sizeof(c->key_pem));
	free(c->pem);
	mbedtls_mpi_free(&c->serial);
	mbedtls_x509write_crt_free(&c->crt);
	mbedtls_pk_free(&c->key);
}

int pki_cert_begin(struct pki_cert *c, struct pki_rng *rng, const char *cn, time_t not_before,
		   time_t not_after, mbedtls_pk_context *subject_key, vigil_err *err)
{
	unsigned char serial[PKI_SERIAL_LEN];
	char subject[PKI_SUBJECT_MAX], nb[16], na[16];
	int mret, rc;

	if (not_after <= not_before)
		return verr_set(err, -EINVAL, "not_after must be later than not_before");
	rc = pki_time_str(not_before, nb, "not_before", err);
	if (rc < 0)
		return rc;
	rc = pki_time_str(not_after, na, "not_after", err);
	if (rc < 0)
		return rc;

	if (subject_key == NULL) {
		mret = mbedtls_pk_setup(&c->key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
		if (mret == 0)
			mret = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(c->key),
						   mbedtls_ctr_drbg_random, &rng->drbg);
		if (mret != 0)
			return pki_mbed_err(err, -EIO, mret, "cannot generate a P-256 key");
		subject_key = &c->key;
		c->has_key = true;
	}

	/* Positive and always 16 bytes long in DER: top bit clear, next bit set. */
	mret = mbedtls_ctr_drbg_random(&rng->drbg, serial, sizeof(serial));
	if (mret != 0)
		return pki_mbed_err(err, -EIO, mret, "cannot draw a serial number");
	serial[0] = (unsigned char)((serial[0] & 0x7f) | 0x40);
	mret = mbedtls_mpi_read_binary(&c->serial, serial, sizeof(serial));
	if (mret != 0)
		return pki_mbed_err(err, -EIO, mret, "cannot set the serial number");

	snprintf(subject, sizeof(subject), "CN=%s,O=Vigil", cn);
	mbedtls_x509write_crt_set_version(&c->crt, MBEDTLS_X509_CRT_VERSION_3);
	mbedtls_x509write_crt_set_md_alg(&c->crt, MBEDTLS_MD_SHA256);
	mbedtls_x509write_crt_set_subject_key(&c->crt, subject_key);
	mret = mbedtls_x509write_crt_set_serial(&c->crt, &c->serial);
	if (mret != 0)
		return pki_mbed_err(err, -EIO, mret, "cannot set the serial number");
	mret = mbedtls_x509write_crt_set_subject_name(&c->crt, subject);
	if (mret != 0)
		return pki_mbed_err(err, -EINVAL, mret, "bad subject name");
	mret = mbedtls_x509write_crt_set_validity(&c->crt, nb, na);
	if (mret != 0)
		return pki_mbed_err(err, -EINVAL, mret, "bad validity period");
	mret = mbedtls_x509write_crt_set_subject_key_identifier(&c->crt);
	if (mret != 0)
		return pki_mbed_err(err, -EIO, mret, "cannot set the subject key identifier");
	return 0;
}

/* Sign the certificate (issuer and its key already set) and PEM-encode both halves. */
int pki_cert_finish(struct pki_cert *c, struct pki_rng *rng, size_t extra, vigil_err *err)
{
	int mret;

	mret = mbedtls_x509write_crt_set_authority_key_identifier(&c->crt);
	if (mret != 0)
		return pki_mbed_err(err, -EIO, mret, "cannot set the authority key identifier");
	/* Base64 grows the extensions by 4/3; twice leaves room for line breaks. */
	c->pem_size = PKI_CRT_PEM_BASE + 2 * extra;
	c->pem = malloc(c->pem_size);
	if (c->pem == NULL)
		return verr_set(err, -ENOMEM, "out of memory for a certificate");
	mret = mbedtls_x509write_crt_pem(&c->crt, c->pem, c->pem_size, mbedtls_ctr_drbg_random,
					 &rng->drbg);
	if (mret != 0)
		return pki_mbed_err(err, -EIO, mret, "cannot sign the certificate");
	if (!c->has_key)
		return 0; /* signed for a CSR's key: its private half never came here */
	mret = mbedtls_pk_write_key_pem(&c->key, c->key_pem, sizeof(c->key_pem));
	if (mret != 0)
		return pki_mbed_err(err, -EIO, mret, "cannot encode the private key");
	return 0;
}

/*
 * Write the key, then the certificate, both exclusively.  When the
 * certificate cannot be written the key is removed again, so a failure never
 * leaves half a pair behind.
 */
static int pki_cert_store(struct pki_cert *c, const char *cert_path, const char *key_path,
			  vigil_err *err)
{
	int rc;

	rc = fs_write_file(key_path, c->key_pem, strlen((char *)c->key_pem), 0600, 1, err);
	if (rc < 0)
		return rc;
	rc = fs_write_file(cert_path, c->pem, strlen((char *)c->pem), 0644, 1, err);
	if (rc < 0)
		unlink(key_path);
	return rc;
}

static int pki_path(char out[PATH_MAX], const char *dir, const char *name, vigil_err *err)
{
	if (snprintf(out, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX)
		return verr_set(err, -ENAMETOOLONG, "path too long: %s/%s", dir, name);
	return 0;
}

int pki_ca_create(const char *dir, const char *cn, int days, vigil_err *err)
{
	char crt_path[PATH_MAX], key_path[PATH_MAX], subject[PKI_SUBJECT_MAX];
	struct pki_rng rng;
	struct pki_cert c;
	time_t now = time(NULL);
	int mret, rc;

	if (dir == NULL || dir[0] == '\0')
		return verr_set(err, -EINVAL, "no CA directory given");
	if (!pki_ca_name_valid(cn))
		return verr_set(err, -EINVAL,
				"bad CA name '%s': use 1..64 of [A-Za-z0-9._-] and inner spaces",
				cn != NULL ? cn : "(null)");
	if (days < 0)
		return verr_set(err, -EINVAL, "bad CA lifetime %d days", days);
	if (days == 0)
		days = PKI_CA_DAYS;
	rc = pki_path(crt_path, dir, PKI_CA_CERT, err);
	if (rc == 0)
		rc = pki_path(key_path, dir, PKI_CA_KEY, err);
	if (rc < 0)
		return rc;
	if (fs_exists(crt_path) || fs_exists(key_path))
		return verr_set(err, -EEXIST,
				"CA already exists in %s (%s); refusing to overwrite it", dir,
				fs_exists(crt_path) ? PKI_CA_CERT : PKI_CA_KEY);

	pki_cert_init(&c);
	rc = pki_rng_init(&rng, err);
	if (rc < 0)
		goto cleanup;
	rc = pki_cert_begin(&c, &rng, cn, now - PKI_SKEW_SECS, now + (time_t)days * 86400, NULL,
			    err);
	if (rc < 0)
		goto cleanup;
	/* Self-signed: the issuer is the subject and signs with its own key. */
	snprintf(subject, sizeof(subject), "CN=%s,O=Vigil", cn);
	mbedtls_x509write_crt_set_issuer_key(&c.crt, &c.key);
	mret = mbedtls_x509write_crt_set_issuer_name(&c.crt, subject);
	if (mret != 0) {
		rc = pki_mbed_err(err, -EINVAL, mret, "bad issuer name");
		goto cleanup;
	}
	/* pathlen 0: this CA issues leaves only, never another CA. */
	mret = mbedtls_x509write_crt_set_basic_constraints(&c.crt, 1, 0);
	if (mret == 0)
		mret = mbedtls_x509write_crt_set_key_usage(&c.crt, MBEDTLS_X509_KU_KEY_CERT_SIGN |
								       MBEDTLS_X509_KU_CRL_SIGN);
	if (mret != 0) {
		rc = pki_mbed_err(err, -EIO, mret, "cannot set the CA extensions");
		goto cleanup;
	}
	rc = pki_cert_finish(&c, &rng, 0, err);
	if (rc < 0)
		goto cleanup;
	rc = fs_mkdir_p(dir, 0700, err);
	if (rc < 0)
		goto cleanup;
	rc = pki_cert_store(&c, crt_path, key_path, err);
	if (rc == -EEXIST)
		/* Someone created the CA while we built ours; keep theirs. */
		verr_set(err, rc, "CA already exists in %s; refusing to overwrite it", dir);
cleanup:
	pki_cert_fini(&c);
	pki_rng_fini(&rng);
	return rc;
}

/* extendedKeyUsage: SEQUENCE { OID serverAuth | clientAuth }. */
int pki_set_eku(mbedtls_x509write_cert *crt, enum pki_kind kind)
{
	unsigned char buf[32];
	unsigned char *p = buf + sizeof(buf);
	const char *oid = MBEDTLS_OID_CLIENT_AUTH;
	size_t oid_len = MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH), len = 0;
	int ret; /* MBEDTLS_ASN1_CHK_ADD stores into ret and returns it on error */

	if (kind == PKI_SERVER) {
		oid = MBEDTLS_OID_SERVER_AUTH;
		oid_len = MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH);
	}
	/* mbedtls_asn1_write_* fills the buffer from its end: contents first. */
	MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_oid(&p, buf, oid, oid_len));
	MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(&p, buf, len));
	MBEDTLS_ASN1_CHK_ADD(
	    len, mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
	return mbedtls_x509write_crt_set_extension(crt, MBEDTLS_OID_EXTENDED_KEY_USAGE,
						   MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE),
						   0, p, len);
}

/* Upper bound of the subjectAltName DER for opts (already validated). */
static size_t pki_san_size(const struct pki_issue_opts *opts)
{
	size_t size = 8; /* outer SEQUENCE tag and length */

	for (size_t i = 0; i < opts->ndns; i++)
		size += strlen(opts->dns[i]) + 4;
	return size + opts->nips * (16 + 2);
}

/*
 * subjectAltName: SEQUENCE OF GeneralName, with dNSName [2] IA5String and
 * iPAddress [7] OCTET STRING, both IMPLICIT.  mbedTLS 2.28 cannot write this
 * extension, so it is built here from the end of buf backwards: entries go in
 * in reverse so that they read in the order given, names before addresses.
 */
static int pki_set_san(mbedtls_x509write_cert *crt, const struct pki_issue_opts *opts,
		       unsigned char *buf, size_t size)
{
	unsigned char *p = buf + size;
	unsigned char ip[16];
	size_t len = 0;
	int ret; /* MBEDTLS_ASN1_CHK_ADD stores into ret and returns it on error */

	for (size_t i = opts->nips; i-- > 0;) {
		size_t n = 0, iplen = pki_ip_parse(opts->ips[i], ip);

		MBEDTLS_ASN1_CHK_ADD(n, mbedtls_asn1_write_raw_buffer(&p, buf, ip, iplen));
		MBEDTLS_ASN1_CHK_ADD(n, mbedtls_asn1_write_len(&p, buf, n));
		MBEDTLS_ASN1_CHK_ADD(
		    n, mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7));
		len += n;
	}
	for (size_t i = opts->ndns; i-- > 0;) {
		size_t n = 0;
		MBEDTLS_ASN1_CHK_ADD(
		    n, mbedtls_asn1_write_raw_buffer(&p, buf, (const unsigned char *)opts->dns[i],
						     strlen(opts->dns[i])));
		MBEDTLS_ASN1_CHK_ADD(n, mbedtls_asn1_write_len(&p, buf, n));
		MBEDTLS_ASN1_CHK_ADD(
		    n, mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2));
		len += n;
	}
	MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(&p, buf, len));
	MBEDTLS_ASN1_CHK_ADD(
	    len, mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
	/* Not critical: the subject name is never empty. */
	return mbedtls_x509write_crt_set_extension(crt, MBEDTLS_OID_SUBJECT_ALT_NAME,
						   MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME),
						   0, p, len);
}

static int pki_issue_opts_check(const struct pki_issue_opts *opts, const char *cert_path,
				const char *key_path, vigil_err *err)
{
	unsigned char ip[16];

	if (opts == NULL || cert_path == NULL || key_path == NULL)
		return verr_set(err, -EINVAL,
				"pki_issue needs options, a certificate and a key path");
	if (!pki_name_valid(opts->cn))
		return verr_set(err, -EINVAL, "bad cn '%s': use 1..64 of [A-Za-z0-9._-]",
				opts->cn != NULL ? opts->cn : "(null)");
	if (opts->kind != PKI_CLIENT && opts->kind != PKI_SERVER)
		return verr_set(err, -EINVAL, "bad certificate kind %d", (int)opts->kind);
	if ((opts->ndns > 0 && opts->dns == NULL) || (opts->nips > 0 && opts->ips == NULL))
		return verr_set(err, -EINVAL, "subjectAltName count given without entries");
	if (opts->ndns + opts->nips > PKI_MAX_SAN)
		return verr_set(err, -EINVAL,
				"%zu subjectAltName entries, more than the %d allowed",
				opts->ndns + opts->nips, PKI_MAX_SAN);
	for (size_t i = 0; i < opts->ndns; i++)
		if (opts->dns[i] == NULL || !pki_dns_valid(opts->dns[i]))
			return verr_set(err, -EINVAL, "bad DNS name '%s'",
					opts->dns[i] != NULL ? opts->dns[i] : "(null)");
	for (size_t i = 0; i < opts->nips; i++)
		if (opts->ips[i] == NULL || pki_ip_parse(opts->ips[i], ip) == 0)
			return verr_set(err, -EINVAL, "bad IP address '%s'",
					opts->ips[i] != NULL ? opts->ips[i] : "(null)");
	if (opts->days < 0)
		return verr_set(err, -EINVAL, "bad lifetime %d days", opts->days);
	if (strcmp(cert_path, key_path) == 0)
		return verr_set(err, -EINVAL, "certificate and key would both be written to %s",
				cert_path);
	if (fs_exists(cert_path))
		return verr_set(err, -EEXIST, "%s already exists; refusing to overwrite it",
				cert_path);
	if (fs_exists(key_path))
		return verr_set(err, -EEXIST, "%s already exists; refusing to overwrite it",
				key_path);
	return 0;
}

int pki_ca_load(const char *ca_dir, mbedtls_x509_crt *ca, mbedtls_pk_context *ca_key,
		vigil_err *err)
{
	char path[PATH_MAX];
	char *buf = NULL;
	size_t len = 0;
	int mret, rc;

	rc = pki_path(path, ca_dir, PKI_CA_CERT, err);
	if (rc < 0)
		return rc;
	rc = fs_read_file(path, PKI_FILE_MAX, &buf, &len, err);
	if (rc < 0)
		return rc;
	/* PEM parsing wants the terminating NUL counted. */
	mret = mbedtls_x509_crt_parse(ca, (unsigned char *)buf, len + 1);
	free(buf);
	buf = NULL;
	if (mret != 0)
		return pki_mbed_err(err, -EBADMSG, mret, path);
	if (!ca->ca_istrue)
		return verr_set(err, -EINVAL, "%s is not a CA certificate", path);

	rc = pki_path(path, ca_dir, PKI_CA_KEY, err);
	if (rc < 0)
		return rc;
	rc = fs_read_file(path, PKI_FILE_MAX, &buf, &len, err);
	if (rc < 0)
		return rc;
	mret = mbedtls_pk_parse_key(ca_key, (unsigned char *)buf, len + 1, NULL, 0);
	mbedtls_platform_zeroize(buf, len);
	free(buf);
	if (mret != 0)
		return pki_mbed_err(err, -EBADMSG, mret, path);
	mret = mbedtls_pk_check_pair(&ca->pk, ca_key);
	if (mret != 0)
		return verr_set(err, -EINVAL, "%s does not match %s/%s", path, ca_dir, PKI_CA_CERT);
	return 0;
}

int pki_issue(const char *ca_dir, const struct pki_issue_opts *opts, const char *cert_path,
	      const char *key_path, vigil_err *err)
{
	char issuer[256];
	unsigned char *san = NULL;
	size_t san_size = 0;
	mbedtls_x509_crt ca;
	mbedtls_pk_context ca_key;
	struct pki_rng rng;
	struct pki_cert c;
	time_t not_before, not_after;
	int mret, rc;

	rc = pki_issue_opts_check(opts, cert_path, key_path, err);
	if (rc < 0)
		return rc;
	not_before = opts->not_before != 0 ? opts->not_before : time(NULL) - PKI_SKEW_SECS;
	not_after = opts->not_after;
	if (not_after == 0)
		not_after =
		    not_before + (time_t)(opts->days != 0 ? opts->days : PKI_LEAF_DAYS) * 86400;

	mbedtls_x509_crt_init(&ca);
	mbedtls_pk_init(&ca_key);
	pki_cert_init(&c);
	rc = pki_rng_init(&rng, err);
	if (rc < 0)
		goto cleanup;
	rc = pki_ca_load(ca_dir, &ca, &ca_key, err);
	if (rc < 0)
		goto cleanup;
	rc = pki_cert_begin(&c, &rng, opts->cn, not_before, not_after, NULL, err);
	if (rc < 0)
		goto cleanup;

	/* The issuer must be the CA's subject for chain building to find it. */
	mret = mbedtls_x509_dn_gets(issuer, sizeof(issuer), &ca.subject);
	if (mret < 0) {
		rc = pki_mbed_err(err, -EINVAL, mret, "cannot read the CA subject");
		goto cleanup;
	}
	mbedtls_x509write_crt_set_issuer_key(&c.crt, &ca_key);
	mret = mbedtls_x509write_crt_set_issuer_name(&c.crt, issuer);
	if (mret != 0) {
		rc = pki_mbed_err(err, -EINVAL, mret, "cannot use the CA subject as issuer");
		goto cleanup;
	}
	/* ECDSA signatures and ECDHE key agreement; never a CA. */
	mret = mbedtls_x509write_crt_set_basic_constraints(&c.crt, 0, -1);
	if (mret == 0)
		mret = mbedtls_x509write_crt_set_key_usage(
		    &c.crt, MBEDTLS_X509_KU_DIGITAL_SIGNATURE | MBEDTLS_X509_KU_KEY_AGREEMENT);
	if (mret == 0)
		mret = pki_set_eku(&c.crt, opts->kind);
	if (mret != 0) {
		rc = pki_mbed_err(err, -EIO, mret, "cannot set the certificate extensions");
		goto cleanup;
	}
	if (opts->ndns + opts->nips > 0) {
		san_size = pki_san_size(opts);
		san = malloc(san_size);
		if (san == NULL) {
			rc = verr_set(err, -ENOMEM, "out of memory for subjectAltName");
			goto cleanup;
		}
		mret = pki_set_san(&c.crt, opts, san, san_size);
		if (mret != 0) {
			rc = pki_mbed_err(err, -EIO, mret, "cannot set subjectAltName");
			goto cleanup;
		}
	}
	rc = pki_cert_finish(&c, &rng, san_size, err);
	if (rc < 0)
		goto cleanup;
	rc = pki_cert_store(&c, cert_path, key_path, err);
cleanup:
	free(san);
	pki_cert_fini(&c);
	pki_rng_fini(&rng);
	mbedtls_pk_free(&ca_key);
	mbedtls_x509_crt_free(&ca);
	return rc;
}
