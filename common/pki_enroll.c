/* SPDX-License-Identifier: Apache-2.0 */
/* CSRs, signing them with a CA, and reading certificates (pki_enroll.h). */
#include "pki_enroll.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ecp.h>
#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_csr.h>

#include "pki_priv.h"

#define CSR_PEM_OUT_MAX 4096 /* a P-256 CSR's PEM is about 400 bytes */
#define CA_PEM_MAX	(PKI_FILE_MAX * 2)

struct pki_signer {
	pthread_mutex_t lock; /* rng, and the CA key's EC group (mbedTLS caches in it) */
	struct pki_rng rng;
	bool rng_ready;
	mbedtls_x509_crt ca;
	mbedtls_pk_context key;
	char issuer[256];
	char *ca_pem;
	char sha256[PKI_SHA256_HEX + 1];
};

static void hex_of(const unsigned char *raw, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[raw[i] >> 4];
		out[2 * i + 1] = digits[raw[i] & 15];
	}
	out[2 * n] = '\0';
}

static void sha256_hex(const unsigned char *data, size_t len, char out[PKI_SHA256_HEX + 1])
{
	unsigned char sum[32];

	mbedtls_sha256_ret(data, len, sum, 0);
	hex_of(sum, sizeof(sum), out);
}

void pki_secret_free(char *s)
{
	if (s == NULL)
		return;
	mbedtls_platform_zeroize(s, strlen(s));
	free(s);
}

int pki_csr_new(const char *cn, char **ret_key_pem, char **ret_csr_pem, vigil_err *err)
{
	unsigned char key_pem[PKI_KEY_PEM_MAX], csr_pem[CSR_PEM_OUT_MAX];
	char subject[PKI_SUBJECT_MAX];
	mbedtls_x509write_csr w;
	mbedtls_pk_context key;
	struct pki_rng rng;
	int mret, rc;

	if (!pki_name_valid(cn))
		return verr_set(err, -EINVAL, "bad name '%s': use 1..64 of [A-Za-z0-9._-]",
				cn != NULL ? cn : "(null)");
	mbedtls_pk_init(&key);
	mbedtls_x509write_csr_init(&w);
	key_pem[0] = '\0';
	if ((rc = pki_rng_init(&rng, err)) < 0)
		goto out;
	mret = mbedtls_pk_setup(&key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
	if (mret == 0)
		mret = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(key),
					   mbedtls_ctr_drbg_random, &rng.drbg);
	if (mret != 0) {
		rc = pki_mbed_err(err, -EIO, mret, "cannot generate a P-256 key");
		goto out;
	}
	snprintf(subject, sizeof(subject), "CN=%s", cn);
	mbedtls_x509write_csr_set_md_alg(&w, MBEDTLS_MD_SHA256);
	mbedtls_x509write_csr_set_key(&w, &key);
	mret = mbedtls_x509write_csr_set_subject_name(&w, subject);
	if (mret == 0)
		mret = mbedtls_x509write_csr_pem(&w, csr_pem, sizeof(csr_pem),
						 mbedtls_ctr_drbg_random, &rng.drbg);
	if (mret != 0) {
		rc = pki_mbed_err(err, -EIO, mret, "cannot write the certificate request");
		goto out;
	}
	mret = mbedtls_pk_write_key_pem(&key, key_pem, sizeof(key_pem));
	if (mret != 0) {
		rc = pki_mbed_err(err, -EIO, mret, "cannot encode the private key");
		goto out;
	}
	*ret_key_pem = strdup((char *)key_pem);
	*ret_csr_pem = strdup((char *)csr_pem);
	if (*ret_key_pem == NULL || *ret_csr_pem == NULL) {
		pki_secret_free(*ret_key_pem);
		free(*ret_csr_pem);
		*ret_key_pem = *ret_csr_pem = NULL;
		rc = verr_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	rc = 0;
out:
	mbedtls_platform_zeroize(key_pem, sizeof(key_pem));
	mbedtls_x509write_csr_free(&w);
	mbedtls_pk_free(&key);
	pki_rng_fini(&rng);
	return rc;
}

/* The single CN of a subject, checked as a name, into out; false when none or several. */
static bool subject_cn(const mbedtls_x509_name *n, char out[PKI_CN_MAX])
{
	int found = 0;

	for (; n != NULL; n = n->next) {
		if (n->oid.p == NULL || MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) != 0)
			continue;
		if (++found > 1 || n->val.len == 0 || n->val.len >= PKI_CN_MAX)
			return false;
		memcpy(out, n->val.p, n->val.len);
		out[n->val.len] = '\0';
		/* A NUL inside the value would end the name early: refused with the rest. */
		if (strlen(out) != n->val.len || !pki_name_valid(out))
			return false;
	}
	return found == 1;
}

