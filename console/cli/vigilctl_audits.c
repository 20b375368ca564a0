/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vigilctl's audit commands:
 *
 *   audits [filters] [--json]          what an operator must look at, newest first
 *   audits summary [--host H] [--since T] [--until T] [--json]
 *                                      audits over time, by severity and host
 *   audit ID [--json]                  one audit: the process chain, what was expected
 *   accept ID                          take what a deviation reported into its model
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/vigilctl.h"

static long long int_field(json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

static void print_json(json_t *v)
{
	json_dumpf(v, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
	putchar('\n');
}

/* An audit id argument: digits only, as the API wants it. */
static bool audit_id_arg(const char *cmd, const char *s)
{
	if (s[0] != '\0' && strspn(s, "0123456789") == strlen(s) && strlen(s) <= 19)
		return true;
	fprintf(stderr, "vigilctl %s: '%s' is not an audit id (see vigilctl audits)\n", cmd,
		ctl_term(s));
	return false;
}

static int audits_summary(struct ctl *c, int argc, char **argv)
{
	static const char *const params[] = {"host", "since", "until", NULL};
	static const char *const sev[] = {"low", "medium", "high"};
	char path[4096] = "/api/v1/audits/summary";
	json_t *doc, *b, *h;
	bool json_out;
	size_t i;
	int rc;

	if ((rc = ctl_query_opts("audits summary", argc, argv, params, path, sizeof(path),
				 &json_out)) != 0)
		return rc;
	if ((doc = ctl_get_json(c, path)) == NULL)
		return ctl_failure(c);
	if (json_out) {
		print_json(doc);
		json_decref(doc);
		return 0;
	}
	printf("audits from %s to %s, in buckets of %lld s\n", ctl_str(doc, "since"),
	       ctl_str(doc, "until"), int_field(doc, "bucket_s"));
	printf("%-20s %6s %6s %6s\n", "FROM", "HIGH", "MEDIUM", "LOW");
	json_array_foreach(json_object_get(doc, "buckets"), i, b)
	{
		long long n = 0;

		for (size_t k = 0; k < 3; k++)
			n += int_field(b, sev[k]);
		if (n > 0) /* empty buckets are noise in a terminal; --json has them */
			printf("%-.19sZ %6lld %6lld %6lld\n", ctl_str(b, "ts"),
			       int_field(b, "high"), int_field(b, "medium"), int_field(b, "low"));
	}
	printf("%-24s %s\n", "HOST", "AUDITS");
	json_array_foreach(json_object_get(doc, "hosts"), i, h)
	    printf("%-24s %lld\n", ctl_str(h, "host"), int_field(h, "total"));
	json_decref(doc);
	return 0;
}

int ctl_cmd_audits(struct ctl *c, int argc, char **argv)
{
	static const char *const params[] = {
	    "host",	 "kind",  "service", "rule",  "effect",	   "severity", "image",
	    "container", "since", "until",   "limit", "before-id", NULL};
	char path[4096] = "/api/v1/audits";
	bool json_out;
	json_t *doc, *audits, *a;
	size_t i;
	int rc;

	if (argc > 1 && strcmp(argv[1], "summary") == 0)
		return audits_summary(c, argc - 1, argv + 1);
	if ((rc = ctl_query_opts("audits", argc, argv, params, path, sizeof(path), &json_out)) != 0)
		return rc;
	if ((doc = ctl_get_json(c, path)) == NULL)
		return ctl_failure(c);
	audits = json_object_get(doc, "audits");
	if (json_out) {
		print_json(audits);
		json_decref(doc);
		return 0;
	}
	/*
	 * EFFECT and RULE are "-" for audits that are not deviations, RULE when no
	 * rule decided; IMAGE is the container's image, "-" outside containers.
	 */
	printf("%-8s %-20s %-20s %-16s %-8s %-7s %-16s %-24s %s\n", "ID", "TIME", "HOST", "KIND",
	       "SEVERITY", "EFFECT", "RULE", "IMAGE", "SUMMARY");
	json_array_foreach(audits, i, a)
	{
		printf("%-8lld %-.19sZ %-20s %-16s %-8s %-7s %-16s %-24s %s\n", int_field(a, "id"),
		       ctl_str(a, "ts"), ctl_str(a, "host_id"), ctl_str(a, "kind"),
		       ctl_str(a, "severity"), ctl_str(a, "effect"), ctl_str(a, "rule"),
		       ctl_str(json_object_get(a, "container"), "image"), ctl_str(a, "summary"));
	}
	printf("%zu audit(s)\n", json_array_size(audits));
	json_decref(doc);
	return 0;
}

/* One id argument and --json; 0, or 2 after printing the usage error. */
static int id_and_json(const char *cmd, int argc, char **argv, const char **ret_id, bool *ret_json)
{
	*ret_id = NULL;
	*ret_json = false;
	for (int k = 1; k < argc; k++) {
		if (strcmp(argv[k], "--json") == 0) {
			*ret_json = true;
		} else if (*ret_id == NULL && argv[k][0] != '-') {
			*ret_id = argv[k];
		} else {
			fprintf(stderr, "vigilctl %s: unexpected '%s' (usage: %s ID [--json])\n",
				cmd, ctl_term(argv[k]), cmd);
			return 2;
		}
	}
	if (*ret_id == NULL) {
		fprintf(stderr, "vigilctl %s: which audit? (usage: %s ID [--json])\n", cmd, cmd);
		return 2;
	}
	return audit_id_arg(cmd, *ret_id) ? 0 : 2;
}

int ctl_cmd_audit(struct ctl *c, int argc, char **argv)
{
	json_t *a, *d, *chain, *link;
	const char *id;
	char path[128];
	bool json_out;
	size_t i;
	int rc;

	if ((rc = id_and_json("audit", argc, argv, &id, &json_out)) != 0)
		return rc;
	snprintf(path, sizeof(path), "/api/v1/audits/%s", id);
	if ((a = ctl_get_json(c, path)) == NULL)
		return ctl_failure(c);
	if (json_out) {
		print_json(a);
		json_decref(a);
		return 0;
	}
	d = json_object_get(a, "detail");
	printf("audit %lld on %s at %s: %s (%s)\n", int_field(a, "id"), ctl_str(a, "host_id"),
	       ctl_str(a, "ts"), ctl_str(a, "kind"), ctl_str(a, "severity"));
	printf("  %s\n", ctl_str(a, "summary"));
	if (json_is_string(json_object_get(a, "service")))
		printf("  service   %s, executable %s\n", ctl_str(a, "service"), ctl_str(a, "exe"));
	if (json_is_string(json_object_get(a, "effect")))
		printf("  effect    %s%s%s, rule %s\n", ctl_str(a, "effect"),
		       json_is_string(json_object_get(a, "wanted")) ? " (wanted " : "",
		       json_is_string(json_object_get(a, "wanted")) ? ctl_str(a, "wanted") : "",
		       ctl_str(a, "rule"));
	if (json_is_string(json_object_get(a, "why")))
		printf("  why       %s\n", ctl_str(a, "why"));
	if (json_is_string(json_object_get(d, "object")))
		printf("  did       %s (as the model would keep it: %s)\n", ctl_str(d, "raw"),
		       ctl_str(d, "object"));
	if (json_is_string(json_object_get(d, "expected")))
		printf("  expected  %s\n", ctl_str(d, "expected"));
	chain = json_object_get(d, "chain");
	if (json_array_size(chain) > 0)
		printf("  process chain, the process first:\n");
	json_array_foreach(chain, i, link) printf("    %-8lld %-16s %s\n", int_field(link, "pid"),
						  ctl_str(link, "comm"), ctl_str(link, "exe"));
	json_decref(a);
	return 0;
}

int ctl_cmd_accept(struct ctl *c, int argc, char **argv)
{
	const char *id;
	char path[128];
	bool json_out;
	json_t *r;
	int rc;

	if ((rc = id_and_json("accept", argc, argv, &id, &json_out)) != 0)
		return rc;
	snprintf(path, sizeof(path), "/api/v1/audits/%s/accept", id);
	r = ctl_post_json(c, path,
			  "the accept may have been queued; asking again is harmless (a pending"
			  " one is returned, not queued twice)");
	if (r == NULL)
		return ctl_failure(c);
	if (json_out)
		print_json(r);
	else
		printf("%s %s of %s %s the model of %s on %s (command %lld)\n", ctl_str(r, "kind"),
		       ctl_str(r, "pattern"), ctl_str(r, "exe"),
		       json_is_true(json_object_get(r, "already_pending"))
			   ? "was already being accepted into"
			   : "will be accepted, at the defender's next heartbeat, into",
		       ctl_str(r, "service"), ctl_str(r, "host"), int_field(r, "command_id"));
	json_decref(r);
	return 0;
}
