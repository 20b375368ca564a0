/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CSRs and signing them (common/pki_enroll.h): a defender's request is
 * taken; requests a hostile host could send are refused with a reason that
 * names what is wrong (RSA, another curve, a signature that does not verify,
 * no or two CNs, a bad name, oversize, junk); a signed certificate chains to
 * the CA, carries the CN, clientAuth and the CSR's key, and its serial and
 * fingerprint read back as the TLS engine and openssl say them.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/rsa.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_crt.h>
#include <mbedtls/x509_csr.h>

#include "fsutil.h"
#include "pki.h"
#include "pki_enroll.h"

static char tmpdir[64];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void setup(void)
{
	vigil_err err = {0};

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/vigil-test-pkie-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
	cr_assert_eq(pki_ca_create(tmpdir, "Enroll Test CA", 30, &err), 0, "%s", err.msg);
}

static void teardown(void)
{
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(pki_enroll, .init = setup, .fini = teardown, .timeout = 60);

/* A test's random generator. */
static mbedtls_ctr_drbg_context *drbg(void)
{
	static mbedtls_entropy_context entropy;
	static mbedtls_ctr_drbg_context d;
	static int ready;

	if (!ready) {
		mbedtls_entropy_init(&entropy);
		mbedtls_ctr_drbg_init(&d);
		cr_assert_eq(mbedtls_ctr_drbg_seed(&d, mbedtls_entropy_func, &entropy, NULL, 0), 0);
		ready = 1;
	}
	return &d;
}

enum key_kind { KEY_P256, KEY_P384, KEY_RSA };

/* A CSR for subject with a key of kind, as DER in buf; returns its length. */
static size_t csr_der(enum key_kind kind, const char *subject, unsigned char *buf, size_t size)
{
	mbedtls_pk_context key;
	mbedtls_x509write_csr w;
	int n;

	mbedtls_pk_init(&key);
	mbedtls_x509write_csr_init(&w);
	if (kind == KEY_RSA) {
		cr_assert_eq(mbedtls_pk_setup(&key, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)), 0);
		cr_assert_eq(mbedtls_rsa_gen_key(mbedtls_pk_rsa(key), mbedtls_ctr_drbg_random,
						 drbg(), 1024, 65537),
			     0);
	} else {
		cr_assert_eq(mbedtls_pk_setup(&key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)),
			     0);
		cr_assert_eq(mbedtls_ecp_gen_key(kind == KEY_P256 ? MBEDTLS_ECP_DP_SECP256R1
								  : MBEDTLS_ECP_DP_SECP384R1,
						 mbedtls_pk_ec(key), mbedtls_ctr_drbg_random,
						 drbg()),
			     0);
	}
	mbedtls_x509write_csr_set_md_alg(&w, MBEDTLS_MD_SHA256);
	mbedtls_x509write_csr_set_key(&w, &key);
	cr_assert_eq(mbedtls_x509write_csr_set_subject_name(&w, subject), 0, "%s", subject);
	n = mbedtls_x509write_csr_der(&w, buf, size, mbedtls_ctr_drbg_random, drbg());
	cr_assert_gt(n, 0);
	/* mbedTLS writes DER at the end of the buffer. */
	memmove(buf, buf + size - (size_t)n, (size_t)n);
	mbedtls_x509write_csr_free(&w);
	mbedtls_pk_free(&key);
	return (size_t)n;
}

static void expect_refused(const char *csr, size_t len, int code, const char *words)
{
	struct pki_csr_info info;
	vigil_err err = {0};
	int rc = pki_csr_check(csr, len, &info, &err);

	cr_expect_eq(rc, code, "expected %d, got %d (%s)", code, rc, err.msg);
	cr_expect_not_null(strstr(err.msg, words), "'%s' lacks '%s'", err.msg, words);
}

