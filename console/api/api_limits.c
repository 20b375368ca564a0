/* SPDX-License-Identifier: Apache-2.0 */
/* The API's connection limits and their rate-limited report (see api_limits.h). */
#include "api/api_limits.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

struct api_limits {
	nng_tls_config *tls; /* our reference */
	struct tls_conn_limits lim;
	nng_aio *tick;		      /* the poll timer; its callback owns the fields below */
	struct tls_conn_stats logged; /* the counts as of the last report */
	int64_t logged_at;	      /* monotonic ms of the last report; 0: none yet */
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One line with what happened since the last report; returns whether anything did. */
static bool report(struct api_limits *al, const struct tls_conn_stats *st)
{
	uint64_t idle = st->idle_closed - al->logged.idle_closed;
	uint64_t idle_hs = st->idle_in_handshake - al->logged.idle_in_handshake;
	uint64_t by_addr = st->refused_addr_cap - al->logged.refused_addr_cap;
	uint64_t by_max = st->refused_conns_max - al->logged.refused_conns_max;
	char idle_text[256] = "", refused_text[320] = "";

	if (idle == 0 && by_addr == 0 && by_max == 0)
		return false;
	if (idle > 0)
		snprintf(idle_text, sizeof(idle_text),
			 "%" PRIu64 " connection(s) closed idle (no whole request within %u ms"
			 " of connecting or of the last answer, or an answer not taken;"
			 " %" PRIu64 " of them in the TLS handshake), the last from %s",
			 idle, al->lim.idle_ms, idle_hs, st->last_idle);
	if (by_addr > 0 || by_max > 0)
		snprintf(refused_text, sizeof(refused_text),
			 "%s%" PRIu64 " connection(s) refused at accept (%" PRIu64
			 " over the cap of %u per address, %" PRIu64
			 " over the cap of %u in all), the last from %s",
			 idle > 0 ? "; " : "", by_addr + by_max, by_addr, al->lim.conns_per_addr,
			 by_max, al->lim.conns_max, st->last_refused);
	log_warn("API: %s%s; %" PRIu64 " open now (next report in %d s at the earliest)", idle_text,
		 refused_text, st->open, API_LIMITS_LOG_MS / 1000);
	return true;
}

/* On an nng timer thread: look at the counters, report when due, sleep again. */
static void tick_cb(void *arg)
{
	struct api_limits *al = arg;
	struct tls_conn_stats st;
	int64_t now = now_ms();

	if (nng_aio_result(al->tick) != 0)
		return; /* stopped */
	if ((al->logged_at == 0 || now - al->logged_at >= API_LIMITS_LOG_MS) &&
	    tls_conn_stats_get(al->tls, &st) == 0 && report(al, &st)) {
		al->logged = st;
		al->logged_at = now;
	}
	nng_sleep_aio(API_LIMITS_POLL_MS, al->tick);
}

struct api_limits *api_limits_start(nng_tls_config *tls, const struct tls_conn_limits *lim,
				    vigil_err *err)
{
	struct api_limits *al = calloc(1, sizeof(*al));
	int rv;

	if (al == NULL) {
		verr_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	al->lim = *lim;
	if (tls_conn_limits_set(tls, lim, err) < 0) {
		free(al);
		return NULL;
	}
	if ((rv = nng_aio_alloc(&al->tick, tick_cb, al)) != 0) {
		verr_set(err, -ENOMEM, "cannot start the API's connection report: %s",
			 nng_strerror(rv));
		free(al);
		return NULL;
	}
	nng_tls_config_hold(tls);
	al->tls = tls;
	nng_sleep_aio(API_LIMITS_POLL_MS, al->tick);
	return al;
}

void api_limits_stats(struct api_limits *al, struct tls_conn_stats *ret)
{
	if (tls_conn_stats_get(al->tls, ret) != 0)
		memset(ret, 0, sizeof(*ret));
}

const struct tls_conn_limits *api_limits_get(const struct api_limits *al)
{
	return &al->lim;
}

void api_limits_stop(struct api_limits *al)
{
	if (al == NULL)
		return;
	/* Waits for a running callback; a sleep it then starts is refused (aio stopped). */
	nng_aio_stop(al->tick);
	nng_aio_free(al->tick);
	nng_tls_config_free(al->tls);
	free(al);
}
