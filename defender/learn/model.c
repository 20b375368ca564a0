/* SPDX-License-Identifier: Apache-2.0 */
#include "learn/model.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fsutil.h"
#include "learn/generalize.h"
#include "log.h"
#include "learn/model_priv.h"

static const char *const kind_names[MK_COUNT] = {
    [MK_PROGRAM] = "program", [MK_WRITE] = "write",	[MK_SENSITIVE_READ] = "sensitive_read",
    [MK_LISTEN] = "listen",   [MK_CONNECT] = "connect", [MK_ACCEPT] = "accept",
    [MK_READ] = "read",
};

const char *model_kind_name(enum model_kind k)
{
	return (unsigned)k < MK_COUNT ? kind_names[k] : "unknown";
}

int model_kind_parse(const char *name)
{
	for (int k = 0; k < MK_COUNT; k++)
		if (strcmp(name, kind_names[k]) == 0)
			return k;
	return -EINVAL;
}

/* "<kind>:<pattern>" into buf; false when it does not fit (the caller skips the lookup). */
static bool entry_key(char *buf, size_t len, enum model_kind kind, const char *pattern)
{
	size_t n = strlen(pattern);

	if (n + 3 > len)
		return false;
	buf[0] = (char)('0' + kind); /* MK_COUNT < 10: one digit */
	buf[1] = ':';
	memcpy(buf + 2, pattern, n + 1);
	return true;
}

#define KEY_MAX (GENERALIZE_PATTERN_MAX + 16)

struct model_set *model_set_new(const struct model_limits *lim, const char *dir, vigil_err *err)
{
	struct model_set *s = calloc(1, sizeof(*s));

	if (s == NULL || (s->by_service = strmap_new()) == NULL ||
	    (dir != NULL && (s->dir = strdup(dir)) == NULL)) {
		model_set_free(s);
		verr_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	s->lim = *lim;
	if (dir != NULL && fs_mkdir_p(dir, 0700, err) < 0) {
		model_set_free(s);
		return NULL;
	}
	return s;
}

static void entry_free(struct entry *e)
{
	free(e);
}

static void shape_set_free(const char *key, void *value, void *ctx)
{
	(void)key;
	(void)ctx;
	free(value);
}

static void shapes_free(struct strmap *shapes)
{
	if (shapes == NULL)
		return;
	strmap_each(shapes, shape_set_free, NULL);
	strmap_free(shapes);
}

static void section_free(struct section *sec)
{
	if (sec == NULL)
		return;
	for (size_t i = 0; i < sec->n; i++)
		entry_free(sec->v[i]);
	free(sec->v);
	strmap_free(sec->index);
	strmap_free(sec->folds);
	shapes_free(sec->shapes);
	free(sec->exe);
	free(sec);
}

static void model_free(struct model *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nsec; i++)
		section_free(m->secv[i]);
	free(m->secv);
	strmap_free(m->by_exe);
	free(m->service);
	free(m);
}

void model_set_free(struct model_set *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		model_free(s->mv[i]);
	free(s->mv);
	strmap_free(s->by_service);
	free(s->dir);
	free(s);
}

struct model *model_add(struct model_set *s, const char *service, uint64_t now_ms)
{
	struct model *m;

	if (s->n >= s->lim.max_models) {
		s->st.full_models++;
		return NULL;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct model **v = realloc(s->mv, cap * sizeof(*v));

		if (v == NULL)
			return NULL;
		s->mv = v;
		s->cap = cap;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL || (m->service = strdup(service)) == NULL ||
	    (m->by_exe = strmap_new()) == NULL || strmap_put(s->by_service, service, m) < 0) {
		model_free(m);
		return NULL;
	}
	m->state = MODEL_LEARNING;
	m->learning_since_ms = now_ms;
	m->dirty = m->unsaved = true;
	s->mv[s->n++] = m;
	return m;
}

struct section *model_section(struct model_set *s, struct model *m, const char *exe)
{
	struct section *sec = strmap_get(m->by_exe, exe);

