/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_MODEL_PRIV_H
#define VIGIL_DEFENDER_MODEL_PRIV_H

/* The model set's insides, shared by model.c (learning) and model_file.c (saving). */

#include "learn/model.h"
#include "strmap.h"

/*
 * One allocation per entry: the index key "<kind digit>:<pattern>" and the
 * fold live inline, and the section's index borrows the key (memory is the
 * bound that matters here: see docs/performance.md).
 */
struct entry {
	uint64_t first_ms, last_ms, count;
	const char *fold; /* the wider pattern it folds into (inline, after key), or NULL */
	uint8_t kind;	  /* enum model_kind */
	bool deviation;	  /* reported as a deviation; not part of the model */
	bool dirty;	  /* new or removed since the last delta */
	bool touched;	  /* count or last seen changed since the last delta that carried counts */
	bool removed;	  /* folded away: leaves as a removal, then is freed */
	char key[];
};

static inline const char *entry_pattern(const struct entry *e)
{
	return e->key + 2;
}

struct section {
	char *exe;
	struct entry **v;
	size_t n, cap;
	struct strmap *index; /* "<kind>:<pattern>" → live entry (keys borrowed from entries) */
	struct strmap *folds; /* "<kind>:<fold>" → live model entries folding there (uintptr_t) */
	struct strmap *shapes; /* "<kind>:dir/ *" → the live shapes in dir (struct shape_set *) */
};

/* The shape entries of one directory ("dir/c-*.tmp", "dir/x-*.db"): few, so a small array. */
struct shape_set {
	size_t n, cap;
	struct entry *v[];
};

struct model {
	char *service;
	enum model_state state;
	uint64_t learning_since_ms, active_since_ms, learn_drops;
	/*
	 * A model from before reads were modelled learns its reads apart: since
	 * reads_since_ms (0: reads are learned with the rest), with the kernel's
	 * drops meanwhile in reads_drops.
	 */
	uint64_t reads_since_ms, reads_drops;
	char note[256];
	bool dirty;   /* a delta is owed: entries added or removed, state changed */
	bool touched; /* only counts changed: they leave with the next delta that carries counts */
	bool reset;   /* the next delta starts with reset (relearn) */
	bool unsaved; /* entries or state changed since the last save */
	bool stale;   /* only counts changed since the last save */
	struct strmap *by_exe; /* exe → section */
	struct section **secv;
	size_t nsec, capsec;
};

struct model_set {
	struct model_limits lim;
	char *dir;
	struct strmap *by_service; /* service → model */
	struct model **mv;
	size_t n, cap;
	size_t nentries; /* live entries in all models */
	struct model_stats st;
};

/* Create an empty model (learning since now_ms); NULL when a bound or memory says no. */
struct model *model_add(struct model_set *s, const char *service, uint64_t now_ms);

/* Find or create exe's section; NULL when a bound or memory says no. */
struct section *model_section(struct model_set *s, struct model *m, const char *exe);

/*
 * Append a live entry to sec (index and fold count updated; a deviation is
 * remembered, not learned, and counts toward no fold); NULL on a bound or memory.
 */
struct entry *model_entry_add(struct model_set *s, struct section *sec, enum model_kind kind,
			      const char *pattern, const char *fold, bool deviation,
			      uint64_t now_ms);

/* The note of a model that learns its reads apart: until when (wall clock, ms). */
void model_note_reads(struct model *m, uint64_t until_ms);

#endif
