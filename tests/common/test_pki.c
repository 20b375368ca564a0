/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "fsutil.h"
#include "pki.h"

/* Each test runs in its own process (criterion), so one global directory is enough. */
static char tmpdir[64];

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/vigil-test-pki-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void teardown(void)
{
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* tmpdir/name in a static rotating buffer, so a few can be live at once. */
static const char *tpath(const char *name)
{
	static char bufs[8][PATH_MAX];
	static int next;
	char *b = bufs[next++ % 8];

	snprintf(b, PATH_MAX, "%s/%s", tmpdir, name);
	return b;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(d, "opendir %s", dir);
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static mode_t file_mode(const char *path)
{
	struct stat st;

	cr_assert_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));
	return st.st_mode & 07777;
}

static char *slurp(const char *path, size_t *len)
{
	char *buf = NULL;
	vigil_err err = {0};

	cr_assert_eq(fs_read_file(path, 1 << 20, &buf, len, &err), 0, "%s", err.msg);
	return buf;
}

static void make_ca(const char *dir)
{
	vigil_err err = {0};

	cr_assert_eq(pki_ca_create(dir, "Test CA", 0, &err), 0, "pki_ca_create: %s", err.msg);
}

static void issue(const char *ca_dir, const struct pki_issue_opts *o, const char *crt,
		  const char *key)
{
	vigil_err err = {0};
	int rc = pki_issue(ca_dir, o, crt, key, &err);

	cr_assert_eq(rc, 0, "pki_issue %s: %d %s", o->cn, rc, err.msg);
}

static void load_crt(mbedtls_x509_crt *crt, const char *path)
{
	mbedtls_x509_crt_init(crt);
	cr_assert_eq(mbedtls_x509_crt_parse_file(crt, path), 0, "parse %s", path);
}

/* Verify crt against the CA certificate in ca_dir; returns the flags. */
static uint32_t verify(const char *crt_path, const char *ca_dir, const char *cn)
{
	mbedtls_x509_crt crt, ca;
	char ca_path[PATH_MAX];
	uint32_t flags = 0xffffffff;
	int rc;

	snprintf(ca_path, sizeof(ca_path), "%s/%s", ca_dir, PKI_CA_CERT);
	load_crt(&crt, crt_path);
	load_crt(&ca, ca_path);
	rc = mbedtls_x509_crt_verify(&crt, &ca, NULL, cn, &flags, NULL, NULL);
	cr_assert_eq(rc == 0, flags == 0, "verify returned %d with flags 0x%x", rc, flags);
	mbedtls_x509_crt_free(&crt);
	mbedtls_x509_crt_free(&ca);
	return flags;
}

static int has_eku(const char *crt_path, const char *oid, size_t oid_len)
{
	mbedtls_x509_crt crt;
	int rc;

	load_crt(&crt, crt_path);
	rc = mbedtls_x509_crt_check_extended_key_usage(&crt, oid, oid_len);
	mbedtls_x509_crt_free(&crt);
	return rc == 0;
}

Test(pki, name_valid)
{
	char long_name[66];

	cr_assert(pki_name_valid("host-01.example_a"));
	cr_assert(pki_name_valid("a"));
	cr_assert_not(pki_name_valid(""));
	cr_assert_not(pki_name_valid(NULL));
	cr_assert_not(pki_name_valid("has space"));
	cr_assert_not(pki_name_valid("a/b"));
	cr_assert_not(pki_name_valid("CN=x,O=y"));
	memset(long_name, 'a', 64);
	long_name[64] = '\0';
	cr_assert(pki_name_valid(long_name));
	long_name[64] = 'a';
	long_name[65] = '\0';
	cr_assert_not(pki_name_valid(long_name));
}

