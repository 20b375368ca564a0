/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vigilctl enroll and vigilctl hosts revoke: join tokens and revoked hosts
 * through the console's API, with the API token as every vigilctl command
 * (docs/operations.md, "Enrolling hosts"):
 *
 *   enroll token create [--reusable] [--group NAME] [--labels k=v[,k=v]]
 *                       [--expires DURATION] [--json]
 *   enroll token list [--json]
 *   enroll token revoke ID
 *   hosts revoke NAME [--json]
 *   hosts revocations [--json]
 *
 * A token is printed once, when it is made, with the SHA-256 of the
 * console's CA and the command that enrolls a host with it; the console
 * keeps only its hash.  Writes are sent once; when the answer is lost
 * vigilctl says the change may have been made.  Exit codes as every
 * vigilctl command (vigilctl.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/apiclient.h"
#include "cli/vigilctl.h"

#define TOKENS_PATH	 "/api/v1/join-tokens"
#define REVOCATIONS_PATH "/api/v1/revocations"
/* As the console takes them (api/enroll_request.h). */
#define EXPIRES_MAX_S (90 * 86400)
#define LABELS_MAX    16

static const char enroll_usage[] =
    "usage: vigilctl [API options] enroll token COMMAND ...\n"
    "  create [--reusable] [--group NAME] [--labels k=v[,k=v]] [--expires DURATION] [--json]\n"
    "                  make a join token: one host may enroll with it (with --reusable,\n"
    "                  any number until it expires); --group NAME gives its hosts the\n"
    "                  label group=NAME; --expires 30m, 24h (the default), 7d (at most\n"
    "                  90d).  The token is printed once; the console keeps only its hash\n"
    "  list [--json]   the tokens: id, kind, uses, expiry, state (never the secret)\n"
    "  revoke ID       no host enrolls with token ID from now on\n"
    "On the host: vigil-defender --enroll TOKEN --console HOST:PORT --ca-sha256 HEX\n"
    "(create prints it).  Exit codes: 0 done, 1 refused, 2 usage, 3 the console could\n"
    "not be reached (or did not answer).\n";

static const char hosts_usage[] =
    "usage: vigilctl [API options] hosts revoke NAME [--json]\n"
    "       vigilctl [API options] hosts revocations [--json]\n"
    "  revoke NAME     revoke host NAME: its connections are closed at once, every\n"
    "                  certificate of it is refused from now on, and it cannot renew;\n"
    "                  to bring it back, enroll it again with a join token made since\n"
    "  revocations     the revoked hosts\n";

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vigilctl %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (vigilctl %s --help)\n",
		strncmp(cmd, "hosts", 5) == 0 ? "hosts revoke" : "enroll token");
	return CTL_EXIT_USAGE;
}

static void print_json(json_t *v)
{
	json_dumpf(v, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
	putchar('\n');
}

/* "30s", "90m", "24h", "7d" (a bare number is seconds) into seconds; -1 when not one. */
static long long duration_of(const char *s)
{
	char *end;
	long long v, unit = 1;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || v <= 0 || s[0] == '-')
		return -1;
	if (*end != '\0') {
		unit = end[0] == 's'   ? 1
		       : end[0] == 'm' ? 60
		       : end[0] == 'h' ? 3600
		       : end[0] == 'd' ? 86400
				       : 0;
		if (unit == 0 || end[1] != '\0')
			return -1;
	}
	if (v > EXPIRES_MAX_S / unit)
		return -1;
	return v * unit;
}

/* "k=v,k=v" into obj; false after printing why. */
static bool labels_of(const char *text, json_t *obj)
{
	char *copy = strdup(text), *save = NULL;

	if (copy == NULL)
		return false;
	for (char *kv = strtok_r(copy, ",", &save); kv != NULL; kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '=');

		if (eq == NULL || eq == kv || json_object_size(obj) >= LABELS_MAX) {
			usage_error("enroll token create",
				    "--labels takes at most %d key=value pairs, comma-separated",
				    LABELS_MAX);
			free(copy);
			return false;
		}
		*eq = '\0';
		json_object_set_new(obj, kv, json_string(eq + 1));
	}
	free(copy);
	return true;
}

/* HOST:PORT of the API URL, for the command printed. */
static const char *api_hostport(const char *api)
{
	static char buf[512];
	const char *p = strncmp(api, "https://", 8) == 0 ? api + 8 : api;

	snprintf(buf, sizeof(buf), "%.*s", (int)strcspn(p, "/"), p);
	return buf;
}

