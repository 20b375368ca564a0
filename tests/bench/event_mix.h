/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_BENCH_EVENT_MIX_H
#define VIGIL_BENCH_EVENT_MIX_H

/*
 * A deterministic stream of realistic events, as a busy host's defender
 * sends them: kernel records built by hand, then written by the defender's
 * own JSON writer (event_json_write) with a process description from a
 * small process table (services with their units, cgroups and ancestry, and
 * a shell session).  The mix, per 100 events: 15 exec, 15 fork, 15 exit,
 * 40 file (writes of logs, session and cache files, some reads of
 * sensitive files, renames, unlinks) and 15 net (connects and accepts).
 * Paths, pids, ports and times vary as they do on a host, so the bodies
 * compress no better than real ones would.
 *
 * Not thread-safe: one mix per thread.  No allocation.
 */

#include <stddef.h>
#include <stdint.h>

#include "events.h"

struct event_mix {
	uint64_t rng;
	uint64_t ts_ns; /* wall clock of the next event */
	uint64_t step_ns;
	uint32_t next_pid;
	char line[EV_RECORD_MAX * 3];
	_Alignas(8) char rec[EV_RECORD_MAX]; /* records are read as structs */
};

/* One event; the pointers are into the mix, valid until the next call. */
struct event_mix_event {
	uint32_t type; /* enum ev_type */
	uint64_t ts_ns;
	uint32_t pid, ppid, uid;
	const char *comm;
	const char *json;
	size_t json_len;
};

/* Start a stream at wall clock start_ns, one event every step_ns, from seed. */
void event_mix_init(struct event_mix *m, uint64_t seed, uint64_t start_ns, uint64_t step_ns);

/* The next event of the stream. */
void event_mix_next(struct event_mix *m, struct event_mix_event *ret_ev);

#endif
