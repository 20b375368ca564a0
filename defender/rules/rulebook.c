/* SPDX-License-Identifier: Apache-2.0 */
/* The rule set this defender enforces (rulebook.h). */
#include "rules/rulebook.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "fsutil.h"
#include "rules/rule.h"

struct rulebook {
	pthread_mutex_t lock; /* guards cur (the pointer) and the refusal */
	struct ruleset *cur;
	char *path;
	uint64_t refused_version;
	char refused_reason[RULEBOOK_WHY_MAX];
};

static struct ruleset *ruleset_new(int64_t version)
{
	struct ruleset *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->version = version;
	atomic_init(&s->refs, 1);
	return s;
}

void ruleset_put(const struct ruleset *cs)
{
	struct ruleset *s = (struct ruleset *)cs;

	if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	rule_set_fini(&s->set);
	free(s);
}

int rulebook_read_file(const char *path, struct ruleset **ret, char *why, size_t whylen)
{
	struct rule_error rerr;
	struct ruleset *s;
	json_error_t jerr;
	json_t *doc, *v;
	vigil_err err = {0};
	size_t len = 0;
	char *text = NULL;
	struct stat st;
	int rc;

	/* The state directory is the defender's: a link there was not made by it. */
	if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "not a regular file");
		return -EINVAL;
	}
	rc = fs_read_file(path, RULEBOOK_FILE_MAX, &text, &len, &err);
	if (rc == -ENOENT) {
		snprintf(why, whylen, "no file");
		return rc;
	}
	if (rc < 0) {
		if (rc == -EFBIG)
			snprintf(why, whylen, "larger than %d bytes", RULEBOOK_FILE_MAX);
		else
			snprintf(why, whylen, "%s", err.msg);
		return rc == -EFBIG ? -EINVAL : rc;
	}
	doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (doc == NULL) {
		snprintf(why, whylen, "not JSON: %s at line %d", jerr.text, jerr.line);
		return -EINVAL;
	}
	v = json_object_get(doc, "version");
	if (!json_is_integer(v) || json_integer_value(v) < 1) {
		snprintf(why, whylen, "no rule-set version (a number from 1)");
		json_decref(doc);
		return -EINVAL;
	}
	if ((s = ruleset_new(json_integer_value(v))) == NULL) {
		json_decref(doc);
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	rc = rule_set_from_json(doc, &s->set, &rerr);
	json_decref(doc);
	if (rc < 0) {
		snprintf(why, whylen, "%s%s%s%s: %s", rerr.rule[0] ? "rule \"" : "", rerr.rule,
			 rerr.rule[0] ? "\", " : "", rerr.field[0] ? rerr.field : "the set",
			 rerr.reason);
		ruleset_put(s);
		return rc;
	}
	*ret = s;
	return 0;
}

int rulebook_write_file(const char *path, const struct ruleset *s, char *why, size_t whylen)
{
	json_t *doc = rule_set_to_json(&s->set, s->version);
	vigil_err err = {0};
	char *text;
	int rc;

	if (doc == NULL) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	text = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	if (text == NULL) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	rc = fs_write_file(path, text, strlen(text), 0600, 0, &err);
	free(text);
	if (rc < 0)
		snprintf(why, whylen, "%s", err.msg);
	return rc;
}

struct rulebook *rulebook_open(const char *state_dir, enum rulebook_load *ret_load, char *why,
			       size_t whylen)
{
	struct rulebook *rb = calloc(1, sizeof(*rb));
	size_t plen = strlen(state_dir) + sizeof("/" RULEBOOK_FILE);
	int rc;

	*ret_load = RULEBOOK_LOAD_NONE;
	why[0] = '\0';
	if (rb == NULL || (rb->path = malloc(plen)) == NULL) {
		free(rb);
		errno = ENOMEM;
		return NULL;
	}
	snprintf(rb->path, plen, "%s/" RULEBOOK_FILE, state_dir);
	pthread_mutex_init(&rb->lock, NULL);
	rc = rulebook_read_file(rb->path, &rb->cur, why, whylen);
	if (rc == 0) {
		*ret_load = RULEBOOK_LOAD_OK;
		return rb;
	}
	if (rc != -ENOENT)
		*ret_load = RULEBOOK_LOAD_REFUSED;
	else
		why[0] = '\0';
	if ((rb->cur = ruleset_new(0)) == NULL) {
		rulebook_free(rb);
		errno = ENOMEM;
		return NULL;
	}
	return rb;
}

