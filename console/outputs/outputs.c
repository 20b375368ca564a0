/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The outputs' workers (outputs.h): one thread per sink, reading the
 * audits after its cursor and handing them to its sink.
 *
 * Positions (store/audit_queries.h, struct audit_pos), in order:
 *   saved <= durable <= sent
 *   saved    what the database holds (output_cursors)
 *   durable  delivered: the sink took it for good (sink.h); saved at most
 *            every OUTPUT_SAVE_MS, and at once when the worker stops
 *   sent     handed to the sink; for a syslog connection delivered only
 *            once the connection outlived it (marks below)
 * After a failure a buffered sink goes back to durable (what it had
 * gathered or written unconfirmed is sent again); a webhook keeps what its
 * receiver answered 2xx.
 */
#include "outputs/outputs.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "log.h"
#include "outputs/sink.h"
#include "prom.h"
#include "store/audit_queries.h"
#include "store/output_store.h"

/* A cursor is saved at most this often while audits flow (and at stop). */
#define OUTPUT_SAVE_MS 200
/* The backlog is measured, and the bounds checked, this often. */
#define OUTPUT_BOUNDS_MS 5000
/* Refused audits are reported at most this often per sink. */
#define OUTPUT_REPORT_MS 60000
/* A sink still down is logged this often. */
#define OUTPUT_DOWN_LOG_MS    60000
#define OUTPUT_BACKOFF_MIN_MS 1000
#define OUTPUT_BACKOFF_MAX_MS 60000
/* A sink whose row another console holds is looked at again this often. */
#define OUTPUT_CLAIM_RETRY_MS 5000
/* Batches handed to a sink and not yet confirmed (syslog: the last second's). */
#define OUTPUT_MARKS_MAX 64
/* Statements of a worker's connection are cut after this (a count over a huge backlog). */
#define OUTPUT_STATEMENT_TIMEOUT_MS 60000

struct mark {
	struct audit_pos pos;
	int64_t t_ms;
	int64_t n; /* audits delivered up to pos since the previous mark */
};

struct worker {
	struct outputs *outs;
	struct output_conf conf;
	struct sink sink;
	struct store *st;
	pthread_t thread;
	bool started;

	/* The worker thread's own. */
	bool claimed, db_down, busy_logged;
	struct audit_pos saved, durable, sent;
	int64_t durable_n; /* delivered, not yet counted in the database */
	struct mark marks[OUTPUT_MARKS_MAX];
	int nmarks;
	struct {
		int64_t count, first_id, last_id;
		struct audit_pos before; /* the position before the first of them */
		char why[300];
	} ref; /* audits refused for good, not yet reported */
	int64_t last_report_ms, last_save_ms, last_bounds_ms;
	int64_t backlog;
	bool backlog_dirty;
	int failures;
	int64_t next_try_ms, down_since_ms, last_down_log_ms;
	struct audit_item items[OUTPUT_BATCH];

	/* Read by the metrics collector. */
	atomic_bool up, active;
	atomic_uint_fast64_t failures_total;
};

