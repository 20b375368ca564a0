/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A ring record (bpf/events.h) through event_decode, and what decoded through
 * event_json_write into a line buffer as large as the daemon's
 * (EV_RECORD_MAX * 3).  The input is the record; its hdr.size is set to the
 * input's length first (a record whose size disagrees is refused at once,
 * and the fuzzer's time is better spent behind that check).
 *
 * The description: none, a small one written in place, or the same one
 * rendered beforehand (event_json_enrich_render), chosen by the length.
 * The clock offset is this machine's, as the daemon computes it.
 *
 * Properties: every decoded string lies inside the record and ends in its
 * NUL; the line stays inside its buffer; a line that did not overflow is one
 * JSON object that jansson reads, with no key twice (the console refuses
 * such an event).  \u0000 is allowed here (argv and paths are length-counted),
 * and so are integers past INT64_MAX (u64 fields; jansson reads them as reals).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "event/event.h"
#include "event/event_json.h"
#include "event/json_writer.h"
#include "fuzz_util.h"

#define LINE_BYTES (EV_RECORD_MAX * 3) /* deliver/delivery.c, output/standalone.c */

static int64_t clock_offset;
static char *line;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	clock_offset = event_json_clock_offset();
	line = malloc(LINE_BYTES);
	return line != NULL ? 0 : -1;
}

/* Whether a time in the record plus the clock offset passes INT64_MAX (known finding). */
static bool time_overflows(const char *rec, size_t size)
{
	const struct ev_hdr *h = (const struct ev_hdr *)rec;
	uint64_t t = h->ts_ns, lim = (uint64_t)INT64_MAX - (uint64_t)clock_offset;

	if (h->type == EV_EXEC && size >= sizeof(struct ev_exec))
		t = ((const struct ev_exec *)rec)->start_ns > t
			? ((const struct ev_exec *)rec)->start_ns
			: t;
	if (h->type == EV_FORK && size >= sizeof(struct ev_fork))
		t = ((const struct ev_fork *)rec)->child_start_ns > t
			? ((const struct ev_fork *)rec)->child_start_ns
			: t;
	return t > lim;
}

static void check_strings(const struct event *ev, const char *rec, size_t len)
{
	for (int i = 0; i < EV_STR_MAX; i++) {
		const struct ev_str *s = &ev->s[i];

		if (s->p == NULL)
			continue;
		if (s->p < rec || s->p + s->len >= rec + len || s->p[s->len] != '\0')
			fuzz_fail("event_decode: string %d is not inside the record", i);
	}
}

static void describe(struct event_enrich *en, const struct event *ev, char *comm)
{
	memcpy(comm, ev->hdr->comm, EV_COMM_LEN);
	comm[EV_COMM_LEN] = '\0';
	*en = (struct event_enrich){
	    .cls = "service",
	    .service = "nginx.service",
	    .class_reason = "systemd unit",
	    .user = "www-data",
	    .exe = ev->hdr->type == EV_EXEC && ev->s[0].p != NULL ? ev->s[0].p : "/usr/sbin/nginx",
	    .cgroup = "/system.slice/nginx.service",
	    .nancestry = 2,
	};
	en->ancestry[0].pid = ev->hdr->ppid;
	en->ancestry[0].comm = comm;
	en->ancestry[0].exe = en->exe;
	en->ancestry[1].pid = 1;
	en->ancestry[1].comm = "systemd";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char comm[EV_COMM_LEN + 1], rendered[4096];
	struct event_enrich en, *enp = NULL;
	struct json_writer w;
	struct event ev;
	struct ev_hdr *h;
	json_error_t jerr;
	json_t *doc;
	char *rec;

	if (size < sizeof(struct ev_hdr) || size > UINT16_MAX)
		return -1;
	/* An exact-size copy, aligned as the ring's records are: ASan sees any overread. */
	rec = malloc(size);
	if (rec == NULL)
		return 0;
	memcpy(rec, data, size);
	h = (struct ev_hdr *)rec;
	h->size = (__u16)size;
	if (fuzz_known("event-time-overflow") && time_overflows(rec, size)) {
		free(rec);
		return -1;
	}
	if (event_decode(rec, size, &ev) < 0) {
		free(rec);
		return 0;
	}
	check_strings(&ev, rec, size);

	if (size % 3 != 0) {
		describe(&en, &ev, comm);
		enp = &en;
	}
	if (size % 3 == 2) {
		bool lossy = false;
		size_t n = event_json_enrich_render(&en, rendered, sizeof(rendered), &lossy);

		if (n > 0) {
			en.json = rendered;
			en.json_len = n;
			en.json_lossy = lossy;
		}
	}
	json_writer_init(&w, line, LINE_BYTES);
	event_json_write(&w, &ev, enp, clock_offset);
	if (w.len >= LINE_BYTES || line[w.len] != '\0')
		fuzz_fail("event_json_write: length %zu past its buffer", w.len);
	if (!w.overflow) {
		doc = json_loadb(line, w.len,
				 JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL,
				 &jerr);
		if (!json_is_object(doc))
			fuzz_fail("event_json_write: not one JSON object (%s at %d): %.*s",
				  jerr.text, jerr.position, (int)(w.len < 2000 ? w.len : 2000),
				  line);
		json_decref(doc);
	}
	free(rec);
	return 0;
}
