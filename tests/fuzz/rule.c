/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Operators' rules (console/rules/rule.c): the input is a rule's JSON text as
 * the API's POST /api/v1/rules receives it.  Properties: a refusal says
 * where or why; an accepted rule has a valid name, every list within
 * RULE_LIST_MAX and at least one section; its canonical form is within
 * RULE_JSON_MAX and parses back to the same canonical text (a fixed point),
 * so what the console stores and exports imports unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "rules/rule.h"

static void check_lists(const struct rule *r)
{
	const size_t n[] = {r->scope.hosts.n,
			    r->scope.labels.n,
			    r->scope.services.n,
			    r->scope.images.n,
			    r->processes.deny.executables.n,
			    r->processes.allow.executables.n,
			    r->network.deny.listen.n,
			    r->network.deny.connect.n,
			    r->network.allow.listen.n,
			    r->network.allow.connect.n,
			    r->files.deny.read.n,
			    r->files.deny.write.n,
			    r->files.allow.read.n,
			    r->files.allow.write.n};

	for (size_t i = 0; i < sizeof(n) / sizeof(n[0]); i++)
		if (n[i] > RULE_LIST_MAX)
			fuzz_fail("rule: list %zu has %zu entries", i, n[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rule r, again;
	struct rule_error err;
	char why[256], *text, *text2;
	size_t len, len2;
	int rc;

	rc = rule_parse((const char *)data, size, &r, &err);
	if (rc < 0) {
		if (err.reason[0] == '\0')
			fuzz_fail("rule_parse: %d without a reason", rc);
		return 0;
	}
	if (!rule_check_name(r.name, why, sizeof(why)))
		fuzz_fail("rule: name accepted: %s", why);
	if (!r.processes.present && !r.network.present && !r.files.present)
		fuzz_fail("rule: accepted without a section");
	check_lists(&r);
	if ((rc = rule_serialize(&r, &text, &len)) < 0)
		fuzz_fail("rule: accepted, but not serialized (%d)", rc);
	if (rule_parse(text, len, &again, &err) < 0)
		fuzz_fail("rule: canonical form refused: %s: %s", err.field, err.reason);
	if (rule_serialize(&again, &text2, &len2) < 0 || len2 != len ||
	    memcmp(text, text2, len) != 0)
		fuzz_fail("rule: canonical form is not a fixed point");
	free(text);
	free(text2);
	rule_fini(&again);
	rule_fini(&r);
	return 0;
}