	if (sec != NULL)
		return sec;
	if (m->nsec >= s->lim.max_sections) {
		s->st.full_sections++;
		return NULL;
	}
	if (m->nsec == m->capsec) {
		size_t cap = m->capsec ? m->capsec * 2 : 8;
		struct section **v = realloc(m->secv, cap * sizeof(*v));

		if (v == NULL)
			return NULL;
		m->secv = v;
		m->capsec = cap;
	}
	if ((sec = calloc(1, sizeof(*sec))) == NULL || (sec->exe = strdup(exe)) == NULL ||
	    (sec->index = strmap_new_borrowed()) == NULL || (sec->folds = strmap_new()) == NULL ||
	    (sec->shapes = strmap_new()) == NULL || strmap_put(m->by_exe, exe, sec) < 0) {
		section_free(sec);
		return NULL;
	}
	m->secv[m->nsec++] = sec;
	return sec;
}

/* Adjust the number of live model entries that fold into e's fold. */
static void fold_count(struct section *sec, const struct entry *e, int delta)
{
	char key[KEY_MAX];
	uintptr_t n;

	if (e->fold == NULL || e->deviation || !entry_key(key, sizeof(key), e->kind, e->fold))
		return;
	n = (uintptr_t)strmap_get(sec->folds, key);
	n = delta > 0 ? n + 1 : (n > 0 ? n - 1 : 0);
	if (n == 0)
		strmap_del(sec->folds, key);
	else
		(void)strmap_put(sec->folds, key, (void *)n); /* -ENOMEM: no fold, no harm */
}

static bool is_path_kind(enum model_kind k)
{
	return k == MK_WRITE || k == MK_READ || k == MK_SENSITIVE_READ || k == MK_PROGRAM;
}

/*
 * Add e to (or take it out of) the shapes of its directory, when it is a
 * live shape of a path kind: covered_by finds a directory's shapes by the
 * directory's glob, the key its siblings fold under.
 */
static void shape_index(struct section *sec, struct entry *e, bool add)
{
	char key[KEY_MAX], dir[GENERALIZE_PATTERN_MAX];
	struct shape_set *set, *grown;

	if (e->deviation || !is_path_kind(e->kind) ||
	    generalize_glob_kind(entry_pattern(e)) != GLOB_SHAPE ||
	    generalize_parent_glob(entry_pattern(e), dir, sizeof(dir)) < 0 ||
	    !entry_key(key, sizeof(key), e->kind, dir))
		return;
	set = strmap_get(sec->shapes, key);
	if (!add) {
		for (size_t i = 0; set != NULL && i < set->n; i++) {
			if (set->v[i] != e)
				continue;
			set->v[i] = set->v[--set->n];
			if (set->n == 0)
				free(strmap_del(sec->shapes, key));
			return;
		}
		return;
	}
	if (set == NULL || set->n == set->cap) {
		size_t cap = set != NULL ? set->cap * 2 : 2;

		if ((grown = realloc(set, sizeof(*grown) + cap * sizeof(grown->v[0]))) == NULL)
			return; /* -ENOMEM: the shape covers nothing, and its names are news */
		grown->cap = cap;
		if (set == NULL)
			grown->n = 0;
		if (strmap_put(sec->shapes, key, grown) < 0) {
			strmap_del(sec->shapes, key); /* whatever it held is freed next */
			free(grown);
			return;
		}
		set = grown;
	}
	set->v[set->n++] = e;
}

struct entry *model_entry_add(struct model_set *s, struct section *sec, enum model_kind kind,
			      const char *pattern, const char *fold, bool deviation,
			      uint64_t now_ms)
{
	size_t plen = strlen(pattern), flen = fold != NULL ? strlen(fold) : 0;
	struct entry *e;

	if (s->nentries >= s->lim.max_entries || sec->n >= s->lim.max_section_entries) {
		s->st.full_entries++;
		return NULL;
	}
	if (plen + 3 > KEY_MAX)
		return NULL;
	if (sec->n == sec->cap) {
		size_t cap = sec->cap ? sec->cap * 2 : 8;
		struct entry **v = realloc(sec->v, cap * sizeof(*v));

		if (v == NULL)
			return NULL;
		sec->v = v;
		sec->cap = cap;
	}
	if ((e = calloc(1, sizeof(*e) + plen + 3 + (fold != NULL ? flen + 1 : 0))) == NULL)
		return NULL;
	entry_key(e->key, plen + 3, kind, pattern);
	if (fold != NULL)
		e->fold = memcpy(e->key + plen + 3, fold, flen + 1);
	if (strmap_put(sec->index, e->key, e) < 0) {
		entry_free(e);
		return NULL;
	}
	e->kind = (uint8_t)kind;
	e->first_ms = e->last_ms = now_ms;
	e->count = 0;
	e->deviation = deviation;
	e->dirty = !deviation;
	sec->v[sec->n++] = e;
	s->nentries++;
	fold_count(sec, e, +1);
	shape_index(sec, e, true);
	return e;
}

