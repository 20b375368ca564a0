/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The defender's rulebook: a cached rule set read back as hostile input
 * (truncated, oversized, not JSON, wrong version, a bad rule), sets offered
 * by a console (taken, older, bad JSON), and snapshots that outlive a swap.
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "rules/rulebook.h"

static char dir[64];
static char path[128];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/vigil-rulebook-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/" RULEBOOK_FILE, dir);
}

static void teardown(void)
{
	unlink(path);
	rmdir(dir);
}

TestSuite(rulebook, .init = setup, .fini = teardown);

static const char good[] =
    "{\"format\":\"vigil-rules/1\",\"version\":7,\"rules\":["
    "{\"name\":\"no-shells\",\"processes\":{\"deny\":{\"effect\":\"prevent\","
    "\"executables\":[\"any-shell\"]}}},"
    "{\"name\":\"miner\",\"network\":{\"deny\":{\"connect\":[\"198.51.100.0/24:3333\"]}}}]}";

static void put_file(const char *text, size_t len)
{
	vigil_err err = {0};

	cr_assert_eq(fs_write_file(path, text, len, 0600, 0, &err), 0, "%s", err.msg);
}

/* Open a rulebook on dir; it must find what want says, at version want_version. */
static struct rulebook *open_expect(enum rulebook_load want, int64_t want_version, char *why)
{
	enum rulebook_load load;
	struct rulebook *rb = rulebook_open(dir, &load, why, RULEBOOK_WHY_MAX);
	const struct ruleset *s;

	cr_assert_not_null(rb);
	cr_assert_eq(load, want, "load %d, want %d (%s)", load, want, why);
	s = rulebook_get(rb);
	cr_assert_eq(s->version, want_version);
	ruleset_put(s);
	return rb;
}

Test(rulebook, a_good_file_is_loaded_with_its_version_and_rules)
{
	char why[RULEBOOK_WHY_MAX];
	struct rulebook *rb;
	const struct ruleset *s;

	put_file(good, strlen(good));
	rb = open_expect(RULEBOOK_LOAD_OK, 7, why);
	s = rulebook_get(rb);
	cr_assert_eq(s->set.n, 2);
	cr_expect_str_eq(s->set.v[0].name, "no-shells");
	cr_expect_str_eq(s->set.v[1].name, "miner");
	ruleset_put(s);
	rulebook_free(rb);
}

Test(rulebook, no_file_is_version_zero_without_a_refusal)
{
	char why[RULEBOOK_WHY_MAX];
	struct rulebook *rb = open_expect(RULEBOOK_LOAD_NONE, 0, why);

	cr_expect_str_eq(why, "");
	rulebook_free(rb);
}

Test(rulebook, a_truncated_file_is_refused_and_gives_version_zero)
{
	char why[RULEBOOK_WHY_MAX];
	struct rulebook *rb;

	/* Every cut of the good file is refused, none crashes. */
	for (size_t len = 0; len < strlen(good); len += 7) {
		put_file(good, len);
		rb = open_expect(RULEBOOK_LOAD_REFUSED, 0, why);
		cr_expect_neq(strlen(why), 0);
		rulebook_free(rb);
	}
	put_file(good, strlen(good) - 1);
	rb = open_expect(RULEBOOK_LOAD_REFUSED, 0, why);
	cr_expect(strstr(why, "not JSON") != NULL, "why: %s", why);
	rulebook_free(rb);
}

Test(rulebook, an_oversized_file_is_refused_unread)
{
	char why[RULEBOOK_WHY_MAX];
	size_t len = RULEBOOK_FILE_MAX + 1;
	char *big = malloc(len);
	struct rulebook *rb;

	cr_assert_not_null(big);
	memset(big, ' ', len);
	memcpy(big, good, strlen(good)); /* valid JSON, then too much whitespace */
	put_file(big, len);
	free(big);
	rb = open_expect(RULEBOOK_LOAD_REFUSED, 0, why);
	cr_expect(strstr(why, "larger than") != NULL, "why: %s", why);
	rulebook_free(rb);
}

