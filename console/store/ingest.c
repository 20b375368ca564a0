/* SPDX-License-Identifier: Apache-2.0 */
#include "store/ingest.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json_check.h"
#include "store/ingest_stats.h"
#include "store/storage_state.h"
#include "store/store_priv.h"

/* Whether the database will take this event: a JSON object it reads back, UTF-8 comm, pids in
 * range. */
static bool event_acceptable(const struct store_event *e)
{
	if (e->json == NULL || strlen(e->json) > INGEST_JSON_MAX)
		return false;
	/* pid and ppid are integer columns. */
	if (e->pid > INT32_MAX || e->ppid > INT32_MAX)
		return false;
	/* The check ingest_copy_events makes of each body (migration 17). */
	if (!json_check_object(e->json, strlen(e->json)))
		return false;
	/* comm must be UTF-8 as well. */
	json_t *c = json_string(e->comm != NULL ? e->comm : "");
	if (c == NULL)
		return false;
	json_decref(c);
	return true;
}

static int add_audit(struct store *st, const char *host_id, const char *kind, const char *severity,
		     const char *summary, json_t *detail, vigil_err *err)
{
	static const char sql[] = "INSERT INTO audits (host_id, kind, severity, summary, detail)"
				  " VALUES ($1, $2, $3, $4, $5::jsonb)";
	char *text = json_dumps(detail, JSON_COMPACT);
	const char *params[5] = {host_id, kind, severity, summary, text};
	int rc;

	json_decref(detail);
	if (text == NULL)
		return verr_set(err, -ENOMEM, "out of memory");
	rc = store_cmd(st, "recording an audit", sql, 5, params, false, err);
	free(text);
	return rc;
}

/*
 * Record gap reports, each (host, range, reason) once however often the
 * defender repeats it.  Caller holds the lock.
 */
static int store_gaps(struct store *st, const char *host_id, uint64_t incarnation,
		      const struct store_gap *gaps, size_t ngaps, vigil_err *err)
{
	static const char sql[] =
	    "INSERT INTO audits (host_id, kind, severity, summary, detail)"
	    " SELECT $1, 'delivery_gap', 'high', $2, jsonb_build_object('first_seq', $3::bigint,"
	    " 'last_seq', $4::bigint, 'count', $5::bigint, 'reason', $6::text,"
	    " 'incarnation', $7::bigint)"
	    " WHERE NOT EXISTS (SELECT 1 FROM audits WHERE host_id = $1 AND kind = 'delivery_gap'"
	    " AND (detail->>'first_seq')::bigint = $3::bigint"
	    " AND (detail->>'last_seq')::bigint = $4::bigint AND detail->>'reason' = $6::text"
	    " AND coalesce((detail->>'incarnation')::bigint, 0) = $7::bigint)";
	char inc[24];
	int rc = 0;

	snprintf(inc, sizeof(inc), "%" PRIu64, incarnation);
	for (size_t i = 0; i < ngaps && rc == 0; i++) {
		const struct store_gap *g = &gaps[i];
		char summary[256], first[24], last[24], count[24];
		const char *reason = g->reason ? g->reason : "unknown";
		const char *params[7] = {host_id, summary, first, last, count, reason, inc};

		snprintf(summary, sizeof(summary),
			 "defender dropped %" PRIu64 " batch(es), seq %" PRIu64 "..%" PRIu64
			 " (%s): events in them are lost",
			 g->count, g->first_seq, g->last_seq, reason);
		snprintf(first, sizeof(first), "%" PRIu64, g->first_seq);
		snprintf(last, sizeof(last), "%" PRIu64, g->last_seq);
		snprintf(count, sizeof(count), "%" PRIu64, g->count);
		rc = store_cmd(st, "recording a delivery gap", sql, 7, params, true, err);
	}
	return rc;
}

/*
 * One audit for what a batch had to leave out, the same shape for events the
 * database refused (malformed_events) and learning items that broke the
 * rules (malformed_input): detail {seq, count[, problems]}.  Caller holds the
 * lock, inside the batch's transaction.
 */