/* Take e out of the model; it stays in sec->v until the removal has left as a delta. */
static void entry_remove(struct model_set *s, struct section *sec, struct entry *e)
{
	strmap_del(sec->index, e->key);
	fold_count(sec, e, -1);
	shape_index(sec, e, false);
	e->removed = e->dirty = true;
	s->nentries--;
}

static struct entry *lookup(struct section *sec, enum model_kind kind, const char *pattern)
{
	char key[KEY_MAX];

	if (!entry_key(key, sizeof(key), kind, pattern))
		return NULL;
	return strmap_get(sec->index, key);
}

/*
 * Whether a directory glob may stand for its children.  Never for system
 * and configuration trees, where one new file is news however many siblings
 * it has (a service writing eight files in /etc must not learn "/etc/ *"),
 * and never for a directory right below the root.  A shape of the names
 * may stand for them elsewhere; the whole directory (may_fold_whole) not
 * everywhere.
 */
static bool may_fold_into(const char *glob)
{
	static const char *const never[] = {"/etc/",  "/usr/",	 "/bin/",	    "/sbin/",
					    "/lib/",  "/lib64/", "/lib32/",	    "/boot/",
					    "/root/", "/home/",	 "/var/spool/cron/"};
	const char *second;

	for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
		if (strncmp(glob, never[i], strlen(never[i])) == 0)
			return false;
	second = strchr(glob + 1, '/');
	return second != NULL && strcmp(second, "/*") != 0;
}

/*
 * Whether the whole directory may stand for its children, when their names
 * have no shape: not for the directories that hold every service's state,
 * logs and spools, where "/var/lib/ *" would admit reading or writing every
 * other service's files.
 */
static bool may_fold_whole(const char *glob)
{
	static const char *const shared[] = {
	    "/var/lib/*",  "/var/cache/*",   "/var/spool/*", "/var/log/*",  "/var/opt/*",
	    "/var/mail/*", "/var/backups/*", "/var/tmp/*",   "/run/user/*", "/dev/shm/*",
	};

	for (size_t i = 0; i < sizeof(shared) / sizeof(shared[0]); i++)
		if (strcmp(glob, shared[i]) == 0)
			return false;
	return true;
}

/* A live shape of kind in the directory dirglob stands for that matches pattern, or NULL. */
static struct entry *shape_covering(struct section *sec, enum model_kind kind, const char *dirglob,
				    const char *pattern)
{
	char key[KEY_MAX];
	struct shape_set *set;

	if (strmap_count(sec->shapes) == 0 || !entry_key(key, sizeof(key), kind, dirglob) ||
	    (set = strmap_get(sec->shapes, key)) == NULL)
		return NULL;
	for (size_t i = 0; i < set->n; i++)
		if (generalize_glob_matches(entry_pattern(set->v[i]), pattern))
			return set->v[i];
	return NULL;
}

/* A pattern of the same kind that covers pattern: itself, its fold, or a folded ancestor. */
static struct entry *covered_by(struct section *sec, const struct model_obs *o)
{
	char glob[GENERALIZE_PATTERN_MAX], up[GENERALIZE_PATTERN_MAX];
	struct entry *e = lookup(sec, o->kind, o->pattern);

	if (e != NULL)
		return e;
	if (o->fold != NULL && (e = lookup(sec, o->kind, o->fold)) != NULL && !e->deviation)
		return e;
	if (!is_path_kind(o->kind) || generalize_parent_glob(o->pattern, glob, sizeof(glob)) < 0)
		return NULL;
	/* A shape covers the names of its own directory only. */
	if ((e = shape_covering(sec, o->kind, glob, o->pattern)) != NULL)
		return e;
	for (int depth = 0; depth < 64; depth++) {
		if ((e = lookup(sec, o->kind, glob)) != NULL && !e->deviation)
			return e;
		if (generalize_parent_glob(glob, up, sizeof(up)) < 0)
			return NULL;
		memcpy(glob, up, sizeof(glob));
	}
	return NULL;
}

