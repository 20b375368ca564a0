/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Models as pure logic plus their files: learning, folding, deviations
 * reported once, promotion held back by drops, relearn, deltas, bounds, and
 * a save/load round trip including a corrupt file.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "learn/generalize.h"
#include "learn/model.h"
#include "strmap.h"

#define SVC  "exe:/usr/sbin/testd"
#define EXE  "/usr/sbin/testd"
#define HOUR (3600ull * 1000)

static struct model_limits limits(void)
{
	struct model_limits lim = MODEL_LIMITS_DEFAULT;

	lim.learn_window_ms = HOUR;
	return lim;
}

static enum model_verdict see_path(struct model_set *s, enum model_kind k, const char *path,
				   uint64_t now)
{
	char pat[GENERALIZE_PATTERN_MAX], fold[GENERALIZE_PATTERN_MAX];
	struct model_obs o = {.kind = k, .exe = EXE, .pattern = pat};

	cr_assert_geq(generalize_path(path, pat, sizeof(pat)), 0);
	if (generalize_parent_glob(pat, fold, sizeof(fold)) >= 0)
		o.fold = fold;
	return model_observe(s, SVC, &o, now);
}

static enum model_verdict see_peer(struct model_set *s, const char *addr, const char *range,
				   uint64_t now)
{
	char pat[128], fold[128];
	struct model_obs o = {.kind = MK_CONNECT, .exe = EXE, .pattern = pat, .fold = fold};

	snprintf(pat, sizeof(pat), "tcp:%s:443", addr);
	snprintf(fold, sizeof(fold), "tcp:%s:443", range);
	return model_observe(s, SVC, &o, now);
}

/* Collected deltas, flattened: "kind pattern" for upserts, "-kind pattern" for removals. */
struct seen {
	char lines[256][600];
	size_t n, deltas;
	bool reset;
	char state[16];
	uint64_t learn_until_ms;
};

static void collect(const Vigil__ModelDelta *d, void *ctx)
{
	struct seen *s = ctx;

	s->deltas++;
	s->reset |= d->reset;
	s->learn_until_ms = d->learn_until_ms;
	snprintf(s->state, sizeof(s->state), "%s", d->state);
	for (size_t i = 0; i < d->n_entries && s->n < 256; i++)
		snprintf(s->lines[s->n++], sizeof(s->lines[0]), "%s%s %s",
			 d->entries[i]->removed ? "-" : "", d->entries[i]->kind,
			 d->entries[i]->pattern);
}

static bool has(const struct seen *s, const char *line)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->lines[i], line) == 0)
			return true;
	return false;
}

Test(model, learns_then_reports_what_is_new_once)
{
	struct model_limits lim = limits();
	struct model_set *s = model_set_new(&lim, NULL, NULL);
	char expected[256];

	cr_assert_eq(see_path(s, MK_PROGRAM, "/usr/bin/date", 1000), MODEL_LEARNED);
	cr_assert_eq(see_path(s, MK_PROGRAM, "/usr/bin/date", 2000), MODEL_KNOWN);
	cr_assert_eq(model_state_of(s, SVC), MODEL_LEARNING);
	cr_assert_eq(model_set_tick(s, 1000 + HOUR, 0), 1);
	cr_assert_eq(model_state_of(s, SVC), MODEL_ACTIVE);
	cr_assert_eq(see_path(s, MK_PROGRAM, "/usr/bin/date", 3 * HOUR), MODEL_KNOWN);
	cr_assert_eq(see_path(s, MK_PROGRAM, "/bin/sh", 3 * HOUR), MODEL_DEVIATION);
	cr_assert_eq(see_path(s, MK_PROGRAM, "/bin/sh", 3 * HOUR + 1), MODEL_DEVIATION_SEEN);
	/* A deviation is not learned: it is still one for another kind of look-up. */
	model_expected(s, SVC, EXE, MK_PROGRAM, expected, sizeof(expected));
	cr_assert_str_eq(expected, "/usr/bin/date");
	model_expected(s, SVC, EXE, MK_LISTEN, expected, sizeof(expected));
	cr_assert_str_eq(expected, "no listen entries for " EXE);
	model_expected(s, SVC, "/other", MK_LISTEN, expected, sizeof(expected));
	cr_assert_str_eq(expected, "nothing: /other is not in the model");
	model_set_free(s);
}