/* The hash a CSR's signature may use; false for anything weaker or unknown. */
static bool csr_md_ok(mbedtls_md_type_t md)
{
	return md == MBEDTLS_MD_SHA256 || md == MBEDTLS_MD_SHA384 || md == MBEDTLS_MD_SHA512;
}

/*
 * pki_csr_check, leaving the parsed CSR in *csr (initialized here; the
 * caller frees it on success and on failure).
 */
static int csr_parse_checked(const char *text, size_t len, mbedtls_x509_csr *csr,
			     struct pki_csr_info *ret, vigil_err *err)
{
	unsigned char hash[MBEDTLS_MD_MAX_SIZE];
	const mbedtls_md_info_t *md;
	char *copy;
	int mret;

	mbedtls_x509_csr_init(csr);
	if (text == NULL || len == 0)
		return verr_set(err, -EINVAL, "no certificate request given");
	if (len > PKI_CSR_MAX)
		return verr_set(err, -E2BIG,
				"the certificate request is %zu bytes, over the %d taken", len,
				PKI_CSR_MAX);
	if (memmem(text, len, "-----BEGIN", 10) != NULL) {
		/* mbedTLS reads PEM only from a NUL-terminated buffer, NUL counted. */
		if ((copy = malloc(len + 1)) == NULL)
			return verr_set(err, -ENOMEM, "out of memory");
		memcpy(copy, text, len);
		copy[len] = '\0';
		mret = memchr(text, '\0', len) != NULL
			   ? MBEDTLS_ERR_X509_INVALID_FORMAT
			   : mbedtls_x509_csr_parse(csr, (unsigned char *)copy, len + 1);
		free(copy);
	} else {
		mret = mbedtls_x509_csr_parse_der(csr, (const unsigned char *)text, len);
	}
	if (mret != 0)
		return pki_mbed_err(err, -EINVAL, mret,
				    "the certificate request is not a PKCS#10 CSR (PEM or DER)");
	if (mbedtls_pk_get_type(&csr->pk) != MBEDTLS_PK_ECKEY)
		return verr_set(err, -EINVAL,
				"the certificate request's key is %s; only EC P-256 keys are taken",
				mbedtls_pk_get_name(&csr->pk));
	if (mbedtls_pk_ec(csr->pk)->grp.id != MBEDTLS_ECP_DP_SECP256R1)
		return verr_set(err, -EINVAL,
				"the certificate request's key is EC on another curve (%zu bits);"
				" only P-256 keys are taken",
				mbedtls_pk_get_bitlen(&csr->pk));
	if (csr->sig_pk != MBEDTLS_PK_ECDSA || !csr_md_ok(csr->sig_md) ||
	    (md = mbedtls_md_info_from_type(csr->sig_md)) == NULL)
		return verr_set(err, -EINVAL,
				"the certificate request is not signed with ECDSA and SHA-256, -384"
				" or -512");
	if (mbedtls_md(md, csr->cri.p, csr->cri.len, hash) != 0 ||
	    mbedtls_pk_verify_ext(csr->sig_pk, csr->sig_opts, &csr->pk, csr->sig_md, hash,
				  mbedtls_md_get_size(md), csr->sig.p, csr->sig.len) != 0)
		return verr_set(err, -EINVAL,
				"the certificate request's signature does not verify with its key");
	if (!subject_cn(&csr->subject, ret->cn))
		return verr_set(err, -EINVAL,
				"the certificate request's subject must have exactly one CN, a name"
				" of 1..64 of [A-Za-z0-9._-]");
	return 0;
}