static int audit_left_out(struct store *st, const char *host_id, uint64_t seq, const char *kind,
			  const char *summary, size_t count, json_t *problems, vigil_err *err)
{
	json_t *detail = json_pack("{s:I,s:I}", "seq", (json_int_t)seq, "count", (json_int_t)count);

	if (detail != NULL && problems != NULL)
		json_object_set(detail, "problems", problems);
	if (detail == NULL)
		return verr_set(err, -ENOMEM, "out of memory");
	return add_audit(st, host_id, kind, "medium", summary, detail, err);
}

/*
 * The batch being claimed is the first of (host, incarnation)?  Then record
 * the stream, and when the host had another one before, audit the reset
 * with what the console knows of the old stream: its last stored batch and
 * how many below it never arrived.  Concurrent first batches of one stream
 * wait on the key, so the reset is audited once.  Caller holds the lock,
 * inside the batch's transaction.
 */
/* FNV-1a of host_id, never 0 (0 marks an empty cache slot). */
static uint64_t host_hash(const char *host_id)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (const unsigned char *p = (const unsigned char *)host_id; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	return h | 1;
}

static size_t stream_slot(uint64_t hh, uint64_t incarnation)
{
	return (size_t)((hh ^ (incarnation * 0x9e3779b97f4a7c15ull)) % STORE_STREAMS_KNOWN);
}

/*
 * Whether (host, incarnation) is known to be in delivery_streams, so that its
 * batches skip the INSERT there (a statement per batch cost 3-6% of ingest).
 * A wrong "known" needs two hosts with equal 64-bit hashes and equal random
 * incarnations.  Caller holds the lock.
 */
static bool stream_known(const struct store *st, const char *host_id, uint64_t incarnation)
{
	uint64_t hh = host_hash(host_id);
	size_t i = stream_slot(hh, incarnation);

	return st->streams_known[i].host_hash == hh &&
	       st->streams_known[i].incarnation == incarnation;
}

/* After the COMMIT that recorded it (a rolled-back stream row must not be cached). */
static void stream_remember(struct store *st, const char *host_id, uint64_t incarnation)
{
	uint64_t hh = host_hash(host_id);
	size_t i = stream_slot(hh, incarnation);

	st->streams_known[i].host_hash = hh;
	st->streams_known[i].incarnation = incarnation;
}

static int stream_register(struct store *st, const char *host_id, uint64_t incarnation,
			   int *ret_new, vigil_err *err)
{
	static const char add[] = "INSERT INTO delivery_streams (host_id, incarnation)"
				  " VALUES ($1, $2::bigint) ON CONFLICT DO NOTHING RETURNING 1";
	static const char prev[] =
	    "SELECT s.incarnation, coalesce(max(b.seq), 0), count(b.seq),"
	    " coalesce(" TS_UTC("max(b.received_at)") ", '')"
						      " FROM (SELECT incarnation FROM "
						      "delivery_streams WHERE host_id = $1"
						      " AND incarnation <> $2::bigint ORDER BY "
						      "first_seen DESC LIMIT 1) s"
						      " LEFT JOIN batches b ON b.host_id = $1 AND "
						      "b.incarnation = s.incarnation"
						      " GROUP BY s.incarnation";
	char inc[24], summary[512];
	const char *params[2] = {host_id, inc};
	PGresult *r = NULL;
	json_t *detail;
	int rc;

	*ret_new = 0;
	snprintf(inc, sizeof(inc), "%" PRIu64, incarnation);
	if ((rc = store_exec(st, "recording a delivery stream", add, 2, params, PGRES_TUPLES_OK,
			     false, &r, err)) < 0)
		return rc;
	bool added = PQntuples(r) == 1;
	PQclear(r);
	if (!added)
		return 0;
	if ((rc = store_exec(st, "looking up the previous delivery stream", prev, 2, params,
			     PGRES_TUPLES_OK, false, &r, err)) < 0)
		return rc;
	if (PQntuples(r) == 0) {
		PQclear(r); /* the host's first stream */
		return 0;
	}
	long long old = atoll(PQgetvalue(r, 0, 0)), last = atoll(PQgetvalue(r, 0, 1));
	long long stored = atoll(PQgetvalue(r, 0, 2));
	snprintf(summary, sizeof(summary),
		 "defender state reset: a new delivery stream started at seq 1; the old one's"
		 " last stored batch was %lld, %lld batch(es) below it never arrived, and"
		 " whatever it had not sent yet is lost",
		 last, last - stored);
	detail = json_pack("{s:I,s:I,s:I,s:I,s:I,s:s}", "incarnation", (json_int_t)incarnation,
			   "old_incarnation", (json_int_t)old, "old_last_seq", (json_int_t)last,
			   "old_batches_stored", (json_int_t)stored, "old_batches_missing",
			   (json_int_t)(last - stored), "old_last_received", PQgetvalue(r, 0, 3));
	PQclear(r);
	if (detail == NULL)
		return verr_set(err, -ENOMEM, "out of memory");
	if ((rc = add_audit(st, host_id, "defender_reset", "high", summary, detail, err)) < 0)
		return rc;
	*ret_new = 1;
	return 0;
}