Test(model, changing_file_names_fold_into_their_shape)
{
	struct model_limits lim = limits();
	struct model_set *s = model_set_new(&lim, NULL, NULL);
	struct seen seen = {0};
	struct model_stats st;
	char path[128];

	/* Generalization alone: a numbered log is one entry however many days pass. */
	cr_assert_eq(see_path(s, MK_WRITE, "/var/log/testd/app-20261127.log", 10), MODEL_LEARNED);
	cr_assert_eq(see_path(s, MK_WRITE, "/var/log/testd/app-20261128.log", 11), MODEL_KNOWN);
	/* Folding: names that are words, not numbers, still fold after eight siblings. */
	static const char *const names[] = {"alpha", "bravo",	"charlie", "delta",
					    "echo",  "foxtrot", "golf"};
	for (size_t i = 0; i < 7; i++) {
		snprintf(path, sizeof(path), "/var/lib/testd/state/%s.db", names[i]);
		cr_assert_eq(see_path(s, MK_WRITE, path, 20 + i), MODEL_LEARNED);
	}
	model_set_collect(s, true, collect, &seen);
	cr_assert(has(&seen, "write /var/lib/testd/state/alpha.db"));
	seen.n = 0;
	/* The eighth sibling folds all of them into the shape of their names. */
	cr_assert_eq(see_path(s, MK_WRITE, "/var/lib/testd/state/hotel.db", 30), MODEL_LEARNED);
	model_set_collect(s, true, collect, &seen);
	cr_assert(has(&seen, "-write /var/lib/testd/state/alpha.db"));
	cr_assert(has(&seen, "write /var/lib/testd/state/*.db"));
	cr_assert_not(has(&seen, "write /var/lib/testd/state/hotel.db"));
	model_set_stats(s, &st);
	cr_assert_eq(st.folds, 1);
	cr_assert_eq(st.folds_shaped, 1);
	model_set_tick(s, 30 + HOUR, 0);
	cr_assert_eq(see_path(s, MK_WRITE, "/var/lib/testd/state/india.db", 2 * HOUR), MODEL_KNOWN);
	cr_assert_eq(see_path(s, MK_WRITE, "/var/lib/testd/state/2026.db", 2 * HOUR), MODEL_KNOWN);
	/* Another shape, or a name below it, is news: a shape is one name in its directory. */
	cr_assert_eq(see_path(s, MK_WRITE, "/var/lib/testd/state/shell.php", 2 * HOUR),
		     MODEL_DEVIATION);
	cr_assert_eq(see_path(s, MK_WRITE, "/var/lib/testd/state/x/y.db", 2 * HOUR),
		     MODEL_DEVIATION);
	cr_assert_eq(see_path(s, MK_WRITE, "/var/lib/testd/other.db", 2 * HOUR), MODEL_DEVIATION);
	model_set_free(s);
}

Test(model, names_with_no_common_shape_fold_into_the_whole_directory)
{
	struct model_limits lim = limits();
	struct model_set *s = model_set_new(&lim, NULL, NULL);
	struct seen seen = {0};
	struct model_stats st;
	static const char *const names[] = {"alpha",	"bravo.txt", "charlie.db", "delta-1",
					    "echo.log", "foxtrot",   "golf.tar",   "hotel.c"};
	char path[128];

	for (size_t i = 0; i < 8; i++) {
		snprintf(path, sizeof(path), "/srv/testd/spool/%s", names[i]);
		cr_assert_eq(see_path(s, MK_WRITE, path, 20 + i), MODEL_LEARNED);
	}
	model_set_collect(s, true, collect, &seen);
	cr_assert(has(&seen, "write /srv/testd/spool/*"), "as before shapes");
	model_set_stats(s, &st);
	cr_assert_eq(st.folds, 1);
	cr_assert_eq(st.folds_shaped, 0);
	model_set_tick(s, 30 + HOUR, 0);
	/* Anything below the directory: any name, and below its subdirectories. */
	cr_assert_eq(see_path(s, MK_WRITE, "/srv/testd/spool/x.php", 2 * HOUR), MODEL_KNOWN);
	cr_assert_eq(see_path(s, MK_WRITE, "/srv/testd/spool/x/y", 2 * HOUR), MODEL_KNOWN);
	cr_assert_eq(see_path(s, MK_WRITE, "/srv/testd/other", 2 * HOUR), MODEL_DEVIATION);
	model_set_free(s);
}

