/* SPDX-License-Identifier: Apache-2.0 */
#include "output/standalone.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "enforce/enforcer.h"
#include "process/enrich.h"
#include "rules/rulebook.h"
#include "event/event.h"
#include "event/event_json.h"
#include "event/json_writer.h"
#include "log.h"

struct stream {
	const struct standalone_opts *opts;
	struct enrich_scratch scratch;
	struct proctree *pt;
	uint64_t last_ts;
	int64_t clock_offset;
	uint64_t written;
	uint64_t malformed;
	bool write_failed;
	char line[EV_RECORD_MAX * 3];
};

int standalone_parse_types(const char *list, uint32_t *ret_mask)
{
	char buf[128];
	uint32_t mask = 0;

	if (strlen(list) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, list);
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int found = 0;

		for (int i = 1; i < EV_TYPE_MAX; i++) {
			if (strcmp(t, capture_type_name(i)) == 0) {
				mask |= 1u << i;
				found = 1;
			}
		}
		if (!found)
			return -EINVAL;
	}
	if (mask == 0)
		return -EINVAL;
	*ret_mask = mask;
	return 0;
}

static bool wanted(const struct stream *s, const struct ev_hdr *h)
{
	const struct standalone_opts *o = s->opts;

	if (o->type_mask && !(o->type_mask & (1u << h->type)))
		return false;
	if (o->pid && h->pid != o->pid &&
	    !(o->descendants && enrich_descends_from(s->pt, h->pid, o->pid)))
		return false;
	if (o->comm && strncmp(h->comm, o->comm, EV_COMM_LEN) != 0)
		return false;
	return true;
}

static int on_record(const struct ev_hdr *rec, size_t len, void *ctx)
{
	struct stream *s = ctx;
	struct event ev;
	struct json_writer w;

	struct event_enrich en;
	if (event_decode(rec, len, &ev) < 0) {
		s->malformed++;
		return 0;
	}
	s->last_ts = rec->ts_ns;
	enrich_begin(s->pt, &ev);
	if (!wanted(s, rec)) {
		enrich_end(s->pt, &ev);
		return 0;
	}
	enrich_describe(s->pt, &ev, &en, &s->scratch);
	json_writer_init(&w, s->line, sizeof(s->line) - 1);
	event_json_write(&w, &ev, &en, s->clock_offset);
	/* The line is written: the tree may now forget an exited process. */
	enrich_end(s->pt, &ev);
	if (w.overflow) {
		/* Cannot happen with the record bounds; say so rather than print half a line. */
		s->malformed++;
		return 0;
	}
	s->line[w.len] = '\n';
	if (fwrite(s->line, 1, w.len + 1, stdout) != w.len + 1) {
		s->write_failed = true;
		return -EIO;
	}
	s->written++;
	return 0;
}