/* How one attempt at a batch's transaction goes. */
struct attempt {
	const bool *skip; /* events to leave out, or NULL */
	size_t nskipped;
	bool learning;		 /* write activity, deviations and model deltas */
	const char *refused_why; /* without learning: why the database refused it */
};

static bool has_learning(const struct ingest_batch *b)
{
	for (size_t i = 0; i < b->nevents; i++)
		if (b->events[i].activity != NULL)
			return true;
	return b->ndeviations > 0 || b->ndeltas > 0;
}

/* Record the attempt's left-out items; caller holds the lock, inside the transaction. */
static int audit_attempt(struct store *st, const char *host_id, uint64_t seq,
			 const struct attempt *a, struct ingest_problems *p, vigil_err *err)
{
	char summary[512];
	int rc = 0;

	if (a->nskipped > 0) {
		snprintf(summary, sizeof(summary),
			 "%zu event(s) in batch %" PRIu64
			 " were not valid JSON/UTF-8 and were left out",
			 a->nskipped, seq);
		rc = audit_left_out(st, host_id, seq, "malformed_events", summary, a->nskipped,
				    NULL, err);
	}
	if (rc == 0 && p->count > 0) {
		snprintf(summary, sizeof(summary),
			 "%zu malformed item(s) in batch %" PRIu64 " were left out; first: %s",
			 p->count, seq, p->first);
		rc = audit_left_out(st, host_id, seq, "malformed_input", summary, p->count, p->list,
				    err);
	}
	return rc;
}

/* The learning part of a batch, in its transaction; counts go into res. */
static int ingest_learning(struct store *st, const char *host_id, const struct ingest_batch *b,
			   const struct attempt *a, struct ingest_problems *p,
			   struct ingest_result *res, vigil_err *err)
{
	int rc;

	if (!a->learning) {
		char why[600];
		size_t n = b->ndeviations + b->ndeltas;

		for (size_t i = 0; i < b->nevents; i++)
			n += b->events[i].activity != NULL;
		if (n == 0)
			return 0;
		snprintf(why, sizeof(why), "the database refused the batch's learning data: %s",
			 a->refused_why);
		store_utf8_trim(why);
		problems_add(p, "batch", why);
		p->count += n - 1; /* one line for all of them */
		return 0;
	}
	rc = ingest_copy_activity(st, host_id, b->events, b->nevents, a->skip, p, &res->activity,
				  err);
	if (rc == 0)
		rc = learning_store_deviations(st, host_id, b->deviations, b->ndeviations, p,
					       &res->deviations, err);
	if (rc == 0)
		rc = learning_store_deltas(st, host_id, b->deltas, b->ndeltas, p, &res->deltas,
					   &res->entries, err);
	return rc;
}

/* One attempt at the whole transaction. */
static int ingest_once(struct store *st, const char *host_id, uint64_t seq,
		       const struct ingest_batch *b, const struct attempt *a,
		       struct ingest_result *res, vigil_err *err)
{
	static const char claim[] =
	    "INSERT INTO batches (host_id, seq, n_events, incarnation) VALUES ($1,"
	    " $2::bigint, $3::integer, $4::bigint) ON CONFLICT DO NOTHING RETURNING 1";
	struct ingest_problems p = {0};
	char seqtext[24], ntext[24], inctext[24];
	const char *params[4] = {host_id, seqtext, ntext, inctext};
	int new_stream = 0;
	PGresult *r = NULL;
	int rc;

