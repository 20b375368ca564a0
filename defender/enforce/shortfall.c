/* SPDX-License-Identifier: Apache-2.0 */
/* Rules asking for more than the host delivers (shortfall.h). */
#include "enforce/shortfall.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void shortfall_add(struct shortfalls *s, const char *rule, const char *section,
		   enum rule_effect wanted, enum rule_effect applied, const char *fmt, ...)
{
	struct shortfall f = {.section = section, .wanted = wanted, .applied = applied};
	va_list ap;

	snprintf(f.rule, sizeof(f.rule), "%s", rule);
	va_start(ap, fmt);
	vsnprintf(f.why, sizeof(f.why), fmt, ap);
	va_end(ap);
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i].rule, f.rule) == 0 && s->v[i].section == section &&
		    strcmp(s->v[i].why, f.why) == 0)
			return;
	if (s->n == SHORTFALLS_MAX) {
		s->lost++;
		return;
	}
	s->v[s->n++] = f;
}
