/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GET /metrics: Prometheus' text exposition format 0.0.4 (docs/outputs.md,
 * "Metrics"), authorized like the API (the bearer token: Prometheus'
 * "authorization: credentials_file"; or a session), answered on an API
 * worker.
 *
 * What it costs: the console's own counters are read from memory; from
 * the database, one read of hosts (one row per host, its last heartbeat's
 * counters) and of output_cursors at every scrape, and the audits counted
 * by kind and severity once (the first scrape after start reads the whole
 * table) and then only the audits stored since the previous count, at most
 * every METRICS_AUDITS_MS.  A database that cannot answer still gets a 200
 * with what the console knows itself, and vigil_database_up 0.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api_priv.h"
#include "log.h"
#include "prom.h"
#include "store/ingest_stats.h"
#include "store/metrics_store.h"
#include "store/output_store.h"
#include "store/storage_state.h"

/* The largest answer (a fleet of 10,000 hosts takes about 3 MiB). */
#define METRICS_BODY_MAX (16u * 1024 * 1024)
/* The audits' counts are brought up to date at most this often. */
#define METRICS_AUDITS_MS 5000
/* Distinct (kind, severity) pairs counted; more are summed as kind "other". */
#define METRICS_AUDIT_KINDS 256

/* The audits counted so far, shared by the workers. */
static struct {
	pthread_mutex_t lock;
	bool counted;  /* the whole table was counted once */
	uint64_t xmin; /* audits of transactions from here on are not counted yet */
	int64_t at_ms; /* when last brought up to date */
	struct metrics_audit_count c[METRICS_AUDIT_KINDS + 1];
	size_t n;
} audits = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Add rows to the counts (lock held). */
static void audits_add(const struct metrics_audit_count *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t k;

		for (k = 0; k < audits.n; k++)
			if (strcmp(audits.c[k].kind, rows[i].kind) == 0 &&
			    strcmp(audits.c[k].severity, rows[i].severity) == 0)
				break;
		if (k == audits.n) {
			if (audits.n == METRICS_AUDIT_KINDS) {
				/* Bounded: the last slot sums whatever does not fit. */
				k = METRICS_AUDIT_KINDS;
				snprintf(audits.c[k].kind, sizeof(audits.c[k].kind), "other");
				audits.c[k].severity[0] = '\0';
			} else {
				audits.c[k] = rows[i];
				audits.c[k].n = 0;
				audits.n++;
			}
		}
		audits.c[k].n += rows[i].n;
	}
}

/* Bring the counts up to date when due; false when the database could not. */
static bool audits_refresh(struct store *st)
{
	struct metrics_audit_count *rows = NULL;
	size_t n = 0;
	uint64_t xmin = 0;
	vigil_err err = {0};
	int64_t now = mono_ms();
	bool ok = true;

	pthread_mutex_lock(&audits.lock);
	if (audits.counted && now - audits.at_ms < METRICS_AUDITS_MS)
		goto out;
	if (metrics_store_audit_counts(st, !audits.counted, audits.xmin, &rows, &n, &xmin, &err) <
	    0) {
		log_warn("GET /metrics: audits not counted: %s", err.msg);
		ok = false;
		goto out;
	}
	audits_add(rows, n);
	audits.counted = true;
	audits.xmin = xmin;
	audits.at_ms = now;
out:
	pthread_mutex_unlock(&audits.lock);
	free(rows);
	return ok;
}

static void audits_write(struct prom_buf *b)
{
	prom_family(b, "vigil_audits_total", "counter",
		    "Audits by kind and severity: those in the database when the console started,"
		    " and every one stored since");
	pthread_mutex_lock(&audits.lock);
	for (size_t k = 0; k < audits.n + (audits.n == METRICS_AUDIT_KINDS ? 1 : 0); k++) {
		const char *l[] = {"kind", audits.c[k].kind, "severity", audits.c[k].severity,
				   NULL};

		if (audits.c[k].n > 0 || k < audits.n)
			prom_sample(b, "vigil_audits_total", l, audits.c[k].n);
	}
	pthread_mutex_unlock(&audits.lock);
}