Test(model, a_shape_widens_to_what_new_siblings_share)
{
	struct model_limits lim = limits();
	struct model_set *s = model_set_new(&lim, NULL, NULL);
	struct seen seen = {0};
	char path[128];

	/* Random lowercase words are not <rand>: eight distinct temporary names. */
	static const char *const words[] = {"qzkvtw", "bmxjrp", "lwfhzc", "tnqgvd",
					    "pkszxm", "hvdbrw", "jcnfqt", "xgwmlk"};
	for (size_t i = 0; i < 8; i++) {
		snprintf(path, sizeof(path), "/srv/testd/cache/c-%s.tmp", words[i]);
		cr_assert_eq(see_path(s, MK_WRITE, path, 10 + i), MODEL_LEARNED);
	}
	model_set_collect(s, true, collect, &seen);
	cr_assert(has(&seen, "write /srv/testd/cache/c-*.tmp"));
	/* New temporary files: known while learning too. */
	cr_assert_eq(see_path(s, MK_WRITE, "/srv/testd/cache/c-abcdef.tmp", 20), MODEL_KNOWN);
	cr_assert_eq(see_path(s, MK_WRITE, "/srv/testd/cache/c-a1b2c3d4.tmp", 20), MODEL_KNOWN);
	/* Seven lock files of another shape: with the shape, eight siblings again. */
	seen.n = 0;
	for (size_t i = 0; i < 7; i++) {
		snprintf(path, sizeof(path), "/srv/testd/cache/c-%s.lock", words[i]);
		cr_assert_eq(see_path(s, MK_WRITE, path, 30 + i), MODEL_LEARNED);
	}
	model_set_collect(s, true, collect, &seen);
	cr_assert(has(&seen, "-write /srv/testd/cache/c-*.tmp"));
	cr_assert(has(&seen, "write /srv/testd/cache/c-*"), "the shape widened to what both share");
	model_set_tick(s, 40 + HOUR, 0);
	cr_assert_eq(see_path(s, MK_WRITE, "/srv/testd/cache/c-new.tmp", 2 * HOUR), MODEL_KNOWN);
	cr_assert_eq(see_path(s, MK_WRITE, "/srv/testd/cache/c-new.lock", 2 * HOUR), MODEL_KNOWN);
	cr_assert_eq(see_path(s, MK_WRITE, "/srv/testd/cache/index.php", 2 * HOUR),
		     MODEL_DEVIATION);
	model_set_free(s);
}

Test(model, shared_state_directories_never_fold_whole)
{
	struct model_limits lim = limits();
	struct model_set *s = model_set_new(&lim, NULL, NULL);
	static const char *const names[] = {"apt",   "dpkg",	 "postgresql", "mysql",
					    "redis", "rabbitmq", "nginx",      "sudo"};
	char path[128];

	for (size_t i = 0; i < 8; i++) {
		snprintf(path, sizeof(path), "/var/lib/%s", names[i]);
		cr_assert_eq(see_path(s, MK_READ, path, 10 + i), MODEL_LEARNED);
	}
	model_set_tick(s, 20 + HOUR, 0);
	cr_assert_eq(see_path(s, MK_READ, "/var/lib/redis", 2 * HOUR), MODEL_KNOWN);
	cr_assert_eq(see_path(s, MK_READ, "/var/lib/vault", 2 * HOUR), MODEL_DEVIATION,
		     "another service's state is news however many the service read");
	model_set_free(s);
}

Test(model, system_directories_never_fold)
{
	struct model_limits lim = limits();
	struct model_set *s = model_set_new(&lim, NULL, NULL);
	char path[64];

	for (int i = 0; i < 12; i++) {
		snprintf(path, sizeof(path), "/etc/testd-%c.conf", 'a' + i);
		see_path(s, MK_WRITE, path, 10);
	}
	model_set_tick(s, 10 + HOUR, 0);
	cr_assert_eq(see_path(s, MK_WRITE, "/etc/passwd", 2 * HOUR), MODEL_DEVIATION);
	/* Nor programs: eight tools learned must not admit a shell. */
	for (int i = 0; i < 10; i++) {
		snprintf(path, sizeof(path), "/usr/local/bin/tool%c", 'a' + i);
		see_path(s, MK_PROGRAM, path, 2 * HOUR);
	}
	cr_assert_eq(see_path(s, MK_PROGRAM, "/usr/local/bin/sh", 2 * HOUR), MODEL_DEVIATION);
	model_set_free(s);
}

