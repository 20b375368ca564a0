/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_MODEL_H
#define VIGIL_DEFENDER_MODEL_H

/*
 * Learned models: one per service on this host, with a section per
 * executable that lists what it does (programs it starts, files it writes,
 * files it reads, sensitive files it reads, ports it listens on, peers it
 * connects to and accepts from), each entry a generalized pattern with
 * first/last seen and a count.
 *
 * A model learns for a window (learning), then reports what it does not
 * have (active); relearn puts it back.  While learning, siblings fold into a
 * wider pattern once there are enough of them (a directory whose children
 * keep changing becomes the shape of their names, "dir/c-*.tmp", or when
 * they have none "dir/ *"; peers in one /24 the range), so tomorrow's new
 * file names and addresses are already known.  A model whose window saw
 * the kernel drop events is not promoted: it learns again and its note says
 * why.  A model learned before reads were modelled (a file of version 1)
 * stays active for everything else and learns its reads for a window of
 * their own from when it is loaded.
 *
 * Every table is bounded (models, sections, entries in all); what does not
 * fit is counted, never silently lost.  Models are saved as one JSON file
 * each under a directory and loaded at start; changes leave as deltas.
 * Single-threaded: the capture thread owns the set.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "vigil.pb-c.h"

enum model_kind {
	MK_PROGRAM,	   /* programs the executable starts */
	MK_WRITE,	   /* files it creates, writes, renames, removes, chmods */
	MK_SENSITIVE_READ, /* sensitive files it reads */
	MK_LISTEN,	   /* ports it listens on */
	MK_CONNECT,	   /* peers it connects to */
	MK_ACCEPT,	   /* peers it accepts from */
	MK_READ,	   /* files it reads (but the sensitive and the common ones) */
	MK_COUNT,
};

enum model_state { MODEL_LEARNING, MODEL_ACTIVE };

struct model_limits {
	uint64_t learn_window_ms; /* learning → active after this long */
	size_t max_models;
	size_t max_sections;	    /* per model */
	size_t max_section_entries; /* per section, deviations included */
	size_t max_entries;	    /* in all models together: the memory bound */
	unsigned fold_paths_at; /* siblings under one directory before it folds (shape or dir/ *) */
	unsigned fold_peers_at; /* addresses in one range before it folds to the range */
};

#define MODEL_LIMITS_DEFAULT                                                                       \
	((struct model_limits){.learn_window_ms = 24ull * 3600 * 1000,                             \
			       .max_models = 512,                                                  \
			       .max_sections = 128,                                                \
			       .max_section_entries = 1024,                                        \
			       .max_entries = 30000,                                               \
			       .fold_paths_at = 8,                                                 \
			       .fold_peers_at = 4})

/* What a service's process did, as the model stores it. */
struct model_obs {
	enum model_kind kind;
	const char *exe;     /* the section */
	const char *pattern; /* generalized */
	const char *fold;    /* the wider pattern siblings fold into, or NULL */
};

enum model_verdict {
	MODEL_KNOWN,	      /* the model has it */
	MODEL_LEARNED,	      /* new; the learning model took it */
	MODEL_DEVIATION,      /* new to an active model: report it */
	MODEL_DEVIATION_SEEN, /* reported before: counted only */
	MODEL_FULL,	      /* a bound was reached: counted in the stats */
};

struct model_stats {
	uint64_t models, entries;
	uint64_t learned, deviations, deviations_repeated;
	uint64_t folds, folds_shaped; /* all folds; those that kept the names' shape */
	uint64_t full_models, full_sections, full_entries; /* observations a bound turned away */
	uint64_t save_errors, load_errors;
};

struct model_set;

/* dir: where models are saved (created if missing); NULL keeps them in memory only. */
struct model_set *model_set_new(const struct model_limits *lim, const char *dir, vigil_err *err);
void model_set_free(struct model_set *s);

/*
 * Load every model saved under dir.  Unreadable files are counted and
 * logged, and skipped.  now_ms: when a model of a file from before reads
 * were modelled starts learning its reads.
 */
int model_set_load(struct model_set *s, uint64_t now_ms, vigil_err *err);

/* Look obs up in service's model (created, learning, on first sight). */
enum model_verdict model_observe(struct model_set *s, const char *service,
				 const struct model_obs *obs, uint64_t now_ms);

/*
 * Whether service's model holds obs, without touching it: 1 it does, 0 it
 * does not (a deviation; also one reported before), -1 there is no active
 * model for service.
 */
int model_knows(struct model_set *s, const char *service, const struct model_obs *obs);

/*
 * Call fn with each pattern of kind in service's active model (every
 * section).  Returns how many, or -1 when there is no active model.
 */
int model_each(struct model_set *s, const char *service, enum model_kind kind,
	       void (*fn)(const char *pattern, void *ctx), void *ctx);

/*
 * What service's model has for exe and kind, as one readable line for an
 * audit ("/usr/bin/date, /usr/bin/true" or why there is nothing).
 */
void model_expected(struct model_set *s, const char *service, const char *exe, enum model_kind kind,
		    char *out, size_t outlen);

/*
 * Once in a while: count kernel drops against learning models (new_drops
 * since the last call) and promote those whose window has passed.  Returns
 * how many models changed state (worth saving at once).
 */
int model_set_tick(struct model_set *s, uint64_t now_ms, uint64_t new_drops);

/* Relearn: forget service's model and learn again from now.  -ENOENT if there is none. */
int model_set_relearn(struct model_set *s, const char *service, uint64_t now_ms);

/*
 * Hand every change since the last call to emit as model deltas (at most
 * MODEL_DELTA_MAX entries or about MODEL_DELTA_BYTES each; the messages are
 * valid only during the call).  Entries added or removed and state changes
 * always go; entries whose count or last seen merely changed go only when
 * counts is set (they change on every event: sending them each time would
 * cost the console a write per event).
 */
#define MODEL_DELTA_MAX 500
/* And about this many bytes: a delta must fit small spools. */
#define MODEL_DELTA_BYTES (48u << 10)
void model_set_collect(struct model_set *s, bool counts,
		       void (*emit)(const Vigil__ModelDelta *d, void *ctx), void *ctx);

/*
 * Save every model whose entries or state changed since the last save (and,
 * with counts, every model whose counts merely changed).  Returns 0 or the
 * first error.
 */
int model_set_save(struct model_set *s, bool counts, vigil_err *err);

/*
 * An operator accepted obs (obs->fold ignored) into service's model, from
 * the audit of its deviation: it becomes an entry like a learned one (in an
 * active model too), and leaves with the next delta.  0 (also when the model
 * has it already), -ENOENT without a model for service, -ENOSPC at a bound.
 */
int model_set_accept(struct model_set *s, const char *service, const struct model_obs *obs,
		     uint64_t now_ms);

/* The state of service's model, or -1 when there is none. */
int model_state_of(struct model_set *s, const char *service);

void model_set_stats(const struct model_set *s, struct model_stats *out);

const char *model_kind_name(enum model_kind k);
/* The kind named name, or -EINVAL. */
int model_kind_parse(const char *name);

#endif
