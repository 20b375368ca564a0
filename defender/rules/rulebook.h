/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_RULEBOOK_H
#define VIGIL_DEFENDER_RULEBOOK_H

/*
 * The rule set this defender enforces: received from a console (Reply.rules,
 * compiled for this host), checked again with the console's own parser
 * (console/rules), kept on disk, and handed to the rest of the defender as
 * read-only snapshots.
 *
 * On disk: <state_dir>/rules.json, the export form of console/rules
 * (rule_set.h): {"format": "vigil-rules/1", "version": V, "rules": [...]},
 * written atomically (temporary file, fsync, rename).  It is read back as
 * hostile input: at most RULEBOOK_FILE_MAX bytes, a regular file, JSON
 * without duplicate keys, a version >= 1, every rule parsed and checked
 * again; anything else is refused whole and the defender starts with no
 * rules (version 0), as if the file were not there.
 *
 * An offered set is taken when its version is newer than the one held and
 * every rule parses; otherwise it is refused with a reason, which the
 * defender reports (rulebook_state) until it takes a newer version.  A set
 * that cannot be written to disk is still taken (enforced now; the next
 * start has the previous file).
 *
 * Snapshots: rulebook_get returns the current set with a reference held;
 * the caller reads it without a lock, as long as it likes, and gives it back
 * with ruleset_put.  A new set is swapped in under the rulebook's lock; the
 * old one is freed when its last reader puts it.  Library code: nothing is
 * logged here, results say what happened.
 *
 * Threads: rulebook_offer from one thread (the session); rulebook_get,
 * ruleset_put and rulebook_state from any.
 */

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "rules/rule_set.h"

#define RULEBOOK_FILE "rules.json"
/*
 * What a console can send fits in a reply (VIGIL_MSG_MAX, 1 MiB); the file
 * holds the same rules in the same canonical form, with room to spare.
 */
#define RULEBOOK_FILE_MAX (2 * 1024 * 1024)
#define RULEBOOK_WHY_MAX  512

/* One version of the rule set, read-only once published. */
struct ruleset {
	int64_t version;     /* 0: no rule set */
	size_t total;	     /* rules in the console's whole set (0 when read from disk) */
	struct rule_set set; /* the rules for this host, in order */
	atomic_int refs;     /* rulebook's business */
};

struct rulebook;

/* What rulebook_open found on disk. */
enum rulebook_load {
	RULEBOOK_LOAD_NONE = 0, /* no file: version 0 */
	RULEBOOK_LOAD_OK,	/* the cached set is the current one */
	RULEBOOK_LOAD_REFUSED,	/* the file was refused (why): version 0 */
};

/*
 * A rulebook on state_dir (copied), holding what <state_dir>/rules.json
 * has when it is acceptable.  *ret_load says what was found, why (at least
 * RULEBOOK_WHY_MAX bytes) why a file was refused.  NULL only when out of
 * memory.
 */
struct rulebook *rulebook_open(const char *state_dir, enum rulebook_load *ret_load, char *why,
			       size_t whylen);

/* The current set with a reference (never NULL); give it back with ruleset_put. */
const struct ruleset *rulebook_get(struct rulebook *rb);

/* Give back a reference from rulebook_get.  Accepts NULL. */
void ruleset_put(const struct ruleset *s);

/* What rulebook_offer did. */
enum rulebook_offer {
	RULEBOOK_HELD = 0,	/* that version is the one held: nothing to do */
	RULEBOOK_TAKEN,		/* taken and written to disk */
	RULEBOOK_TAKEN_UNSAVED, /* taken, but the file could not be written (why) */
	RULEBOOK_REFUSED,	/* not taken (why); reported until a newer one is taken */
};

/*
 * A set from a console: version, n rule texts (canonical JSON of one rule
 * each) in order, total the console's whole set.  Returns an enum
 * rulebook_offer; why gets the reason of a refusal or of a failed save.
 * Refused: version 0 or older than the one held, over RULES_MAX rules, a
 * text over RULE_JSON_MAX, a rule that does not parse, names given twice.
 */
int rulebook_offer(struct rulebook *rb, int64_t version, size_t total, const char *const *texts,
		   size_t n, char *why, size_t whylen);

/*
 * What to report: the version held, and the last version refused since it
 * was taken (0: none) with the reason (into reason, len bytes).
 */
void rulebook_state(struct rulebook *rb, uint64_t *ret_version, uint64_t *ret_refused, char *reason,
		    size_t len);

/* Free rb; sets still referenced live until put.  Accepts NULL. */
void rulebook_free(struct rulebook *rb);

/*
 * Read and check a cached file (above) into *ret (a new set with one
 * reference; ruleset_put it).  -EINVAL (why says what is wrong), -ENOENT
 * when there is no file, other negative errnos for I/O (why).
 */
int rulebook_read_file(const char *path, struct ruleset **ret, char *why, size_t whylen);

/* Write s to path in the cached form, atomically.  why on failure. */
int rulebook_write_file(const char *path, const struct ruleset *s, char *why, size_t whylen);

#endif
