/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_RULES_STORE_H
#define VIGIL_CONSOLE_RULES_STORE_H

/*
 * The operators' rules in PostgreSQL, and the rule set's versions.
 *
 * rules holds the current rule set: one row per rule, its canonical JSON
 * (console/rules/rule.h, without id and position) in body, positions 1..n
 * dense.  Every change (add, edit, delete, move, import) is one
 * transaction that first locks the single row of rule_set (so changes from
 * every console on the database happen one after another), then writes the
 * change, then a row of rule_versions: the next version number, when, who,
 * what changed (a sentence, and the rule before and after), and the whole
 * ordered rule set as it now is (snapshot).  The same transaction sends
 * NOTIFY vigil_rules with the version as payload, which PostgreSQL
 * delivers when, and only if, it commits.  Versions are dense from 1; 0 is
 * the empty rule set before any change.  A change that changes nothing (an
 * edit to the same content, a move to the same place, an import of the
 * same set) makes no version.
 *
 * Snapshots are kept for the newest RULES_SNAPSHOTS_KEPT versions; an older
 * version keeps its row (when, who, what) and loses its snapshot.
 *
 * Bodies are taken as given: the caller (the API) has parsed and checked
 * them with console/rules and passes their canonical text.  The store
 * checks what needs the database: names unique, positions in range, the
 * rule count and the set's size, the expected version.
 *
 * Errors (besides store.h's): -ENOENT no such rule, version or import;
 * -EEXIST the name belongs to another rule (out->conflict_id); -ERANGE a
 * position past the end (out->count has the number of rules); -ESTALE the
 * rule set is no longer at w->expected_version (out->version has the
 * current one); -E2BIG over RULES_MAX rules or RULES_SET_JSON_MAX bytes;
 * -EALREADY w->request_id was used by a different kind of request;
 * -EILSEQ an import part out of order; -ENOSPC too many imports in progress.
 * Every write rolls back whole on any error.
 *
 * Locking: each function takes the store's lock for its whole transaction;
 * any thread may call.  Results are new JSON values the caller decrefs.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "error.h"
#include "store/store.h"

/* The channel NOTIFY'd with the new version after every change. */
#define RULES_NOTIFY_CHANNEL "vigil_rules"

/* Versions whose snapshot is kept. */
#define RULES_SNAPSHOTS_KEPT 1000

/* Imports in progress (parts received, last part not yet), and how long one may take. */
#define RULES_IMPORTS_MAX	16
#define RULES_IMPORT_EXPIRE_SEC 3600

/* Who asks and on what condition. */
struct rules_write {
	const char *actor;	  /* recorded as the version's "actor" ("api-token") */
	int64_t expected_version; /* -1: whatever the version is */
	/*
	 * NULL, or the request's idempotency key: a second request with the
	 * key of a change already made gets that change's outcome (replayed)
	 * instead of making it again.
	 */
	const char *request_id;
};

/* What a write did. */
struct rules_outcome {
	int64_t version;     /* the rule set's version after the call (-ESTALE: the current one) */
	bool unchanged;	     /* nothing changed, no version made */
	bool replayed;	     /* w->request_id had been seen: the first request's outcome */
	char change[512];    /* the new version's "change" sentence ("" when none was made) */
	json_t *rule;	     /* the rule after (add, edit, move) or before (delete); or NULL */
	int64_t conflict_id; /* -EEXIST: the rule that has the name */
	int count;	     /* -ERANGE: rules in the set */
	/* Imports. */
	size_t staged;	    /* rules received so far */
	json_t *result;	    /* last part: {"version", "unchanged", "rules", "added", ...} */
	char dup_name[132]; /* -EEXIST in an import: the name given twice ... */
	size_t dup_first, dup_second; /* ... at these indexes (from 0) */
};

/* Release what out holds and zero it.  Accepts NULL. */
void rules_outcome_fini(struct rules_outcome *out);

/*
 * The rule set in order: *ret_rules a new array of rules, each its stored
 * body with "id" and "position"; *ret_version the version it is.  One
 * snapshot.
 */
int store_rules_list(struct store *st, json_t **ret_rules, int64_t *ret_version, vigil_err *err);

/* One rule as store_rules_list has it, and the current version.  -ENOENT. */
int store_rule_get(struct store *st, int64_t id, json_t **ret_rule, int64_t *ret_version,
		   vigil_err *err);

/*
 * Add a rule (body: canonical JSON text of one rule) at position (1..n+1;
 * 0: last); the rules from there on move down one.
 */
int store_rule_add(struct store *st, const char *body, int position, const struct rules_write *w,
		   struct rules_outcome *out, vigil_err *err);

/* Replace rule id's body; with position > 0 also move it there (1..n). */
int store_rule_edit(struct store *st, int64_t id, const char *body, int position,
		    const struct rules_write *w, struct rules_outcome *out, vigil_err *err);

/* Delete rule id; the rules after it move up one. */
int store_rule_delete(struct store *st, int64_t id, const struct rules_write *w,
		      struct rules_outcome *out, vigil_err *err);

/* Move rule id to position (1..n); the rules between shift by one. */
int store_rule_move(struct store *st, int64_t id, int position, const struct rules_write *w,
		    struct rules_outcome *out, vigil_err *err);

/*
 * One part of an import that replaces the whole rule set in one version.
 * A rule set may be larger than one request, so it comes in parts 1, 2,
 * ... under a key the client chose; each part's rules are kept until the
 * last part arrives, which replaces the rule set by all of them in one
 * transaction: rules whose name is in the set keep their id, the others
 * are added, rules not in the set are deleted.  Repeating the part the
 * console has last received (an answer lost) changes nothing; repeating
 * the last part after it was applied returns its result (out->replayed).
 * An import left unfinished is forgotten after RULES_IMPORT_EXPIRE_SEC.
 * w->expected_version is checked when the last part is applied;
 * w->request_id is not used (the key plays its part).
 */
struct rules_import_part {
	const char *key;   /* 16..64 of [A-Za-z0-9_-], chosen by the client */
	int part;	   /* 1, 2, ... */
	bool last;	   /* apply the import after this part */
	const char *rules; /* a JSON array of canonical rule bodies (this part's) */
};
int store_rules_import(struct store *st, const struct rules_import_part *p,
		       const struct rules_write *w, struct rules_outcome *out, vigil_err *err);

/*
 * Versions, newest first: an array of {version, created_at, actor, kind,
 * rule_id (or null), change, count (rules in the set), snapshot_kept};
 * only versions below before (0: from the newest), at most limit
 * (1..1000).  *ret_version the current version.
 */
int store_rule_versions_list(struct store *st, int64_t before, int limit, json_t **ret,
			     int64_t *ret_version, vigil_err *err);

/*
 * One version: the fields of the list plus "before" and "after" (the rule,
 * or null) and "rules", the snapshot: the whole rule set as
 * store_rules_list has it, or null once it is no longer kept.  -ENOENT.
 */
int store_rule_version_get(struct store *st, int64_t version, json_t **ret, vigil_err *err);

#endif
