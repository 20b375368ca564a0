/* SPDX-License-Identifier: Apache-2.0 */
#include "metrics/metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "enforce/enforcer.h"
#include "metrics/metrics_http.h"
#include "prom.h"

struct metrics {
	struct session_parts parts;
	struct metrics_http *http;
	bool registered, http_registered;
};

/* A family of one unlabelled sample. */
static void one(struct prom_buf *b, const char *name, const char *type, const char *help,
		uint64_t v)
{
	prom_family(b, name, type, help);
	prom_sample_u(b, name, NULL, v);
}

/* One sample of a family labelled by a single label. */
static void labelled(struct prom_buf *b, const char *name, const char *label, const char *value,
		     uint64_t v)
{
	prom_sample_u(b, name, (const char *const[]){label, value, NULL}, v);
}

static void capture_families(struct prom_buf *b, const struct metrics *m)
{
	struct capture_counters c;
	uint64_t malformed;

	capture_read_counters(m->parts.cap, &c);
	prom_family(b, "vigil_defender_events_total", "counter",
		    "Events the kernel side delivered to the defender, by type");
	for (int i = 1; i < EV_TYPE_MAX; i++)
		labelled(b, "vigil_defender_events_total", "type", capture_type_name(i),
			 c.delivered[i]);
	prom_family(b, "vigil_defender_events_dropped_total", "counter",
		    "Events the kernel side lost, by reason (docs/events.md)");
	for (int i = 0; i < DROP_REASON_MAX; i++)
		labelled(b, "vigil_defender_events_dropped_total", "reason", capture_drop_name(i),
			 c.drops[i]);
	prom_family(b, "vigil_defender_events_filtered_total", "counter",
		    "Events left out in the kernel on purpose, by reason");
	for (int i = 0; i < FILTER_REASON_MAX; i++)
		labelled(b, "vigil_defender_events_filtered_total", "reason",
			 capture_filter_name(i), c.filtered[i]);
	malformed = c.user_malformed + (m->parts.pipe ? pipeline_malformed(m->parts.pipe) : 0);
	one(b, "vigil_defender_events_malformed_total", "counter",
	    "Ring records user space refused as malformed", malformed);
	one(b, "vigil_defender_execs_total", "counter",
	    "Process execs the kernel counted (the defender's own excepted)",
	    capture_exec_count(m->parts.cap));
}

static void delivery_families(struct prom_buf *b, const struct metrics *m)
{
	struct delivery_stats ds;

	delivery_stats(m->parts.dl, &ds);
	prom_family(b, "vigil_defender_batches_total", "counter",
		    "Batches written to the spool, acknowledged by a console, refused for good");
	labelled(b, "vigil_defender_batches_total", "result", "spooled", ds.batches_spooled);
	labelled(b, "vigil_defender_batches_total", "result", "acked", ds.batches_acked);
	labelled(b, "vigil_defender_batches_total", "result", "refused", ds.batches_refused);
	one(b, "vigil_defender_batch_resends_total", "counter", "Batches sent again", ds.resends);
	one(b, "vigil_defender_spool_bytes", "gauge", "Bytes the disk spool holds", ds.spool_bytes);
	one(b, "vigil_defender_spool_pending_batches", "gauge",
	    "Batches spooled and not yet acknowledged, those in flight included", ds.spool_pending);
	one(b, "vigil_defender_spool_dropped_batches_total", "counter",
	    "Batches the spool dropped (reported to the console as delivery gaps)",
	    ds.spool_dropped);
	one(b, "vigil_defender_spool_append_errors_total", "counter",
	    "Batches that could not be written to the spool", ds.append_errors);
	one(b, "vigil_defender_oversize_total", "counter",
	    "Items too large for a console, not sent (logged)", ds.oversize);
}

static void learning_families(struct prom_buf *b, const struct metrics *m)
{
	struct learn_stats ls;
	struct proctree_stats ps;

	pipeline_learn_stats(m->parts.pipe, &ls);
	one(b, "vigil_defender_models", "gauge", "Service models held", ls.models.models);
	one(b, "vigil_defender_model_entries", "gauge", "Entries in all models", ls.models.entries);
	one(b, "vigil_defender_model_learned_total", "counter", "Entries learned",
	    ls.models.learned);
	one(b, "vigil_defender_deviations_total", "counter",
	    "Deviations from active models reported", ls.models.deviations);
	one(b, "vigil_defender_deviations_repeated_total", "counter",
	    "Deviations seen again and not reported again", ls.models.deviations_repeated);
	one(b, "vigil_defender_model_folds_total", "counter", "Entries generalized into a pattern",
	    ls.models.folds);
	one(b, "vigil_defender_model_over_bounds_total", "counter",
	    "Observations a model's size bound turned away",
	    ls.models.full_models + ls.models.full_sections + ls.models.full_entries);
	one(b, "vigil_defender_model_save_errors_total", "counter", "Models not saved to disk",
	    ls.models.save_errors);
	one(b, "vigil_defender_activity_total", "counter", "Interactive events logged",
	    ls.activity);
	one(b, "vigil_defender_unplaced_total", "counter",
	    "Service events with no executable or path to place them", ls.unplaced);
	one(b, "vigil_defender_rewritten_total", "counter",
	    "Service events whose argument was rewritten during the call", ls.rewritten);

	pipeline_process_stats(m->parts.pipe, &ps);
	one(b, "vigil_defender_processes", "gauge", "Processes in the process tree", ps.entries);
	prom_family(b, "vigil_defender_processes_evicted_total", "counter",
		    "Processes dropped from a full tree to make room, by state");
	labelled(b, "vigil_defender_processes_evicted_total", "state", "live", ps.evicted_live);
	labelled(b, "vigil_defender_processes_evicted_total", "state", "exited", ps.evicted_exited);
	one(b, "vigil_defender_process_table_full_total", "counter",
	    "Processes the full tree could not take", ps.table_full_drops);
}