Test(pki, ca_created_with_modes_and_ca_extensions, .init = setup, .fini = teardown)
{
	const char *dir = tpath("ca/sub");
	mbedtls_x509_crt ca;
	char dn[256];

	make_ca(dir);
	cr_assert_eq(file_mode(dir), 0700);
	cr_assert_eq(file_mode(tpath("ca/sub/ca.key")), 0600);
	cr_assert_eq(file_mode(tpath("ca/sub/ca.crt")), 0644);

	load_crt(&ca, tpath("ca/sub/ca.crt"));
	cr_assert_eq(ca.ca_istrue, 1);
	cr_assert_eq(ca.max_pathlen, 1, "pathlen 0 is stored as 1 by mbedTLS");
	cr_assert_eq(mbedtls_x509_crt_check_key_usage(&ca, MBEDTLS_X509_KU_KEY_CERT_SIGN |
							       MBEDTLS_X509_KU_CRL_SIGN),
		     0);
	cr_assert_neq(mbedtls_x509_crt_check_key_usage(&ca, MBEDTLS_X509_KU_DIGITAL_SIGNATURE), 0);
	cr_assert_gt(mbedtls_x509_dn_gets(dn, sizeof(dn), &ca.subject), 0);
	cr_assert_str_eq(dn, "CN=Test CA, O=Vigil");
	cr_assert_eq(ca.serial.len, 16);
	cr_assert_lt(ca.serial.p[0], 0x80, "serial must be positive");
	cr_assert_eq(mbedtls_pk_get_type(&ca.pk), MBEDTLS_PK_ECKEY);
	cr_assert_eq(mbedtls_pk_ec(ca.pk)->grp.id, MBEDTLS_ECP_DP_SECP256R1);
	cr_assert_eq(ca.sig_md, MBEDTLS_MD_SHA256);
	/* A self-signed CA must verify against itself. */
	mbedtls_x509_crt_free(&ca);
	cr_assert_eq(verify(tpath("ca/sub/ca.crt"), dir, NULL), 0);
}

Test(pki, ca_create_refuses_to_overwrite, .init = setup, .fini = teardown)
{
	char *crt1, *key1, *crt2, *key2;
	size_t crt1_len, key1_len, crt2_len, key2_len;
	vigil_err err = {0};

	make_ca(tmpdir);
	crt1 = slurp(tpath("ca.crt"), &crt1_len);
	key1 = slurp(tpath("ca.key"), &key1_len);

	cr_assert_eq(pki_ca_create(tmpdir, "Other CA", 0, &err), -EEXIST);
	cr_assert_not_null(strstr(err.msg, "CA already exists in"), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "refusing to overwrite"), "%s", err.msg);
	crt2 = slurp(tpath("ca.crt"), &crt2_len);
	key2 = slurp(tpath("ca.key"), &key2_len);
	cr_assert_eq(crt1_len, crt2_len);
	cr_assert_eq(key1_len, key2_len);
	cr_assert_eq(memcmp(crt1, crt2, crt1_len), 0, "ca.crt changed");
	cr_assert_eq(memcmp(key1, key2, key1_len), 0, "ca.key changed");
	cr_assert_eq(count_entries(tmpdir), 2, "no temporary files may remain");
	free(crt1);
	free(key1);
	free(crt2);
	free(key2);

	/* A lone key is just as much a CA: the certificate is not recreated beside it. */
	cr_assert_eq(unlink(tpath("ca.crt")), 0);
	cr_assert_eq(pki_ca_create(tmpdir, "Test CA", 0, &err), -EEXIST);
	cr_assert_not_null(strstr(err.msg, "(ca.key)"), "%s", err.msg);
	cr_assert_not(fs_exists(tpath("ca.crt")));
}

Test(pki, ca_bad_name_is_einval, .init = setup, .fini = teardown)
{
	vigil_err err = {0};

	cr_assert_eq(pki_ca_create(tmpdir, "Evil,O=Other", 0, &err), -EINVAL);
	cr_assert_not_null(strstr(err.msg, "Evil,O=Other"), "%s", err.msg);
	cr_assert_eq(pki_ca_create(tmpdir, " Padded", 0, &err), -EINVAL);
	cr_assert_eq(pki_ca_create(tmpdir, "Test CA", -1, &err), -EINVAL);
	cr_assert_eq(count_entries(tmpdir), 0);
}