	memset(res, 0, sizeof(*res));
	snprintf(seqtext, sizeof(seqtext), "%" PRIu64, seq);
	snprintf(ntext, sizeof(ntext), "%zu", b->nevents - a->nskipped);
	snprintf(inctext, sizeof(inctext), "%" PRIu64, b->incarnation);
	if ((rc = store_cmd(st, "starting a batch", "BEGIN", 0, NULL, true, err)) < 0)
		return rc;
	rc = store_exec(st, "claiming a batch", claim, 4, params, PGRES_TUPLES_OK, false, &r, err);
	if (rc < 0)
		goto rollback;
	if (PQntuples(r) == 0) {
		/* Committed before: a resend.  Acknowledge without writing twice. */
		PQclear(r);
		res->duplicate = 1;
		return store_cmd(st, "finishing a batch", "COMMIT", 0, NULL, false, err);
	}
	PQclear(r);
	if (!stream_known(st, host_id, b->incarnation) &&
	    (rc = stream_register(st, host_id, b->incarnation, &new_stream, err)) < 0)
		goto rollback;
	if (b->nevents > a->nskipped &&
	    (rc = ingest_copy_events(st, host_id, seq, b->events, b->nevents, a->skip, err)) < 0)
		goto rollback;
	if ((rc = ingest_learning(st, host_id, b, a, &p, res, err)) < 0)
		goto rollback;
	if (b->ngaps > 0 &&
	    (rc = store_gaps(st, host_id, b->incarnation, b->gaps, b->ngaps, err)) < 0)
		goto rollback;
	if ((rc = audit_attempt(st, host_id, seq, a, &p, err)) < 0)
		goto rollback;
	if ((rc = store_cmd(st, "committing a batch", "COMMIT", 0, NULL, false, err)) < 0)
		goto out;
	stream_remember(st, host_id, b->incarnation);
	res->stored = b->nevents - a->nskipped;
	/* New data went to disk: the disk takes data again, if it was full. */
	if (res->stored > 0)
		storage_state_ok();
	res->refused = a->nskipped;
	res->malformed = p.count;
	res->new_stream = new_stream;
	goto out;
rollback:
	if (PQstatus(st->conn) == CONNECTION_OK) {
		PGresult *rb = PQexec(st->conn, "ROLLBACK");
		PQclear(rb);
	}
	memset(res, 0, sizeof(*res));
out:
	problems_reset(&p);
	return rc;
}

int store_ingest_batch(struct store *st, const char *host_id, uint64_t seq,
		       const struct store_event *events, size_t nevents,
		       const struct store_gap *gaps, size_t ngaps, struct ingest_result *res,
		       vigil_err *err)
{
	const struct ingest_batch b = {
	    .events = events, .nevents = nevents, .gaps = gaps, .ngaps = ngaps};

	return store_ingest(st, host_id, seq, &b, res, err);
}

/* -EINVAL unless the batch is within the limits that protect the console. */
static int check_limits(uint64_t seq, const struct ingest_batch *b, vigil_err *err)
{
	size_t entries = 0;

	if (b->nevents > INGEST_EVENTS_MAX || b->ngaps > INGEST_GAPS_MAX ||
	    b->ndeviations > INGEST_DEVIATIONS_MAX || b->ndeltas > INGEST_DELTAS_MAX)
		return verr_set(err, -EINVAL,
				"batch of %zu events, %zu gaps, %zu deviations and %zu model deltas"
				" is over the limits",
				b->nevents, b->ngaps, b->ndeviations, b->ndeltas);
	if ((b->nevents > 0 && b->events == NULL) || (b->ngaps > 0 && b->gaps == NULL) ||
	    (b->ndeviations > 0 && b->deviations == NULL) || (b->ndeltas > 0 && b->deltas == NULL))
		return verr_set(err, -EINVAL, "batch arrays missing");
	for (size_t i = 0; i < b->ndeltas; i++)
		entries += b->deltas[i].nentries;
	if (entries > INGEST_ENTRIES_MAX)
		return verr_set(err, -EINVAL, "batch of %zu model entries is over the limit of %d",
				entries, INGEST_ENTRIES_MAX);
	if (seq > (uint64_t)INT64_MAX)
		return verr_set(err, -EINVAL, "batch sequence number %" PRIu64 " is out of range",
				seq);
	if (b->incarnation > (uint64_t)INT64_MAX)
		return verr_set(err, -EINVAL, "delivery stream %" PRIu64 " is out of range",
				b->incarnation);
	return 0;
}