Test(rulebook, bad_json_and_bad_rules_are_refused)
{
	static const char *const bad[] = {
	    "not json",
	    "[]",
	    "{\"format\":\"vigil-rules/1\",\"version\":3,\"rules\":[{\"name\":\"a\","
	    "\"files\":{}},{\"name\":\"a\",\"files\":{}}]}", /* a name twice */
	    "{\"format\":\"vigil-rules/1\",\"version\":3,\"rules\":[{\"name\":\"a\","
	    "\"network\":{\"deny\":{\"connect\":[\"10.0.0.0/33\"]}}}]}", /* bad CIDR */
	    "{\"format\":\"vigil-rules/1\",\"version\":3,\"version\":4,\"rules\":[]}",
	    "{\"format\":\"vigil-rules/1\",\"version\":3,\"rules\":[],\"extra\":1}",
	};
	char why[RULEBOOK_WHY_MAX];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct rulebook *rb;

		put_file(bad[i], strlen(bad[i]));
		rb = open_expect(RULEBOOK_LOAD_REFUSED, 0, why);
		cr_expect_neq(strlen(why), 0, "no reason for %s", bad[i]);
		rulebook_free(rb);
	}
}

Test(rulebook, a_wrong_version_or_format_is_refused)
{
	static const char *const bad[] = {
	    "{\"format\":\"vigil-rules/1\",\"rules\":[]}",
	    "{\"format\":\"vigil-rules/1\",\"version\":0,\"rules\":[]}",
	    "{\"format\":\"vigil-rules/1\",\"version\":-4,\"rules\":[]}",
	    "{\"format\":\"vigil-rules/1\",\"version\":\"7\",\"rules\":[]}",
	    "{\"format\":\"vigil-rules/2\",\"version\":7,\"rules\":[]}",
	};
	char why[RULEBOOK_WHY_MAX];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct rulebook *rb;

		put_file(bad[i], strlen(bad[i]));
		rb = open_expect(RULEBOOK_LOAD_REFUSED, 0, why);
		rulebook_free(rb);
	}
	/* The same with a good version is taken: the version is what was refused. */
	put_file("{\"format\":\"vigil-rules/1\",\"version\":7,\"rules\":[]}", 49);
	rulebook_free(open_expect(RULEBOOK_LOAD_OK, 7, why));
}

Test(rulebook, a_symlink_is_not_followed)
{
	char why[RULEBOOK_WHY_MAX], target[160];

	snprintf(target, sizeof(target), "%s/elsewhere", dir);
	put_file(good, strlen(good));
	cr_assert_eq(rename(path, target), 0);
	cr_assert_eq(symlink(target, path), 0);
	rulebook_free(open_expect(RULEBOOK_LOAD_REFUSED, 0, why));
	unlink(target);
}

static const char *const rule_a =
    "{\"name\":\"a\",\"scope\":{\"hosts\":[\"web-*\"]},\"files\":{\"deny\":{\"write\":"
    "[\"/etc/cron.d/*\"]}}}";
static const char *const rule_b = "{\"name\":\"b\",\"files\":{}}";

Test(rulebook, an_offered_set_is_taken_cached_and_read_back_the_same)
{
	const char *texts[] = {rule_a, rule_b};
	char why[RULEBOOK_WHY_MAX], reason[RULEBOOK_WHY_MAX];
	struct rulebook *rb = open_expect(RULEBOOK_LOAD_NONE, 0, why);
	const struct ruleset *s;
	uint64_t v, refused;

	cr_assert_eq(rulebook_offer(rb, 5, 9, texts, 2, why, sizeof(why)), RULEBOOK_TAKEN, "%s",
		     why);
	rulebook_state(rb, &v, &refused, reason, sizeof(reason));
	cr_expect_eq(v, 5);
	cr_expect_eq(refused, 0);
	cr_expect_eq(rulebook_offer(rb, 5, 9, texts, 2, why, sizeof(why)), RULEBOOK_HELD);
	rulebook_free(rb);

	rb = open_expect(RULEBOOK_LOAD_OK, 5, why);
	s = rulebook_get(rb);
	cr_assert_eq(s->set.n, 2);
	cr_expect_str_eq(s->set.v[0].name, "a");
	cr_expect_str_eq(s->set.v[0].scope.hosts.v[0], "web-*");
	cr_expect_str_eq(s->set.v[1].name, "b");
	ruleset_put(s);
	rulebook_free(rb);
}