Test(pki, client_cert_verifies_with_client_auth, .init = setup, .fini = teardown)
{
	struct pki_issue_opts o = {.cn = "host-01", .kind = PKI_CLIENT};
	mbedtls_x509_crt crt;
	char dn[256];

	make_ca(tmpdir);
	issue(tmpdir, &o, tpath("host-01.crt"), tpath("host-01.key"));
	cr_assert_eq(file_mode(tpath("host-01.key")), 0600);
	cr_assert_eq(file_mode(tpath("host-01.crt")), 0644);
	cr_assert_eq(verify(tpath("host-01.crt"), tmpdir, NULL), 0);
	cr_assert(has_eku(tpath("host-01.crt"), MBEDTLS_OID_CLIENT_AUTH,
			  MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)));
	cr_assert_not(has_eku(tpath("host-01.crt"), MBEDTLS_OID_SERVER_AUTH,
			      MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)));

	load_crt(&crt, tpath("host-01.crt"));
	cr_assert_eq(crt.ca_istrue, 0);
	cr_assert_eq(mbedtls_x509_crt_check_key_usage(&crt, MBEDTLS_X509_KU_DIGITAL_SIGNATURE |
								MBEDTLS_X509_KU_KEY_AGREEMENT),
		     0);
	cr_assert_neq(mbedtls_x509_crt_check_key_usage(&crt, MBEDTLS_X509_KU_KEY_CERT_SIGN), 0);
	cr_assert_gt(mbedtls_x509_dn_gets(dn, sizeof(dn), &crt.subject), 0);
	cr_assert_str_eq(dn, "CN=host-01, O=Vigil");
	cr_assert_gt(mbedtls_x509_dn_gets(dn, sizeof(dn), &crt.issuer), 0);
	cr_assert_str_eq(dn, "CN=Test CA, O=Vigil");
	cr_assert_eq(crt.serial.len, 16);
	mbedtls_x509_crt_free(&crt);
}

Test(pki, server_cert_sans_match_request, .init = setup, .fini = teardown)
{
	const char *dns[] = {"console.example.com", "*.vigil.test"};
	const char *ips[] = {"192.0.2.10", "2001:db8::1"};
	struct pki_issue_opts o = {
	    .cn = "console", .kind = PKI_SERVER, .dns = dns, .ndns = 2, .ips = ips, .nips = 2};
	unsigned char want4[4], want6[16];
	const mbedtls_x509_sequence *cur;
	mbedtls_x509_crt crt;
	int ndns = 0, found4 = 0, found6 = 0;

	make_ca(tmpdir);
	issue(tmpdir, &o, tpath("console.crt"), tpath("console.key"));
	cr_assert_eq(verify(tpath("console.crt"), tmpdir, "console.example.com"), 0);
	cr_assert_eq(verify(tpath("console.crt"), tmpdir, "api.vigil.test"), 0);
	cr_assert_eq(verify(tpath("console.crt"), tmpdir, "other.example.com"),
		     MBEDTLS_X509_BADCERT_CN_MISMATCH);
	/* With a SAN present, the CN is no longer a valid name. */
	cr_assert_eq(verify(tpath("console.crt"), tmpdir, "console"),
		     MBEDTLS_X509_BADCERT_CN_MISMATCH);
	cr_assert(has_eku(tpath("console.crt"), MBEDTLS_OID_SERVER_AUTH,
			  MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)));
	cr_assert_not(has_eku(tpath("console.crt"), MBEDTLS_OID_CLIENT_AUTH,
			      MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)));

	cr_assert_eq(inet_pton(AF_INET, ips[0], want4), 1);
	cr_assert_eq(inet_pton(AF_INET6, ips[1], want6), 1);
	load_crt(&crt, tpath("console.crt"));
	for (cur = &crt.subject_alt_names; cur != NULL; cur = cur->next) {
		int type = cur->buf.tag & MBEDTLS_ASN1_TAG_VALUE_MASK;

		cr_assert_eq(cur->buf.tag & MBEDTLS_ASN1_TAG_CLASS_MASK,
			     MBEDTLS_ASN1_CONTEXT_SPECIFIC);
		if (type == MBEDTLS_X509_SAN_DNS_NAME) {
			cr_assert_lt(ndns, 2);
			cr_assert_eq(cur->buf.len, strlen(dns[ndns]));
			cr_assert_eq(memcmp(cur->buf.p, dns[ndns], cur->buf.len), 0,
				     "DNS SANs out of order or wrong");
			ndns++;
		} else if (type == MBEDTLS_X509_SAN_IP_ADDRESS && cur->buf.len == 4) {
			found4 = memcmp(cur->buf.p, want4, 4) == 0;
		} else if (type == MBEDTLS_X509_SAN_IP_ADDRESS && cur->buf.len == 16) {
			found6 = memcmp(cur->buf.p, want6, 16) == 0;
		} else {
			cr_assert_fail("unexpected SAN tag 0x%x len %zu", cur->buf.tag,
				       cur->buf.len);
		}
	}
	cr_assert_eq(ndns, 2);
	cr_assert(found4, "IPv4 SAN missing");
	cr_assert(found6, "IPv6 SAN missing");
	mbedtls_x509_crt_free(&crt);
}