Test(pki_enroll, a_defenders_csr_is_taken_and_names_its_cn)
{
	struct pki_csr_info info;
	vigil_err err = {0};
	char *key = NULL, *csr = NULL;

	cr_assert_eq(pki_csr_new("web-01.example", &key, &csr, &err), 0, "%s", err.msg);
	cr_expect_not_null(strstr(key, "PRIVATE KEY"));
	cr_expect_not_null(strstr(csr, "BEGIN CERTIFICATE REQUEST"));
	cr_assert_eq(pki_csr_check(csr, strlen(csr), &info, &err), 0, "%s", err.msg);
	cr_expect_str_eq(info.cn, "web-01.example");
	pki_secret_free(key);
	free(csr);
	cr_expect_eq(pki_csr_new("bad name", &key, &csr, &err), -EINVAL);
}

Test(pki_enroll, csrs_a_hostile_host_could_send_are_refused_with_the_reason)
{
	unsigned char der[4096];
	size_t n;

	n = csr_der(KEY_RSA, "CN=web-01", der, sizeof(der));
	expect_refused((char *)der, n, -EINVAL, "key is RSA");
	n = csr_der(KEY_P384, "CN=web-01", der, sizeof(der));
	expect_refused((char *)der, n, -EINVAL, "another curve (384 bits)");
	n = csr_der(KEY_P256, "O=Vigil", der, sizeof(der));
	expect_refused((char *)der, n, -EINVAL, "exactly one CN");
	n = csr_der(KEY_P256, "CN=web 01", der, sizeof(der));
	expect_refused((char *)der, n, -EINVAL, "exactly one CN");
	/* The positive control: the same builder with a good subject passes. */
	n = csr_der(KEY_P256, "CN=web-01", der, sizeof(der));
	{
		struct pki_csr_info info;
		vigil_err err = {0};

		cr_assert_eq(pki_csr_check((char *)der, n, &info, &err), 0, "%s", err.msg);
	}
	/* Its signature's last byte changed: it no longer proves the key. */
	der[n - 1] ^= 0x01;
	expect_refused((char *)der, n, -EINVAL, "signature does not verify");
	expect_refused("junk", 4, -EINVAL, "not a PKCS#10 CSR");
	{
		static const char bad_pem[] = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
					      "-----END CERTIFICATE REQUEST-----\n";

		expect_refused(bad_pem, strlen(bad_pem), -EINVAL, "not a PKCS#10 CSR");
	}
	expect_refused("", 0, -EINVAL, "no certificate request");
	{
		char *big = calloc(1, PKI_CSR_MAX + 2);

		memset(big, 'A', PKI_CSR_MAX + 1);
		expect_refused(big, PKI_CSR_MAX + 1, -E2BIG, "over the");
		free(big);
	}
}

Test(pki_enroll, a_pem_with_a_nul_inside_is_refused)
{
	char *key = NULL, *csr = NULL;
	vigil_err err = {0};
	size_t n;

	cr_assert_eq(pki_csr_new("host-x", &key, &csr, &err), 0, "%s", err.msg);
	n = strlen(csr);
	csr[n / 2] = '\0';
	expect_refused(csr, n, -EINVAL, "not a PKCS#10 CSR");
	pki_secret_free(key);
	free(csr);
}

/* The CA's certificate as mbedTLS holds it. */
static void load_ca(mbedtls_x509_crt *ca)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/ca.crt", tmpdir);
	mbedtls_x509_crt_init(ca);
	cr_assert_eq(mbedtls_x509_crt_parse_file(ca, path), 0);
}