Test(model, peers_fold_into_their_range)
{
	struct model_limits lim = limits();
	struct model_set *s = model_set_new(&lim, NULL, NULL);

	for (int i = 1; i <= 4; i++) {
		char a[32];

		snprintf(a, sizeof(a), "10.1.2.%d", i);
		cr_assert_eq(see_peer(s, a, "10.1.2.0/24", 10), MODEL_LEARNED);
	}
	model_set_tick(s, 10 + HOUR, 0);
	cr_assert_eq(see_peer(s, "10.1.2.200", "10.1.2.0/24", 2 * HOUR), MODEL_KNOWN);
	cr_assert_eq(see_peer(s, "10.1.3.1", "10.1.3.0/24", 2 * HOUR), MODEL_DEVIATION);
	model_set_free(s);
}

Test(model, drops_while_learning_hold_promotion_back_and_say_so)
{
	struct model_limits lim = limits();
	struct model_set *s = model_set_new(&lim, NULL, NULL);
	struct seen seen = {0};

	see_path(s, MK_PROGRAM, "/usr/bin/date", 0);
	model_set_tick(s, 10, 5);
	cr_assert_eq(model_set_tick(s, HOUR + 1, 0), 1);
	cr_assert_eq(model_state_of(s, SVC), MODEL_LEARNING);
	model_set_collect(s, true, collect, &seen);
	cr_assert_str_eq(seen.state, "learning");
	/* A clean window after that promotes it. */
	cr_assert_eq(model_set_tick(s, 2 * HOUR + 2, 0), 1);
	cr_assert_eq(model_state_of(s, SVC), MODEL_ACTIVE);
	model_set_free(s);
}

Test(model, relearn_forgets_and_sends_a_reset)
{
	struct model_limits lim = limits();
	struct model_set *s = model_set_new(&lim, NULL, NULL);
	struct seen seen = {0};

	see_path(s, MK_PROGRAM, "/usr/bin/date", 0);
	model_set_tick(s, HOUR, 0);
	model_set_collect(s, true, collect, &seen);
	cr_assert_not(seen.reset);
	cr_assert_eq(model_set_relearn(s, "exe:/nope", 2 * HOUR), -ENOENT);
	cr_assert_eq(model_set_relearn(s, SVC, 2 * HOUR), 0);
	cr_assert_eq(model_state_of(s, SVC), MODEL_LEARNING);
	memset(&seen, 0, sizeof(seen));
	model_set_collect(s, true, collect, &seen);
	cr_assert(seen.reset);
	cr_assert_str_eq(seen.state, "learning");
	/* Learning again: what was known is new (learned), not a deviation. */
	cr_assert_eq(see_path(s, MK_PROGRAM, "/bin/sh", 2 * HOUR + 1), MODEL_LEARNED);
	model_set_free(s);
}

Test(model, learning_deltas_say_when_the_window_ends)
{
	struct model_limits lim = limits();
	struct model_set *s = model_set_new(&lim, NULL, NULL);
	struct seen seen = {0};

	see_path(s, MK_PROGRAM, "/usr/bin/date", 5000);
	model_set_collect(s, true, collect, &seen);
	cr_assert_str_eq(seen.state, "learning");
	cr_assert_eq(seen.learn_until_ms, 5000 + HOUR);
	model_set_tick(s, 5000 + HOUR, 0);
	model_set_collect(s, true, collect, &seen);
	cr_assert_str_eq(seen.state, "active");
	cr_assert_eq(seen.learn_until_ms, 0, "an active model has no window left");
	model_set_free(s);
}

Test(model, an_accepted_deviation_becomes_part_of_the_model)
{
	struct model_limits lim = limits();
	struct model_set *s = model_set_new(&lim, NULL, NULL);
	struct model_obs sh = {.kind = MK_PROGRAM, .exe = EXE, .pattern = "/bin/sh"};
	struct model_obs logger = {.kind = MK_PROGRAM, .exe = EXE, .pattern = "/usr/bin/logger"};
	struct seen seen = {0};

	see_path(s, MK_PROGRAM, "/usr/bin/date", 0);
	model_set_tick(s, HOUR, 0);
	model_set_collect(s, true, collect, &seen);
	cr_assert_eq(see_path(s, MK_PROGRAM, "/bin/sh", 2 * HOUR), MODEL_DEVIATION);
	cr_assert_eq(model_knows(s, SVC, &sh), 0);
	/* The deviation reported, then accepted: known, and sent as an entry. */
	cr_assert_eq(model_set_accept(s, SVC, &sh, 2 * HOUR + 1), 0);
	cr_assert_eq(model_knows(s, SVC, &sh), 1);
	cr_assert_eq(see_path(s, MK_PROGRAM, "/bin/sh", 2 * HOUR + 2), MODEL_KNOWN);
	/* Never seen before: accepted all the same (an operator's word). */
	cr_assert_eq(model_set_accept(s, SVC, &logger, 2 * HOUR + 3), 0);
	cr_assert_eq(model_knows(s, SVC, &logger), 1);
	memset(&seen, 0, sizeof(seen));
	model_set_collect(s, false, collect, &seen);
	cr_assert(has(&seen, "program /bin/sh"));
	cr_assert(has(&seen, "program /usr/bin/logger"));
	cr_assert_not(seen.reset);
	/* Again (the console resends until acknowledged): no change, nothing to send. */
	cr_assert_eq(model_set_accept(s, SVC, &sh, 2 * HOUR + 4), 0);
	memset(&seen, 0, sizeof(seen));
	model_set_collect(s, false, collect, &seen);
	cr_assert_eq(seen.n, 0);
	cr_assert_eq(model_set_accept(s, "exe:/nope", &sh, 2 * HOUR), -ENOENT);
	model_set_free(s);
}