Test(pki, cert_from_other_ca_not_trusted, .init = setup, .fini = teardown)
{
	struct pki_issue_opts o = {.cn = "host-01", .kind = PKI_CLIENT};
	const char *ca_a = tpath("a"), *ca_b = tpath("b");

	make_ca(ca_a);
	make_ca(ca_b);
	issue(ca_a, &o, tpath("host-01.crt"), tpath("host-01.key"));
	cr_assert_eq(verify(tpath("host-01.crt"), ca_a, NULL), 0);
	cr_assert_eq(verify(tpath("host-01.crt"), ca_b, NULL), MBEDTLS_X509_BADCERT_NOT_TRUSTED);
}

Test(pki, expired_cert_is_expired, .init = setup, .fini = teardown)
{
	time_t now = time(NULL);
	struct pki_issue_opts o = {.cn = "old",
				   .kind = PKI_CLIENT,
				   .not_before = now - 10 * 86400,
				   .not_after = now - 86400};

	make_ca(tmpdir);
	issue(tmpdir, &o, tpath("old.crt"), tpath("old.key"));
	cr_assert_eq(verify(tpath("old.crt"), tmpdir, NULL), MBEDTLS_X509_BADCERT_EXPIRED);
}

Test(pki, not_yet_valid_cert_is_future, .init = setup, .fini = teardown)
{
	time_t now = time(NULL);
	struct pki_issue_opts o = {.cn = "new", .kind = PKI_SERVER, .not_before = now + 86400};
	mbedtls_x509_crt crt;

	make_ca(tmpdir);
	issue(tmpdir, &o, tpath("new.crt"), tpath("new.key"));
	cr_assert_eq(verify(tpath("new.crt"), tmpdir, NULL), MBEDTLS_X509_BADCERT_FUTURE);

	/* not_after defaults to not_before + 825 days. */
	load_crt(&crt, tpath("new.crt"));
	struct tm tm;
	time_t want = now + 86400 + 825 * 86400;
	gmtime_r(&want, &tm);
	cr_assert_eq(crt.valid_to.year, tm.tm_year + 1900);
	cr_assert_eq(crt.valid_to.mon, tm.tm_mon + 1);
	cr_assert_eq(crt.valid_to.day, tm.tm_mday);
	mbedtls_x509_crt_free(&crt);
}

Test(pki, issued_key_matches_cert, .init = setup, .fini = teardown)
{
	struct pki_issue_opts a = {.cn = "a", .kind = PKI_CLIENT};
	struct pki_issue_opts b = {.cn = "b", .kind = PKI_CLIENT};
	mbedtls_pk_context key_a, key_b;
	mbedtls_x509_crt crt;

	make_ca(tmpdir);
	issue(tmpdir, &a, tpath("a.crt"), tpath("a.key"));
	issue(tmpdir, &b, tpath("b.crt"), tpath("b.key"));
	mbedtls_pk_init(&key_a);
	mbedtls_pk_init(&key_b);
	cr_assert_eq(mbedtls_pk_parse_keyfile(&key_a, tpath("a.key"), NULL), 0);
	cr_assert_eq(mbedtls_pk_parse_keyfile(&key_b, tpath("b.key"), NULL), 0);
	load_crt(&crt, tpath("a.crt"));
	cr_assert_eq(mbedtls_pk_check_pair(&crt.pk, &key_a), 0);
	cr_assert_neq(mbedtls_pk_check_pair(&crt.pk, &key_b), 0, "keys must be fresh per cert");
	mbedtls_x509_crt_free(&crt);
	mbedtls_pk_free(&key_a);
	mbedtls_pk_free(&key_b);
}

