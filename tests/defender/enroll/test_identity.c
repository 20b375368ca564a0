/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host's identity on disk (defender/enroll/identity.h): a renewal swaps
 * key and certificate as a pair, and a crash at any step is repaired to a
 * pair that matches; the token's labels are kept and merged under the
 * configuration's own.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/defender_config.h"
#include "enroll/identity.h"
#include "fsutil.h"

static char dir[64], cert[128], key[128], cert_new[136], key_new[136];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/vigil-test-ident-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(cert, sizeof(cert), "%s/host.crt", dir);
	snprintf(key, sizeof(key), "%s/host.key", dir);
	snprintf(cert_new, sizeof(cert_new), "%s.new", cert);
	snprintf(key_new, sizeof(key_new), "%s.new", key);
}

static void teardown(void)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(identity, .init = setup, .fini = teardown, .timeout = 30);

static void put(const char *path, const char *text)
{
	vigil_err err = {0};

	cr_assert_eq(fs_write_file(path, text, strlen(text), 0600, 0, &err), 0, "%s", err.msg);
}

static void expect_file(const char *path, const char *text)
{
	char *got = NULL;
	vigil_err err = {0};

	cr_assert_eq(fs_read_file(path, 4096, &got, NULL, &err), 0, "%s", err.msg);
	cr_expect_str_eq(got, text, "%s", path);
	free(got);
}

Test(identity, a_first_enrollment_writes_the_key_0600_and_refuses_to_overwrite)
{
	struct stat st;
	vigil_err err = {0};

	cr_assert_eq(identity_write(cert, key, "CERT1", "KEY1", true, &err), 0, "%s", err.msg);
	cr_assert_eq(stat(key, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0600);
	cr_expect_eq(identity_write(cert, key, "CERT2", "KEY2", true, &err), -EEXIST);
	expect_file(key, "KEY1");
	expect_file(cert, "CERT1");
}

Test(identity, a_renewal_replaces_both_and_leaves_nothing_beside)
{
	vigil_err err = {0};

	put(cert, "CERT1");
	put(key, "KEY1");
	cr_assert_eq(identity_write(cert, key, "CERT2", "KEY2", false, &err), 0, "%s", err.msg);
	expect_file(key, "KEY2");
	expect_file(cert, "CERT2");
	cr_expect(!fs_exists(key_new) && !fs_exists(cert_new));
}

Test(identity, a_crash_before_any_rename_keeps_the_old_pair)
{
	char what[256];
	vigil_err err = {0};

	put(cert, "CERT1");
	put(key, "KEY1");
	put(key_new, "KEY2");
	put(cert_new, "CERT2");
	cr_assert_eq(identity_recover(cert, key, what, sizeof(what), &err), 0, "%s", err.msg);
	expect_file(key, "KEY1");
	expect_file(cert, "CERT1");
	cr_expect(!fs_exists(key_new) && !fs_exists(cert_new));
	cr_expect_not_null(strstr(what, "previous key and certificate stay"), "%s", what);
	/* Only the key written, the certificate not yet: the same. */
	put(key_new, "KEY2");
	cr_assert_eq(identity_recover(cert, key, what, sizeof(what), &err), 0);
	expect_file(key, "KEY1");
	cr_expect(!fs_exists(key_new));
}

Test(identity, a_crash_between_the_renames_completes_the_new_pair)
{
	char what[256];
	vigil_err err = {0};

	put(cert, "CERT1");
	put(key, "KEY2");	/* the new key was renamed in ... */
	put(cert_new, "CERT2"); /* ... its certificate not yet */
	cr_assert_eq(identity_recover(cert, key, what, sizeof(what), &err), 0, "%s", err.msg);
	expect_file(key, "KEY2");
	expect_file(cert, "CERT2");
	cr_expect(!fs_exists(cert_new));
	/* Nothing to do: nothing said. */
	cr_assert_eq(identity_recover(cert, key, what, sizeof(what), &err), 0);
	cr_expect_str_eq(what, "");
}

Test(identity, the_tokens_labels_are_kept_and_the_configurations_own_win)
{
	static const char conf[] = "console = tls+tcp://c:1\nca = /c\ncert = /h\nkey = /k\n"
				   "label = env=prod\n";
	struct defender_config cfg;
	vigil_err err = {0};
	int added = 0;
	char state[96];

	snprintf(state, sizeof(state), "%s", dir);
	cr_assert_eq(identity_labels_save(state,
					  "{\"env\":\"test\",\"group\":\"web\",\"bad key\":\"x\","
					  "\"nl\":\"a\\nb\",\"n\":7}",
					  &err),
		     0, "%s", err.msg);
	cr_assert_eq(defender_config_parse(conf, strlen(conf), "t.conf", &cfg, &err), 0, "%s",
		     err.msg);
	free(cfg.state_dir);
	cfg.state_dir = strdup(state);
	cr_assert_eq(identity_labels_merge(&cfg, &added, &err), 0, "%s", err.msg);
	cr_expect_eq(added, 1, "only group: env is the configuration's, the rest are no labels");
	cr_assert_eq(cfg.nlabels, 2);
	cr_expect_str_eq(cfg.labels[0].key, "env");
	cr_expect_str_eq(cfg.labels[0].value, "prod");
	cr_expect_str_eq(cfg.labels[1].key, "group");
	cr_expect_str_eq(cfg.labels[1].value, "web");
	defender_config_fini(&cfg);
}