static void print_stats(struct capture *cap, struct stream *s)
{
	struct capture_counters c;

	capture_read_counters(cap, &c);
	printf("{\"type\":\"stats\",\"events\":{");
	for (int i = 1; i < EV_TYPE_MAX; i++)
		printf("%s\"%s\":%llu", i > 1 ? "," : "", capture_type_name(i),
		       (unsigned long long)c.delivered[i]);
	printf("},\"drops\":{");
	for (int i = 0; i < DROP_REASON_MAX; i++)
		printf("%s\"%s\":%llu", i ? "," : "", capture_drop_name(i),
		       (unsigned long long)c.drops[i]);
	printf("},\"filtered\":{");
	for (int i = 0; i < FILTER_REASON_MAX; i++)
		printf("%s\"%s\":%llu", i ? "," : "", capture_filter_name(i),
		       (unsigned long long)c.filtered[i]);
	struct proctree_stats ps;
	proctree_stats(s->pt, &ps);
	printf("},\"proctree\":{\"entries\":%llu,\"live\":%llu,\"max\":%llu,\"seeded\":%llu,"
	       "\"lazy_loads\":%llu,\"table_full_drops\":%llu,\"evicted_exited\":%llu,"
	       "\"evicted_live\":%llu,\"bytes\":%llu}",
	       (unsigned long long)ps.entries, (unsigned long long)ps.live,
	       (unsigned long long)ps.max, (unsigned long long)ps.seeded,
	       (unsigned long long)ps.lazy_loads, (unsigned long long)ps.table_full_drops,
	       (unsigned long long)ps.evicted_exited, (unsigned long long)ps.evicted_live,
	       (unsigned long long)ps.bytes);
	printf(",\"malformed\":%llu,\"written\":%llu,\"ringbuf_bytes\":%zu}\n",
	       (unsigned long long)(s->malformed + c.user_malformed),
	       (unsigned long long)s->written, capture_ringbuf_bytes(cap));
	fflush(stdout);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The rules file in force, or NULL when there is none; logs why it could not be. */
static struct enforcer *enforce_file(const char *path, struct capture *cap, int *ret_rc)
{
	struct enforcer_opts eo = {.cap = cap, .fanotify = true};
	char why[RULEBOOK_WHY_MAX];
	struct ruleset *rs = NULL;
	struct enforcer *e;
	vigil_err err = {0};

	*ret_rc = 0;
	if (path == NULL)
		return NULL;
	if (rulebook_read_file(path, &rs, why, sizeof(why)) < 0) {
		log_error("rules: %s: %s", path, why);
		*ret_rc = 1;
		return NULL;
	}
	if ((e = enforcer_start(&eo, &err)) == NULL) {
		log_error("enforcement: %s", err.msg);
		*ret_rc = 1;
	} else {
		enforcer_apply(e, rs);
	}
	ruleset_put(rs);
	return e;
}

/* Each decision the enforcer made, as a JSON line. */
static void print_enforcement(struct enforcer *e)
{
	struct enforce_audit a[16];
	size_t n;

	while (e != NULL && (n = enforcer_take_audits(e, a, 16)) > 0)
		for (size_t i = 0; i < n; i++) {
			json_t *o = json_pack(
			    "{s:s,s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "type", "enforcement",
			    "pid", (json_int_t)a[i].pid, "kind", a[i].kind, "rule", a[i].rule,
			    "effect", rule_effect_name(a[i].effect), "wanted",
			    a[i].wanted > a[i].effect ? rule_effect_name(a[i].wanted) : "",
			    "service", a[i].service, "exe", a[i].exe, "object", a[i].object, "why",
			    a[i].why);
			char *line =
			    o != NULL ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;

			if (line != NULL)
				printf("%s\n", line);
			free(line);
			json_decref(o);
		}
}

int standalone_run(const struct standalone_opts *opts, volatile sig_atomic_t *stop)
{
	struct enforcer *enf = NULL;
	static char outbuf[1 << 20];
	struct stream *s = calloc(1, sizeof(*s));
	struct capture *cap;
	vigil_err err = {0};
	uint64_t next_stats, next_housekeeping = 0;
	int rc = 0;

	if (s == NULL) {
		log_error("out of memory");
		return 1;
	}
	s->opts = opts;
	s->clock_offset = event_json_clock_offset();
	setvbuf(stdout, outbuf, _IOFBF, sizeof(outbuf));
	cap = capture_start(&opts->capture, &err);
	if (cap == NULL) {
		log_error("capture: %s", err.msg);
		free(s);
		return 1;
	}
	/* Attach first, then seed: what starts meanwhile is in the ring, not lost. */
	s->pt = proctree_new(NULL);
	if (s->pt == NULL || proctree_seed(s->pt, &err) < 0) {
		log_error("process tree: %s", s->pt ? err.msg : "out of memory");
		proctree_free(s->pt);
		capture_stop(cap);
		free(s);
		return 1;
	}
	enf = enforce_file(opts->rules_file, cap, &rc);
	if (rc != 0) {
		proctree_free(s->pt);
		capture_stop(cap);
		free(s);
		return 1;
	}
	printf("{\"type\":\"ready\",\"pid\":%d,\"ringbuf_bytes\":%zu,\"programs\":\"%s\"}\n",
	       (int)getpid(), capture_ringbuf_bytes(cap), capture_describe(cap));
	fflush(stdout);
	next_stats =
	    opts->stats_interval_ms > 0 ? mono_ms() + (uint64_t)opts->stats_interval_ms : 0;
	while (!*stop) {
		int n = capture_poll(cap, 100, on_record, s);

		print_enforcement(enf);

		if (n < 0 && n != -EINTR) {
			if (s->write_failed) {
				log_error("cannot write events to stdout: %s", strerror(errno));
			} else {
				log_error("ring buffer poll failed: %s", strerror(-n));
			}
			rc = 1;
			break;
		}
		if (fflush(stdout) != 0) {
			log_error("cannot write events to stdout: %s", strerror(errno));
			rc = 1;
			break;
		}
		if (mono_ms() >= next_housekeeping) {
			struct timespec bt;
			clock_gettime(CLOCK_BOOTTIME, &bt);
			proctree_expire(s->pt, s->last_ts);
			proctree_sweep(
			    s->pt, (uint64_t)bt.tv_sec * 1000000000ull + (uint64_t)bt.tv_nsec, 200);
			next_housekeeping = mono_ms() + 1000;
		}
		if (next_stats && mono_ms() >= next_stats) {
			print_stats(cap, s);
			next_stats = mono_ms() + (uint64_t)opts->stats_interval_ms;
		}
	}
	/* Drain what is already in the ring so the final counts match the lines. */
	for (int i = 0; rc == 0 && i < 16 && capture_poll(cap, 0, on_record, s) > 0; i++)
		;
	print_enforcement(enf);
	print_stats(cap, s);
	enforcer_stop(enf);
	capture_stop(cap);
	proctree_free(s->pt);
	free(s);
	return rc;
}