/* The CA dir holds only the CA afterwards: nothing else was written. */
static void assert_einval_nothing_written(const struct pki_issue_opts *o, const char *bad)
{
	vigil_err err = {0};
	int rc = pki_issue(tmpdir, o, tpath("out.crt"), tpath("out.key"), &err);

	cr_assert_eq(rc, -EINVAL, "rc %d: %s", rc, err.msg);
	cr_assert_not_null(strstr(err.msg, bad), "err '%s' should name '%s'", err.msg, bad);
	cr_assert_eq(count_entries(tmpdir), 2);
}

Test(pki, invalid_cn_dns_ip_are_einval, .init = setup, .fini = teardown)
{
	const char *bad_dns[] = {"ok.example.com", "bad_name.example.com"};
	const char *bad_dns2[] = {"a..b"};
	const char *bad_ips[] = {"10.0.0.1", "10.0.0.256"};
	const char *bad_ips2[] = {"::g"};
	struct pki_issue_opts o = {.cn = "bad cn", .kind = PKI_SERVER};

	make_ca(tmpdir);
	assert_einval_nothing_written(&o, "bad cn");
	o.cn = "../../etc/x";
	assert_einval_nothing_written(&o, "../../etc/x");

	o.cn = "console";
	o.dns = bad_dns;
	o.ndns = 2;
	assert_einval_nothing_written(&o, "bad_name.example.com");
	o.dns = bad_dns2;
	o.ndns = 1;
	assert_einval_nothing_written(&o, "a..b");

	o.ndns = 0;
	o.ips = bad_ips;
	o.nips = 2;
	assert_einval_nothing_written(&o, "10.0.0.256");
	o.ips = bad_ips2;
	o.nips = 1;
	assert_einval_nothing_written(&o, "::g");
}

Test(pki, issue_refuses_to_overwrite, .init = setup, .fini = teardown)
{
	struct pki_issue_opts o = {.cn = "host", .kind = PKI_CLIENT};
	vigil_err err = {0};
	char *before, *after;
	size_t before_len, after_len;

	make_ca(tmpdir);
	issue(tmpdir, &o, tpath("host.crt"), tpath("host.key"));
	before = slurp(tpath("host.key"), &before_len);

	/* Existing key: refused, and no certificate appears. */
	cr_assert_eq(pki_issue(tmpdir, &o, tpath("new.crt"), tpath("host.key"), &err), -EEXIST);
	cr_assert_not_null(strstr(err.msg, "host.key"), "%s", err.msg);
	cr_assert_not(fs_exists(tpath("new.crt")));
	/* Existing certificate: refused, and no key appears. */
	cr_assert_eq(pki_issue(tmpdir, &o, tpath("host.crt"), tpath("new.key"), &err), -EEXIST);
	cr_assert_not(fs_exists(tpath("new.key")));

	after = slurp(tpath("host.key"), &after_len);
	cr_assert_eq(before_len, after_len);
	cr_assert_eq(memcmp(before, after, before_len), 0, "host.key changed");
	free(before);
	free(after);
}

Test(pki, failed_cert_write_leaves_no_key, .init = setup, .fini = teardown)
{
	struct pki_issue_opts o = {.cn = "host", .kind = PKI_CLIENT};
	vigil_err err = {0};
	int rc;

	make_ca(tmpdir);
	/* The key is written first; the certificate's directory does not exist. */
	rc = pki_issue(tmpdir, &o, tpath("missing/host.crt"), tpath("host.key"), &err);
	cr_assert_eq(rc, -ENOENT, "rc %d: %s", rc, err.msg);
	cr_assert_not(fs_exists(tpath("host.key")), "half a pair was left behind");
	cr_assert_eq(count_entries(tmpdir), 2);
}

