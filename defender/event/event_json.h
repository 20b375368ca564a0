/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_EVENT_JSON_H
#define VIGIL_DEFENDER_EVENT_JSON_H

/*
 * One capture event as one JSON object (the --events-json output; the format
 * is documented in docs/events.md).  Paths are made absolute; anything cut or
 * unreadable is listed in "truncated" / "gaps", never silently dropped.
 */

#include <stdint.h>

#include "event/event.h"
#include "event/json_writer.h"

#define EVENT_ANCESTRY_MAX 8

/* What the process tree knows about the event's process (any field may be NULL/0). */
struct event_enrich {
	const char *cls;	  /* "service" or "interactive"; NULL when unknown */
	const char *service;	  /* a service's identity */
	const char *class_reason; /* why it was classified so */
	const char *user;
	const char *tty; /* controlling terminal, NULL when none */
	const char *exe;
	const char *cgroup;
	const char *container_id;
	/* the container's, as its runtime's state says (NULL: none, or not known) */
	const char *container_name;
	const char *container_image;
	const char *container_runtime; /* "docker", "podman", "containerd", "cri-o" */
	size_t nancestry;
	struct {
		uint32_t pid;
		const char *comm;
		const char *exe;
	} ancestry[EVENT_ANCESTRY_MAX];
	/*
	 * The fields above already written as JSON (event_json_enrich_render),
	 * used in their place when set: a process's next events reuse it.
	 */
	const char *json;
	size_t json_len;
	bool json_lossy; /* it holds names that are not UTF-8 */
};

/* Offset to add to CLOCK_BOOTTIME nanoseconds for wall-clock time; compute once at start. */
int64_t event_json_clock_offset(void);

/*
 * A CLOCK_BOOTTIME time from a record as wall-clock ns (boot_ns + offset).
 * Record times are hostile input too: a sum past INT64_MAX (year 2262) is
 * INT64_MAX, never a wrapped (undefined) value.  May be negative.
 */
int64_t event_wall_ns(uint64_t boot_ns, int64_t offset);

/* "open", "unlink", ... for enum ev_file_op. */
const char *event_file_op_name(unsigned op);

/* "tcp", "udp", "stream" (unix), ... for a socket event. */
const char *event_net_proto_name(const struct ev_net *e);

/* The dotted quad of a (network order) in out, returned; inet_ntop would format it through sprintf.
 */
char *event_ipv4_text(const uint8_t a[4], char out[16]);

/*
 * en's fields as event_json_write puts them after an event's own (starting
 * with a comma), into buf; returns the length, 0 when they do not fit in cap.
 * *lossy tells whether they hold names that are not UTF-8.
 */
size_t event_json_enrich_render(const struct event_enrich *en, char *buf, size_t cap, bool *lossy);

/* Write ev (and en, may be NULL) as one object into w. */
void event_json_write(struct json_writer *w, const struct event *ev, const struct event_enrich *en,
		      int64_t clock_offset_ns);

#endif