static int token_create(struct ctl *c, int argc, char **argv)
{
	const char *cmd = "enroll token create";
	json_t *req = json_object(), *labels = json_object(), *ans = NULL, *t;
	bool json_out = false;
	char *body;
	int rc;

	for (int k = 1; k < argc; k++) {
		const char *o = argv[k];

		if (strcmp(o, "--reusable") == 0) {
			json_object_set_new(req, "reusable", json_true());
		} else if (strcmp(o, "--json") == 0) {
			json_out = true;
		} else if (strcmp(o, "--group") == 0 || strcmp(o, "--labels") == 0 ||
			   strcmp(o, "--expires") == 0) {
			long long secs;

			if (k + 1 >= argc) {
				rc = usage_error(cmd, "%s needs a value", o);
				goto out;
			}
			if (strcmp(o, "--group") == 0) {
				json_object_set_new(req, "group", json_string(argv[++k]));
			} else if (strcmp(o, "--labels") == 0) {
				if (!labels_of(argv[++k], labels)) {
					rc = CTL_EXIT_USAGE;
					goto out;
				}
			} else if ((secs = duration_of(argv[++k])) < 0) {
				rc =
				    usage_error(cmd,
						"--expires takes a duration like 30m, 24h or 7d (at"
						" most 90d), not '%s'",
						ctl_term(argv[k]));
				goto out;
			} else {
				json_object_set_new(req, "expires_in_s", json_integer(secs));
			}
		} else {
			rc = usage_error(cmd, "unknown option '%s'", ctl_term(o));
			goto out;
		}
	}
	if (json_object_size(labels) > 0)
		json_object_set(req, "labels", labels);
	if ((body = json_dumps(req, JSON_COMPACT)) == NULL) {
		rc = CTL_EXIT_REFUSED;
		goto out;
	}
	rc = ctl_request(c, cmd, "POST", TOKENS_PATH, body, NULL, &ans);
	free(body);
	if (rc != CTL_EXIT_OK)
		goto out;
	t = json_object_get(ans, "token");
	if (json_out) {
		print_json(t);
		goto out;
	}
	printf("join token: %s\n", ctl_str(t, "token"));
	printf("  id %s, %s%s%s, expires %s\n", ctl_str(t, "id"),
	       json_is_true(json_object_get(t, "reusable")) ? "reusable until then"
							    : "for one host",
	       json_is_string(json_object_get(t, "group")) ? ", group " : "",
	       json_is_string(json_object_get(t, "group")) ? ctl_str(t, "group") : "",
	       ctl_str(t, "expires_at"));
	printf("  printed once: the console keeps only its hash\n");
	printf("console CA SHA-256: %s\n", ctl_str(t, "ca_sha256"));
	printf("on the host, as root:\n  vigil-defender --enroll %s --console %s --ca-sha256 %s\n",
	       ctl_str(t, "token"), ctl_term(api_hostport(c->api)), ctl_str(t, "ca_sha256"));
out:
	json_decref(ans);
	json_decref(labels);
	json_decref(req);
	return rc;
}

static int tokens_list(struct ctl *c, int argc, char **argv)
{
	json_t *ans = NULL, *list, *t;
	bool json_out = false;
	size_t i;
	int rc;

	for (int k = 1; k < argc; k++) {
		if (strcmp(argv[k], "--json") != 0)
			return usage_error("enroll token list", "unknown option '%s'",
					   ctl_term(argv[k]));
		json_out = true;
	}
	if ((rc = ctl_request(c, "enroll token list", "GET", TOKENS_PATH, NULL, NULL, &ans)) !=
	    CTL_EXIT_OK)
		return rc;
	list = json_object_get(ans, "tokens");
	if (json_out) {
		print_json(list);
		json_decref(ans);
		return CTL_EXIT_OK;
	}
	printf("%-16s %-9s %-8s %-5s %-20s %-16s %s\n", "ID", "KIND", "STATE", "USES", "EXPIRES",
	       "GROUP", "CREATED BY");
	json_array_foreach(list, i, t)
	{
		printf("%-16s %-9s %-8s %-5lld %-.19sZ %-16s %s\n", ctl_str(t, "id"),
		       json_is_true(json_object_get(t, "reusable")) ? "reusable" : "one-time",
		       ctl_str(t, "state"),
		       (long long)json_integer_value(json_object_get(t, "uses")),
		       ctl_str(t, "expires_at"), ctl_str(t, "group"), ctl_str(t, "created_by"));
	}
	printf("%zu token(s)\n", json_array_size(list));
	json_decref(ans);
	return CTL_EXIT_OK;
}