static void hosts_write(struct prom_buf *b, const struct metrics_hosts *h)
{
	int64_t conn = 0, disc = 0, lag_conn = 0, lag_disc = 0;

	for (size_t i = 0; i < h->n; i++) {
		if (h->hosts[i].connected) {
			conn++;
			lag_conn += h->hosts[i].lagging;
		} else {
			disc++;
			lag_disc += h->hosts[i].lagging;
		}
	}
	prom_family(b, "vigil_hosts", "gauge", "Hosts the console knows, by connection state");
	prom_sample(b, "vigil_hosts", (const char *const[]){"state", "connected", NULL}, conn);
	prom_sample(b, "vigil_hosts", (const char *const[]){"state", "disconnected", NULL}, disc);
	prom_family(b, "vigil_rules_version", "gauge", "The current rule set's version");
	prom_sample(b, "vigil_rules_version", NULL, h->rules_version);
	prom_family(b, "vigil_hosts_rules_lagging", "gauge",
		    "Hosts that hold an older rule set than the current one, by connection state");
	prom_sample(b, "vigil_hosts_rules_lagging",
		    (const char *const[]){"state", "connected", NULL}, lag_conn);
	prom_sample(b, "vigil_hosts_rules_lagging",
		    (const char *const[]){"state", "disconnected", NULL}, lag_disc);
	prom_family(b, "vigil_events_lost_total", "counter",
		    "Events a host's kernel side lost (the sum of its defender's drop counters in"
		    " its last heartbeat; restarts with the defender)");
	for (size_t i = 0; i < h->n; i++)
		prom_sample_u(b, "vigil_events_lost_total",
			      (const char *const[]){"host", h->hosts[i].host_id, NULL},
			      h->hosts[i].lost);
	prom_family(b, "vigil_spool_pending_batches", "gauge",
		    "Batches in a host's disk spool not yet acknowledged (last heartbeat)");
	for (size_t i = 0; i < h->n; i++)
		if (h->hosts[i].has_delivery)
			prom_sample_u(b, "vigil_spool_pending_batches",
				      (const char *const[]){"host", h->hosts[i].host_id, NULL},
				      h->hosts[i].spool_pending);
	prom_family(b, "vigil_spool_bytes", "gauge",
		    "Bytes in a host's disk spool (last heartbeat)");
	for (size_t i = 0; i < h->n; i++)
		if (h->hosts[i].has_delivery)
			prom_sample_u(b, "vigil_spool_bytes",
				      (const char *const[]){"host", h->hosts[i].host_id, NULL},
				      h->hosts[i].spool_bytes);
	prom_family(b, "vigil_spool_dropped_batches_total", "counter",
		    "Batches a host's spool had to drop, reported as delivery gaps (last"
		    " heartbeat; restarts with the defender)");
	for (size_t i = 0; i < h->n; i++)
		if (h->hosts[i].has_delivery)
			prom_sample_u(b, "vigil_spool_dropped_batches_total",
				      (const char *const[]){"host", h->hosts[i].host_id, NULL},
				      h->hosts[i].spool_dropped);
}

static void outputs_write(struct prom_buf *b, json_t *list)
{
	static const struct {
		const char *name, *type, *field, *help;
	} fam[] = {
	    {"vigil_output_backlog", "gauge", "backlog",
	     "Audits waiting for the output, as its console last measured (every 5 s)"},
	    {"vigil_output_delivered_total", "counter", "delivered",
	     "Audits the output delivered, in all"},
	    {"vigil_output_dropped_total", "counter", "dropped",
	     "Audits the output skipped or its receiver refused, in all (each reported in an"
	     " output_dropped audit)"},
	};
	size_t i;
	json_t *o;

	for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
		prom_family(b, fam[f].name, fam[f].type, fam[f].help);
		json_array_foreach(list, i, o)
		{
			const char *l[] = {"sink", json_string_value(json_object_get(o, "sink")),
					   "kind", json_string_value(json_object_get(o, "kind")),
					   NULL};

			prom_sample(b, fam[f].name, l,
				    (int64_t)json_integer_value(json_object_get(o, fam[f].field)));
		}
	}
}

