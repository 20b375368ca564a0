/* SPDX-License-Identifier: Apache-2.0 */
/* Which rules the console sends to a host: host globs, labels, the rest left to the defender. */
#include <criterion/criterion.h>

#include <string.h>

#include "link/rules_scope.h"
#include "rules/rule.h"

/* json (one rule without a section) with a files section, parsed. */
static struct rule parse(const char *json)
{
	char text[1024];
	struct rule r;
	struct rule_error err;
	size_t len = strlen(json);

	cr_assert(len > 1 && len < sizeof(text) - 32 && json[len - 1] == '}');
	snprintf(text, sizeof(text), "%.*s,\"files\":{}}", (int)(len - 1), json);
	cr_assert_eq(rule_parse(text, strlen(text), &r, &err), 0, "%s: %s: %s", text, err.field,
		     err.reason);
	return r;
}

static const struct store_label prod_web[] = {{"env", "prod"}, {"role", "web"}};

static bool matches(const char *json, const char *host, const struct store_label *labels, size_t n)
{
	struct rule r = parse(json);
	bool m = rules_scope_matches_host(&r, host, labels, n);

	rule_fini(&r);
	return m;
}

Test(rules_scope, an_empty_scope_matches_every_host)
{
	cr_expect(matches("{\"name\":\"x\"}", "host-a", NULL, 0));
	cr_expect(matches("{\"name\":\"x\"}", "db-1", prod_web, 2));
}

Test(rules_scope, host_globs_match_the_host_id)
{
	const char *r = "{\"name\":\"x\",\"scope\":{\"hosts\":[\"web-*\",\"db-[0-9]\"]}}";

	cr_expect(matches(r, "web-01", NULL, 0));
	cr_expect(matches(r, "db-3", NULL, 0));
	cr_expect_not(matches(r, "db-12", NULL, 0));
	cr_expect_not(matches(r, "host-a", NULL, 0));
	cr_expect_not(matches(r, "xweb-01", NULL, 0), "a glob matches the whole id");
	cr_expect(
	    matches("{\"name\":\"x\",\"scope\":{\"hosts\":[\"db-[!0-4]\"]}}", "db-7", NULL, 0));
	cr_expect_not(
	    matches("{\"name\":\"x\",\"scope\":{\"hosts\":[\"db-[!0-4]\"]}}", "db-3", NULL, 0));
	cr_expect(matches("{\"name\":\"x\",\"scope\":{\"hosts\":[\"a\\\\*\"]}}", "a*", NULL, 0));
	cr_expect_not(
	    matches("{\"name\":\"x\",\"scope\":{\"hosts\":[\"a\\\\*\"]}}", "ab", NULL, 0));
}

Test(rules_scope, every_label_must_be_held_with_its_value)
{
	const char *one = "{\"name\":\"x\",\"scope\":{\"labels\":[\"env=prod\"]}}";
	const char *two = "{\"name\":\"x\",\"scope\":{\"labels\":[\"env=prod\",\"role=db\"]}}";
	const struct store_label staging[] = {{"env", "staging"}};
	const struct store_label envx[] = {{"envx", "prod"}, {"en", "v=prod"}};

	cr_expect(matches(one, "h", prod_web, 2));
	cr_expect_not(matches(one, "h", staging, 1));
	cr_expect_not(matches(one, "h", NULL, 0));
	cr_expect_not(matches(one, "h", envx, 2), "keys are compared whole");
	cr_expect_not(matches(two, "h", prod_web, 2), "role=web is not role=db");
}

Test(rules_scope, hosts_and_labels_must_both_match)
{
	const char *r =
	    "{\"name\":\"x\",\"scope\":{\"hosts\":[\"web-*\"],\"labels\":[\"env=prod\"]}}";

	cr_expect(matches(r, "web-1", prod_web, 2));
	cr_expect_not(matches(r, "db-1", prod_web, 2));
	cr_expect_not(matches(r, "web-1", NULL, 0));
}

Test(rules_scope, service_and_image_scopes_are_left_to_the_defender)
{
	cr_expect(
	    matches("{\"name\":\"x\",\"scope\":{\"services\":[\"nginx.service\"]}}", "h", NULL, 0));
	cr_expect(matches("{\"name\":\"x\",\"scope\":{\"images\":[\"docker.io/library/*\"]}}", "h",
			  NULL, 0));
	cr_expect_not(matches("{\"name\":\"x\",\"scope\":{\"hosts\":[\"web-*\"],\"services\":"
			      "[\"nginx.service\"]}}",
			      "db-1", NULL, 0));
}

Test(rules_scope, a_disabled_rule_goes_nowhere)
{
	cr_expect_not(matches("{\"name\":\"x\",\"enabled\":false}", "h", NULL, 0));
}