/*
 * The shape of the names of the live entries of kind folding into fold (a
 * directory's glob), into out: 0, or -ENOENT when they have none.
 */
static int fold_shape(struct section *sec, enum model_kind kind, const char *fold, char *out,
		      size_t outlen)
{
	const char **names = calloc(sec->n, sizeof(*names));
	size_t n = 0;
	int rc;

	if (names == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < sec->n; i++) {
		const struct entry *e = sec->v[i];

		if (!e->removed && !e->deviation && e->kind == kind && e->fold != NULL &&
		    strcmp(e->fold, fold) == 0)
			names[n++] = entry_pattern(e);
	}
	rc = generalize_shape(fold, names, n, out, outlen);
	free(names);
	return rc < 0 ? rc : 0;
}

/*
 * Enough siblings fold into fold: replace them by the shape of their names
 * (the siblings it matches), or when they have none by the whole directory
 * (them and anything the glob covers).
 */
static void fold_into(struct model_set *s, struct model *m, struct section *sec,
		      enum model_kind kind, const char *fold, uint64_t now_ms)
{
	bool glob = is_path_kind(kind), shaped = false;
	uint64_t first = now_ms, last = 0, count = 0;
	char parent[GENERALIZE_PATTERN_MAX], shape[GENERALIZE_PATTERN_MAX];
	const char *into = fold;
	struct entry *f;

	if (glob && !may_fold_into(fold))
		return;
	if (glob && fold_shape(sec, kind, fold, shape, sizeof(shape)) == 0) {
		into = shape;
		shaped = true;
	} else if (glob && !may_fold_whole(fold)) {
		return;
	}
	for (size_t i = 0; i < sec->n; i++) {
		struct entry *e = sec->v[i];
		bool sibling;

		if (e->removed || e->deviation || e->kind != kind)
			continue;
		sibling = e->fold != NULL && strcmp(e->fold, fold) == 0;
		if (shaped
			? !(sibling && generalize_glob_matches(into, entry_pattern(e)))
			: !(sibling || (glob && generalize_glob_matches(fold, entry_pattern(e)))))
			continue;
		first = e->first_ms < first ? e->first_ms : first;
		last = e->last_ms > last ? e->last_ms : last;
		count += e->count;
		entry_remove(s, sec, e);
	}
	/* A shape folds on into its own directory; the directory into its parent. */
	const char *next =
	    glob && generalize_parent_glob(into, parent, sizeof(parent)) >= 0 ? parent : NULL;
	if ((f = model_entry_add(s, sec, kind, into, next, false, now_ms)) == NULL)
		return;
	f->first_ms = first;
	f->last_ms = last > 0 ? last : now_ms;
	f->count = count;
	s->st.folds++;
	s->st.folds_shaped += shaped;
	m->dirty = m->unsaved = true;
	if (glob && !shaped)
		log_debug("model %s: %s folded into %s (the names had no common shape)", m->service,
			  sec->exe, into);
	else
		log_debug("model %s: %s folded into %s", m->service, sec->exe, into);
}

/* Whether enough model entries fold into o->fold for it to replace them. */
static bool fold_due(struct model_set *s, struct section *sec, const struct model_obs *o)
{
	char key[KEY_MAX];
	unsigned at = is_path_kind(o->kind) ? s->lim.fold_paths_at : s->lim.fold_peers_at;

	/* Programs never fold: a service that runs eight tools must not learn "/usr/bin/ *".
	 * Nor sensitive reads: each one is news. */
	if (o->fold == NULL || o->kind == MK_PROGRAM || o->kind == MK_SENSITIVE_READ || at == 0 ||
	    !entry_key(key, sizeof(key), o->kind, o->fold))
		return false;
	return (uintptr_t)strmap_get(sec->folds, key) >= at;
}

/* Whether m learns what it sees of kind: all of it while learning; reads apart (reads_since_ms). */
static bool kind_learning(const struct model *m, enum model_kind kind)
{
	return m->state == MODEL_LEARNING || (kind == MK_READ && m->reads_since_ms != 0);
}