static void enforce_families(struct prom_buf *b, const struct metrics *m)
{
	struct enforcer_stats es;

	enforcer_stats(m->parts.enf, &es);
	prom_family(b, "vigil_defender_enforce_decisions_total", "counter",
		    "Execs and opens held for a decision, and how they ended");
	labelled(b, "vigil_defender_enforce_decisions_total", "result", "held", es.fan_requests);
	labelled(b, "vigil_defender_enforce_decisions_total", "result", "denied", es.fan_denied);
	labelled(b, "vigil_defender_enforce_decisions_total", "result", "killed", es.fan_killed);
	labelled(b, "vigil_defender_enforce_decisions_total", "result", "fail_open",
		 es.fan_fail_open);
	one(b, "vigil_defender_enforce_errors_total", "counter", "Permission events that failed",
	    es.fan_errors);
	one(b, "vigil_defender_enforce_marks", "gauge", "fanotify marks placed for the rules",
	    es.fan_marks);
	one(b, "vigil_defender_enforce_mark_errors_total", "counter", "fanotify marks refused",
	    es.fan_mark_errors);
	one(b, "vigil_defender_enforce_net_entries", "gauge",
	    "Entries in the network guard's tables", es.net_entries);
	one(b, "vigil_defender_enforce_audits_dropped_total", "counter",
	    "Enforcement audits dropped at a full queue", es.audits_dropped);
}

/* The process's resident set, from /proc/self/statm (pages). */
static uint64_t resident_bytes(void)
{
	unsigned long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "re");

	if (f == NULL)
		return 0;
	if (fscanf(f, "%lu %lu", &size, &resident) != 2)
		resident = 0;
	fclose(f);
	return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void collect(struct prom_buf *b, void *arg)
{
	const struct metrics *m = arg;
	uint64_t version = 0, refused = 0;

	prom_family(b, "vigil_defender_info", "gauge", "This defender's version");
	prom_sample(b, "vigil_defender_info", (const char *const[]){"version", VIGIL_VERSION, NULL},
		    1);
	one(b, "vigil_defender_capture_loaded", "gauge",
	    "1 when the BPF programs are loaded, 0 when running without kernel capture",
	    m->parts.cap != NULL);
	if (m->parts.cap != NULL)
		capture_families(b, m);
	if (m->parts.dl != NULL)
		delivery_families(b, m);
	if (m->parts.pipe != NULL)
		learning_families(b, m);
	if (m->parts.enf != NULL)
		enforce_families(b, m);
	if (m->parts.up != NULL)
		one(b, "vigil_defender_console_connections", "gauge",
		    "Connections to consoles up now", (uint64_t)uplink_connections(m->parts.up));
	if (m->parts.rules != NULL) {
		char why[8];

		rulebook_state(m->parts.rules, &version, &refused, why, sizeof(why));
		one(b, "vigil_defender_rules_version", "gauge",
		    "The rule-set version in force (0: none)", version);
		one(b, "vigil_defender_rules_refused_version", "gauge",
		    "The last rule-set version refused (0: none)", refused);
	}
	one(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes",
	    resident_bytes());
}

/* The responder's own counts: registered once it runs (m->http is set by then). */
static void collect_http(struct prom_buf *b, void *arg)
{
	static const char *const results[METRICS_HTTP_NRESULTS] = {
	    [METRICS_HTTP_OK] = "200",	       [METRICS_HTTP_NOT_FOUND] = "404",
	    [METRICS_HTTP_BAD_METHOD] = "405", [METRICS_HTTP_BAD] = "400",
	    [METRICS_HTTP_TOO_LARGE] = "431",  [METRICS_HTTP_TIMEOUT] = "timeout"};
	const struct metrics *m = arg;
	uint64_t counts[METRICS_HTTP_NRESULTS];

	metrics_http_counts(m->http, counts);
	prom_family(b, "vigil_defender_metrics_requests_total", "counter",
		    "Requests to this metrics port, by answer (the one being answered not yet)");
	for (int i = 0; i < METRICS_HTTP_NRESULTS; i++)
		labelled(b, "vigil_defender_metrics_requests_total", "code", results[i], counts[i]);
}

struct metrics *metrics_start(const struct sockaddr *addr, socklen_t len,
			      const struct session_parts *parts, vigil_err *err)
{
	struct metrics *m = calloc(1, sizeof(*m));
	int rc;

	if (m == NULL) {
		verr_set(err, -ENOMEM, "metrics: out of memory");
		errno = ENOMEM;
		return NULL;
	}
	m->parts = *parts;
	/* Registered before the port opens, so the first scrape has every family. */
	if ((rc = prom_register(collect, m)) < 0) {
		verr_set(err, rc, "metrics: cannot register the collector: %s", strerror(-rc));
		free(m);
		errno = -rc;
		return NULL;
	}
	m->registered = true;
	if ((m->http = metrics_http_start(addr, len, err)) == NULL) {
		rc = errno;
		prom_unregister(collect, m);
		free(m);
		errno = rc;
		return NULL;
	}
	m->http_registered = prom_register(collect_http, m) == 0;
	return m;
}

uint16_t metrics_port(const struct metrics *m)
{
	return metrics_http_port(m->http);
}

void metrics_stop(struct metrics *m)
{
	if (m == NULL)
		return;
	/* The thread first: a scrape under way finishes before the collector goes. */
	if (m->http_registered)
		prom_unregister(collect_http, m);
	metrics_http_stop(m->http);
	if (m->registered)
		prom_unregister(collect, m);
	free(m);
}