struct outputs {
	struct worker *w;
	size_t n;
	char owner[512];
	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC: naps end early at stop */
	atomic_bool stop;
	bool registered;
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int pos_cmp(struct audit_pos a, struct audit_pos b)
{
	if (a.tx != b.tx)
		return a.tx < b.tx ? -1 : 1;
	return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

static bool stopping(const struct worker *w)
{
	return atomic_load(&w->outs->stop);
}

/* Sleep ms, or less when the outputs stop. */
static void nap(struct worker *w, int64_t ms)
{
	struct outputs *o = w->outs;
	struct timespec ts;

	if (ms <= 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&o->lock);
	while (!atomic_load(&o->stop) &&
	       pthread_cond_timedwait(&o->cond, &o->lock, &ts) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&o->lock);
}

static const char *kind_of(const struct worker *w)
{
	return output_kind_name(w->conf.kind);
}

/* Forget what was sent and not delivered: the next batch starts after durable. */
static void rewind_to_durable(struct worker *w)
{
	w->sent = w->durable;
	w->nmarks = 0;
}

/* The receiver failed: back off (retry_ms: at least this long, from Retry-After). */
static void failed(struct worker *w, const char *why, int retry_ms)
{
	int64_t now = mono_ms(), delay;
	uint32_t r = 0;

	w->sink.ops->close(&w->sink);
	if (w->sink.ops->buffered)
		rewind_to_durable(w);
	w->failures++;
	atomic_fetch_add(&w->failures_total, 1);
	delay = OUTPUT_BACKOFF_MIN_MS << (w->failures - 1 < 6 ? w->failures - 1 : 6);
	if (delay > OUTPUT_BACKOFF_MAX_MS)
		delay = OUTPUT_BACKOFF_MAX_MS;
	/* Jitter: receivers that come back are not hit by every sender at once. */
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		r = (uint32_t)now;
	delay = delay / 2 + (int64_t)(r % (uint32_t)(delay / 2 + 1));
	if (retry_ms > delay)
		delay = retry_ms;
	w->next_try_ms = now + delay;
	if (atomic_exchange(&w->up, false)) {
		w->down_since_ms = now;
		w->last_down_log_ms = now;
		log_warn("output %s (%s %s) failed: %s; retried in %.1f s and backing off, its"
			 " audits wait in the database",
			 w->conf.name, kind_of(w), w->conf.where, why, (double)delay / 1000.0);
	} else if (now - w->last_down_log_ms >= OUTPUT_DOWN_LOG_MS) {
		w->last_down_log_ms = now;
		log_warn("output %s (%s %s) still failing after %d attempt(s) over %" PRId64
			 " s: %s; backlog %" PRId64 " audit(s)",
			 w->conf.name, kind_of(w), w->conf.where, w->failures,
			 (now - w->down_since_ms) / 1000, why, w->backlog);
	}
}

static void succeeded(struct worker *w)
{
	if (w->failures > 0 && !atomic_load(&w->up))
		log_info("output %s (%s %s) delivers again after %" PRId64 " s and %d failed"
			 " attempt(s)",
			 w->conf.name, kind_of(w), w->conf.where,
			 (mono_ms() - w->down_since_ms) / 1000, w->failures);
	w->failures = 0;
	atomic_store(&w->up, true);
}

/* Another console took the sink over (or the database lost our claim): start over. */
static void lost_claim(struct worker *w, const char *why)
{
	log_warn("output %s: %s; claiming it again", w->conf.name, why);
	w->claimed = false;
	atomic_store(&w->active, false);
	w->sink.ops->close(&w->sink);
	w->nmarks = 0;
	w->ref.count = 0;
	w->durable_n = 0;
}

static void db_failed(struct worker *w, const char *why)
{
	if (!w->db_down)
		log_warn("output %s: the database is unavailable, retrying: %s", w->conf.name, why);
	w->db_down = true;
}

static void db_ok(struct worker *w)
{
	if (w->db_down)
		log_info("output %s: the database is reachable again", w->conf.name);
	w->db_down = false;
}

static int claim(struct worker *w)
{
	vigil_err err = {0};
	int rc =
	    output_store_claim(w->st, w->conf.name, kind_of(w), w->outs->owner, &w->saved, &err);

	if (rc == -EBUSY) {
		db_ok(w);
		if (!w->busy_logged)
			log_info("%s; this console takes it over if that one stops", err.msg);
		w->busy_logged = true;
		return rc;
	}
	if (rc < 0) {
		db_failed(w, err.msg);
		return rc;
	}
	db_ok(w);
	if (w->busy_logged)
		log_info("output %s: taken over from the console that delivered it", w->conf.name);
	w->busy_logged = false;
	w->claimed = true;
	atomic_store(&w->active, true);
	w->durable = w->sent = w->saved;
	w->durable_n = 0;
	w->nmarks = 0;
	w->ref.count = 0;
	w->last_bounds_ms = 0;
	log_info("output %s (%s %s) delivers the audits after id %" PRId64 " (transaction %" PRIu64
		 ")",
		 w->conf.name, kind_of(w), w->conf.where, w->saved.id, w->saved.tx);
	return 0;
}

/* Report the refused audits (with the cursor at durable) in one transaction. */
static void report_refused(struct worker *w, int64_t now)
{
	struct output_drop d = {.reason = "refused",
				.count = w->ref.count,
				.first_id = w->ref.first_id,
				.last_id = w->ref.last_id};
	vigil_err err = {0};
	int rc;

	snprintf(d.why, sizeof(d.why), "the receiver refused them for good (the last: %s)",
		 w->ref.why);
	rc = output_store_drop(w->st, w->conf.name, kind_of(w), w->outs->owner, w->durable,
			       w->durable_n, &d, &err);
	if (rc == -EBUSY) {
		lost_claim(w, err.msg);
		return;
	}
	if (rc < 0) {
		db_failed(w, err.msg);
		return;
	}
	db_ok(w);
	log_warn(
	    "output %s (%s %s): %" PRId64 " audit(s) refused for good and dropped (ids %" PRId64
	    " to %" PRId64 "; the last: %s); audited as output_dropped",
	    w->conf.name, kind_of(w), w->conf.where, d.count, d.first_id, d.last_id, w->ref.why);
	w->saved = w->durable;
	w->durable_n = 0;
	w->ref.count = 0;
	w->last_report_ms = now;
	w->last_save_ms = now;
}

/* Save what was delivered (force: now, whatever the pace). */
static void save(struct worker *w, int64_t now, bool force)
{
	struct audit_pos to = w->durable;
	vigil_err err = {0};
	int rc;

	if (w->ref.count > 0) {
		if (force || w->last_report_ms == 0 ||
		    now - w->last_report_ms >= OUTPUT_REPORT_MS) {
			report_refused(w, now);
			return;
		}
		/* Not past refused audits before they are reported. */
		if (pos_cmp(w->ref.before, to) < 0)
			to = w->ref.before;
	}
	if (pos_cmp(to, w->saved) == 0 && w->durable_n == 0 && !w->backlog_dirty)
		return;
	if (!force && now - w->last_save_ms < OUTPUT_SAVE_MS)
		return;
	rc = output_store_save(w->st, w->conf.name, w->outs->owner, to, w->durable_n,
			       w->backlog_dirty ? w->backlog : -1, &err);
	if (rc == -EBUSY) {
		lost_claim(w, err.msg);
		return;
	}
	if (rc < 0) {
		db_failed(w, err.msg);
		return;
	}
	db_ok(w);
	w->saved = to;
	w->durable_n = 0;
	w->backlog_dirty = false;
	w->last_save_ms = now;
}

/* Marks old enough, on a connection still alive, are delivered. */
static void confirm(struct worker *w, int64_t now)
{
	const struct sink_ops *ops = w->sink.ops;
	int k = 0;

	while (k < w->nmarks && w->marks[k].t_ms + (int64_t)ops->confirm_ms <= now) {
		if (ops->alive != NULL && !ops->alive(&w->sink)) {
			failed(w, "the receiver closed the connection", 0);
			return;
		}
		w->durable = w->marks[k].pos;
		w->durable_n += w->marks[k].n;
		k++;
	}
	if (k > 0) {
		memmove(w->marks, w->marks + k, (size_t)(w->nmarks - k) * sizeof(w->marks[0]));
		w->nmarks -= k;
	}
}

static void mark(struct worker *w, int64_t n)
{
	if (w->nmarks > 0 && pos_cmp(w->marks[w->nmarks - 1].pos, w->sent) == 0 && n == 0)
		return;
	w->marks[w->nmarks++] = (struct mark){.pos = w->sent, .t_ms = mono_ms(), .n = n};
}

/* Skip the audits up to to (d says which and why), reporting them. */
static void skip_to(struct worker *w, struct audit_pos to, struct output_drop *d)
{
	vigil_err err = {0};
	int rc;

	/* Refused audits before the skip are reported first (with their own reason). */
	if (w->ref.count > 0) {
		report_refused(w, mono_ms());
		if (!w->claimed || w->ref.count > 0)
			return;
	}
	rc = output_store_drop(w->st, w->conf.name, kind_of(w), w->outs->owner, to, w->durable_n, d,
			       &err);
	if (rc == -EBUSY) {
		lost_claim(w, err.msg);
		return;
	}
	if (rc < 0) {
		db_failed(w, err.msg);
		return;
	}
	db_ok(w);
	log_warn("output %s (%s %s): skipped %" PRId64 " audit(s), ids %" PRId64 " to %" PRId64
		 ": %s; audited as output_dropped",
		 w->conf.name, kind_of(w), w->conf.where, d->count, d->first_id, d->last_id,
		 d->why);
	/* What was sent and not confirmed is before to: taken as delivered. */
	w->saved = w->durable = w->sent = to;
	w->durable_n = 0;
	w->nmarks = 0;
}

/* Measure the backlog; skip the oldest when it is over a bound. */
static void bounds(struct worker *w)
{
	const struct output_conf *c = &w->conf;
	struct output_drop d = {0};
	struct audit_pos to;
	vigil_err err = {0};
	int64_t count = 0, over = 0;
	double age = 0;

	if (output_store_backlog(w->st, w->sent, c->max_backlog + 1, &count, &age, &err) < 0) {
		db_failed(w, err.msg);
		return;
	}
	db_ok(w);
	if (count != w->backlog)
		w->backlog_dirty = true;
	w->backlog = count;
	if (count > c->max_backlog) {
		/* How far over, up to ten times the bound (further: the next look goes on). */
		if (output_store_backlog(w->st, w->sent, c->max_backlog * 10, &over, &age, &err) <
		    0) {
			db_failed(w, err.msg);
			return;
		}
		/* count stopped at the bound: what the skip leaves is measured from over. */
		w->backlog = over;
		if (output_store_skip_range(w->st, w->sent, over - c->max_backlog / 2, -1, &to, &d,
					    &err) < 0) {
			db_failed(w, err.msg);
			return;
		}
		d.reason = "backlog";
		snprintf(d.why, sizeof(d.why),
			 "%" PRId64 "%s audit(s) waited, over its max_backlog of %" PRId64
			 "; the oldest were skipped down to %" PRId64,
			 over, over >= c->max_backlog * 10 ? " or more" : "", c->max_backlog,
			 c->max_backlog / 2);
	} else if (count > 0 && age > (double)c->max_age_s) {
		if (output_store_skip_range(w->st, w->sent, c->max_backlog + 1,
					    (double)c->max_age_s, &to, &d, &err) < 0) {
			db_failed(w, err.msg);
			return;
		}
		d.reason = "age";
		snprintf(d.why, sizeof(d.why),
			 "they waited longer than its max_age of %" PRId64 " s (the oldest %.0f s)",
			 c->max_age_s, age);
	} else {
		return;
	}
	if (d.count > 0) {
		skip_to(w, to, &d);
		w->backlog -= d.count;
		w->backlog_dirty = true;
	}
}

/* Keep refused audit item i for the next report. */
static void refused(struct worker *w, const struct audit_item *it, const char *why)
{
	if (w->ref.count == 0) {
		w->ref.before = w->sent;
		w->ref.first_id = w->ref.last_id = it->pos.id;
	}
	w->ref.count++;
	if (it->pos.id < w->ref.first_id)
		w->ref.first_id = it->pos.id;
	if (it->pos.id > w->ref.last_id)
		w->ref.last_id = it->pos.id;
	snprintf(w->ref.why, sizeof(w->ref.why), "%.*s", (int)sizeof(w->ref.why) - 1, why);
}

/* Hand items[0..n) to the sink. */
static void deliver(struct worker *w, size_t n)
{
	const struct sink_ops *ops = w->sink.ops;
	vigil_err err = {0};
	int64_t taken = 0;
	int retry_ms = 0, rc = 0;

	/* What waits for its confirmation on a connection that closed is sent again. */
	if (w->nmarks > 0 && ops->alive != NULL && !ops->alive(&w->sink)) {
		failed(w, "the receiver closed the connection", 0);
		return;
	}
	if ((rc = ops->open(&w->sink, &err)) < 0) {
		failed(w, err.msg, 0);
		return;
	}
	for (size_t i = 0; i < n && !stopping(w); i++) {
		const struct audit_item *it = &w->items[i];
		const char *sev = json_string_value(json_object_get(it->audit, "severity"));

		int rank = output_severity_rank(sev);

		/* An unknown severity is sent: a filter must not hide what it cannot rank. */
		if (rank >= 0 && rank < w->conf.min_severity) {
			w->sent = it->pos; /* not for this sink: passed */
			continue;
		}
		rc = ops->send(&w->sink, it->audit, &retry_ms, &err);
		if (rc < 0)
			break;
		if (rc == SINK_REFUSED)
			refused(w, it, err.msg);
		else
			taken++;
		w->sent = it->pos;
		verr_clear(&err);
	}
	if (rc >= 0 && stopping(w) && ops->buffered) {
		rewind_to_durable(w); /* not flushed: sent again next time */
		return;
	}
	if (rc >= 0 && ops->flush != NULL)
		rc = ops->flush(&w->sink, &err);
	if (rc < 0) {
		if (!ops->buffered && taken > 0)
			mark(w, taken); /* a webhook's 2xx before the failure stand */
		failed(w, err.msg, retry_ms);
		return;
	}
	mark(w, taken);
	succeeded(w);
}

static void free_items(struct worker *w, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_decref(w->items[i].audit);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	while (!stopping(w)) {
		int64_t now = mono_ms();
		vigil_err err = {0};
		size_t n = 0;

		if (!w->claimed) {
			if (claim(w) < 0)
				nap(w, w->db_down ? 1000 : OUTPUT_CLAIM_RETRY_MS);
			continue;
		}
		if (now - w->last_bounds_ms >= OUTPUT_BOUNDS_MS) {
			w->last_bounds_ms = now;
			bounds(w);
		}
		confirm(w, now);
		save(w, now, false);
		if (!w->claimed)
			continue;
		if (w->db_down) {
			nap(w, 1000);
			w->last_bounds_ms = 0; /* try the database again at once */
			continue;
		}
		if (now < w->next_try_ms) {
			nap(w, w->next_try_ms - now < 500 ? w->next_try_ms - now : 500);
			continue;
		}
		if (w->nmarks == OUTPUT_MARKS_MAX) {
			nap(w, 50);
			continue;
		}
		if (store_audits_after(w->st, w->sent, OUTPUT_BATCH, w->items, &n, &err) < 0) {
			db_failed(w, err.msg);
			continue;
		}
		db_ok(w);
		if (n == 0) {
			/* Caught up: confirm what is due, then look again after a pause. */
			int64_t wait = OUTPUT_POLL_MS;

			if (w->nmarks > 0) {
				int64_t due = w->marks[0].t_ms + w->sink.ops->confirm_ms - now;

				if (due < wait)
					wait = due > 0 ? due : 0;
			}
			nap(w, wait);
			continue;
		}
		deliver(w, n);
		free_items(w, n);
		confirm(w, mono_ms());
	}
	/* Stopping: what is delivered is saved, and the lease given up. */
	if (w->claimed) {
		vigil_err err = {0};

		confirm(w, mono_ms());
		save(w, mono_ms(), true);
		if (w->claimed &&
		    output_store_release(w->st, w->conf.name, w->outs->owner, &err) < 0)
			log_warn("output %s: could not give up its lease (another console waits"
				 " %d s for it): %s",
				 w->conf.name, OUTPUT_LEASE_S, err.msg);
	}
	w->sink.ops->close(&w->sink);
	return NULL;
}

/* /metrics: what only this process knows of its sinks. */
static void collect(struct prom_buf *b, void *arg)
{
	struct outputs *o = arg;

	if (o->n == 0)
		return;
	prom_family(b, "vigil_output_active", "gauge",
		    "1 when this console delivers the output (holds its lease), 0 when another"
		    " console does");
	for (size_t i = 0; i < o->n; i++) {
		const char *l[] = {"sink", o->w[i].conf.name, "kind", kind_of(&o->w[i]), NULL};

		prom_sample(b, "vigil_output_active", l, atomic_load(&o->w[i].active) ? 1 : 0);
	}
	prom_family(b, "vigil_output_up", "gauge",
		    "1 when the output's last attempt to deliver worked, 0 while it fails");
	for (size_t i = 0; i < o->n; i++) {
		const char *l[] = {"sink", o->w[i].conf.name, "kind", kind_of(&o->w[i]), NULL};

		prom_sample(b, "vigil_output_up", l, atomic_load(&o->w[i].up) ? 1 : 0);
	}
	prom_family(b, "vigil_output_failures_total", "counter",
		    "Failed attempts to deliver (connect, write, answers 408, 429, 5xx) since the"
		    " console started");
	for (size_t i = 0; i < o->n; i++) {
		const char *l[] = {"sink", o->w[i].conf.name, "kind", kind_of(&o->w[i]), NULL};

		prom_sample_u(b, "vigil_output_failures_total", l,
			      atomic_load(&o->w[i].failures_total));
	}
}

static int sink_init(struct worker *w, const char *hostname, vigil_err *err)
{
	w->sink.conf = &w->conf;
	snprintf(w->sink.hostname, sizeof(w->sink.hostname), "%s", hostname);
	switch (w->conf.kind) {
	case OUTPUT_SYSLOG:
		return sink_syslog_init(&w->sink, err);
	case OUTPUT_JSONL:
		return sink_jsonl_init(&w->sink, err);
	case OUTPUT_WEBHOOK:
		return sink_webhook_init(&w->sink, err);
	}
	return verr_set(err, -EINVAL, "unknown output kind");
}

struct outputs *outputs_start(const struct outputs_opts *opts, vigil_err *err)
{
	struct outputs *o = calloc(1, sizeof(*o));
	pthread_condattr_t ca;
	int rc;

	if (o == NULL) {
		verr_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&o->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&o->cond, &ca);
	pthread_condattr_destroy(&ca);
	snprintf(o->owner, sizeof(o->owner), "%s", opts->owner);
	if (opts->confs->n == 0)
		return o;
	o->w = calloc(opts->confs->n, sizeof(*o->w));
	if (o->w == NULL) {
		verr_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < opts->confs->n; i++) {
		struct worker *w = &o->w[i];

		w->outs = o;
		w->conf = opts->confs->v[i];
		atomic_store(&w->up, true); /* until an attempt fails: an idle sink is no alarm */
		o->n++;
		if ((rc = sink_init(w, opts->hostname != NULL ? opts->hostname : "", err)) < 0) {
			char msg[sizeof(err->msg)];

			snprintf(msg, sizeof(msg), "%s", err->msg);
			verr_set(err, rc, "output %s (line %d): %s", w->conf.name, w->conf.line,
				 msg);
			goto fail;
		}
		if ((w->st = store_open(opts->dsn, err)) == NULL ||
		    store_set_option(w->st, "synchronous_commit", "off", err) < 0 ||
		    store_set_statement_timeout(w->st, OUTPUT_STATEMENT_TIMEOUT_MS, err) < 0)
			goto fail;
	}
	for (size_t i = 0; i < o->n; i++) {
		if ((rc = pthread_create(&o->w[i].thread, NULL, worker_main, &o->w[i])) != 0) {
			verr_set(err, -rc, "cannot start the thread of output %s: %s",
				 o->w[i].conf.name, strerror(rc));
			goto fail;
		}
		o->w[i].started = true;
	}
	o->registered = prom_register(collect, o) == 0;
	return o;
fail:
	outputs_stop(o);
	return NULL;
}

/* Lock-free, hence safe in a signal handler. */
static atomic_uint reopen_count;
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "outputs_reopen must be async-signal-safe");

void outputs_reopen(void)
{
	atomic_fetch_add(&reopen_count, 1);
}

unsigned outputs_reopen_count(void)
{
	return atomic_load(&reopen_count);
}

void outputs_stop(struct outputs *o)
{
	if (o == NULL)
		return;
	if (o->registered)
		prom_unregister(collect, o);
	pthread_mutex_lock(&o->lock);
	atomic_store(&o->stop, true);
	pthread_cond_broadcast(&o->cond);
	pthread_mutex_unlock(&o->lock);
	for (size_t i = 0; i < o->n; i++) {
		struct worker *w = &o->w[i];

		if (!w->started)
			continue;
		/* A receiver's wait ends at once; again until the thread is out (a race with it).
		 */
		for (;;) {
			struct timespec ts;

			if (w->sink.ops != NULL && w->sink.ops->cancel != NULL)
				w->sink.ops->cancel(&w->sink);
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 100 * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			if (pthread_timedjoin_np(w->thread, NULL, &ts) == 0)
				break;
		}
	}
	for (size_t i = 0; i < o->n; i++) {
		if (o->w[i].sink.ops != NULL && o->w[i].sink.ops->free != NULL)
			o->w[i].sink.ops->free(&o->w[i].sink);
		store_close(o->w[i].st);
	}
	free(o->w);
	pthread_cond_destroy(&o->cond);
	pthread_mutex_destroy(&o->lock);
	free(o);
}
