/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Models on disk: one JSON file per service under the model directory,
 * named by a hash of the service (service names hold '/' and can be long),
 * written atomically.  Files are read back as hostile input: sizes, types
 * and strings are checked and a bad file is set aside, never half-loaded.
 *
 * Versions: 1 had no read model; 2 adds entries of kind "read", shapes
 * ("dir/c-*.tmp") among the patterns, and reads_learning_since_ms /
 * reads_drops (a model whose reads learn apart).  A version 1 file loads as
 * it was, and its model learns its reads for a window from the load (its
 * "dir/ *" entries keep meaning everything below dir); it is saved as
 * version 2 at once.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fsutil.h"
#include "learn/generalize.h"
#include "log.h"
#include "utf8.h"
#include "learn/model_priv.h"

#define MODEL_FILE_VERSION 2
#define MODEL_FILE_MAX	   (64u << 20)

static void model_path(const struct model_set *s, const char *service, char *out, size_t len)
{
	snprintf(out, len, "%s/%016llx.json", s->dir, (unsigned long long)strmap_hash(service));
}

static json_t *entry_json(const struct entry *e)
{
	return json_pack("{s:s, s:s*, s:s, s:I, s:I, s:I, s:b}", "kind", model_kind_name(e->kind),
			 "fold", e->fold, "pattern", entry_pattern(e), "first_seen_ms",
			 (json_int_t)e->first_ms, "last_seen_ms", (json_int_t)e->last_ms, "count",
			 (json_int_t)e->count, "deviation", e->deviation);
}

static json_t *model_json(const struct model *m)
{
	json_t *secs = json_array(), *root;

	for (size_t i = 0; i < m->nsec; i++) {
		const struct section *sec = m->secv[i];
		json_t *ents = json_array();

		for (size_t j = 0; j < sec->n; j++)
			if (!sec->v[j]->removed)
				json_array_append_new(ents, entry_json(sec->v[j]));
		json_array_append_new(secs,
				      json_pack("{s:s, s:o}", "exe", sec->exe, "entries", ents));
	}
	root = json_pack("{s:i, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:s, s:o}", "version",
			 MODEL_FILE_VERSION, "service", m->service, "state",
			 m->state == MODEL_ACTIVE ? "active" : "learning", "learning_since_ms",
			 (json_int_t)m->learning_since_ms, "active_since_ms",
			 (json_int_t)m->active_since_ms, "learn_drops", (json_int_t)m->learn_drops,
			 "reads_learning_since_ms", (json_int_t)m->reads_since_ms, "reads_drops",
			 (json_int_t)m->reads_drops, "note", m->note, "sections", secs);
	return root;
}

int model_set_save(struct model_set *s, bool counts, vigil_err *err)
{
	int ret = 0;

	if (s->dir == NULL)
		return 0;
	for (size_t i = 0; i < s->n; i++) {
		struct model *m = s->mv[i];
		char path[4096], *text;
		json_t *j;
		int rc;

		if (!m->unsaved && !(counts && m->stale))
			continue;
		model_path(s, m->service, path, sizeof(path));
		j = model_json(m);
		text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
		json_decref(j);
		if (text == NULL) {
			/* json_dumps fails on invalid UTF-8 as well as on memory. */
			rc = verr_set(
			    err, -EILSEQ,
			    "cannot write model %s as JSON (out of memory or invalid text)",
			    m->service);
		} else {
			rc = fs_write_file(path, text, strlen(text), 0600, 0, err);
			free(text);
		}
		if (rc < 0) {
			s->st.save_errors++;
			if (ret == 0)
				ret = rc;
			continue; /* stays unsaved: tried again next time */
		}
		m->unsaved = m->stale = false;
	}
	return ret;
}

static bool str_ok(const char *v, size_t max)
{
	return v != NULL && v[0] != '\0' && strlen(v) < max;
}

static int load_entries(struct model_set *s, struct model *m, const char *exe, json_t *ents,
			const char *file)
{
	struct section *sec = model_section(s, m, exe);
	size_t i;
	json_t *je;

	if (sec == NULL)
		return -ENOSPC;
	json_array_foreach(ents, i, je)
	{
		const char *kind = NULL, *pattern = NULL, *fold = NULL;
		json_int_t first = 0, last = 0, count = 0;
		int dev = 0, k;
		struct entry *e;

		if (json_unpack(je, "{s:s, s?s, s:s, s:I, s:I, s:I, s:b}", "kind", &kind, "fold",
				&fold, "pattern", &pattern, "first_seen_ms", &first, "last_seen_ms",
				&last, "count", &count, "deviation", &dev) < 0 ||
		    (k = model_kind_parse(kind)) < 0 || !str_ok(pattern, GENERALIZE_PATTERN_MAX) ||
		    (fold != NULL && !str_ok(fold, GENERALIZE_PATTERN_MAX)) || first < 0 ||
		    last < 0 || count < 0) {
			log_warn("%s: entry %zu of %s is malformed; left out", file, i, exe);
			s->st.load_errors++;
			continue;
		}
		e = model_entry_add(s, sec, (enum model_kind)k, pattern, fold, dev != 0, 0);
		if (e == NULL)
			return -ENOSPC;
		e->first_ms = (uint64_t)first;
		e->last_ms = (uint64_t)last;
		e->count = (uint64_t)count;
		e->dirty = false; /* the console has it already: it left as a delta */
	}
	return 0;
}