static int token_revoke(struct ctl *c, int argc, char **argv)
{
	char path[128];
	json_t *ans = NULL;
	int rc;

	if (argc != 2 || argv[1][0] == '-')
		return usage_error("enroll token revoke", "give the token's ID (vigilctl enroll"
							  " token list)");
	if (strlen(argv[1]) != 16 || strspn(argv[1], "0123456789abcdef") != 16)
		return usage_error(
		    "enroll token revoke",
		    "'%s' is not a token ID (16 hex digits; the part before the '.')",
		    ctl_term(argv[1]));
	snprintf(path, sizeof(path), TOKENS_PATH "/%s", argv[1]);
	if ((rc = ctl_request(c, "enroll token revoke", "DELETE", path, NULL, NULL, &ans)) !=
	    CTL_EXIT_OK)
		return rc;
	printf("join token %s revoked\n", argv[1]);
	json_decref(ans);
	return CTL_EXIT_OK;
}

int ctl_cmd_enroll(struct ctl *c, int argc, char **argv)
{
	for (int k = 1; k < argc; k++)
		if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0) {
			fputs(enroll_usage, stdout);
			return CTL_EXIT_OK;
		}
	if (argc < 3 || strcmp(argv[1], "token") != 0) {
		fputs(enroll_usage, stderr);
		return CTL_EXIT_USAGE;
	}
	if (strcmp(argv[2], "create") == 0)
		return token_create(c, argc - 2, argv + 2);
	if (strcmp(argv[2], "list") == 0)
		return tokens_list(c, argc - 2, argv + 2);
	if (strcmp(argv[2], "revoke") == 0)
		return token_revoke(c, argc - 2, argv + 2);
	fprintf(stderr, "vigilctl enroll token: unknown command '%s'\n", ctl_term(argv[2]));
	fputs(enroll_usage, stderr);
	return CTL_EXIT_USAGE;
}

static int host_revoke(struct ctl *c, int argc, char **argv)
{
	const char *name = NULL;
	json_t *req, *ans = NULL, *r;
	bool json_out = false;
	char *body;
	int rc;

	for (int k = 1; k < argc; k++) {
		if (strcmp(argv[k], "--json") == 0)
			json_out = true;
		else if (argv[k][0] != '-' && name == NULL)
			name = argv[k];
		else
			return usage_error("hosts revoke", "unexpected argument '%s'",
					   ctl_term(argv[k]));
	}
	if (name == NULL)
		return usage_error("hosts revoke", "give the host's name (vigilctl hosts)");
	if ((req = json_pack("{s:s}", "host", name)) == NULL ||
	    (body = json_dumps(req, JSON_COMPACT)) == NULL) {
		json_decref(req);
		return CTL_EXIT_REFUSED;
	}
	json_decref(req);
	rc = ctl_request(c, "hosts revoke", "POST", REVOCATIONS_PATH, body, NULL, &ans);
	free(body);
	if (rc != CTL_EXIT_OK)
		return rc;
	r = json_object_get(ans, "revoked");
	if (json_out)
		print_json(r);
	else
		printf("host %s revoked at %s (%lld certificate(s) marked): its connections are"
		       " closed and it is refused from now on\n",
		       ctl_str(r, "host"), ctl_str(r, "revoked_at"),
		       (long long)json_integer_value(json_object_get(r, "certificates")));
	json_decref(ans);
	return CTL_EXIT_OK;
}

static int revocations_list(struct ctl *c, int argc, char **argv)
{
	json_t *ans = NULL, *list, *r;
	bool json_out = false;
	size_t i;
	int rc;

	for (int k = 1; k < argc; k++) {
		if (strcmp(argv[k], "--json") != 0)
			return usage_error("hosts revocations", "unknown option '%s'",
					   ctl_term(argv[k]));
		json_out = true;
	}
	if ((rc = ctl_request(c, "hosts revocations", "GET", REVOCATIONS_PATH, NULL, NULL, &ans)) !=
	    CTL_EXIT_OK)
		return rc;
	list = json_object_get(ans, "revocations");
	if (json_out) {
		print_json(list);
	} else {
		printf("%-24s %-20s %-12s %s\n", "HOST", "REVOKED", "ENROLLED", "BY");
		json_array_foreach(list, i, r)
		{
			printf("%-24s %-.19sZ %-12s %s\n", ctl_str(r, "host"),
			       ctl_str(r, "revoked_at"),
			       json_integer_value(json_object_get(r, "certificates")) > 0 ? "again"
											  : "-",
			       ctl_str(r, "revoked_by"));
		}
		printf("%zu revoked host(s)\n", json_array_size(list));
	}
	json_decref(ans);
	return CTL_EXIT_OK;
}

int ctl_cmd_hosts_revoke(struct ctl *c, int argc, char **argv)
{
	for (int k = 1; k < argc; k++)
		if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0) {
			fputs(hosts_usage, stdout);
			return CTL_EXIT_OK;
		}
	if (strcmp(argv[1], "revoke") == 0)
		return host_revoke(c, argc - 1, argv + 1);
	return revocations_list(c, argc - 1, argv + 1);
}