Test(pki_enroll, a_signed_certificate_chains_names_the_host_and_holds_the_csr_key)
{
	struct pki_signer *s;
	struct pki_signed sg;
	struct pki_cert_info info;
	mbedtls_x509_crt ca, crt;
	mbedtls_pk_context pk;
	vigil_err err = {0};
	char *key = NULL, *csr = NULL, hex[65];
	uint32_t flags = 0;
	time_t nb, na;

	s = pki_signer_open(tmpdir, &err);
	cr_assert_not_null(s, "%s", err.msg);
	cr_assert_eq(pki_csr_new("db-7", &key, &csr, &err), 0, "%s", err.msg);
	pki_host_validity(3600, &nb, &na);
	cr_expect_eq(na - nb, 3600 + 300, "5 minutes of skew for a long lifetime");
	cr_assert_eq(pki_signer_sign(s, csr, strlen(csr), "db-7", nb, na, &sg, &err), 0, "%s",
		     err.msg);
	/* Chains to the CA, for db-7. */
	load_ca(&ca);
	mbedtls_x509_crt_init(&crt);
	cr_assert_eq(
	    mbedtls_x509_crt_parse(&crt, (unsigned char *)sg.cert_pem, strlen(sg.cert_pem) + 1), 0);
	cr_expect_eq(mbedtls_x509_crt_verify(&crt, &ca, NULL, "db-7", &flags, NULL, NULL), 0,
		     "flags %x", flags);
	cr_expect_eq(mbedtls_x509_crt_check_extended_key_usage(
			 &crt, MBEDTLS_OID_CLIENT_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)),
		     0);
	cr_expect_eq(mbedtls_x509_crt_check_extended_key_usage(
			 &crt, MBEDTLS_OID_SERVER_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)),
		     MBEDTLS_ERR_X509_BAD_INPUT_DATA, "a host certificate is no server's");
	/* The CSR's key is the certificate's: the private key never came to the CA. */
	mbedtls_pk_init(&pk);
	cr_assert_eq(mbedtls_pk_parse_key(&pk, (unsigned char *)key, strlen(key) + 1, NULL, 0), 0);
	cr_expect_eq(mbedtls_pk_check_pair(&crt.pk, &pk), 0);
	cr_expect_eq(pki_identity_check(pki_signer_ca_pem(s), sg.cert_pem, key, "db-7", &err), 0,
		     "%s", err.msg);
	cr_expect_eq(pki_identity_check(pki_signer_ca_pem(s), sg.cert_pem, key, "db-8", &err),
		     -EINVAL, "another name is refused");
	/* What it says reads back: serial (as the TLS engine writes it), validity, fingerprint. */
	cr_assert_eq(pki_cert_info(sg.cert_pem, strlen(sg.cert_pem), &info, &err), 0, "%s",
		     err.msg);
	cr_expect_str_eq(info.cn, "db-7");
	cr_expect_str_eq(info.serial, sg.serial);
	cr_expect_eq(strlen(info.serial), 32);
	cr_expect_eq(info.not_before, nb);
	cr_expect_eq(info.not_after, na);
	{
		unsigned char sum[32];

		mbedtls_sha256_ret(crt.raw.p, crt.raw.len, sum, 0);
		for (int i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", sum[i]);
		cr_expect_str_eq(info.sha256, hex);
		mbedtls_sha256_ret(ca.raw.p, ca.raw.len, sum, 0);
		for (int i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", sum[i]);
		cr_expect_str_eq(pki_signer_ca_sha256(s), hex);
	}
	mbedtls_pk_free(&pk);
	mbedtls_x509_crt_free(&crt);
	mbedtls_x509_crt_free(&ca);
	pki_signed_fini(&sg);
	pki_secret_free(key);
	free(csr);
	pki_signer_free(s);
}

Test(pki_enroll, the_signer_refuses_a_csr_for_another_name)
{
	struct pki_signer *s;
	struct pki_signed sg;
	vigil_err err = {0};
	char *key = NULL, *csr = NULL;
	time_t nb, na;

	s = pki_signer_open(tmpdir, &err);
	cr_assert_not_null(s, "%s", err.msg);
	cr_assert_eq(pki_csr_new("web-01", &key, &csr, &err), 0, "%s", err.msg);
	pki_host_validity(60, &nb, &na);
	cr_expect_eq(pki_signer_sign(s, csr, strlen(csr), "web-02", nb, na, &sg, &err), -EINVAL);
	cr_expect_not_null(strstr(err.msg, "names 'web-01', not 'web-02'"), "%s", err.msg);
	cr_expect_null(sg.cert_pem);
	pki_secret_free(key);
	free(csr);
	pki_signer_free(s);
}

Test(pki_enroll, a_missing_or_foreign_ca_key_does_not_open)
{
	char other[80], path[160];
	vigil_err err = {0};

	cr_expect_null(pki_signer_open("/nonexistent-vigil-ca", &err));
	snprintf(other, sizeof(other), "%s/other", tmpdir);
	cr_assert_eq(pki_ca_create(other, "Other CA", 30, &err), 0, "%s", err.msg);
	/* ca.key of another CA beside ours: refused, not used to sign. */
	snprintf(path, sizeof(path), "%s/ca.key", tmpdir);
	cr_assert_eq(unlink(path), 0);
	{
		char from[160];
		char *text;
		size_t len;

		snprintf(from, sizeof(from), "%s/ca.key", other);
		cr_assert_eq(fs_read_file(from, 65536, &text, &len, &err), 0);
		cr_assert_eq(fs_write_file(path, text, len, 0600, 1, &err), 0);
		free(text);
	}
	cr_expect_null(pki_signer_open(tmpdir, &err));
	cr_expect_not_null(strstr(err.msg, "does not match"), "%s", err.msg);
}

Test(pki_enroll, short_lifetimes_keep_renewal_after_signing)
{
	time_t nb, na, now = time(NULL);

	/* 30 s: 3 s of skew, renewal at two thirds falls 19 s from now, after the signing. */
	pki_host_validity(30, &nb, &na);
	cr_expect_eq(na - now, 30);
	cr_expect_eq(now - nb, 3);
	cr_expect_gt(pki_renew_at(nb, na), now + 15);
	cr_expect_lt(pki_renew_at(nb, na), na);
	cr_expect_eq(pki_renew_min_interval(30), 10);
	cr_expect_eq(pki_renew_min_interval(90 * 86400), 60);
	cr_expect_eq(pki_renew_min_interval(2), 1);
}

Test(pki_enroll, fingerprints_parse_as_people_write_them)
{
	char out[65];

	cr_expect_eq(pki_sha256_parse(
			 "6c41355a5fdfb83939aca4702d63d52748f3abba850a0100cb7a66ed4bf24c4f", out),
		     0);
	cr_expect_str_eq(out, "6c41355a5fdfb83939aca4702d63d52748f3abba850a0100cb7a66ed4bf24c4f");
	cr_expect_eq(pki_sha256_parse("6C:41:35:5A:5F:DF:B8:39:39:AC:A4:70:2D:63:D5:27:48:F3:AB:BA:"
				      "85:0A:01:00:CB:7A:66:ED:4B:F2:4C:4F",
				      out),
		     0);
	cr_expect_str_eq(out, "6c41355a5fdfb83939aca4702d63d52748f3abba850a0100cb7a66ed4bf24c4f");
	cr_expect_eq(pki_sha256_parse("6c41", out), -EINVAL);
	cr_expect_eq(pki_sha256_parse(
			 "6c41355a5fdfb83939aca4702d63d52748f3abba850a0100cb7a66ed4bf24c4f00", out),
		     -EINVAL);
	cr_expect_eq(pki_sha256_parse(
			 "zz41355a5fdfb83939aca4702d63d52748f3abba850a0100cb7a66ed4bf24c4f", out),
		     -EINVAL);
	cr_expect_eq(pki_sha256_parse(
			 "6c4:1355a5fdfb83939aca4702d63d52748f3abba850a0100cb7a66ed4bf24c4f", out),
		     -EINVAL);
}
