/* SPDX-License-Identifier: Apache-2.0 */
#include "eventstream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "event.h"
#include "event_json.h"
#include "jsonw.h"
#include "log.h"

struct stream {
	const struct eventstream_opts *opts;
	int64_t clock_offset;
	uint64_t written;
	uint64_t malformed;
	bool write_failed;
	char line[EV_RECORD_MAX * 3];
};

int eventstream_parse_types(const char *list, uint32_t *ret_mask)
{
	char buf[128];
	uint32_t mask = 0;

	if (strlen(list) >= sizeof(buf))
		return -1;
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
			return -1;
	}
	*ret_mask = mask;
	return mask ? 0 : -1;
}

static bool wanted(const struct stream *s, const struct ev_hdr *h)
{
	const struct eventstream_opts *o = s->opts;

	if (o->type_mask && !(o->type_mask & (1u << h->type)))
		return false;
	if (o->pid && h->pid != o->pid &&
	    !(o->descendants && h->type == EV_FORK && h->pid == o->pid))
		return false;
	if (o->comm && strncmp(h->comm, o->comm, EV_COMM_LEN) != 0)
		return false;
	return true;
}

static int on_record(const struct ev_hdr *rec, size_t len, void *ctx)
{
	struct stream *s = ctx;
	struct event ev;
	struct jsonw w;

	if (event_decode(rec, len, &ev) < 0) {
		s->malformed++;
		return 0;
	}
	if (!wanted(s, rec))
		return 0;
	jw_init(&w, s->line, sizeof(s->line) - 1);
	event_json_write(&w, &ev, NULL, s->clock_offset);
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
	printf("},\"malformed\":%llu,\"written\":%llu,\"ringbuf_bytes\":%zu}\n",
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

int eventstream_run(const struct eventstream_opts *opts, volatile sig_atomic_t *stop)
{
	static char outbuf[1 << 20];
	struct stream *s = calloc(1, sizeof(*s));
	struct capture *cap;
	vigil_err err = {0};
	uint64_t next_stats;
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
	printf("{\"type\":\"ready\",\"pid\":%d,\"ringbuf_bytes\":%zu,\"programs\":\"%s\"}\n",
	       (int)getpid(), capture_ringbuf_bytes(cap), capture_describe(cap));
	fflush(stdout);
	next_stats = opts->stats_interval_ms > 0 ? mono_ms() + (uint64_t)opts->stats_interval_ms : 0;
	while (!*stop) {
		int n = capture_poll(cap, 100, on_record, s);

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
		if (next_stats && mono_ms() >= next_stats) {
			print_stats(cap, s);
			next_stats = mono_ms() + (uint64_t)opts->stats_interval_ms;
		}
	}
	/* Drain what is already in the ring so the final counts match the lines. */
	for (int i = 0; rc == 0 && i < 16 && capture_poll(cap, 0, on_record, s) > 0; i++)
		;
	print_stats(cap, s);
	capture_stop(cap);
	free(s);
	return rc;
}