int pki_csr_check(const char *csr, size_t len, struct pki_csr_info *ret, vigil_err *err)
{
	mbedtls_x509_csr parsed;
	int rc = csr_parse_checked(csr, len, &parsed, ret, err);

	mbedtls_x509_csr_free(&parsed);
	return rc;
}

/* The CA certificate's DER as PEM (a new string), or NULL when out of memory. */
static char *der_to_pem(const unsigned char *der, size_t len)
{
	size_t size = len * 2 + 128, olen = 0;
	unsigned char *buf = malloc(size);

	if (buf == NULL)
		return NULL;
	if (mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n",
				     der, len, buf, size, &olen) != 0) {
		free(buf);
		return NULL;
	}
	return (char *)buf;
}

void pki_signer_free(struct pki_signer *s)
{
	if (s == NULL)
		return;
	if (s->rng_ready)
		pki_rng_fini(&s->rng);
	mbedtls_x509_crt_free(&s->ca);
	mbedtls_pk_free(&s->key);
	free(s->ca_pem);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

struct pki_signer *pki_signer_open(const char *ca_dir, vigil_err *err)
{
	struct pki_signer *s = calloc(1, sizeof(*s));
	int mret, rc;

	if (s == NULL) {
		verr_set(err, -ENOMEM, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&s->lock, NULL);
	mbedtls_x509_crt_init(&s->ca);
	mbedtls_pk_init(&s->key);
	if ((rc = pki_ca_load(ca_dir, &s->ca, &s->key, err)) < 0)
		goto fail;
	if ((rc = pki_rng_init(&s->rng, err)) < 0)
		goto fail;
	s->rng_ready = true;
	/* The issuer must be the CA's subject for chain building to find it. */
	mret = mbedtls_x509_dn_gets(s->issuer, sizeof(s->issuer), &s->ca.subject);
	if (mret < 0) {
		rc = pki_mbed_err(err, -EINVAL, mret, "cannot read the CA subject");
		goto fail;
	}
	if ((s->ca_pem = der_to_pem(s->ca.raw.p, s->ca.raw.len)) == NULL) {
		rc = verr_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	sha256_hex(s->ca.raw.p, s->ca.raw.len, s->sha256);
	return s;
fail:
	pki_signer_free(s);
	errno = -rc;
	return NULL;
}

const char *pki_signer_ca_pem(const struct pki_signer *s)
{
	return s->ca_pem;
}

const char *pki_signer_ca_sha256(const struct pki_signer *s)
{
	return s->sha256;
}

void pki_signed_fini(struct pki_signed *sg)
{
	free(sg->cert_pem);
	memset(sg, 0, sizeof(*sg));
}

/* The extensions of a client certificate and the signature, under s->lock. */
static int sign_locked(struct pki_signer *s, struct pki_cert *c, mbedtls_pk_context *subject_key,
		       const char *cn, time_t not_before, time_t not_after, vigil_err *err)
{
	int mret, rc;

	rc = pki_cert_begin(c, &s->rng, cn, not_before, not_after, subject_key, err);
	if (rc < 0)
		return rc;
	mbedtls_x509write_crt_set_issuer_key(&c->crt, &s->key);
	mret = mbedtls_x509write_crt_set_issuer_name(&c->crt, s->issuer);
	if (mret != 0)
		return pki_mbed_err(err, -EINVAL, mret, "cannot use the CA subject as issuer");
	/* As pki_issue's client certificates: ECDSA signatures and ECDHE; never a CA. */
	mret = mbedtls_x509write_crt_set_basic_constraints(&c->crt, 0, -1);
	if (mret == 0)
		mret = mbedtls_x509write_crt_set_key_usage(
		    &c->crt, MBEDTLS_X509_KU_DIGITAL_SIGNATURE | MBEDTLS_X509_KU_KEY_AGREEMENT);
	if (mret == 0)
		mret = pki_set_eku(&c->crt, PKI_CLIENT);
	if (mret != 0)
		return pki_mbed_err(err, -EIO, mret, "cannot set the certificate extensions");
	return pki_cert_finish(c, &s->rng, 0, err);
}

int pki_signer_sign(struct pki_signer *s, const char *csr, size_t len, const char *cn,
		    time_t not_before, time_t not_after, struct pki_signed *ret, vigil_err *err)
{
	unsigned char serial[PKI_SERIAL_HEX_MAX / 2];
	struct pki_csr_info info;
	mbedtls_x509_csr parsed;
	struct pki_cert c;
	size_t n;
	int rc;

	memset(ret, 0, sizeof(*ret));
	rc = csr_parse_checked(csr, len, &parsed, &info, err);
	if (rc == 0 && strcmp(info.cn, cn) != 0)
		rc = verr_set(err, -EINVAL, "the certificate request names '%s', not '%s'", info.cn,
			      cn);
	if (rc < 0) {
		mbedtls_x509_csr_free(&parsed);
		return rc;
	}
	pki_cert_init(&c);
	pthread_mutex_lock(&s->lock);
	rc = sign_locked(s, &c, &parsed.pk, cn, not_before, not_after, err);
	pthread_mutex_unlock(&s->lock);
	if (rc == 0) {
		n = mbedtls_mpi_size(&c.serial);
		if (n == 0 || n > sizeof(serial) ||
		    mbedtls_mpi_write_binary(&c.serial, serial, n) != 0)
			rc = verr_set(err, -EIO, "cannot read the serial number back");
	}
	if (rc == 0 && (ret->cert_pem = strdup((char *)c.pem)) == NULL)
		rc = verr_set(err, -ENOMEM, "out of memory");
	if (rc == 0) {
		hex_of(serial, n, ret->serial);
		ret->not_before = not_before;
		ret->not_after = not_after;
	}
	pki_cert_fini(&c);
	mbedtls_x509_csr_free(&parsed);
	return rc;
}

void pki_host_validity(int64_t secs, time_t *ret_not_before, time_t *ret_not_after)
{
	time_t now = time(NULL);
	int64_t skew = secs / 10 < PKI_SKEW_SECS ? secs / 10 : PKI_SKEW_SECS;

	*ret_not_before = now - (time_t)skew;
	*ret_not_after = now + (time_t)secs;
}

int pki_renew_min_interval(int64_t secs)
{
	int64_t third = secs / 3;

	return third < 1 ? 1 : third > 60 ? 60 : (int)third;
}

time_t pki_renew_at(time_t not_before, time_t not_after)
{
	return not_before + (not_after - not_before) * 2 / 3;
}

static time_t x509_time(const mbedtls_x509_time *t)
{
	struct tm tm = {.tm_year = t->year - 1900,
			.tm_mon = t->mon - 1,
			.tm_mday = t->day,
			.tm_hour = t->hour,
			.tm_min = t->min,
			.tm_sec = t->sec};

	return timegm(&tm);
}

/* Parse pem (PEM or DER, len bytes) into chain (initialized by the caller). */
static int crt_parse(const char *pem, size_t len, mbedtls_x509_crt *chain, const char *what,
		     vigil_err *err)
{
	char *copy;
	int mret;

	if (pem == NULL || len == 0)
		return verr_set(err, -EINVAL, "no %s given", what);
	if (len > CA_PEM_MAX)
		return verr_set(err, -E2BIG, "the %s is %zu bytes, over the %d taken", what, len,
				CA_PEM_MAX);
	if ((copy = malloc(len + 1)) == NULL)
		return verr_set(err, -ENOMEM, "out of memory");
	memcpy(copy, pem, len);
	copy[len] = '\0';
	/* With the NUL counted mbedTLS reads PEM; DER is parsed at its own length. */
	if (memmem(pem, len, "-----BEGIN", 10) != NULL)
		mret = mbedtls_x509_crt_parse(chain, (unsigned char *)copy, len + 1);
	else
		mret = mbedtls_x509_crt_parse_der(chain, (unsigned char *)copy, len);
	free(copy);
	/* A positive result counts certificates that failed while others parsed. */
	if (mret < 0 || chain->raw.p == NULL)
		return pki_mbed_err(err, -EINVAL, mret < 0 ? mret : MBEDTLS_ERR_X509_INVALID_FORMAT,
				    what);
	return 0;
}

int pki_cert_info(const char *pem, size_t len, struct pki_cert_info *ret, vigil_err *err)
{
	mbedtls_x509_crt crt;
	int rc;

	memset(ret, 0, sizeof(*ret));
	mbedtls_x509_crt_init(&crt);
	rc = crt_parse(pem, len, &crt, "certificate", err);
	if (rc == 0) {
		size_t n = crt.serial.len < PKI_SERIAL_HEX_MAX / 2 ? crt.serial.len
								   : PKI_SERIAL_HEX_MAX / 2;

		if (!subject_cn(&crt.subject, ret->cn))
			ret->cn[0] = '\0';
		hex_of(crt.serial.p, n, ret->serial);
		ret->not_before = x509_time(&crt.valid_from);
		ret->not_after = x509_time(&crt.valid_to);
		sha256_hex(crt.raw.p, crt.raw.len, ret->sha256);
	}
	mbedtls_x509_crt_free(&crt);
	return rc;
}

int pki_identity_check(const char *ca_pem, const char *cert_pem, const char *key_pem,
		       const char *cn, vigil_err *err)
{
	mbedtls_x509_crt ca, crt;
	mbedtls_pk_context key;
	char why[256], got[PKI_CN_MAX];
	uint32_t flags = 0;
	size_t klen;
	int mret, rc;

	mbedtls_x509_crt_init(&ca);
	mbedtls_x509_crt_init(&crt);
	mbedtls_pk_init(&key);
	rc = crt_parse(ca_pem, ca_pem != NULL ? strlen(ca_pem) : 0, &ca, "CA certificate", err);
	if (rc == 0)
		rc = crt_parse(cert_pem, cert_pem != NULL ? strlen(cert_pem) : 0, &crt,
			       "certificate", err);
	if (rc < 0)
		goto out;
	if (!subject_cn(&crt.subject, got) || strcmp(got, cn) != 0) {
		rc = verr_set(err, -EINVAL, "the certificate is not for '%s'", cn);
		goto out;
	}
	mret = mbedtls_x509_crt_verify(&crt, &ca, NULL, NULL, &flags, NULL, NULL);
	if (mret != 0) {
		mbedtls_x509_crt_verify_info(why, sizeof(why), "", flags);
		why[strcspn(why, "\n")] = '\0';
		rc = verr_set(err, -EINVAL, "the certificate does not verify against the CA: %s",
			      why[0] != '\0' ? why : "unknown reason");
		goto out;
	}
	klen = key_pem != NULL ? strlen(key_pem) : 0;
	mret = mbedtls_pk_parse_key(&key, (const unsigned char *)key_pem, klen + 1, NULL, 0);
	if (mret != 0 || mbedtls_pk_check_pair(&crt.pk, &key) != 0) {
		rc = verr_set(err, -EINVAL, "the certificate is not for this host's key");
		goto out;
	}
	rc = 0;
out:
	mbedtls_pk_free(&key);
	mbedtls_x509_crt_free(&crt);
	mbedtls_x509_crt_free(&ca);
	return rc;
}

int pki_sha256_parse(const char *text, char out[PKI_SHA256_HEX + 1])
{
	size_t n = 0, run = 0;

	if (text == NULL)
		return -EINVAL;
	for (const char *p = text; *p != '\0'; p++) {
		char c = *p;

		if (c == ':') {
			/* openssl's form: a ':' after every pair, none at the ends. */
			if (run != 2 || p[1] == '\0')
				return -EINVAL;
			run = 0;
			continue;
		}
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			return -EINVAL;
		if (n >= PKI_SHA256_HEX)
			return -EINVAL;
		out[n++] = (char)(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c);
		run++;
	}
	out[n] = '\0';
	return n == PKI_SHA256_HEX ? 0 : -EINVAL;
}
