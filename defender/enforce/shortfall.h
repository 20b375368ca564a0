/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_SHORTFALL_H
#define VIGIL_DEFENDER_SHORTFALL_H

/*
 * Where the rules ask for more than this host delivers: a rule section's
 * effect that is applied as a lesser one, and why.  Reported to the console
 * in every hello and heartbeat (RulesState.shortfalls) so that no rule is
 * weaker than it reads without an operator being told.  Bounded; the same
 * (rule, section, why) is listed once.
 */

#include <stdbool.h>
#include <stddef.h>

#include "rules/rule.h"

#define SHORTFALLS_MAX	  256
#define SHORTFALL_WHY_MAX 256

struct shortfall {
	char rule[RULE_NAME_MAX + 1];
	const char *section; /* static: "processes", "network", "files" */
	enum rule_effect wanted, applied;
	char why[SHORTFALL_WHY_MAX];
};

struct shortfalls {
	struct shortfall v[SHORTFALLS_MAX];
	size_t n;
	size_t lost; /* past SHORTFALLS_MAX */
};

/* Add one (printf-style why); a repeat of the same rule, section and why is not added. */
void shortfall_add(struct shortfalls *s, const char *rule, const char *section,
		   enum rule_effect wanted, enum rule_effect applied, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

#endif
