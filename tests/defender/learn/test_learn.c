/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The learner between events and models, for reads: what a service reads is
 * learned (but what every process reads), and once its model is active a
 * read outside it is one new_read deviation, as loud as where it lands.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/event.h"
#include "learn/learn.h"

#define EXE "/usr/sbin/testd"

struct got {
	char kind[32], object[512], severity[16], expected[1024];
	size_t n;
};

static void on_deviation(const Vigil__Deviation *d, void *ctx)
{
	struct got *g = ctx;

	g->n++;
	snprintf(g->kind, sizeof(g->kind), "%s", d->kind);
	snprintf(g->object, sizeof(g->object), "%s", d->object);
	snprintf(g->severity, sizeof(g->severity), "%s", d->severity);
	snprintf(g->expected, sizeof(g->expected), "%s", d->expected);
}

static void on_delta(const Vigil__ModelDelta *d, void *ctx)
{
	(void)d;
	(void)ctx;
}

static struct got got;
static struct learner *l;
static struct classification cls = {.cls = CLASS_SERVICE, .leader_pid = 1000};
static struct event_enrich en = {.cls = "service", .user = "testd", .exe = EXE, .nancestry = 1};

static void setup(void)
{
	struct model_limits lim = MODEL_LIMITS_DEFAULT;
	struct learn_sink sink = {on_deviation, on_delta, &got};
	vigil_err err;

	memset(&got, 0, sizeof(got));
	lim.learn_window_ms = 1000;
	snprintf(cls.service, sizeof(cls.service), "exe:" EXE);
	en.service = cls.service;
	en.ancestry[0].pid = 1000;
	en.ancestry[0].comm = "testd";
	en.ancestry[0].exe = EXE;
	cr_assert_not_null(l = learner_new(&lim, NULL, &sink, &err));
}

static void teardown(void)
{
	learner_free(l);
}

TestSuite(learn, .init = setup, .fini = teardown);

/* One successful open of path by pid 1000 with flags, through learner_event. */
static void open_file(const char *path, uint32_t flags, uint64_t now_ms)
{
	static char rec[EV_RECORD_MAX];
	struct ev_file *e = (struct ev_file *)rec;
	size_t n = strlen(path) + 1;
	struct learn_activity act;
	struct event ev;

	memset(rec, 0, sizeof(*e));
	e->hdr.type = EV_FILE;
	e->hdr.pid = e->hdr.tid = 1000;
	e->hdr.ppid = 1;
	memcpy(e->hdr.comm, "testd", 6);
	e->op = FOP_OPEN;
	e->open_flags = flags;
	e->result = 3;
	memcpy(rec + sizeof(*e), path, n);
	e->path_len = (__u16)n;
	e->hdr.size = (__u16)(sizeof(*e) + n);
	cr_assert_geq(event_decode(rec, e->hdr.size, &ev), 0);
	cr_assert_not(learner_event(l, &ev, &en, &cls, now_ms, &act));
}

static void promote(void)
{
	learner_tick(l, 5000, 0);
}

Test(learn, reads_outside_the_model_are_new_reads_as_loud_as_where_they_land)
{
	struct learn_stats st;

	open_file("/etc/testd/testd.conf", O_RDONLY, 100);
	open_file("/srv/testd/state/sess_a1b2c3d4e5", O_RDONLY, 100);
	promote();
	open_file("/etc/testd/testd.conf", O_RDONLY, 6000);
	open_file("/srv/testd/state/sess_f0e9d8c7b6", O_RDONLY, 6000);
	cr_assert_eq(got.n, 0, "the routine, with new names: nothing");
	static const struct {
		const char *path, *severity;
	} cases[] = {
	    {"/home/alice/notes.txt", "high"},	    {"/root/.bash_history", "high"},
	    {"/var/lib/othersvc/state.db", "high"}, {"/srv/app/.aws/credentials", "high"},
	    {"/opt/app/config/server.key", "high"}, {"/proc/1/environ", "high"},
	    {"/etc/othersvc.conf", "medium"},	    {"/srv/testd/www/index.html", "low"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t before = got.n;

		open_file(cases[i].path, O_RDONLY, 7000);
		cr_assert_eq(got.n, before + 1, "%s", cases[i].path);
		cr_expect_str_eq(got.kind, "new_read");
		cr_expect_str_eq(got.severity, cases[i].severity, "%s", cases[i].path);
		cr_expect(strstr(got.expected, "/etc/testd/testd.conf") != NULL, "%s",
			  got.expected);
		/* Once: a repeat is counted, not reported. */
		open_file(cases[i].path, O_RDONLY, 7001);
		cr_assert_eq(got.n, before + 1);
	}
	learner_tick(l, 8000, 0);
	learner_stats(l, &st);
	cr_expect_eq(st.models.deviations, sizeof(cases) / sizeof(cases[0]));
}

Test(learn, what_every_process_reads_is_left_out_and_counted)
{
	struct learn_stats st;

	promote(); /* no model yet: nothing is learned or reported by this */
	open_file("/etc/testd/testd.conf", O_RDONLY, 100);
	learner_tick(l, 7000, 0);
	size_t base = got.n;
	open_file("/usr/lib/x86_64-linux-gnu/libc.so.6", O_RDONLY | O_CLOEXEC, 8000);
	open_file("/etc/ld.so.cache", O_RDONLY | O_CLOEXEC, 8000);
	open_file("/usr/lib/locale/locale-archive", O_RDONLY, 8000);
	open_file("/proc/1000/maps", O_RDONLY, 8000);
	open_file("/sys/devices/system/cpu/online", O_RDONLY, 8000);
	open_file("/home/alice/secret", O_PATH, 8000); /* an O_PATH open reads nothing */
	cr_assert_eq(got.n, base);
	learner_tick(l, 9000, 0);
	learner_stats(l, &st);
	cr_expect_eq(st.reads_common, 6);
	/* Another process's /proc is not the reader's own. */
	open_file("/proc/4242/environ", O_RDONLY, 9500);
	cr_assert_eq(got.n, base + 1);
}

Test(learn, a_sensitive_read_is_its_own_kind_and_no_new_read)
{
	open_file("/etc/testd/testd.conf", O_RDONLY, 100);
	promote();
	open_file("/etc/shadow", O_RDONLY, 6000);
	cr_assert_eq(got.n, 1);
	cr_expect_str_eq(got.kind, "sensitive_read");
	cr_expect_str_eq(got.severity, "high");
}

Test(learn, a_write_open_is_a_write_not_a_read)
{
	open_file("/srv/testd/out.log", O_WRONLY | O_CREAT | O_APPEND, 100);
	promote();
	open_file("/srv/testd/out.log", O_WRONLY | O_APPEND, 6000);
	open_file("/srv/testd/out.log", O_RDONLY, 6000);
	cr_assert_eq(got.n, 1, "reading what it writes is a read of its own");
	cr_expect_str_eq(got.kind, "new_read");
	cr_expect_str_eq(got.object, "/srv/testd/out.log");
}