Test(model, bounds_turn_observations_away_and_count_them)
{
	struct model_limits lim = limits();
	struct model_stats st;
	char path[64];

	lim.max_entries = 5;
	lim.max_models = 1;
	struct model_set *s = model_set_new(&lim, NULL, NULL);
	for (int i = 0; i < 8; i++) {
		snprintf(path, sizeof(path), "/usr/bin/t%d", i);
		cr_assert_eq(see_path(s, MK_PROGRAM, path, 0), i < 5 ? MODEL_LEARNED : MODEL_FULL);
	}
	struct model_obs o = {.kind = MK_LISTEN, .exe = EXE, .pattern = "tcp:80"};
	cr_assert_eq(model_observe(s, "exe:/another", &o, 0), MODEL_FULL);
	model_set_stats(s, &st);
	cr_assert_eq(st.entries, 5);
	cr_assert_eq(st.full_entries, 3);
	cr_assert_eq(st.full_models, 1);
	model_set_free(s);
}

static void make_dir(char *dir, size_t len)
{
	snprintf(dir, len, "/tmp/vigil-model-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(const char *dir)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

Test(model, survives_a_restart_with_state_entries_and_reported_deviations)
{
	struct model_limits lim = limits();
	char dir[64], path[128];
	vigil_err err;
	FILE *f;

	make_dir(dir, sizeof(dir));
	struct model_set *s = model_set_new(&lim, dir, &err);
	cr_assert_not_null(s);
	see_path(s, MK_PROGRAM, "/usr/bin/date", 0);
	see_path(s, MK_WRITE, "/var/log/testd/app-11.log", 0);
	struct model_obs port = {.kind = MK_LISTEN, .exe = EXE, .pattern = "tcp:8080"};
	cr_assert_eq(model_observe(s, SVC, &port, 0), MODEL_LEARNED);
	model_set_tick(s, HOUR, 0);
	cr_assert_eq(see_path(s, MK_PROGRAM, "/bin/sh", HOUR + 1), MODEL_DEVIATION);
	cr_assert_eq(model_set_save(s, false, &err), 0, "%s", err.msg);
	model_set_free(s);

	/* A corrupt file next to it is set aside, not loaded and not fatal. */
	snprintf(path, sizeof(path), "%s/0000000000000bad.json", dir);
	cr_assert_not_null(f = fopen(path, "w"));
	fputs("{\"version\":1,\"service\":", f);
	fclose(f);

	s = model_set_new(&lim, dir, &err);
	cr_assert_eq(model_set_load(s, 2 * HOUR, &err), 0);
	cr_assert_eq(model_state_of(s, SVC), MODEL_ACTIVE);
	cr_assert_eq(see_path(s, MK_PROGRAM, "/usr/bin/date", 2 * HOUR), MODEL_KNOWN);
	cr_assert_eq(see_path(s, MK_WRITE, "/var/log/testd/app-12.log", 2 * HOUR), MODEL_KNOWN);
	cr_assert_eq(see_path(s, MK_PROGRAM, "/bin/sh", 2 * HOUR), MODEL_DEVIATION_SEEN);
	cr_assert_eq(model_observe(s, SVC, &port, 2 * HOUR), MODEL_KNOWN, "an entry with no fold");
	struct model_stats st;
	model_set_stats(s, &st);
	cr_assert_eq(st.load_errors, 1);
	snprintf(path, sizeof(path), "%s/0000000000000bad.json.bad", dir);
	struct stat sb;
	cr_assert_eq(stat(path, &sb), 0, "the corrupt file is kept aside as .bad");
	model_set_free(s);
	remove_dir(dir);
}

Test(model, counts_travel_only_when_asked_new_entries_always)
{
	struct model_limits lim = limits();
	struct model_set *s = model_set_new(&lim, NULL, NULL);
	struct seen seen = {0};

	see_path(s, MK_PROGRAM, "/usr/bin/date", 0);
	model_set_collect(s, false, collect, &seen);
	cr_assert(has(&seen, "program /usr/bin/date"), "a new entry leaves at once");
	memset(&seen, 0, sizeof(seen));
	cr_assert_eq(see_path(s, MK_PROGRAM, "/usr/bin/date", 5), MODEL_KNOWN);
	model_set_collect(s, false, collect, &seen);
	cr_assert_eq(seen.deltas, 0, "a count change alone waits");
	model_set_collect(s, true, collect, &seen);
	cr_assert(has(&seen, "program /usr/bin/date"), "and leaves with the counts");
	memset(&seen, 0, sizeof(seen));
	model_set_collect(s, true, collect, &seen);
	cr_assert_eq(seen.deltas, 0, "once");
	model_set_free(s);
}

Test(model, reads_are_learned_generalized_and_checked_like_writes)
{
	struct model_limits lim = limits();
	struct model_set *s = model_set_new(&lim, NULL, NULL);
	struct seen seen = {0};
	char path[128], expected[256];

	cr_assert_eq(see_path(s, MK_READ, "/etc/testd/testd.conf", 0), MODEL_LEARNED);
	cr_assert_eq(see_path(s, MK_READ, "/var/lib/testd/sess/sess_a1b2c3d4e5", 1), MODEL_LEARNED);
	/* Eight temporary files read back: one shape. */
	static const char *const words[] = {"qzkvtw", "bmxjrp", "lwfhzc", "tnqgvd",
					    "pkszxm", "hvdbrw", "jcnfqt", "xgwmlk"};
	for (size_t i = 0; i < 8; i++) {
		snprintf(path, sizeof(path), "/var/lib/testd/tmp/t-%s.json", words[i]);
		cr_assert_eq(see_path(s, MK_READ, path, 2 + i), MODEL_LEARNED);
	}
	model_set_collect(s, true, collect, &seen);
	cr_assert(has(&seen, "read /etc/testd/testd.conf"));
	cr_assert(has(&seen, "read /var/lib/testd/sess/sess_<rand>"));
	cr_assert(has(&seen, "read /var/lib/testd/tmp/t-*.json"));
	/* A read is not a write: the kinds are apart. */
	cr_assert_eq(see_path(s, MK_WRITE, "/etc/testd/testd.conf", 20), MODEL_LEARNED);
	model_set_tick(s, HOUR, 0);
	cr_assert_eq(see_path(s, MK_READ, "/var/lib/testd/sess/sess_f9e8d7c6b5", 2 * HOUR),
		     MODEL_KNOWN);
	cr_assert_eq(see_path(s, MK_READ, "/var/lib/testd/tmp/t-zzzzzz.json", 2 * HOUR),
		     MODEL_KNOWN);
	cr_assert_eq(see_path(s, MK_READ, "/home/alice/.aws/credentials", 2 * HOUR),
		     MODEL_DEVIATION);
	cr_assert_eq(see_path(s, MK_READ, "/home/alice/.aws/credentials", 2 * HOUR + 1),
		     MODEL_DEVIATION_SEEN);
	cr_assert_eq(see_path(s, MK_READ, "/var/lib/testd/tmp/upload.php", 2 * HOUR),
		     MODEL_DEVIATION);
	model_expected(s, SVC, EXE, MK_READ, expected, sizeof(expected));
	cr_assert(strstr(expected, "/etc/testd/testd.conf") != NULL, "%s", expected);
	struct model_obs creds = {
	    .kind = MK_READ, .exe = EXE, .pattern = "/home/alice/.aws/credentials"};
	cr_assert_eq(model_set_accept(s, SVC, &creds, 2 * HOUR + 2), 0);
	cr_assert_eq(see_path(s, MK_READ, "/home/alice/.aws/credentials", 2 * HOUR + 3),
		     MODEL_KNOWN);
	model_set_free(s);
}

/* A model file as a defender from before reads were modelled wrote it. */
static void write_v1_model(const char *dir, const char *state)
{
	char path[128];
	FILE *f;

	/* Named as the defender names it (a hash of the service): the save replaces it. */
	snprintf(path, sizeof(path), "%s/%016llx.json", dir, (unsigned long long)strmap_hash(SVC));
	cr_assert_not_null(f = fopen(path, "w"));
	fprintf(f,
		"{\"version\":1,\"service\":\"" SVC "\",\"state\":\"%s\","
		"\"learning_since_ms\":0,\"active_since_ms\":%llu,\"learn_drops\":0,"
		"\"note\":\"\",\"sections\":[{\"exe\":\"" EXE "\",\"entries\":["
		"{\"kind\":\"program\",\"pattern\":\"/usr/bin/date\",\"first_seen_ms\":1,"
		"\"last_seen_ms\":2,\"count\":3,\"deviation\":false},"
		"{\"kind\":\"write\",\"fold\":\"/var/lib/*\",\"pattern\":\"/var/lib/testd/*\","
		"\"first_seen_ms\":1,\"last_seen_ms\":2,\"count\":9,\"deviation\":false}]}]}",
		state, strcmp(state, "active") == 0 ? HOUR : 0ull);
	fclose(f);
}

static void read_file_text(const char *dir, char *out, size_t len)
{
	char cmd[256];
	FILE *p;
	size_t n;

	snprintf(cmd, sizeof(cmd), "cat %s/*.json", dir);
	cr_assert_not_null(p = popen(cmd, "r"));
	n = fread(out, 1, len - 1, p);
	out[n] = '\0';
	pclose(p);
}

Test(model, a_model_from_before_reads_keeps_working_and_learns_its_reads_apart)
{
	struct model_limits lim = limits();
	struct seen seen = {0};
	char dir[64], text[4096];
	vigil_err err;

	make_dir(dir, sizeof(dir));
	write_v1_model(dir, "active");
	struct model_set *s = model_set_new(&lim, dir, &err);
	cr_assert_eq(model_set_load(s, 10 * HOUR, &err), 0);
	cr_assert_eq(model_state_of(s, SVC), MODEL_ACTIVE);
	/* What it had still holds: an old "dir/ *" is everything below dir. */
	cr_assert_eq(see_path(s, MK_WRITE, "/var/lib/testd/a/b.db", 10 * HOUR), MODEL_KNOWN);
	cr_assert_eq(see_path(s, MK_PROGRAM, "/usr/bin/date", 10 * HOUR), MODEL_KNOWN);
	cr_assert_eq(see_path(s, MK_PROGRAM, "/bin/sh", 10 * HOUR), MODEL_DEVIATION);
	/* Its reads learn, for a window from the load, and the console is told. */
	cr_assert_eq(see_path(s, MK_READ, "/etc/testd/testd.conf", 10 * HOUR), MODEL_LEARNED);
	struct model_obs conf = {.kind = MK_READ, .exe = EXE, .pattern = "/etc/testd/other.conf"};
	cr_assert_eq(model_knows(s, SVC, &conf), 1, "nothing read is news while reads learn");
	model_set_collect(s, false, collect, &seen);
	cr_assert_str_eq(seen.state, "active");
	cr_assert(has(&seen, "read /etc/testd/testd.conf"));
	/* Saved as version 2 at once, with the read window. */
	cr_assert_eq(model_set_save(s, false, &err), 0);
	read_file_text(dir, text, sizeof(text));
	cr_assert(strstr(text, "\"version\":2") != NULL, "%s", text);
	cr_assert(strstr(text, "\"reads_learning_since_ms\":36000000") != NULL, "%s", text);
	cr_assert(strstr(text, "learning what it reads until") != NULL, "%s", text);
	model_set_free(s);

	/* A restart within the window: still learning its reads, from the same start. */
	s = model_set_new(&lim, dir, &err);
	cr_assert_eq(model_set_load(s, 10 * HOUR + 5, &err), 0);
	cr_assert_eq(see_path(s, MK_READ, "/etc/testd/more.conf", 10 * HOUR + 6), MODEL_LEARNED);
	cr_assert_eq(model_set_tick(s, 10 * HOUR + HOUR / 2, 0), 0);
	cr_assert_eq(model_set_tick(s, 11 * HOUR, 0), 1, "the reads' window ends");
	cr_assert_eq(see_path(s, MK_READ, "/etc/testd/testd.conf", 12 * HOUR), MODEL_KNOWN);
	cr_assert_eq(see_path(s, MK_READ, "/home/alice/notes.txt", 12 * HOUR), MODEL_DEVIATION);
	cr_assert_eq(model_knows(s, SVC, &conf), 0);
	memset(&seen, 0, sizeof(seen));
	model_set_collect(s, false, collect, &seen);
	cr_assert_str_eq(seen.state, "active");
	model_set_free(s);
	remove_dir(dir);
}

Test(model, a_learning_model_from_before_reads_learns_them_past_its_promotion)
{
	struct model_limits lim = limits();
	char dir[64];
	vigil_err err;

	make_dir(dir, sizeof(dir));
	write_v1_model(dir, "learning"); /* learning since 0: promoted at the first tick */
	struct model_set *s = model_set_new(&lim, dir, &err);
	cr_assert_eq(model_set_load(s, HOUR / 2, &err), 0);
	cr_assert_eq(model_set_tick(s, HOUR, 0), 1);
	cr_assert_eq(model_state_of(s, SVC), MODEL_ACTIVE);
	cr_assert_eq(see_path(s, MK_PROGRAM, "/bin/sh", HOUR), MODEL_DEVIATION);
	cr_assert_eq(see_path(s, MK_READ, "/etc/testd/testd.conf", HOUR), MODEL_LEARNED);
	/* Drops while its reads learn: they learn another window. */
	cr_assert_eq(model_set_tick(s, HOUR + 10, 3), 0);
	cr_assert_eq(model_set_tick(s, HOUR / 2 + HOUR, 0), 1);
	cr_assert_eq(see_path(s, MK_READ, "/etc/testd/b.conf", 2 * HOUR), MODEL_LEARNED);
	cr_assert_eq(model_set_tick(s, HOUR / 2 + 2 * HOUR, 0), 1);
	cr_assert_eq(see_path(s, MK_READ, "/etc/testd/c.conf", 3 * HOUR), MODEL_DEVIATION);
	model_set_free(s);
	remove_dir(dir);
}

Test(model, shapes_survive_a_restart)
{
	struct model_limits lim = limits();
	char dir[64], path[128];
	vigil_err err;
	static const char *const words[] = {"qzkvtw", "bmxjrp", "lwfhzc", "tnqgvd",
					    "pkszxm", "hvdbrw", "jcnfqt", "xgwmlk"};

	make_dir(dir, sizeof(dir));
	struct model_set *s = model_set_new(&lim, dir, &err);
	for (size_t i = 0; i < 8; i++) {
		snprintf(path, sizeof(path), "/srv/testd/cache/c-%s.tmp", words[i]);
		see_path(s, MK_READ, path, 10 + i);
	}
	model_set_tick(s, HOUR + 20, 0);
	cr_assert_eq(model_set_save(s, false, &err), 0);
	model_set_free(s);
	s = model_set_new(&lim, dir, &err);
	cr_assert_eq(model_set_load(s, 2 * HOUR, &err), 0);
	cr_assert_eq(see_path(s, MK_READ, "/srv/testd/cache/c-abcdef.tmp", 2 * HOUR), MODEL_KNOWN);
	cr_assert_eq(see_path(s, MK_READ, "/srv/testd/cache/evil.php", 2 * HOUR), MODEL_DEVIATION);
	model_set_free(s);
	remove_dir(dir);
}

Test(model, relearn_forgets_shapes_and_the_read_window)
{
	struct model_limits lim = limits();
	char dir[64], path[128];
	vigil_err err;
	static const char *const words[] = {"qzkvtw", "bmxjrp", "lwfhzc", "tnqgvd",
					    "pkszxm", "hvdbrw", "jcnfqt", "xgwmlk"};

	make_dir(dir, sizeof(dir));
	write_v1_model(dir, "active");
	struct model_set *s = model_set_new(&lim, dir, &err);
	cr_assert_eq(model_set_load(s, HOUR, &err), 0);
	for (size_t i = 0; i < 8; i++) {
		snprintf(path, sizeof(path), "/srv/testd/cache/c-%s.tmp", words[i]);
		cr_assert_eq(see_path(s, MK_READ, path, HOUR + i), MODEL_LEARNED);
	}
	cr_assert_eq(model_set_relearn(s, SVC, 2 * HOUR), 0);
	cr_assert_eq(see_path(s, MK_READ, "/srv/testd/cache/c-abcdef.tmp", 2 * HOUR),
		     MODEL_LEARNED);
	cr_assert_eq(model_set_tick(s, 3 * HOUR, 0), 1);
	cr_assert_eq(see_path(s, MK_READ, "/srv/testd/cache/c-zyxwvu.tmp", 3 * HOUR),
		     MODEL_DEVIATION, "one name learned: no shape, and no read window left");
	model_set_free(s);
	remove_dir(dir);
}