static int load_one(struct model_set *s, const char *path, uint64_t now_ms)
{
	const char *service = NULL, *state = NULL, *note = "";
	json_int_t version = 0, since = 0, active = 0, drops = 0, reads_since = 0, reads_drops = 0;
	json_t *root, *secs = NULL, *js;
	json_error_t jerr;
	struct model *m;
	vigil_err err;
	char *text;
	size_t i, len;
	int rc = 0;

	if (fs_read_file(path, MODEL_FILE_MAX, &text, &len, &err) < 0) {
		log_warn("%s", err.msg);
		return -EBADMSG;
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (root == NULL) {
		log_warn("%s: not a model file (%s, line %d)", path, jerr.text, jerr.line);
		return -EBADMSG;
	}
	if (json_unpack(root, "{s:I, s:s, s:s, s:I, s:I, s:I, s?I, s?I, s?s, s:o}", "version",
			&version, "service", &service, "state", &state, "learning_since_ms", &since,
			"active_since_ms", &active, "learn_drops", &drops,
			"reads_learning_since_ms", &reads_since, "reads_drops", &reads_drops,
			"note", &note, "sections", &secs) < 0 ||
	    version < 1 || version > MODEL_FILE_VERSION || !str_ok(service, 512) ||
	    !json_is_array(secs) ||
	    (strcmp(state, "active") != 0 && strcmp(state, "learning") != 0) || since < 0 ||
	    active < 0 || drops < 0 || reads_since < 0 || reads_drops < 0) {
		log_warn("%s: malformed model file (version, service, state or sections)", path);
		json_decref(root);
		return -EBADMSG;
	}
	if (strmap_get(s->by_service, service) != NULL) {
		log_warn("%s: a second file for model %s; ignored", path, service);
		json_decref(root);
		return -EEXIST;
	}
	if ((m = model_add(s, service, (uint64_t)since)) == NULL) {
		json_decref(root);
		return -ENOSPC;
	}
	m->state = strcmp(state, "active") == 0 ? MODEL_ACTIVE : MODEL_LEARNING;
	m->active_since_ms = (uint64_t)active;
	m->learn_drops = (uint64_t)drops;
	/* Cut between characters: a note cut inside one could never be saved or sent. */
	utf8_sanitize(note, strlen(note), m->note, sizeof(m->note));
	m->dirty = m->unsaved = m->touched = m->stale = false;
	m->reads_since_ms = (uint64_t)reads_since;
	m->reads_drops = (uint64_t)reads_drops;
	if (version == 1) {
		/*
		 * Learned before reads were modelled: everything it has stays as
		 * it is, and its reads learn for a window from now.  Saved as
		 * version 2 and told to the console (the note) at once.
		 */
		m->reads_since_ms = now_ms;
		if (m->state == MODEL_ACTIVE)
			model_note_reads(m, now_ms + s->lim.learn_window_ms);
		m->dirty = m->unsaved = true;
		log_info("%s: model %s is from before reads were modelled; it learns its reads"
			 " until the end of a window from now",
			 path, service);
	}
	json_array_foreach(secs, i, js)
	{
		const char *exe = NULL;
		json_t *ents = NULL;

		if (json_unpack(js, "{s:s, s:o}", "exe", &exe, "entries", &ents) < 0 ||
		    !str_ok(exe, GENERALIZE_PATTERN_MAX) || !json_is_array(ents)) {
			log_warn("%s: section %zu is malformed; left out", path, i);
			s->st.load_errors++;
			continue;
		}
		if ((rc = load_entries(s, m, exe, ents, path)) < 0)
			break;
	}
	json_decref(root);
	if (rc < 0)
		log_warn("%s: model %s did not fit the model bounds; loaded in part", path,
			 service);
	return 0;
}

int model_set_load(struct model_set *s, uint64_t now_ms, vigil_err *err)
{
	DIR *d;
	struct dirent *de;

	if (s->dir == NULL)
		return 0;
	if ((d = opendir(s->dir)) == NULL)
		return verr_set(err, -errno, "cannot read %s: %s", s->dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		char path[4096], bad[4200];
		size_t len = strlen(de->d_name);

		if (len < 6 || strcmp(de->d_name + len - 5, ".json") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", s->dir, de->d_name);
		if (load_one(s, path, now_ms) == -EBADMSG) {
			/* Set aside, not deleted: an operator may want to look at it. */
			s->st.load_errors++;
			snprintf(bad, sizeof(bad), "%s.bad", path);
			if (rename(path, bad) < 0)
				log_warn("cannot set %s aside: %s", path, strerror(errno));
		}
	}
	closedir(d);
	return 0;
}