/* What this process counts itself. */
static void own_write(struct prom_buf *b, struct api *api)
{
	struct ingest_stats is;
	struct tls_stats ts;
	struct tls_conn_stats cs;

	ingest_stats_get(&is);
	prom_family(b, "vigil_console_info", "gauge", "The console's version");
	prom_sample(b, "vigil_console_info", (const char *const[]){"version", VIGIL_VERSION, NULL},
		    1);
	prom_family(b, "vigil_events_ingested_total", "counter",
		    "Events this console stored from defenders' batches since it started");
	prom_sample_u(b, "vigil_events_ingested_total", NULL, is.events);
	prom_family(b, "vigil_batches_ingested_total", "counter",
		    "Batches this console committed since it started; result=duplicate: resent"
		    " batches already stored (acknowledged, nothing written)");
	prom_sample_u(b, "vigil_batches_ingested_total",
		      (const char *const[]){"result", "stored", NULL}, is.batches);
	prom_sample_u(b, "vigil_batches_ingested_total",
		      (const char *const[]){"result", "duplicate", NULL}, is.duplicates);
	prom_family(b, "vigil_input_malformed_total", "counter",
		    "Items left out of batches since the console started (each batch's audited as"
		    " malformed_events or malformed_input)");
	prom_sample_u(b, "vigil_input_malformed_total",
		      (const char *const[]){"what", "events", NULL}, is.refused);
	prom_sample_u(b, "vigil_input_malformed_total",
		      (const char *const[]){"what", "learning", NULL}, is.malformed);
	prom_family(b, "vigil_database_disk_full", "gauge",
		    "1 while the database refuses data for want of disk (batches are answered"
		    " RETRY)");
	prom_sample(b, "vigil_database_disk_full", NULL, storage_state_is_full() ? 1 : 0);
	prom_family(b, "vigil_api_refused_busy_total", "counter",
		    "API requests answered 503 because every worker was busy and the queue full");
	prom_sample_u(b, "vigil_api_refused_busy_total", NULL, api_pool_refused(api->pool));
	prom_family(b, "vigil_api_query_timeouts_total", "counter",
		    "API queries cancelled by the query timeout (answered 504)");
	prom_sample_u(b, "vigil_api_query_timeouts_total", NULL,
		      (uint64_t)atomic_load(&api->timeouts));
	api_limits_stats(api->limits, &cs);
	prom_family(b, "vigil_api_connections", "gauge", "API connections open now");
	prom_sample_u(b, "vigil_api_connections", NULL, cs.open);
	prom_family(b, "vigil_api_connections_closed_total", "counter",
		    "API connections the console closed or refused, by why");
	prom_sample_u(b, "vigil_api_connections_closed_total",
		      (const char *const[]){"reason", "idle", NULL}, cs.idle_closed);
	prom_sample_u(b, "vigil_api_connections_closed_total",
		      (const char *const[]){"reason", "per_address_cap", NULL},
		      cs.refused_addr_cap);
	prom_sample_u(b, "vigil_api_connections_closed_total",
		      (const char *const[]){"reason", "total_cap", NULL}, cs.refused_conns_max);
	tls_stats_get(&ts);
	prom_family(b, "vigil_tls_handshake_timeouts_total", "counter",
		    "TLS connections (link and API) failed by the handshake deadline");
	prom_sample_u(b, "vigil_tls_handshake_timeouts_total", NULL, ts.handshake_timeouts);
	prom_family(b, "vigil_tls_refused_total", "counter",
		    "TLS connections (link and API) refused at accept, by why");
	prom_sample_u(b, "vigil_tls_refused_total",
		      (const char *const[]){"reason", "per_address_handshakes", NULL},
		      ts.refused_addr_cap);
	prom_sample_u(b, "vigil_tls_refused_total",
		      (const char *const[]){"reason", "addresses_full", NULL},
		      ts.refused_addrs_full);
}

/* The whole answer, headers and body (text/plain), written in one piece (api_linger.h). */
static void respond_text(nng_aio *aio, const struct prom_buf *b)
{
	struct api *api = api_of(aio);
	bool head = strcmp(nng_http_req_get_method(nng_aio_get_input(aio, 0)), "HEAD") == 0;
	bool close = api_linger_wanted(aio);
	char top[512];
	size_t n, len;
	char *text;

	n = (size_t)snprintf(top, sizeof(top),
			     "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nCache-Control: no-store\r\n"
			     "%sContent-Length: %zu\r\n\r\n",
			     PROM_CONTENT_TYPE, close ? "Connection: close\r\n" : "", b->len);
	len = n + (head ? 0 : b->len);
	if ((text = malloc(len)) == NULL) {
		nng_aio_finish(aio, NNG_ENOMEM); /* nng's server closes the connection */
		return;
	}
	memcpy(text, top, n);
	if (!head && b->len > 0)
		memcpy(text + n, b->text, b->len);
	if (close)
		api_linger_answer(api->linger, aio, text, len);
	else
		api_send_whole(aio, text, len);
}

void api_handle_metrics(nng_aio *aio)
{
	static const char *const known[] = {NULL};
	struct metrics_hosts hosts = {0};
	struct api_query q;
	struct prom_buf b;
	vigil_err err = {0};
	json_t *outs = NULL;
	int64_t t0 = mono_ms();
	bool db = true;

	if (!api_begin(aio, known, &q))
		return;
	prom_buf_init(&b, METRICS_BODY_MAX);
	own_write(&b, api_of(aio));
	prom_collect(&b); /* the link's, the outputs' (registered by their modules) */
	if (metrics_store_hosts(api_store(aio), &hosts, &err) < 0) {
		log_warn("GET /metrics: hosts not read: %s", err.msg);
		db = false;
	} else {
		hosts_write(&b, &hosts);
	}
	metrics_hosts_fini(&hosts);
	if (db && audits_refresh(api_store(aio)))
		audits_write(&b);
	else
		db = false;
	if (db && output_store_list(api_store(aio), &outs, &err) < 0) {
		log_warn("GET /metrics: outputs not read: %s", err.msg);
		db = false;
	}
	if (outs != NULL)
		outputs_write(&b, outs);
	json_decref(outs);
	prom_family(&b, "vigil_database_up", "gauge",
		    "1 when the database answered this scrape's queries");
	prom_sample(&b, "vigil_database_up", NULL, db ? 1 : 0);
	prom_family(&b, "vigil_metrics_gather_seconds", "gauge",
		    "How long the console took to gather this answer");
	prom_sample_f(&b, "vigil_metrics_gather_seconds", NULL, (double)(mono_ms() - t0) / 1000.0);
	if (b.over) {
		log_warn("GET /metrics: the answer is over %u MiB, refused",
			 METRICS_BODY_MAX >> 20);
		prom_buf_fini(&b);
		api_respond_error(aio, 500, "the metrics are larger than the console sends");
		return;
	}
	respond_text(aio, &b);
	prom_buf_fini(&b);
}