int store_ingest(struct store *st, const char *host_id, uint64_t seq, const struct ingest_batch *b,
		 struct ingest_result *res, vigil_err *err)
{
	struct attempt a = {.learning = true};
	bool *skip = NULL;
	int rc;

	memset(res, 0, sizeof(*res));
	if ((rc = check_limits(seq, b, err)) < 0)
		return rc;
	if (seq == 0) {
		/* Gap reports travel alone, outside the sequence (see delivery.c). */
		if (b->nevents > 0 || has_learning(b))
			return verr_set(err, -EINVAL, "events without a batch sequence number");
		pthread_mutex_lock(&st->lock);
		rc = store_gaps(st, host_id, b->incarnation, b->gaps, b->ngaps, err);
		pthread_mutex_unlock(&st->lock);
		return rc;
	}
	pthread_mutex_lock(&st->lock);
	rc = ingest_once(st, host_id, seq, b, &a, res, err);
	if (rc == -EEXIST)
		/*
		 * A day's partition attached while this COPY routed chunks of
		 * that day to the default partition (23514, retention.h): the
		 * new partition is there now.  Anything else of class 23 fails
		 * again the same way.
		 */
		rc = ingest_once(st, host_id, seq, b, &a, res, err);
	if (rc == -EINVAL) {
		/* The database refused some event's data: find and leave out the bad ones. */
		skip = calloc(b->nevents ? b->nevents : 1, sizeof(bool));
		if (skip == NULL) {
			rc = verr_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		a.skip = skip;
		for (size_t i = 0; i < b->nevents; i++)
			if (!event_acceptable(&b->events[i])) {
				skip[i] = true;
				a.nskipped++;
			}
		if (a.nskipped > 0)
			rc = ingest_once(st, host_id, seq, b, &a, res, err);
	}
	if (rc == -EINVAL && has_learning(b)) {
		/*
		 * Still refused: something in the learning data passed our checks
		 * but not the database's.  Store the events without it, and say so.
		 */
		char why[sizeof(err->msg)];

		snprintf(why, sizeof(why), "%s", err != NULL ? err->msg : "invalid data");
		a.learning = false;
		a.refused_why = why;
		rc = ingest_once(st, host_id, seq, b, &a, res, err);
	}
out:
	pthread_mutex_unlock(&st->lock);
	free(skip);
	if (rc == 0)
		ingest_stats_add(res); /* GET /metrics: vigil_events_ingested_total */
	return rc;
}

int store_batch_refused(struct store *st, const char *host_id, uint64_t incarnation, uint64_t seq,
			const char *why, vigil_err *err)
{
	static const char sql[] =
	    "INSERT INTO audits (host_id, kind, severity, summary, detail)"
	    " SELECT $1, 'batch_refused', 'high', $2, jsonb_build_object('incarnation',"
	    " $3::bigint, 'seq', $4::bigint, 'why', $5::text)"
	    " WHERE NOT EXISTS (SELECT 1 FROM audits WHERE host_id = $1 AND kind = 'batch_refused'"
	    " AND (detail->>'incarnation')::bigint = $3::bigint"
	    " AND (detail->>'seq')::bigint = $4::bigint)";
	char summary[512], inc[24], seqtext[24];
	const char *params[5] = {host_id, summary, inc, seqtext, why};
	int rc;

	if (incarnation > (uint64_t)INT64_MAX || seq > (uint64_t)INT64_MAX)
		return verr_set(err, -EINVAL,
				"batch %" PRIu64 " of stream %" PRIu64 " is out of range", seq,
				incarnation);
	snprintf(summary, sizeof(summary),
		 "batch %" PRIu64 " was refused for good (%s): what it carried is lost", seq, why);
	store_utf8_trim(summary);
	snprintf(inc, sizeof(inc), "%" PRIu64, incarnation);
	snprintf(seqtext, sizeof(seqtext), "%" PRIu64, seq);
	pthread_mutex_lock(&st->lock);
	rc = store_cmd(st, "recording a refused batch", sql, 5, params, true, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}
