/* SPDX-License-Identifier: Apache-2.0 */
/* A whole rule set: export and import form (rule_set.h). */
#include "rules/rule_set.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int set_fail(struct rule_error *err, const char *rule, const char *field, const char *fmt,
		    ...) __attribute__((format(printf, 4, 5)));

static int set_fail(struct rule_error *err, const char *rule, const char *field, const char *fmt,
		    ...)
{
	va_list ap;

	snprintf(err->rule, sizeof(err->rule), "%s", rule != NULL ? rule : "");
	snprintf(err->field, sizeof(err->field), "%s", field);
	va_start(ap, fmt);
	vsnprintf(err->reason, sizeof(err->reason), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int rule_set_from_array(const json_t *arr, const char *prefix, size_t first, struct rule_set *out,
			struct rule_error *err)
{
	size_t n, total = 0;
	char field[64];
	int rc = 0;

	memset(out, 0, sizeof(*out));
	memset(err, 0, sizeof(*err));
	if (!json_is_array(arr))
		return set_fail(err, NULL, prefix, "must be a list of rules");
	n = json_array_size(arr);
	if (first + n > RULES_MAX)
		return set_fail(err, NULL, prefix, "has %zu rules, more than %d", first + n,
				RULES_MAX);
	if (n > 0 && (out->v = calloc(n, sizeof(*out->v))) == NULL)
		return set_fail(err, NULL, prefix, "out of memory"), -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct rule *r = &out->v[i];
		char *text;
		size_t len;

		snprintf(field, sizeof(field), "%s[%zu]", prefix, first + i);
		if ((rc = rule_from_json(json_array_get(arr, i), field, r, err)) < 0)
			goto fail;
		out->n++;
		if (r->position != 0 && (size_t)r->position != first + i + 1) {
			snprintf(field, sizeof(field), "%s[%zu].position", prefix, first + i);
			rc = set_fail(err, r->name, field,
				      "is %d, but the rule is number %zu in the list (the list's"
				      " order is the rules' order)",
				      r->position, first + i + 1);
			goto fail;
		}
		/* A set is exported and imported by name: ids are each console's own. */
		r->id = 0;
		r->position = 0;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(out->v[j].name, r->name) == 0) {
				snprintf(field, sizeof(field), "%s[%zu].name", prefix, first + i);
				rc = set_fail(err, r->name, field,
					      "is also the name of %s[%zu]: names are unique",
					      prefix, first + j);
				goto fail;
			}
		}
		if ((rc = rule_serialize(r, &text, &len)) < 0) {
			set_fail(err, r->name, field, "out of memory");
			goto fail;
		}
		free(text);
		total += len;
		if (total > RULES_SET_JSON_MAX) {
			rc = set_fail(err, r->name, prefix,
				      "is more than %d bytes as canonical JSON (at rule %zu)",
				      RULES_SET_JSON_MAX, first + i);
			goto fail;
		}
	}
	return 0;
fail:
	rule_set_fini(out);
	return rc;
}

int rule_set_from_json(const json_t *doc, struct rule_set *out, struct rule_error *err)
{
	const char *k;
	json_t *v, *format;

	memset(out, 0, sizeof(*out));
	memset(err, 0, sizeof(*err));
	if (!json_is_object(doc))
		return set_fail(err, NULL, "",
				"must be an object: {\"format\": \"" RULE_SET_FORMAT
				"\", \"rules\": [...]}");
	json_object_foreach((json_t *)doc, k, v)
	{
		if (strcmp(k, "format") != 0 && strcmp(k, "version") != 0 &&
		    strcmp(k, "rules") != 0)
			return set_fail(err, NULL, "",
					"has an unknown field (a rule set takes format, version,"
					" rules)");
	}
	format = json_object_get(doc, "format");
	if (format != NULL &&
	    (!json_is_string(format) || strcmp(json_string_value(format), RULE_SET_FORMAT) != 0))
		return set_fail(err, NULL, "format", "must be \"" RULE_SET_FORMAT "\"");
	v = json_object_get(doc, "version");
	if (v != NULL && (!json_is_integer(v) || json_integer_value(v) < 0))
		return set_fail(err, NULL, "version", "must be a version number");
	v = json_object_get(doc, "rules");
	if (v == NULL)
		return set_fail(err, NULL, "rules", "is missing");
	return rule_set_from_array(v, "rules", 0, out, err);
}

void rule_set_fini(struct rule_set *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		rule_fini(&s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

json_t *rule_set_to_json(const struct rule_set *s, int64_t version)
{
	json_t *doc = json_object(), *rules = json_array();

	if (doc == NULL || rules == NULL) {
		json_decref(doc);
		json_decref(rules);
		return NULL;
	}
	/* format, version, rules: the order a reader of the file wants. */
	if (json_object_set_new(doc, "format", json_string(RULE_SET_FORMAT)) < 0 ||
	    (version >= 0 && json_object_set_new(doc, "version", json_integer(version)) < 0) ||
	    json_object_set(doc, "rules", rules) < 0) {
		json_decref(rules);
		goto fail;
	}
	json_decref(rules); /* doc holds it */
	for (size_t i = 0; i < s->n; i++) {
		struct rule r = s->v[i];
		json_t *o;

		r.id = 0;
		r.position = 0;
		if ((o = rule_to_json(&r)) == NULL || json_array_append_new(rules, o) < 0)
			goto fail;
	}
	return doc;
fail:
	json_decref(doc);
	return NULL;
}