enum model_verdict model_observe(struct model_set *s, const char *service,
				 const struct model_obs *o, uint64_t now_ms)
{
	struct model *m = strmap_get(s->by_service, service);
	struct section *sec;
	struct entry *e;

	if (m == NULL && (m = model_add(s, service, now_ms)) == NULL)
		return MODEL_FULL;
	if ((sec = model_section(s, m, o->exe)) == NULL)
		return MODEL_FULL;
	if ((e = covered_by(sec, o)) != NULL) {
		/* Counts change on every event: they travel and are saved now and then, not each
		 * time. */
		e->count++;
		e->last_ms = now_ms;
		m->stale = true;
		if (!e->deviation) {
			e->touched = m->touched = true;
			return MODEL_KNOWN;
		}
		s->st.deviations_repeated++;
		return MODEL_DEVIATION_SEEN;
	}
	/* A deviation is remembered so that it is reported once, not on every repeat. */
	e = model_entry_add(s, sec, o->kind, o->pattern, o->fold, !kind_learning(m, o->kind),
			    now_ms);
	if (e == NULL)
		return MODEL_FULL;
	e->count = 1;
	m->unsaved = true;
	if (e->deviation) {
		s->st.deviations++;
		return MODEL_DEVIATION;
	}
	m->dirty = true;
	s->st.learned++;
	if (fold_due(s, sec, o))
		fold_into(s, m, sec, o->kind, o->fold, now_ms);
	return MODEL_LEARNED;
}

int model_each(struct model_set *s, const char *service, enum model_kind kind,
	       void (*fn)(const char *pattern, void *ctx), void *ctx)
{
	struct model *m = strmap_get(s->by_service, service);
	int n = 0;

	if (m == NULL || m->state != MODEL_ACTIVE)
		return -1;
	for (size_t i = 0; i < m->nsec; i++)
		for (size_t j = 0; j < m->secv[i]->n; j++) {
			const struct entry *e = m->secv[i]->v[j];

			if (e->kind == kind && !e->removed && !e->deviation) {
				fn(entry_pattern(e), ctx);
				n++;
			}
		}
	return n;
}

int model_knows(struct model_set *s, const char *service, const struct model_obs *o)
{
	struct model *m = strmap_get(s->by_service, service);
	struct section *sec;
	struct entry *e;

	if (m == NULL || m->state != MODEL_ACTIVE)
		return -1;
	if (kind_learning(m, o->kind))
		return 1; /* its reads are still being learned: nothing is new yet */
	if ((sec = strmap_get(m->by_exe, o->exe)) == NULL)
		return 0;
	e = covered_by(sec, o);
	return e != NULL && !e->deviation;
}

void model_expected(struct model_set *s, const char *service, const char *exe, enum model_kind kind,
		    char *out, size_t outlen)
{
	struct model *m = strmap_get(s->by_service, service);
	struct section *sec = m != NULL ? strmap_get(m->by_exe, exe) : NULL;
	size_t len = 0, shown = 0, more = 0;

	if (outlen == 0)
		return;
	out[0] = '\0';
	if (sec == NULL) {
		snprintf(out, outlen, "nothing: %s is not in the model", exe);
		return;
	}
	for (size_t i = 0; i < sec->n; i++) {
		const struct entry *e = sec->v[i];
		int n;

		if (e->removed || e->deviation || e->kind != kind)
			continue;
		if (shown == 8 || len + strlen(entry_pattern(e)) + 3 >= outlen) {
			more++;
			continue;
		}
		n = snprintf(out + len, outlen - len, "%s%s", shown ? ", " : "", entry_pattern(e));
		len += (size_t)n;
		shown++;
	}
	if (shown == 0)
		snprintf(out, outlen, "no %s entries for %s", model_kind_name(kind), exe);
	else if (more > 0 && len + 24 < outlen)
		snprintf(out + len, outlen - len, " (and %zu more)", more);
}

