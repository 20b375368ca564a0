/* SPDX-License-Identifier: Apache-2.0 */
/*
 * learn_bench: what learning costs the defender's capture thread, and what
 * models at their bounds cost in memory.
 *
 * Time: the same stream of file-write events (a service writing numbered
 * logs, random state files and a growing set of names) goes through the
 * work the capture thread does for every event anyway (writing its JSON
 * line), then through that plus learner_event.  It prints ns per event for
 * both and the ratio.  Then the same for a stream of first reads as the
 * kernel reports them when a process starts and works (libraries, locale
 * and the loader's files, which the read model leaves out, and the
 * service's own configuration, state and temporary files, which it learns
 * and checks), with the model learning and then active.
 *
 * Memory: models are filled to the default bounds (every entry distinct, the
 * worst case) and the resident memory growth is printed against the
 * defender's 32 MiB budget.
 *
 *   learn_bench [EVENTS]     (default 2,000,000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event/event.h"
#include "event/event_json.h"
#include "event/json_writer.h"
#include "learn/learn.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_kib(void)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld", &v) == 1)
			break;
	if (f != NULL)
		fclose(f);
	return v;
}

/* A file-open record for path with flags into buf; returns its length. */
static size_t make_open(char *buf, size_t cap, const char *path, uint32_t flags)
{
	struct ev_file *e = (struct ev_file *)buf;
	size_t n = strlen(path) + 1;

	memset(buf, 0, sizeof(*e));
	e->hdr.type = EV_FILE;
	e->hdr.pid = 4242;
	e->hdr.ppid = 1;
	memcpy(e->hdr.comm, "benchd", 7);
	e->op = FOP_OPEN;
	e->open_flags = flags;
	e->mode = 0644;
	e->result = 3;
	if (sizeof(*e) + n > cap)
		abort();
	memcpy(buf + sizeof(*e), path, n);
	e->path_len = (__u16)n;
	e->hdr.size = (__u16)(sizeof(*e) + n);
	return sizeof(*e) + n;
}

/* A file-write record (O_WRONLY|O_CREAT|O_TRUNC). */
static size_t make_write(char *buf, size_t cap, const char *path)
{
	return make_open(buf, cap, path, 01101);
}

static void no_deviation(const Vigil__Deviation *d, void *ctx)
{
	(void)d;
	(*(unsigned long *)ctx)++;
}

static void no_delta(const Vigil__ModelDelta *d, void *ctx)
{
	(void)d;
	(void)ctx;
}