Test(pki, issue_without_ca_fails, .init = setup, .fini = teardown)
{
	struct pki_issue_opts o = {.cn = "host", .kind = PKI_CLIENT};
	vigil_err err = {0};

	cr_assert_eq(pki_issue(tmpdir, &o, tpath("host.crt"), tpath("host.key"), &err), -ENOENT);
	cr_assert_not_null(strstr(err.msg, "ca.crt"), "%s", err.msg);
	cr_assert_eq(count_entries(tmpdir), 0);
}

Test(pki, issue_with_mismatched_ca_key_fails, .init = setup, .fini = teardown)
{
	struct pki_issue_opts o = {.cn = "host", .kind = PKI_CLIENT};
	vigil_err err = {0};
	char other[PATH_MAX];

	make_ca(tpath("a"));
	make_ca(tpath("b"));
	snprintf(other, sizeof(other), "%s", tpath("b/ca.key"));
	cr_assert_eq(rename(other, tpath("a/ca.key")), 0);
	cr_assert_eq(pki_issue(tpath("a"), &o, tpath("host.crt"), tpath("host.key"), &err),
		     -EINVAL);
	cr_assert_not_null(strstr(err.msg, "does not match"), "%s", err.msg);
	cr_assert_not(fs_exists(tpath("host.key")));
}

Test(pki, bad_validity_is_einval, .init = setup, .fini = teardown)
{
	time_t now = time(NULL);
	struct pki_issue_opts o = {
	    .cn = "host", .kind = PKI_CLIENT, .not_before = now, .not_after = now - 1};
	vigil_err err = {0};

	make_ca(tmpdir);
	cr_assert_eq(pki_issue(tmpdir, &o, tpath("h.crt"), tpath("h.key"), &err), -EINVAL);
	cr_assert_not_null(strstr(err.msg, "not_after"), "%s", err.msg);
	o.not_after = 0;
	o.days = -1;
	cr_assert_eq(pki_issue(tmpdir, &o, tpath("h.crt"), tpath("h.key"), &err), -EINVAL);
	cr_assert_eq(count_entries(tmpdir), 2);
}

Test(pki, max_sans_fit_and_one_more_is_einval, .init = setup, .fini = teardown)
{
	/* PKI_MAX_SAN names of the longest legal length: the DER and PEM buffers must hold them. */
	static char names[PKI_MAX_SAN + 1][254];
	const char *dns[PKI_MAX_SAN + 1];
	struct pki_issue_opts o = {.cn = "big", .kind = PKI_SERVER, .dns = dns};
	mbedtls_x509_crt crt;
	vigil_err err = {0};
	size_t n = 0;

	for (int i = 0; i <= PKI_MAX_SAN; i++) {
		/* Three 63-char labels and a 61-char one: 253 chars, unique per i. */
		snprintf(names[i], sizeof(names[i]), "n%03d%.59s.%.63s.%.63s.%.61s", i,
			 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
			 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
			 "ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
			 "ddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd");
		cr_assert_eq(strlen(names[i]), 253);
		dns[i] = names[i];
	}
	make_ca(tmpdir);
	o.ndns = PKI_MAX_SAN + 1;
	cr_assert_eq(pki_issue(tmpdir, &o, tpath("big.crt"), tpath("big.key"), &err), -EINVAL);
	cr_assert_eq(count_entries(tmpdir), 2);

	o.ndns = PKI_MAX_SAN;
	issue(tmpdir, &o, tpath("big.crt"), tpath("big.key"));
	cr_assert_eq(verify(tpath("big.crt"), tmpdir, names[PKI_MAX_SAN - 1]), 0);
	load_crt(&crt, tpath("big.crt"));
	for (const mbedtls_x509_sequence *cur = &crt.subject_alt_names; cur != NULL;
	     cur = cur->next)
		n++;
	cr_assert_eq(n, PKI_MAX_SAN);
	mbedtls_x509_crt_free(&crt);
}