static void format_utc(uint64_t ms, char *out, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void model_note_reads(struct model *m, uint64_t until_ms)
{
	char until[32];

	format_utc(until_ms, until, sizeof(until));
	snprintf(m->note, sizeof(m->note),
		 "learning what it reads until %s (learned before reads were modelled)", until);
}

/*
 * An active model that learns its reads apart: at the end of their window
 * they join the model, unless the kernel dropped events meanwhile (then they
 * learn another window).  Returns 1 when it changed.
 */
static int tick_reads(struct model_set *s, struct model *m, uint64_t now_ms)
{
	if (now_ms - m->reads_since_ms < s->lim.learn_window_ms || now_ms < m->reads_since_ms)
		return 0;
	m->dirty = m->unsaved = true;
	if (m->reads_drops > 0) {
		log_warn("model %s: the kernel dropped %" PRIu64
			 " events while it learned its reads; learning them again",
			 m->service, m->reads_drops);
		m->reads_since_ms = now_ms;
		m->reads_drops = 0;
		model_note_reads(m, now_ms + s->lim.learn_window_ms);
		return 1;
	}
	m->reads_since_ms = 0;
	m->note[0] = '\0';
	log_info("model %s: learned its reads, now active for them too", m->service);
	return 1;
}

int model_set_tick(struct model_set *s, uint64_t now_ms, uint64_t new_drops)
{
	int changed = 0;

	for (size_t i = 0; i < s->n; i++) {
		struct model *m = s->mv[i];
		char since[32];

		if (m->reads_since_ms != 0 && new_drops > 0)
			m->reads_drops += new_drops;
		if (m->state == MODEL_ACTIVE && m->reads_since_ms != 0)
			changed += tick_reads(s, m, now_ms);
		if (m->state != MODEL_LEARNING)
			continue;
		if (new_drops > 0) {
			m->learn_drops += new_drops;
			m->dirty = m->unsaved = true;
		}
		if (now_ms - m->learning_since_ms < s->lim.learn_window_ms ||
		    now_ms < m->learning_since_ms)
			continue;
		m->dirty = m->unsaved = true;
		changed++;
		if (m->learn_drops > 0) {
			/* Part of the window is missing: what the model lacks would become audits.
			 */
			format_utc(now_ms, since, sizeof(since));
			snprintf(m->note, sizeof(m->note),
				 "not promoted: the kernel dropped %" PRIu64
				 " events while it learned; learning again since %s",
				 m->learn_drops, since);
			log_warn("model %s: %s", m->service, m->note);
			m->learning_since_ms = now_ms;
			m->learn_drops = 0;
			continue;
		}
		m->state = MODEL_ACTIVE;
		m->active_since_ms = now_ms;
		m->note[0] = '\0';
		log_info("model %s: learned, now active", m->service);
		/* Reads that started learning later (an older model's) end when their window does.
		 */
		if (m->reads_since_ms != 0 && tick_reads(s, m, now_ms) == 0)
			model_note_reads(m, m->reads_since_ms + s->lim.learn_window_ms);
	}
	return changed;
}

int model_set_relearn(struct model_set *s, const char *service, uint64_t now_ms)
{
	struct model *m = strmap_get(s->by_service, service);

	if (m == NULL)
		return -ENOENT;
	for (size_t i = 0; i < m->nsec; i++) {
		struct section *sec = m->secv[i];

		for (size_t j = 0; j < sec->n; j++) {
			if (!sec->v[j]->removed)
				s->nentries--;
			entry_free(sec->v[j]);
		}
		sec->n = 0;
		strmap_free(sec->index);
		strmap_free(sec->folds);
		shapes_free(sec->shapes);
		sec->index = strmap_new_borrowed();
		sec->folds = strmap_new();
		sec->shapes = strmap_new();
		if (sec->index == NULL || sec->folds == NULL || sec->shapes == NULL)
			return -ENOMEM; /* the section stays empty but unusable: lookups see NULL */
	}
	m->state = MODEL_LEARNING;
	m->learning_since_ms = now_ms;
	m->active_since_ms = 0;
	m->learn_drops = 0;
	m->reads_since_ms = m->reads_drops = 0;
	snprintf(m->note, sizeof(m->note), "relearning on request");
	m->reset = m->dirty = m->unsaved = true;
	log_info("model %s: relearning on request", m->service);
	return 0;
}

int model_set_accept(struct model_set *s, const char *service, const struct model_obs *o,
		     uint64_t now_ms)
{
	struct model *m = strmap_get(s->by_service, service);
	struct section *sec;
	struct entry *e;

	if (m == NULL)
		return -ENOENT;
	if ((sec = model_section(s, m, o->exe)) == NULL)
		return -ENOSPC;
	e = lookup(sec, o->kind, o->pattern);
	if (e != NULL && !e->deviation)
		return 0; /* accepted before (the console resends until acknowledged) */
	if (e != NULL) {
		/* The remembered deviation becomes part of the model: sent as a new entry. */
		fold_count(sec, e, -1);
		e->deviation = false;
		e->dirty = true;
		fold_count(sec, e, +1);
		shape_index(sec, e, true);
	} else if ((e = model_entry_add(s, sec, o->kind, o->pattern, NULL, false, now_ms)) ==
		   NULL) {
		return -ENOSPC;
	}
	m->dirty = m->unsaved = true;
	log_info("model %s: %s %s of %s accepted by an operator", m->service,
		 model_kind_name(o->kind), o->pattern, o->exe);
	return 0;
}

int model_state_of(struct model_set *s, const char *service)
{
	struct model *m = strmap_get(s->by_service, service);

	return m != NULL ? (int)m->state : -1;
}

void model_set_stats(const struct model_set *s, struct model_stats *out)
{
	*out = s->st;
	out->models = s->n;
	out->entries = s->nentries;
}

/* Drop entries whose removal has been sent. */
static void section_compact(struct section *sec)
{
	size_t w = 0;

	for (size_t i = 0; i < sec->n; i++) {
		if (sec->v[i]->removed)
			entry_free(sec->v[i]);
		else
			sec->v[w++] = sec->v[i];
	}
	sec->n = w;
}

static void emit_chunk(const struct model_set *s, struct model *m, Vigil__ModelEntry **ents,
		       size_t n, bool *first, void (*emit)(const Vigil__ModelDelta *, void *),
		       void *ctx)
{
	Vigil__ModelDelta d = VIGIL__MODEL_DELTA__INIT;

	d.service = m->service;
	d.state = m->state == MODEL_ACTIVE ? "active" : "learning";
	d.learning_since_ms = m->learning_since_ms;
	/* The earliest promotion: model_set_tick promotes once the window has passed. */
	if (m->state == MODEL_LEARNING)
		d.learn_until_ms = m->learning_since_ms + s->lim.learn_window_ms;
	d.active_since_ms = m->active_since_ms;
	d.learn_drops = m->learn_drops;
	d.note = m->note;
	d.reset = *first && m->reset;
	d.n_entries = n;
	d.entries = ents;
	emit(&d, ctx);
	*first = false;
}

void model_set_collect(struct model_set *s, bool counts,
		       void (*emit)(const Vigil__ModelDelta *d, void *ctx), void *ctx)
{
	static Vigil__ModelEntry pb[MODEL_DELTA_MAX];
	static Vigil__ModelEntry *ptrs[MODEL_DELTA_MAX];

	for (size_t i = 0; i < s->n; i++) {
		struct model *m = s->mv[i];
		bool first = true;
		size_t n = 0, bytes = 0;

		if (!m->dirty && !(counts && m->touched))
			continue;
		for (size_t j = 0; j < m->nsec; j++) {
			struct section *sec = m->secv[j];

			for (size_t k = 0; k < sec->n; k++) {
				struct entry *e = sec->v[k];

				if (e->deviation || !(e->dirty || (counts && e->touched)))
					continue;
				vigil__model_entry__init(&pb[n]);
				pb[n].exe = sec->exe;
				pb[n].kind = (char *)model_kind_name(e->kind);
				pb[n].pattern = (char *)entry_pattern(e);
				pb[n].first_seen_ms = e->first_ms;
				pb[n].last_seen_ms = e->last_ms;
				pb[n].count = e->count;
				pb[n].removed = e->removed;
				ptrs[n] = &pb[n];
				e->dirty = false;
				e->touched = e->touched && !counts;
				bytes += strlen(sec->exe) + strlen(e->key) + 48;
				if (++n == MODEL_DELTA_MAX || bytes >= MODEL_DELTA_BYTES) {
					emit_chunk(s, m, ptrs, n, &first, emit, ctx);
					n = bytes = 0;
				}
			}
		}
		if (n > 0 || first)
			emit_chunk(s, m, ptrs, n, &first, emit, ctx);
		for (size_t j = 0; j < m->nsec; j++)
			section_compact(m->secv[j]);
		m->dirty = m->reset = false;
		m->touched = m->touched && !counts;
	}
}
