/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The revoked set the link checks (console/link/revocation.h): a revoked
 * name refuses every certificate of it but those signed since (and not
 * revoked); other names pass; a set from the same list has the same
 * digest, whatever the order, and another list another.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include "link/revocation.h"

static char *s1[] = {"aa01", "aa02"};

static const struct store_revoked list[] = {
    {.host_id = "web-01", .serials = NULL, .nserials = 0},
    {.host_id = "db-02", .serials = s1, .nserials = 2},
};

Test(revocation, a_revoked_name_refuses_all_but_its_certificates_signed_since)
{
	struct revoked_set *s = revoked_set_new(list, 2);

	cr_assert_not_null(s);
	cr_expect_eq(revoked_set_count(s), 2);
	cr_expect(revoked_set_refuses(s, "web-01", "ff"));
	cr_expect(revoked_set_refuses(s, "web-01", ""), "a certificate without a serial too");
	cr_expect(revoked_set_refuses(s, "db-02", "ff"));
	cr_expect(!revoked_set_refuses(s, "db-02", "aa01"), "enrolled again since");
	cr_expect(!revoked_set_refuses(s, "db-02", "aa02"));
	cr_expect(!revoked_set_refuses(s, "web-02", "ff"), "another host passes");
	cr_expect(!revoked_set_refuses(s, "WEB-01", "ff"), "names are exact");
	cr_expect(!revoked_set_refuses(NULL, "web-01", "ff"), "no set refuses nothing");
	revoked_set_free(s);
}

Test(revocation, the_digest_follows_the_content_not_the_order)
{
	const struct store_revoked swapped[] = {list[1], list[0]};
	struct revoked_set *a = revoked_set_new(list, 2), *b = revoked_set_new(swapped, 2),
			   *c = revoked_set_new(list, 1), *e = revoked_set_new(NULL, 0);

	cr_assert(a != NULL && b != NULL && c != NULL && e != NULL);
	cr_expect_eq(revoked_set_digest(a), revoked_set_digest(b));
	cr_expect_neq(revoked_set_digest(a), revoked_set_digest(c));
	cr_expect_eq(revoked_set_count(e), 0);
	cr_expect(!revoked_set_refuses(e, "web-01", "ff"));
	revoked_set_free(a);
	revoked_set_free(b);
	revoked_set_free(c);
	revoked_set_free(e);
}
