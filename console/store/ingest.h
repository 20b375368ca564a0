/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_INGEST_H
#define VIGIL_CONSOLE_INGEST_H

/*
 * Committing defenders' batches: each (host, incarnation, seq) is stored exactly once,
 * in one transaction with its events (COPY), its interactive activity
 * (COPY), its gap audits, its deviations (audits) and its model deltas,
 * however often the defender resends it.  The listener acknowledges a batch
 * only after store_ingest returned 0.
 *
 * Everything in a batch is hostile input.  A batch over the limits below is
 * refused whole (-EINVAL).  Inside the limits, an item that breaks the rules
 * (see learning_store.h) is left out and the batch stored without it: one
 * "malformed_input" audit per batch lists what was left out and why, so a
 * bad item can neither block a host's delivery nor vanish silently.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "store/store.h"

/* Batches with more than these are refused before they reach the database. */
#define INGEST_EVENTS_MAX     10000
#define INGEST_GAPS_MAX	      64
#define INGEST_JSON_MAX	      (64 * 1024)
#define INGEST_DEVIATIONS_MAX 10000
#define INGEST_DELTAS_MAX     1024
/* Model entries over all deltas of a batch (one delta may have LEARN_DELTA_ENTRIES_MAX). */
#define INGEST_ENTRIES_MAX 200000

/* What an interactive session's event adds to the activity log. */
struct store_activity {
	uint32_t session; /* pid of the session's root */
	const char *user;
	const char *tty;
	const char *summary;
};

struct store_event {
	uint32_t type; /* enum ev_type */
	uint64_t ts_ns;
	uint32_t pid, ppid, uid;
	const char *comm;
	const char *json;		       /* the event as a JSON object */
	const struct store_activity *activity; /* NULL unless an interactive session's */
};

/* One process of a deviation's chain, the acting process first. */
struct store_chain_link {
	uint32_t pid;
	const char *comm;
	const char *exe;
};

/*
 * A service in an active model did something its model does not have, or a
 * process in a rule's scope did what a rule's deny list names (kinds
 * denied_*; Deviation).  Strings may be NULL ("").  Besides the rules in
 * learning_store.h: service may be empty for the denied_* kinds only (an
 * interactive process); effect and wanted are alert, prevent, block or "";
 * rule is "" or a rule's name (rules/rule.h: rule_check_name); why is
 * UTF-8 of at most RULE_GLOB_MAX bytes.  Stored: rule and effect ("" as
 * alert) as columns of the audit, wanted and why in its detail when set.
 */
struct store_deviation {
	uint64_t ts_ns;
	const char *service;
	const char *exe;
	const char *kind;
	const char *object;
	const char *raw;
	const char *expected;
	const char *severity;
	uint32_t pid;
	const struct store_chain_link *chain; /* may be NULL when nchain is over the limit */
	size_t nchain;
	const char *rule;   /* the rule that decided; "": none */
	const char *effect; /* applied: alert, prevent, block; "": alert */
	const char *wanted; /* the rule's effect when a lesser one was applied; "": as wanted */
	const char *why;    /* the list entry that matched, or why wanted was not applied */
	/*
	 * The process's container ("" or NULL: none or not known): id 64
	 * lowercase hex; name, image (LEARN_CONTAINER_MAX bytes of printable
	 * ASCII) and runtime as its runtime recorded them.  Stored as columns.
	 */
	const char *container_id;
	const char *container_name;
	const char *container_image;
	const char *container_runtime;
};

/* One entry of a model (ModelEntry): values, not increments. */
struct store_model_entry {
	const char *exe;
	const char *kind;
	const char *pattern;
	uint64_t first_seen_ms, last_seen_ms, count;
	bool removed;
};

/* A change to one (host, service) model (ModelDelta). */
struct store_model_delta {
	const char *service;
	const char *state;
	uint64_t learning_since_ms, active_since_ms; /* 0: not set */
	uint64_t learn_until_ms; /* while learning: the window's end; 0: unknown */
	uint64_t learn_drops;
	const char *note;
	bool reset;				 /* drop every stored entry before applying these */
	const struct store_model_entry *entries; /* may be NULL when nentries is over the limit */
	size_t nentries;
};

struct store_gap {
	uint64_t first_seq, last_seq, count;
	const char *reason;
};

/* Everything one batch carries; the arrays are read, never kept. */
struct ingest_batch {
	/*
	 * The defender's delivery stream (Envelope.incarnation, at most
	 * INT64_MAX; 0 for a defender from before streams): seqs are numbered
	 * within it, and the first batch of a host's new stream is audited
	 * (defender_reset: its state was lost and it started over).
	 */
	uint64_t incarnation;
	const struct store_event *events;
	size_t nevents;
	const struct store_gap *gaps;
	size_t ngaps;
	const struct store_deviation *deviations;
	size_t ndeviations;
	const struct store_model_delta *deltas;
	size_t ndeltas;
};

struct ingest_result {
	size_t stored;	   /* events written */
	size_t refused;	   /* events that were not valid JSON/UTF-8, left out and audited */
	int duplicate;	   /* 1: this (host, seq) was already committed; nothing written */
	size_t activity;   /* activity rows written */
	size_t deviations; /* deviation audits written */
	size_t deltas;	   /* model deltas applied */
	size_t entries;	   /* model entries upserted or removed */
	size_t malformed;  /* activities, deviations, deltas and entries left out (audited) */
	int new_stream;	   /* 1: the first batch of a stream that replaced another (audited) */
};

/*
 * Commit batch (host_id, seq).  Returns 0 (committed now, or already stored:
 * see res->duplicate), -EINVAL for a batch over the limits, -ECONNRESET when
 * the database is unreachable (the caller answers "retry"), or another
 * negative errno.  Events that the database refuses (bad JSON, bad UTF-8)
 * are left out and reported as one "malformed_events" audit, so one bad
 * event cannot block a host's delivery forever.
 */
int store_ingest_batch(struct store *st, const char *host_id, uint64_t seq,
		       const struct store_event *events, size_t nevents,
		       const struct store_gap *gaps, size_t ngaps, struct ingest_result *res,
		       vigil_err *err);

/*
 * store_ingest_batch for a whole batch, learning data included.  Same
 * returns.  Malformed activity, deviations, deltas and entries are left out
 * (res->malformed) and listed in one "malformed_input" audit.  Should the
 * database still refuse the learning data (a rule this module missed), it is
 * left out as a whole, with the database's reason in that audit, rather
 * than refusing the batch and losing its events.
 */
int store_ingest(struct store *st, const char *host_id, uint64_t seq, const struct ingest_batch *b,
		 struct ingest_result *res, vigil_err *err);

/*
 * A batch the console refuses for good (over the limits, undecodable): the
 * defender drops it, so what it carried is lost; say so once per (host,
 * incarnation, seq) as a batch_refused audit.  why is the console's own
 * text (built from names and numbers, never from the batch).
 */
int store_batch_refused(struct store *st, const char *host_id, uint64_t incarnation, uint64_t seq,
			const char *why, vigil_err *err);

#endif
