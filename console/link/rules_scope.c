/* SPDX-License-Identifier: Apache-2.0 */
/* The part of a rule's scope decided per host (rules_scope.h). */
#include "link/rules_scope.h"

#include <fnmatch.h>
#include <string.h>

static bool host_matches(const struct rule_strings *globs, const char *host_id)
{
	if (globs->n == 0)
		return true;
	for (size_t i = 0; i < globs->n; i++)
		if (fnmatch(globs->v[i], host_id, 0) == 0)
			return true;
	return false;
}

/* Whether "key=value" is one of the host's labels. */
static bool label_held(const char *kv, const struct store_label *labels, size_t n)
{
	const char *eq = strchr(kv, '=');
	size_t klen;

	if (eq == NULL)
		return false; /* rule_parse refuses it; never widen a scope */
	klen = (size_t)(eq - kv);
	for (size_t i = 0; i < n; i++) {
		const char *value = labels[i].value != NULL ? labels[i].value : "";

		if (labels[i].key != NULL && strlen(labels[i].key) == klen &&
		    memcmp(labels[i].key, kv, klen) == 0 && strcmp(value, eq + 1) == 0)
			return true;
	}
	return false;
}

bool rules_scope_matches_host(const struct rule *r, const char *host_id,
			      const struct store_label *labels, size_t nlabels)
{
	if (!r->enabled || !host_matches(&r->scope.hosts, host_id))
		return false;
	for (size_t i = 0; i < r->scope.labels.n; i++)
		if (!label_held(r->scope.labels.v[i], labels, nlabels))
			return false;
	return true;
}