Test(rulebook, older_versions_bad_json_and_too_many_rules_are_refused_and_reported)
{
	const char *good_texts[] = {rule_b};
	const char *bad_texts[] = {rule_b, "{\"name\":\"c\",\"files\":{},\"procesess\":{}}"};
	char why[RULEBOOK_WHY_MAX], reason[RULEBOOK_WHY_MAX];
	struct rulebook *rb = open_expect(RULEBOOK_LOAD_NONE, 0, why);
	uint64_t v, refused;

	cr_assert_eq(rulebook_offer(rb, 5, 1, good_texts, 1, why, sizeof(why)), RULEBOOK_TAKEN);
	cr_expect_eq(rulebook_offer(rb, 4, 1, good_texts, 1, why, sizeof(why)), RULEBOOK_REFUSED);
	cr_expect(strstr(why, "older") != NULL, "why: %s", why);
	rulebook_state(rb, &v, &refused, reason, sizeof(reason));
	cr_expect_eq(v, 5);
	cr_expect_eq(refused, 4);
	cr_expect_str_eq(reason, why);

	cr_expect_eq(rulebook_offer(rb, 6, 2, bad_texts, 2, why, sizeof(why)), RULEBOOK_REFUSED);
	cr_expect(strstr(why, "bad JSON in rule 2") != NULL, "why: %s", why);
	cr_expect_eq(
	    rulebook_offer(rb, 6, 2, (const char *[]){rule_b, rule_b}, 2, why, sizeof(why)),
	    RULEBOOK_REFUSED);
	cr_expect(strstr(why, "both named") != NULL, "why: %s", why);
	cr_expect_eq(rulebook_offer(rb, 6, 0, good_texts, RULES_MAX + 1, why, sizeof(why)),
		     RULEBOOK_REFUSED);
	cr_expect(strstr(why, "too large") != NULL, "why: %s", why);
	rulebook_state(rb, &v, &refused, reason, sizeof(reason));
	cr_expect_eq(v, 5, "a refused set must not replace the held one");
	cr_expect_eq(refused, 6);

	/* A newer good set is taken and the refusal forgotten; the file has it. */
	cr_expect_eq(rulebook_offer(rb, 7, 0, NULL, 0, why, sizeof(why)), RULEBOOK_TAKEN);
	rulebook_state(rb, &v, &refused, reason, sizeof(reason));
	cr_expect_eq(v, 7);
	cr_expect_eq(refused, 0);
	rulebook_free(rb);
	rulebook_free(open_expect(RULEBOOK_LOAD_OK, 7, why));
}

Test(rulebook, a_snapshot_outlives_the_swap_to_a_newer_set)
{
	const char *v1[] = {rule_a}, *v2[] = {rule_b};
	char why[RULEBOOK_WHY_MAX];
	struct rulebook *rb = open_expect(RULEBOOK_LOAD_NONE, 0, why);
	const struct ruleset *old, *cur;

	cr_assert_eq(rulebook_offer(rb, 1, 1, v1, 1, why, sizeof(why)), RULEBOOK_TAKEN);
	old = rulebook_get(rb);
	cr_assert_eq(rulebook_offer(rb, 2, 1, v2, 1, why, sizeof(why)), RULEBOOK_TAKEN);
	cur = rulebook_get(rb);
	cr_expect_eq(old->version, 1);
	cr_expect_str_eq(old->set.v[0].name, "a"); /* still readable: ASan would say otherwise */
	cr_expect_eq(cur->version, 2);
	cr_expect_str_eq(cur->set.v[0].name, "b");
	rulebook_free(rb); /* readers keep theirs */
	cr_expect_str_eq(old->set.v[0].name, "a");
	ruleset_put(old);
	ruleset_put(cur);
}