int main(int argc, char **argv)
{
	long events = argc > 1 ? atol(argv[1]) : 2000000;
	static char recs[64][512], line[EV_RECORD_MAX * 3];
	size_t lens[64];
	struct event evs[64];
	unsigned long deviations = 0;
	struct learn_sink sink = {no_deviation, no_delta, &deviations};
	struct model_limits lim = MODEL_LIMITS_DEFAULT;
	struct classification cls = {.cls = CLASS_SERVICE, .leader_pid = 1000};
	struct event_enrich en = {.cls = "service",
				  .service = cls.service,
				  .user = "www-data",
				  .exe = "/usr/sbin/benchd",
				  .nancestry = 1};
	vigil_err err;
	double t0, base, with;
	volatile size_t sink_len = 0;

	snprintf(cls.service, sizeof(cls.service), "exe:/usr/sbin/benchd");
	en.ancestry[0].pid = 1000;
	en.ancestry[0].comm = "benchd";
	en.ancestry[0].exe = "/usr/sbin/benchd";
	/* A day of a service: numbered logs, random state names, a few fixed files. */
	for (int i = 0; i < 64; i++) {
		char path[256];

		if (i % 4 == 0)
			snprintf(path, sizeof(path), "/var/log/benchd/access-%d.log", 20261100 + i);
		else if (i % 4 == 1)
			snprintf(path, sizeof(path), "/var/lib/benchd/sess/s%dx%dq%d", i * 7,
				 i * 13, i);
		else if (i % 4 == 2)
			snprintf(path, sizeof(path), "/var/lib/benchd/cache/item-%c%c.bin",
				 'a' + i % 26, 'a' + (i / 3) % 26);
		else
			snprintf(path, sizeof(path), "/run/benchd/benchd.pid");
		lens[i] = make_write(recs[i], sizeof(recs[i]), path);
		if (event_decode(recs[i], lens[i], &evs[i]) < 0)
			abort();
	}

	/* Baseline: the JSON line every event gets. */
	t0 = now_s();
	for (long i = 0; i < events; i++) {
		struct json_writer w;

		json_writer_init(&w, line, sizeof(line));
		event_json_write(&w, &evs[i & 63], &en, 0);
		sink_len += w.len;
	}
	base = now_s() - t0;

	struct learner *l = learner_new(&lim, NULL, &sink, &err);
	if (l == NULL) {
		fprintf(stderr, "learn_bench: %s\n", err.msg);
		return 1;
	}
	t0 = now_s();
	for (long i = 0; i < events; i++) {
		struct json_writer w;
		struct learn_activity act;

		json_writer_init(&w, line, sizeof(line));
		event_json_write(&w, &evs[i & 63], &en, 0);
		sink_len += w.len;
		learner_event(l, &evs[i & 63], &en, &cls, 1000 + (uint64_t)i / 1000, &act);
	}
	with = now_s() - t0;
	learner_free(l);

	printf("learn_bench: %ld file-write events of one service\n", events);
	printf("  json line only        %7.0f ns/event\n", base * 1e9 / (double)events);
	printf("  json line + learning  %7.0f ns/event\n", with * 1e9 / (double)events);
	printf("  ratio                 %7.2f  (learning adds %.0f ns/event)\n", with / base,
	       (with - base) * 1e9 / (double)events);

	/*
	 * Reads: a process's first reads of each file, as the kernel reports
	 * them.  Of 64, 40 are what every process reads (left out after a
	 * prefix test) and 24 the service's own files, whose names change.
	 */
	static const char *const common[] = {
	    "/etc/ld.so.cache",
	    "/usr/lib/x86_64-linux-gnu/libc.so.6",
	    "/usr/lib/x86_64-linux-gnu/libssl.so.3",
	    "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
	    "/usr/lib/x86_64-linux-gnu/libz.so.1",
	    "/usr/lib/locale/locale-archive",
	    "/etc/localtime",
	    "/etc/nsswitch.conf",
	    "/proc/4242/maps",
	    "/sys/devices/system/cpu/online",
	};
	for (int i = 0; i < 64; i++) {
		char path[256];

		if (i % 8 < 5)
			snprintf(path, sizeof(path), "%s", common[(i / 8 * 5 + i % 8) % 10]);
		else if (i % 8 == 5)
			snprintf(path, sizeof(path), "/etc/benchd/conf.d/part-%c.conf",
				 'a' + (i / 8) % 4);
		else if (i % 8 == 6)
			snprintf(path, sizeof(path), "/var/lib/benchd/sess/s%dx%dq%d", i * 7,
				 i * 13, i);
		else
			snprintf(path, sizeof(path), "/var/lib/benchd/cache/c-%c%c%c%c.tmp",
				 'a' + i % 26, 'a' + (i * 7) % 26, 'a' + (i * 3) % 26,
				 'a' + (i / 5) % 26);
		lens[i] = make_open(recs[i], sizeof(recs[i]), path, 02000000 /* O_CLOEXEC */);
		if (event_decode(recs[i], lens[i], &evs[i]) < 0)
			abort();
	}
	double rbase, rlearn, ractive;
	struct learn_stats rst;
	t0 = now_s();
	for (long i = 0; i < events; i++) {
		struct json_writer w;

		json_writer_init(&w, line, sizeof(line));
		event_json_write(&w, &evs[i & 63], &en, 0);
		sink_len += w.len;
	}
	rbase = now_s() - t0;
	lim.learn_window_ms = 1000;
	l = learner_new(&lim, NULL, &sink, &err);
	if (l == NULL) {
		fprintf(stderr, "learn_bench: %s\n", err.msg);
		return 1;
	}
	/* Learning: the first half; then the model is active and checks the second. */
	t0 = now_s();
	for (long i = 0; i < events / 2; i++) {
		struct json_writer w;
		struct learn_activity act;

		json_writer_init(&w, line, sizeof(line));
		event_json_write(&w, &evs[i & 63], &en, 0);
		sink_len += w.len;
		learner_event(l, &evs[i & 63], &en, &cls, 1000, &act);
	}
	rlearn = now_s() - t0;
	learner_tick(l, 5000, 0);
	t0 = now_s();
	for (long i = events / 2; i < events; i++) {
		struct json_writer w;
		struct learn_activity act;

		json_writer_init(&w, line, sizeof(line));
		event_json_write(&w, &evs[i & 63], &en, 0);
		sink_len += w.len;
		learner_event(l, &evs[i & 63], &en, &cls, 6000, &act);
	}
	ractive = now_s() - t0;
	/* The two halves of the mix apart, checked by the active model: JSON line, then with it. */
	double part[2][2];
	for (int which = 0; which < 2; which++) {
		for (int with_learn = 0; with_learn < 2; with_learn++) {
			t0 = now_s();
			for (long i = 0, k = 0; k < events / 2; i++) {
				struct json_writer w;
				struct learn_activity act;

				if (((i & 7) < 5) != (which == 0))
					continue;
				k++;
				json_writer_init(&w, line, sizeof(line));
				event_json_write(&w, &evs[i & 63], &en, 0);
				sink_len += w.len;
				if (with_learn)
					learner_event(l, &evs[i & 63], &en, &cls, 6000, &act);
			}
			part[which][with_learn] = now_s() - t0;
		}
	}
	learner_tick(l, 7000, 0);
	learner_stats(l, &rst);
	learner_free(l);
	lim = (struct model_limits)MODEL_LIMITS_DEFAULT;
	double half = (double)(events / 2);
	printf("learn_bench: %ld first reads of one service (%llu left out as common, "
	       "%llu model entries, %llu deviations)\n",
	       events, (unsigned long long)rst.reads_common, (unsigned long long)rst.models.entries,
	       (unsigned long long)rst.models.deviations);
	printf("  json line only              %7.0f ns/event\n", rbase * 1e9 / (double)events);
	printf("  json line + learning reads  %7.0f ns/event\n", rlearn * 1e9 / half);
	printf("  json line + checking reads  %7.0f ns/event\n", ractive * 1e9 / half);
	printf("  ratio (learning / active)   %7.2f / %.2f  (reads add %.0f / %.0f ns/event)\n",
	       rlearn / half / (rbase / (double)events), ractive / half / (rbase / (double)events),
	       (rlearn / half - rbase / (double)events) * 1e9,
	       (ractive / half - rbase / (double)events) * 1e9);
	printf("  of which a common read (left out)        %5.0f ns/event\n",
	       (part[0][1] - part[0][0]) * 1e9 / half);
	printf("  of which a read of its own files (known) %5.0f ns/event\n",
	       (part[1][1] - part[1][0]) * 1e9 / half);

	/* Memory: every model at its bounds, each entry distinct (the worst case). */
	long before = rss_kib();
	l = learner_new(&lim, NULL, &sink, &err);
	size_t filled = 0;
	for (size_t m = 0; m < lim.max_models && filled < lim.max_entries; m++) {
		char svc[64];

		snprintf(cls.service, sizeof(cls.service), "unit:bench-%zu.service", m);
		(void)svc;
		for (size_t e = 0; e < lim.max_section_entries && filled < lim.max_entries; e++) {
			char path[256], rec[512];
			struct event ev;
			struct learn_activity act;

			/* Words, not numbers: nothing generalizes, and /etc never folds. */
			snprintf(
			    path, sizeof(path), "/etc/bench/conf-%c%c%c-%c%c.d/file-%c%c%c.conf",
			    'a' + (int)(m % 26), 'a' + (int)(m / 26 % 26), 'a' + (int)(m / 676),
			    'a' + (int)(e % 26), 'a' + (int)(e / 26 % 26), 'a' + (int)(e % 7),
			    'a' + (int)(e % 11), 'a' + (int)(e % 13));
			size_t len = make_write(rec, sizeof(rec), path);
			if (event_decode(rec, len, &ev) < 0)
				abort();
			learner_event(l, &ev, &en, &cls, 1000, &act);
			filled++;
		}
	}
	struct learn_stats st;
	learner_tick(l, 1000, 0); /* publishes the counters */
	learner_stats(l, &st);
	long after = rss_kib();
	printf("learn_bench: models at their bounds: %llu models, %llu entries (bound %zu), "
	       "%llu turned away\n",
	       (unsigned long long)st.models.models, (unsigned long long)st.models.entries,
	       lim.max_entries,
	       (unsigned long long)(st.models.full_entries + st.models.full_models));
	printf("  resident memory growth %.1f MiB, %.0f bytes per entry (the defender's whole "
	       "budget: 32 MiB)\n",
	       (double)(after - before) / 1024.0,
	       (double)(after - before) * 1024.0 /
		   (double)(st.models.entries ? st.models.entries : 1));
	learner_free(l);
	return sink_len == 0;
}