const struct ruleset *rulebook_get(struct rulebook *rb)
{
	struct ruleset *s;

	pthread_mutex_lock(&rb->lock);
	s = rb->cur;
	atomic_fetch_add(&s->refs, 1);
	pthread_mutex_unlock(&rb->lock);
	return s;
}

/* Remember a refusal of version (why) for rulebook_state; returns RULEBOOK_REFUSED. */
static int refuse(struct rulebook *rb, int64_t version, const char *why)
{
	pthread_mutex_lock(&rb->lock);
	rb->refused_version = version > 0 ? (uint64_t)version : 0;
	snprintf(rb->refused_reason, sizeof(rb->refused_reason), "%s", why);
	pthread_mutex_unlock(&rb->lock);
	return RULEBOOK_REFUSED;
}

int rulebook_offer(struct rulebook *rb, int64_t version, size_t total, const char *const *texts,
		   size_t n, char *why, size_t whylen)
{
	int64_t held = rb->cur->version; /* only this thread changes cur */
	struct ruleset *s, *old;
	int rc = RULEBOOK_TAKEN;

	why[0] = '\0';
	if (version == held)
		return RULEBOOK_HELD;
	if (version < held || version < 1) {
		snprintf(why, whylen, "version %" PRId64 " is older than the held %" PRId64,
			 version, held);
		return refuse(rb, version, why);
	}
	if (n > RULES_MAX) {
		snprintf(why, whylen, "too large: %zu rules, more than %d", n, RULES_MAX);
		return refuse(rb, version, why);
	}
	if ((s = ruleset_new(version)) == NULL ||
	    (n > 0 && (s->set.v = calloc(n, sizeof(*s->set.v))) == NULL)) {
		ruleset_put(s);
		snprintf(why, whylen, "out of memory");
		return refuse(rb, version, why);
	}
	s->total = total;
	for (size_t i = 0; i < n; i++) {
		struct rule_error rerr;
		size_t len = strlen(texts[i]);

		if (len > RULE_JSON_MAX) {
			snprintf(why, whylen, "too large: rule %zu is %zu bytes, more than %d",
				 i + 1, len, RULE_JSON_MAX);
			goto refused;
		}
		if (rule_parse(texts[i], len, &s->set.v[i], &rerr) < 0) {
			snprintf(why, whylen, "bad JSON in rule %zu%s%s%s: %s%s%s", i + 1,
				 rerr.rule[0] ? " (\"" : "", rerr.rule, rerr.rule[0] ? "\")" : "",
				 rerr.field, rerr.field[0] ? ": " : "", rerr.reason);
			goto refused;
		}
		s->set.n++;
		for (size_t j = 0; j < i; j++)
			if (strcmp(s->set.v[j].name, s->set.v[i].name) == 0) {
				snprintf(why, whylen,
					 "bad JSON: rules %zu and %zu are both named"
					 " \"%s\"",
					 j + 1, i + 1, s->set.v[i].name);
				goto refused;
			}
	}
	if (rulebook_write_file(rb->path, s, why, whylen) < 0)
		rc = RULEBOOK_TAKEN_UNSAVED;
	pthread_mutex_lock(&rb->lock);
	old = rb->cur;
	rb->cur = s;
	rb->refused_version = 0;
	rb->refused_reason[0] = '\0';
	pthread_mutex_unlock(&rb->lock);
	ruleset_put(old);
	return rc;
refused:
	ruleset_put(s);
	return refuse(rb, version, why);
}

void rulebook_state(struct rulebook *rb, uint64_t *ret_version, uint64_t *ret_refused, char *reason,
		    size_t len)
{
	pthread_mutex_lock(&rb->lock);
	*ret_version = (uint64_t)rb->cur->version;
	*ret_refused = rb->refused_version;
	snprintf(reason, len, "%s", rb->refused_reason);
	pthread_mutex_unlock(&rb->lock);
}

void rulebook_free(struct rulebook *rb)
{
	if (rb == NULL)
		return;
	ruleset_put(rb->cur);
	pthread_mutex_destroy(&rb->lock);
	free(rb->path);
	free(rb);
}
