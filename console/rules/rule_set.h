/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_RULE_SET_H
#define VIGIL_CONSOLE_RULE_SET_H

/*
 * A whole rule set, as vigilctl exports and imports it and as the API's
 * import takes it:
 *
 *   {"format": "vigil-rules/1", "version": 7, "rules": [RULE, ...]}
 *
 * "rules" is required, "format" (when given) must be "vigil-rules/1",
 * "version" (the console version it was exported from) is informational.
 * The order of "rules" is the order of the rules.  A rule's "id" is the
 * exporting console's and is ignored; a "position", when given, must be
 * its place in the list.  Names are unique; at most RULES_MAX rules, each
 * within RULE_JSON_MAX and all within RULES_SET_JSON_MAX of canonical JSON.
 *
 * Ownership: a struct rule_set owns its rules; rule_set_fini frees them.
 */

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "rules/rule.h"

#define RULE_SET_FORMAT "vigil-rules/1"

struct rule_set {
	struct rule *v;
	size_t n;
};

/*
 * Parse and check doc (the object above) into *out (caller
 * rule_set_fini's).  Refusals name the rule and the field ("rules[3].name").
 * -EINVAL or -ENOMEM with err set; on failure *out holds nothing.
 */
int rule_set_from_json(const json_t *doc, struct rule_set *out, struct rule_error *err);

/*
 * Check a list of rules (the "rules" array) as rule_set_from_json does;
 * field names in err start with prefix (e.g. "rules"), and index i is
 * reported as prefix[first + i].
 */
int rule_set_from_array(const json_t *arr, const char *prefix, size_t first, struct rule_set *out,
			struct rule_error *err);

/* Free the rules and zero s.  Accepts NULL. */
void rule_set_fini(struct rule_set *s);

/*
 * The export form of s as a new object: format, version (when >= 0) and
 * the rules in canonical form without "id" and "position".  NULL when out
 * of memory.
 */
json_t *rule_set_to_json(const struct rule_set *s, int64_t version);

#endif
