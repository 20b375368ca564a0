/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vigilctl rules: the operators' rules through the console's API.
 *
 *   rules list [--json]                     the rule set in order
 *   rules show ID [--json]                  one rule, as YAML (or JSON)
 *   rules add FILE [--position N]           add the rule in FILE (JSON or YAML)
 *   rules edit ID FILE [--position N]       replace rule ID by the rule in FILE
 *   rules rm ID                             delete rule ID
 *   rules move ID POSITION                  move rule ID
 *   rules export [FILE] [--yaml|--json]     the whole rule set, to import elsewhere
 *   rules import FILE [--check]             replace the whole rule set by FILE's
 *   rules versions [--limit N] [--before-id V] [--json]
 *   rules version V [--json]                one version: what changed, the set then
 *   rules rehearse (FILE | --id N [FILE]) [--position N] [--since T] [--until T]
 *                  [--host GLOB]... [--json]
 *                                           what the rule would have done over a past
 *                                           window (changes nothing)
 *
 * Writes take --if-version V (refused when the rule set is no longer at V).
 * Every rule file is checked here first, with the console's own parser, so
 * a bad file is refused naming the rule and field before anything is sent.
 * Every write carries a fresh Idempotency-Key; a write whose answer does
 * not arrive is not resent (a lost answer is a fault to find, not to paper
 * over): vigilctl says the change may have been made and names the key.
 * Exit codes: 0 done, 1 refused (by the console or
 * here: an invalid file), 2 usage, 3 the console could not be reached.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cli/apiclient.h"
#include "cli/rulefile.h"
#include "cli/vigilctl.h"
#include "fsutil.h"
#include "rules/rule.h"
#include "rules/rule_set.h"
#include "utf8.h"

#define EXIT_DONE	 0
#define EXIT_REFUSED	 1
#define EXIT_USAGE	 2
#define EXIT_UNREACHABLE 3

/* An import part's body stays under the API's 64 KiB request cap. */
#define IMPORT_PART_MAX (56 * 1024)

static const char usage_text[] =
    "usage: vigilctl [API options] rules COMMAND ...\n"
    "  list [--json]                        the rule set in order, and its version\n"
    "  show ID [--json]                     one rule, as YAML (or JSON)\n"
    "  add FILE [--position N] [--if-version V]\n"
    "                                       add the rule in FILE (JSON or YAML; - for stdin);\n"
    "                                       last unless --position\n"
    "  edit ID FILE [--position N] [--if-version V]\n"
    "                                       replace rule ID by FILE's (it keeps its place\n"
    "                                       unless --position)\n"
    "  rm ID [--if-version V]               delete rule ID\n"
    "  move ID POSITION [--if-version V]    move rule ID to POSITION (1 is first)\n"
    "  export [FILE] [--yaml|--json]        the whole rule set (to stdout without FILE;\n"
    "                                       YAML when FILE ends in .yaml or .yml)\n"
    "  import FILE [--if-version V] [--check]\n"
    "                                       replace the whole rule set by FILE's, in one\n"
    "                                       version (rules not in FILE are deleted);\n"
    "                                       --check only checks FILE\n"
    "  versions [--limit N] [--before-id V] [--json]\n"
    "                                       the rule set's versions, newest first\n"
    "  version V [--json]                   one version: what changed, and the set then\n"
    "  rehearse (FILE | --id N [FILE]) [--position N] [--since T] [--until T]\n"
    "           [--host GLOB]... [--json]\n"
    "                                       what FILE's rule (new, or an edit of rule N), or\n"
    "                                       rule N, would have alerted, prevented or blocked\n"
    "                                       over a past window, in its place in the rule set;\n"
    "                                       T: RFC 3339 or a time before now (24h, 7d);\n"
    "                                       default the last 24 h, at most 31 days\n"
    "--if-version V: refuse the change when the rule set is no longer at version V.\n"
    "Exit codes: 0 done, 1 refused (by the console, or an invalid file), 2 usage,\n"
    "3 the console could not be reached (or did not answer).\n";

/* What one subcommand was given: its positional arguments and options. */
struct args {
	const char *cmd;
	const char *pos[3];
	int npos;
	bool json, yaml, check;
	int position;	    /* --position, 0: none */
	int64_t if_version; /* --if-version, -1: none */
};

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vigilctl rules %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (vigilctl rules --help)\n");
	return EXIT_USAGE;
}

/* A decimal number 1..max (or 0..max with zero) from s; false when it is not. */
static bool number_arg(const char *s, int64_t max, bool zero, int64_t *ret)
{
	char *end;
	long long v;

	if (s[0] < '0' || s[0] > '9' || strlen(s) > 19)
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max || (v == 0 && !zero))
		return false;
	*ret = v;
	return true;
}

/*
 * Options and up to maxpos positional arguments of a subcommand; allowed
 * names the options it takes ("json", "yaml", "check", "position",
 * "if-version").  Returns -1 when --help was printed, else 0, or
 * EXIT_USAGE after printing why.
 */
static int parse_args(int argc, char **argv, int maxpos, const char *allowed, struct args *a)
{
	*a = (struct args){.cmd = argv[0], .if_version = -1};
	for (int k = 1; k < argc; k++) {
		const char *o = argv[k];
		int64_t v;

		if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
			fputs(usage_text, stdout);
			return -1;
		}
		if (strncmp(o, "--", 2) != 0 || strlen(o) == 2) {
			if (strcmp(o, "-") != 0 && o[0] == '-')
				return usage_error(a->cmd, "unknown option '%s'", ctl_term(o));
			if (a->npos >= maxpos)
				return usage_error(a->cmd, "unexpected argument '%s'", ctl_term(o));
			a->pos[a->npos++] = o;
			continue;
		}
		if (strstr(allowed, o + 2) == NULL)
			return usage_error(a->cmd, "unknown option '%s'", ctl_term(o));
		if (strcmp(o, "--json") == 0) {
			a->json = true;
		} else if (strcmp(o, "--yaml") == 0) {
			a->yaml = true;
		} else if (strcmp(o, "--check") == 0) {
			a->check = true;
		} else if (strcmp(o, "--position") == 0 || strcmp(o, "--if-version") == 0) {
			bool pos = strcmp(o, "--position") == 0;

			if (k + 1 >= argc)
				return usage_error(a->cmd, "%s needs a number", ctl_term(o));
			if (!number_arg(argv[++k], pos ? RULES_MAX : INT64_MAX, !pos, &v))
				return usage_error(a->cmd,
						   "'%s' is not a position (1, 2, ...) or"
						   " version (0, 1, ...)",
						   ctl_term(argv[k]));
			if (pos)
				a->position = (int)v;
			else
				a->if_version = v;
		} else {
			return usage_error(a->cmd, "unknown option '%s'", ctl_term(o));
		}
	}
	return 0;
}

/* A rule id argument. */
static bool id_arg(const char *cmd, const char *s, int64_t *ret)
{
	if (number_arg(s, INT64_MAX, false, ret))
		return true;
	fprintf(stderr, "vigilctl rules %s: '%s' is not a rule id (see vigilctl rules list)\n", cmd,
		ctl_term(s));
	return false;
}

/* A new idempotency key: 32 random hex characters. */
static void new_key(char out[33])
{
	unsigned char raw[16];

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
		/* Without randomness a key is still unique enough per process and moment. */
		snprintf(out, 33, "k%015lx%016lx", (unsigned long)getpid(),
			 (unsigned long)time(NULL));
		return;
	}
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

struct answer {
	int status;
	json_t *doc; /* the parsed body, or NULL */
};

/*
 * One request, sent once.  Returns 0 with a filled, or EXIT_REFUSED /
 * EXIT_UNREACHABLE after printing why.
 */
static int call(struct ctl *c, const char *cmd, const char *method, const char *path,
		const char *body, const char *key, int64_t if_version, struct answer *a)
{
	const char *headers[5] = {NULL};
	char match[32], *text = NULL;
	vigil_err err = {0};
	int n = 0, rc;

	a->doc = NULL;
	if (ctl_load_token(c) < 0)
		return EXIT_REFUSED;
	if (key != NULL) {
		headers[n++] = "Idempotency-Key";
		headers[n++] = key;
	}
	if (if_version >= 0) {
		snprintf(match, sizeof(match), "\"%" PRId64 "\"", if_version);
		headers[n++] = "If-Match";
		headers[n++] = match;
	}
	rc = apiclient_request(c->api, method, path, body, headers, c->token, c->ca, &a->status,
			       &text, &err);
	if (rc == -EPROTO && key != NULL) {
		fprintf(stderr,
			"vigilctl rules %s: %s: the change may have been made (Idempotency-Key %s);"
			" see 'vigilctl rules versions' before trying again\n",
			cmd, err.msg, key);
		return EXIT_UNREACHABLE;
	}
	if (rc < 0) {
		fprintf(stderr, "vigilctl rules %s: %s\n", cmd, err.msg);
		return EXIT_UNREACHABLE;
	}
	a->doc = json_loads(text, 0, NULL);
	free(text);
	if (a->doc == NULL) {
		fprintf(stderr, "vigilctl rules %s: %s%s answered %d without JSON\n", cmd, c->api,
			path, a->status);
		return EXIT_REFUSED;
	}
	return 0;
}

/* o[k] as a string safe for a terminal, or "" when absent. */
static const char *str_or_empty(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_string(v) ? ctl_term(json_string_value(v)) : "";
}

static long long int_of(json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

/*
 * A refusal as one line: what, the rule, the field, why.  offset is added to
 * a "rules[i]" field (an import part's index in the whole file).
 */
static int print_refused(const char *cmd, const struct answer *a, size_t offset)
{
	json_t *d = a->doc;
	const char *field = str_or_empty(d, "field"), *rule = str_or_empty(d, "rule");
	char shifted[300];
	size_t idx;
	int used = 0;

	if (offset > 0 && sscanf(field, "rules[%zu]%n", &idx, &used) == 1 && used > 0) {
		snprintf(shifted, sizeof(shifted), "rules[%zu]%s", idx + offset, field + used);
		field = shifted;
	}
	fprintf(stderr, "vigilctl rules %s: refused (%d): %s", cmd, a->status,
		str_or_empty(d, "error")[0] != '\0' ? str_or_empty(d, "error") : "(no detail)");
	if (rule[0] != '\0')
		fprintf(stderr, " \"%s\"", rule);
	if (field[0] != '\0')
		fprintf(stderr, ", %s", field);
	if (str_or_empty(d, "reason")[0] != '\0')
		fprintf(stderr, ": %s", str_or_empty(d, "reason"));
	if (a->status == 409 && json_is_integer(json_object_get(d, "version")))
		fprintf(stderr, " (the rule set is at version %lld)", int_of(d, "version"));
	fputc('\n', stderr);
	return EXIT_REFUSED;
}

static void print_json(json_t *v)
{
	json_dumpf(v, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
	putchar('\n');
}

/* A rule the console sent, checked and in canonical form (into *r; caller rule_fini's). */
static bool rule_from_console(const char *cmd, json_t *o, struct rule *r)
{
	struct rule_error e;

	if (rule_from_json(o, NULL, r, &e) == 0)
		return true;
	fprintf(stderr,
		"vigilctl rules %s: the console sent a rule this vigilctl refuses: %s: %s\n", cmd,
		ctl_term(e.field), ctl_term(e.reason));
	return false;
}

/*
 * A section in a column: "DEVIATION/DENY-EFFECT:DENIED/ALLOWED" ("alert/block:2/1"
 * for deviations alerted, 2 entries denied with block, 1 allowed), "-" when absent.
 */
static void section_text(json_t *sec, const char *const *lists, char *buf, size_t len)
{
	json_t *deny = json_object_get(sec, "deny"), *allow = json_object_get(sec, "allow");
	size_t nd = 0, na = 0;

	if (!json_is_object(sec)) {
		snprintf(buf, len, "-");
		return;
	}
	for (size_t i = 0; lists[i] != NULL; i++) {
		nd += json_array_size(json_object_get(deny, lists[i]));
		na += json_array_size(json_object_get(allow, lists[i]));
	}
	snprintf(buf, len, "%s/%s:%zu/%zu", str_or_empty(sec, "deviation"),
		 str_or_empty(deny, "effect"), nd, na);
}

/* "hosts=web-*,db-1 labels=env=prod" (cut), or "any". */
static void scope_text(json_t *scope, char *buf, size_t len)
{
	static const char *const keys[] = {"hosts", "labels", "services", "images"};
	size_t o = 0;

	buf[0] = '\0';
	for (size_t k = 0; k < 4; k++) {
		json_t *list = json_object_get(scope, keys[k]), *e;
		size_t i;

		if (json_array_size(list) == 0 || o >= len)
			continue;
		o += (size_t)snprintf(buf + o, len - o, "%s%s=", o ? " " : "", keys[k]);
		json_array_foreach(list, i, e)
		{
			if (o >= len)
				break;
			o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? "," : "",
					      ctl_term(json_string_value(e)));
		}
	}
	if (buf[0] == '\0')
		snprintf(buf, len, "any");
}

static int cmd_list(struct ctl *c, int argc, char **argv)
{
	static const char *const proc[] = {"executables", NULL};
	static const char *const net[] = {"listen", "connect", NULL};
	static const char *const files[] = {"read", "write", NULL};
	struct answer a;
	struct args args;
	json_t *r;
	size_t i;
	int rc;

	if ((rc = parse_args(argc, argv, 0, "json", &args)) != 0)
		return rc < 0 ? EXIT_DONE : rc;
	if ((rc = call(c, "list", "GET", "/api/v1/rules", NULL, NULL, -1, &a)) != 0)
		return rc;
	if (a.status != 200) {
		rc = print_refused("list", &a, 0);
		json_decref(a.doc);
		return rc;
	}
	if (args.json) {
		print_json(a.doc);
		json_decref(a.doc);
		return EXIT_DONE;
	}
	printf("%-4s %-6s %-24s %-3s %-24s %-24s %-24s %s\n", "POS", "ID", "NAME", "ON",
	       "PROCESSES", "NETWORK", "FILES", "SCOPE");
	json_array_foreach(json_object_get(a.doc, "rules"), i, r)
	{
		char p[64], n[64], f[64], s[256];

		section_text(json_object_get(r, "processes"), proc, p, sizeof(p));
		section_text(json_object_get(r, "network"), net, n, sizeof(n));
		section_text(json_object_get(r, "files"), files, f, sizeof(f));
		scope_text(json_object_get(r, "scope"), s, sizeof(s));
		printf("%-4lld %-6lld %-24s %-3s %-24s %-24s %-24s %s\n", int_of(r, "position"),
		       int_of(r, "id"), str_or_empty(r, "name"),
		       json_is_false(json_object_get(r, "enabled")) ? "no" : "yes", p, n, f, s);
	}
	printf(
	    "rule set version %lld: %zu rule(s); sections: deviation/deny effect:denied/allowed\n",
	    int_of(a.doc, "version"), json_array_size(json_object_get(a.doc, "rules")));
	json_decref(a.doc);
	return EXIT_DONE;
}

static int cmd_show(struct ctl *c, int argc, char **argv)
{
	struct answer a;
	struct args args;
	struct rule r;
	char path[64], why[256];
	json_t *canon;
	int64_t id;
	int rc;

	if ((rc = parse_args(argc, argv, 1, "json", &args)) != 0)
		return rc < 0 ? EXIT_DONE : rc;
	if (args.npos != 1)
		return usage_error("show", "%s", "which rule? (show ID)");
	if (!id_arg("show", args.pos[0], &id))
		return EXIT_USAGE;
	snprintf(path, sizeof(path), "/api/v1/rules/%" PRId64, id);
	if ((rc = call(c, "show", "GET", path, NULL, NULL, -1, &a)) != 0)
		return rc;
	if (a.status != 200) {
		rc = print_refused("show", &a, 0);
		json_decref(a.doc);
		return rc;
	}
	if (!rule_from_console("show", json_object_get(a.doc, "rule"), &r)) {
		json_decref(a.doc);
		return EXIT_REFUSED;
	}
	canon = rule_to_json(&r);
	rc = EXIT_DONE;
	if (canon == NULL) {
		fprintf(stderr, "vigilctl rules show: out of memory\n");
		rc = EXIT_REFUSED;
	} else if (args.json) {
		print_json(canon);
	} else {
		printf("# rule %" PRId64 " at position %d of rule set version %lld\n", r.id,
		       r.position, int_of(a.doc, "version"));
		if (rulefile_yaml_write(stdout, canon, why, sizeof(why)) < 0) {
			fprintf(stderr, "vigilctl rules show: %s\n", why);
			rc = EXIT_REFUSED;
		}
	}
	json_decref(canon);
	rule_fini(&r);
	json_decref(a.doc);
	return rc;
}

/*
 * FILE's rule, checked here: into *r (caller rule_fini's).  EXIT_DONE, or
 * EXIT_REFUSED after printing what is wrong and where.
 */
static int rule_from_file(const char *cmd, const char *file, struct rule *r)
{
	struct rule_error e;
	char why[512];
	json_t *doc;
	int rc;

	if (rulefile_read(file, &doc, why, sizeof(why)) < 0) {
		fprintf(stderr, "vigilctl rules %s: %s: %s\n", cmd, ctl_term(file), ctl_term(why));
		return EXIT_REFUSED;
	}
	if (json_is_object(doc) && json_object_get(doc, "rules") != NULL &&
	    json_object_get(doc, "name") == NULL) {
		fprintf(stderr,
			"vigilctl rules %s: %s holds a rule set, not one rule: use 'vigilctl rules"
			" import'\n",
			cmd, ctl_term(file));
		json_decref(doc);
		return EXIT_REFUSED;
	}
	rc = rule_from_json(doc, NULL, r, &e);
	json_decref(doc);
	if (rc < 0) {
		fprintf(stderr, "vigilctl rules %s: %s: invalid rule", cmd, ctl_term(file));
		if (e.rule[0] != '\0')
			fprintf(stderr, " \"%s\"", ctl_term(e.rule));
		if (e.field[0] != '\0')
			fprintf(stderr, ", %s", ctl_term(e.field));
		fprintf(stderr, ": %s\n", ctl_term(e.reason));
		return EXIT_REFUSED;
	}
	return EXIT_DONE;
}

/* Send a write of rule r (add: POST, edit: PUT) and say what it did. */
static int write_rule(struct ctl *c, const char *cmd, const char *method, const char *path,
		      const struct rule *r, int64_t if_version, int status_ok)
{
	json_t *body = rule_to_json(r), *out;
	struct answer a;
	char key[33], *text;
	int rc;

	text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (text == NULL) {
		fprintf(stderr, "vigilctl rules %s: out of memory\n", cmd);
		return EXIT_REFUSED;
	}
	new_key(key);
	rc = call(c, cmd, method, path, text, key, if_version, &a);
	free(text);
	if (rc != 0)
		return rc;
	if (a.status != status_ok) {
		rc = print_refused(cmd, &a, 0);
		json_decref(a.doc);
		return rc;
	}
	out = json_object_get(a.doc, "rule");
	if (json_is_true(json_object_get(a.doc, "unchanged")))
		printf("rule \"%s\" (id %lld) is already so: nothing changed (rule set version"
		       " %lld)\n",
		       str_or_empty(out, "name"), int_of(out, "id"), int_of(a.doc, "version"));
	else
		printf("%s rule \"%s\" as id %lld at position %lld: rule set version %lld\n",
		       strcmp(method, "POST") == 0 ? "added" : "edited", str_or_empty(out, "name"),
		       int_of(out, "id"), int_of(out, "position"), int_of(a.doc, "version"));
	json_decref(a.doc);
	return EXIT_DONE;
}

static int cmd_add(struct ctl *c, int argc, char **argv)
{
	struct args args;
	struct rule r;
	int rc;

	if ((rc = parse_args(argc, argv, 1, "position if-version", &args)) != 0)
		return rc < 0 ? EXIT_DONE : rc;
	if (args.npos != 1)
		return usage_error("add", "%s", "which file? (add FILE)");
	if ((rc = rule_from_file("add", args.pos[0], &r)) != 0)
		return rc;
	if (r.id != 0) {
		fprintf(stderr,
			"vigilctl rules add: %s is rule %" PRId64
			" (it has an id): to change it use"
			" 'vigilctl rules edit %" PRId64 " FILE'; to add a copy, remove the id\n",
			ctl_term(args.pos[0]), r.id, r.id);
		rule_fini(&r);
		return EXIT_REFUSED;
	}
	if (args.position > 0)
		r.position = args.position;
	rc = write_rule(c, "add", "POST", "/api/v1/rules", &r, args.if_version, 201);
	rule_fini(&r);
	return rc;
}

static int cmd_edit(struct ctl *c, int argc, char **argv)
{
	struct args args;
	struct rule r;
	char path[64];
	int64_t id;
	int rc;

	if ((rc = parse_args(argc, argv, 2, "position if-version", &args)) != 0)
		return rc < 0 ? EXIT_DONE : rc;
	if (args.npos != 2)
		return usage_error("edit", "%s", "which rule and file? (edit ID FILE)");
	if (!id_arg("edit", args.pos[0], &id))
		return EXIT_USAGE;
	if ((rc = rule_from_file("edit", args.pos[1], &r)) != 0)
		return rc;
	if (r.id != 0 && r.id != id) {
		fprintf(stderr, "vigilctl rules edit: %s is rule %" PRId64 ", not %" PRId64 "\n",
			ctl_term(args.pos[1]), r.id, id);
		rule_fini(&r);
		return EXIT_REFUSED;
	}
	/* A file from 'show' has the place the rule had then: only --position moves it. */
	r.position = args.position;
	snprintf(path, sizeof(path), "/api/v1/rules/%" PRId64, id);
	rc = write_rule(c, "edit", "PUT", path, &r, args.if_version, 200);
	rule_fini(&r);
	return rc;
}

static int cmd_rm(struct ctl *c, int argc, char **argv)
{
	struct answer a;
	struct args args;
	char path[64], key[33];
	json_t *d;
	int64_t id;
	int rc;

	if ((rc = parse_args(argc, argv, 1, "if-version", &args)) != 0)
		return rc < 0 ? EXIT_DONE : rc;
	if (args.npos != 1)
		return usage_error("rm", "%s", "which rule? (rm ID)");
	if (!id_arg("rm", args.pos[0], &id))
		return EXIT_USAGE;
	snprintf(path, sizeof(path), "/api/v1/rules/%" PRId64, id);
	new_key(key);
	if ((rc = call(c, "rm", "DELETE", path, NULL, key, args.if_version, &a)) != 0)
		return rc;
	if (a.status != 200) {
		rc = print_refused("rm", &a, 0);
		json_decref(a.doc);
		return rc;
	}
	d = json_object_get(a.doc, "deleted");
	printf("deleted rule \"%s\" (id %lld, was at position %lld): rule set version %lld\n",
	       str_or_empty(d, "name"), int_of(d, "id"), int_of(d, "position"),
	       int_of(a.doc, "version"));
	json_decref(a.doc);
	return EXIT_DONE;
}

static int cmd_move(struct ctl *c, int argc, char **argv)
{
	struct answer a;
	struct args args;
	char path[64], key[33], body[64];
	int64_t id, pos;
	json_t *r;
	int rc;

	if ((rc = parse_args(argc, argv, 2, "if-version", &args)) != 0)
		return rc < 0 ? EXIT_DONE : rc;
	if (args.npos != 2)
		return usage_error("move", "%s", "which rule, and where? (move ID POSITION)");
	if (!id_arg("move", args.pos[0], &id))
		return EXIT_USAGE;
	if (!number_arg(args.pos[1], RULES_MAX, false, &pos))
		return usage_error("move", "'%s' is not a position (1 is first)",
				   ctl_term(args.pos[1]));
	snprintf(path, sizeof(path), "/api/v1/rules/%" PRId64 "/move", id);
	snprintf(body, sizeof(body), "{\"position\":%" PRId64 "}", pos);
	new_key(key);
	if ((rc = call(c, "move", "POST", path, body, key, args.if_version, &a)) != 0)
		return rc;
	if (a.status != 200) {
		rc = print_refused("move", &a, 0);
		json_decref(a.doc);
		return rc;
	}
	r = json_object_get(a.doc, "rule");
	if (json_is_true(json_object_get(a.doc, "unchanged")))
		printf("rule \"%s\" (id %lld) is already at position %lld: nothing changed\n",
		       str_or_empty(r, "name"), int_of(r, "id"), int_of(r, "position"));
	else
		printf("moved rule \"%s\" (id %lld) to position %lld: rule set version %lld\n",
		       str_or_empty(r, "name"), int_of(r, "id"), int_of(r, "position"),
		       int_of(a.doc, "version"));
	json_decref(a.doc);
	return EXIT_DONE;
}

/* doc as JSON or YAML text into *ret (caller frees). */
static int render(const json_t *doc, bool yaml, char **ret, size_t *ret_len, char *why,
		  size_t whylen)
{
	FILE *f = open_memstream(ret, ret_len);
	int rc = 0;

	if (f == NULL) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	if (yaml)
		rc = rulefile_yaml_write(f, doc, why, whylen);
	else if (json_dumpf(doc, f, JSON_INDENT(2)) < 0 || fputc('\n', f) == EOF)
		rc = -EIO;
	if (fclose(f) != 0 && rc == 0)
		rc = -EIO;
	if (rc < 0) {
		if (why[0] == '\0')
			snprintf(why, whylen, "cannot write the rule set");
		free(*ret);
		*ret = NULL;
	}
	return rc;
}

static int cmd_export(struct ctl *c, int argc, char **argv)
{
	struct answer a;
	struct args args;
	struct rule_set set;
	struct rule_error e;
	vigil_err err = {0};
	char why[512] = "", *text = NULL;
	size_t len = 0;
	json_t *doc;
	bool yaml;
	int rc;

	if ((rc = parse_args(argc, argv, 1, "yaml json", &args)) != 0)
		return rc < 0 ? EXIT_DONE : rc;
	if (args.yaml && args.json)
		return usage_error("export", "%s", "--yaml or --json, not both");
	yaml = args.yaml || (!args.json && args.npos == 1 && rulefile_is_yaml_name(args.pos[0]));
	if ((rc = call(c, "export", "GET", "/api/v1/rules", NULL, NULL, -1, &a)) != 0)
		return rc;
	if (a.status != 200) {
		rc = print_refused("export", &a, 0);
		json_decref(a.doc);
		return rc;
	}
	/* Checked as an import will check it: what is exported can be imported. */
	if (rule_set_from_array(json_object_get(a.doc, "rules"), "rules", 0, &set, &e) < 0) {
		fprintf(stderr,
			"vigilctl rules export: the console sent a rule set this vigilctl"
			" refuses: %s: %s\n",
			ctl_term(e.field), ctl_term(e.reason));
		json_decref(a.doc);
		return EXIT_REFUSED;
	}
	doc = rule_set_to_json(&set, json_integer_value(json_object_get(a.doc, "version")));
	if (doc == NULL || render(doc, yaml, &text, &len, why, sizeof(why)) < 0) {
		fprintf(stderr, "vigilctl rules export: %s\n", doc == NULL ? "out of memory" : why);
		rc = EXIT_REFUSED;
	} else if (args.npos == 0 || strcmp(args.pos[0], "-") == 0) {
		rc = fwrite(text, 1, len, stdout) == len ? EXIT_DONE : EXIT_REFUSED;
	} else if (fs_write_file(args.pos[0], text, len, 0644, 0, &err) < 0) {
		fprintf(stderr, "vigilctl rules export: %s\n", err.msg);
		rc = EXIT_REFUSED;
	} else {
		fprintf(stderr, "exported %zu rule(s) of rule set version %lld to %s\n", set.n,
			int_of(a.doc, "version"), ctl_term(args.pos[0]));
	}
	free(text);
	json_decref(doc);
	rule_set_fini(&set);
	json_decref(a.doc);
	return rc;
}

/* Send the rules [from, to) of set as part k of import key; EXIT_DONE with *a, or an exit code. */
static int import_part(struct ctl *c, const char *key, int part, bool last, json_t *rules,
		       int64_t if_version, struct answer *a)
{
	json_t *body = json_pack("{s:s,s:i,s:b,s:O}", "import", key, "part", part, "last", last,
				 "rules", rules);
	char *text;
	int rc;

	if (body != NULL && last && if_version >= 0)
		json_object_set_new(body, "expected_version", json_integer(if_version));
	text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (text == NULL) {
		fprintf(stderr, "vigilctl rules import: out of memory\n");
		return EXIT_REFUSED;
	}
	/* A part sent again is recognized by its key and number: safe to repeat. */
	rc = call(c, "import", "POST", "/api/v1/rules/import", text, NULL, -1, a);
	free(text);
	return rc;
}

static int cmd_import(struct ctl *c, int argc, char **argv)
{
	struct answer a = {0};
	struct args args;
	struct rule_set set;
	struct rule_error e;
	char why[512], key[33];
	json_t *doc, *part;
	size_t first = 0, bytes = 0;
	int rc, n = 0;

	if ((rc = parse_args(argc, argv, 1, "if-version check", &args)) != 0)
		return rc < 0 ? EXIT_DONE : rc;
	if (args.npos != 1)
		return usage_error("import", "%s", "which file? (import FILE)");
	if (rulefile_read(args.pos[0], &doc, why, sizeof(why)) < 0) {
		fprintf(stderr, "vigilctl rules import: %s: %s\n", ctl_term(args.pos[0]),
			ctl_term(why));
		return EXIT_REFUSED;
	}
	rc = rule_set_from_json(doc, &set, &e);
	json_decref(doc);
	if (rc < 0) {
		fprintf(stderr, "vigilctl rules import: %s: nothing imported: invalid rule",
			ctl_term(args.pos[0]));
		if (e.rule[0] != '\0')
			fprintf(stderr, " \"%s\"", ctl_term(e.rule));
		fprintf(stderr, "%s%s: %s\n", e.field[0] != '\0' ? ", " : "", ctl_term(e.field),
			ctl_term(e.reason));
		return EXIT_REFUSED;
	}
	if (args.check) {
		printf("%s: %zu rule(s), all valid\n", ctl_term(args.pos[0]), set.n);
		rule_set_fini(&set);
		return EXIT_DONE;
	}
	new_key(key);
	part = json_array();
	rc = part != NULL ? EXIT_DONE : EXIT_REFUSED;
	for (size_t i = 0; rc == EXIT_DONE && i <= set.n; i++) {
		json_t *r = i < set.n ? rule_to_json(&set.v[i]) : NULL;
		size_t len = r != NULL ? json_dumpb(r, NULL, 0, JSON_COMPACT) + 1 : 0;

		/* A part is full when the next rule would not fit; the last takes what is left. */
		if (i == set.n || (json_array_size(part) > 0 && bytes + len > IMPORT_PART_MAX)) {
			rc = import_part(c, key, ++n, i == set.n, part, args.if_version, &a);
			if (rc == EXIT_DONE && a.status != 200 && a.status != 202)
				rc = print_refused("import", &a, first);
			if (rc == EXIT_DONE && i < set.n)
				json_decref(a.doc);
			json_array_clear(part);
			first = i;
			bytes = 0;
		}
		if (r != NULL && rc == EXIT_DONE) {
			json_array_append(part, r);
			bytes += len;
		}
		json_decref(r);
	}
	if (rc == EXIT_DONE) {
		if (json_is_true(json_object_get(a.doc, "unchanged")))
			printf("the rule set already is %s's (%lld rules): nothing changed (rule"
			       " set version %lld)\n",
			       ctl_term(args.pos[0]), int_of(a.doc, "rules"),
			       int_of(a.doc, "version"));
		else
			printf("imported %lld rule(s) from %s: %lld added, %lld changed, %lld"
			       " removed: rule set version %lld\n",
			       int_of(a.doc, "rules"), ctl_term(args.pos[0]),
			       int_of(a.doc, "added"), int_of(a.doc, "changed"),
			       int_of(a.doc, "removed"), int_of(a.doc, "version"));
	}
	json_decref(a.doc);
	json_decref(part);
	rule_set_fini(&set);
	return rc;
}

static int cmd_versions(struct ctl *c, int argc, char **argv)
{
	static const char *const params[] = {"limit", "before-id", NULL};
	char path[512] = "/api/v1/rules/versions";
	struct answer a;
	bool json_out;
	json_t *v;
	size_t i;
	int rc;

	for (int k = 1; k < argc; k++) {
		if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0) {
			fputs(usage_text, stdout);
			return EXIT_DONE;
		}
	}
	if ((rc = ctl_query_opts("rules versions", argc, argv, params, path, sizeof(path),
				 &json_out)) != 0)
		return rc;
	if ((rc = call(c, "versions", "GET", path, NULL, NULL, -1, &a)) != 0)
		return rc;
	if (a.status != 200) {
		rc = print_refused("versions", &a, 0);
		json_decref(a.doc);
		return rc;
	}
	if (json_out) {
		print_json(a.doc);
		json_decref(a.doc);
		return EXIT_DONE;
	}
	printf("%-8s %-20s %-12s %-6s %s\n", "VERSION", "TIME", "ACTOR", "RULES", "CHANGE");
	json_array_foreach(json_object_get(a.doc, "versions"), i, v)
	{
		printf("%-8lld %-.19sZ %-12s %-6lld %s\n", int_of(v, "version"),
		       str_or_empty(v, "created_at"), str_or_empty(v, "actor"), int_of(v, "count"),
		       str_or_empty(v, "change"));
	}
	printf("the rule set is at version %lld\n", int_of(a.doc, "version"));
	json_decref(a.doc);
	return EXIT_DONE;
}

static int cmd_version(struct ctl *c, int argc, char **argv)
{
	struct answer a;
	struct args args;
	char path[64];
	json_t *rules, *r;
	int64_t v;
	size_t i;
	int rc;

	if ((rc = parse_args(argc, argv, 1, "json", &args)) != 0)
		return rc < 0 ? EXIT_DONE : rc;
	if (args.npos != 1)
		return usage_error("version", "%s", "which version? (version V)");
	if (!number_arg(args.pos[0], INT64_MAX, false, &v))
		return usage_error("version", "'%s' is not a version (1, 2, ...)",
				   ctl_term(args.pos[0]));
	snprintf(path, sizeof(path), "/api/v1/rules/versions/%" PRId64, v);
	if ((rc = call(c, "version", "GET", path, NULL, NULL, -1, &a)) != 0)
		return rc;
	if (a.status != 200) {
		rc = print_refused("version", &a, 0);
		json_decref(a.doc);
		return rc;
	}
	if (args.json) {
		print_json(a.doc);
		json_decref(a.doc);
		return EXIT_DONE;
	}
	printf("version %lld, %-.19sZ, by %s: %s\n", int_of(a.doc, "version"),
	       str_or_empty(a.doc, "created_at"), str_or_empty(a.doc, "actor"),
	       str_or_empty(a.doc, "change"));
	rules = json_object_get(a.doc, "rules");
	if (!json_is_array(rules))
		printf("its rule set (%lld rules) is no longer kept\n", int_of(a.doc, "count"));
	else
		printf("its rule set, %zu rule(s):\n", json_array_size(rules));
	json_array_foreach(rules, i, r)
	{
		printf("  %-4lld id %-6lld %s%s\n", int_of(r, "position"), int_of(r, "id"),
		       str_or_empty(r, "name"),
		       json_is_false(json_object_get(r, "enabled")) ? " (disabled)" : "");
	}
	json_decref(a.doc);
	return EXIT_DONE;
}

/* What rehearse was given. */
struct rehearse_args {
	const char *file, *since, *until;
	const char *hosts[64]; /* the API takes at most 64 host globs */
	size_t nhosts;
	int64_t id, position;
	bool json;
};

/* rehearse's arguments; -1 after --help, 0, or EXIT_USAGE after printing why. */
static int rehearse_parse(int argc, char **argv, struct rehearse_args *a)
{
	*a = (struct rehearse_args){0};
	for (int k = 1; k < argc; k++) {
		const char *o = argv[k], *v;

		if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
			fputs(usage_text, stdout);
			return -1;
		}
		if (strcmp(o, "--json") == 0) {
			a->json = true;
			continue;
		}
		if (o[0] != '-' || strcmp(o, "-") == 0) {
			if (a->file != NULL)
				return usage_error("rehearse", "unexpected argument '%s'",
						   ctl_term(o));
			a->file = o;
			continue;
		}
		if (strcmp(o, "--id") != 0 && strcmp(o, "--position") != 0 &&
		    strcmp(o, "--since") != 0 && strcmp(o, "--until") != 0 &&
		    strcmp(o, "--host") != 0)
			return usage_error("rehearse", "unknown option '%s'", ctl_term(o));
		if (k + 1 >= argc)
			return usage_error("rehearse", "%s needs a value", o);
		v = argv[++k];
		if (!utf8_valid(v, strlen(v)))
			return usage_error("rehearse", "the value of %s is not UTF-8", o);
		if (strcmp(o, "--id") == 0 && !number_arg(v, INT64_MAX, false, &a->id))
			return usage_error("rehearse", "'%s' is not a rule id", ctl_term(v));
		if (strcmp(o, "--position") == 0 && !number_arg(v, RULES_MAX, false, &a->position))
			return usage_error("rehearse", "'%s' is not a position (1 is first)",
					   ctl_term(v));
		if (strcmp(o, "--since") == 0)
			a->since = v;
		if (strcmp(o, "--until") == 0)
			a->until = v;
		if (strcmp(o, "--host") == 0) {
			if (a->nhosts >= sizeof(a->hosts) / sizeof(a->hosts[0]))
				return usage_error("rehearse", "at most %zu --host globs",
						   sizeof(a->hosts) / sizeof(a->hosts[0]));
			a->hosts[a->nhosts++] = v;
		}
	}
	if (a->file == NULL && a->id == 0)
		return usage_error("rehearse", "%s",
				   "which rule? (rehearse FILE, or --id N [FILE])");
	if (a->file == NULL && a->position > 0)
		return usage_error("rehearse", "%s", "--position moves the rule of a FILE");
	return 0;
}

/* The request's body into *ret (caller frees); EXIT_DONE, or EXIT_REFUSED after printing why. */
static int rehearse_body(struct rehearse_args *a, char **ret)
{
	json_t *body = json_object(), *hosts = json_array();
	struct rule r;
	int rc = EXIT_DONE;

	if (a->file != NULL && (rc = rule_from_file("rehearse", a->file, &r)) == EXIT_DONE) {
		/* A file from 'show' is that rule: rehearsed as an edit of it. */
		if (r.id != 0 && a->id != 0 && r.id != a->id) {
			fprintf(stderr,
				"vigilctl rules rehearse: %s is rule %" PRId64 ", not %" PRId64
				"\n",
				ctl_term(a->file), r.id, a->id);
			rc = EXIT_REFUSED;
		}
		if (r.id != 0)
			a->id = r.id;
		/* An edit keeps the rule's place (as edit does); only --position moves it. */
		if (a->id != 0 || a->position > 0)
			r.position = (int)a->position;
		json_object_set_new(body, "rule", rule_to_json(&r));
		rule_fini(&r);
	}
	if (a->id > 0)
		json_object_set_new(body, "rule_id", json_integer(a->id));
	if (a->since != NULL)
		json_object_set_new(body, "since", json_string(a->since));
	if (a->until != NULL)
		json_object_set_new(body, "until", json_string(a->until));
	for (size_t i = 0; i < a->nhosts; i++)
		json_array_append_new(hosts, json_string(a->hosts[i]));
	if (a->nhosts > 0)
		json_object_set(body, "hosts", hosts);
	*ret = rc == EXIT_DONE ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	json_decref(hosts);
	if (rc == EXIT_DONE && *ret == NULL) {
		fprintf(
		    stderr,
		    "vigilctl rules rehearse: out of memory (or an argument that is not UTF-8)\n");
		rc = EXIT_REFUSED;
	}
	return rc;
}

/* A group's newest sample in a few words: "2026-12-05T07:00:00Z pid 42 exec /usr/bin/nc". */
static void sample_text(json_t *g, char *buf, size_t len)
{
	json_t *s = json_array_get(json_object_get(g, "samples"), 0);

	if (s == NULL) {
		snprintf(buf, len, "-");
		return;
	}
	snprintf(buf, len, "%.19sZ pid %lld %s %s", str_or_empty(s, "ts"), int_of(s, "pid"),
		 json_is_string(json_object_get(s, "kind")) ? str_or_empty(s, "kind")
							    : str_or_empty(s, "act"),
		 str_or_empty(s, "what"));
}

static void print_rehearsal(json_t *d)
{
	json_t *rule = json_object_get(d, "rule"), *t = json_object_get(d, "totals"), *g, *m;
	size_t i;

	printf("rehearsal of rule \"%s\"", str_or_empty(rule, "name"));
	if (json_is_integer(json_object_get(rule, "id")))
		printf(" (id %lld)", int_of(rule, "id"));
	printf(" at position %lld of rule set version %lld%s\n", int_of(rule, "position"),
	       int_of(d, "version"),
	       json_is_true(json_object_get(d, "rehearsed_as_enabled"))
		   ? " (disabled: rehearsed as if enabled)"
		   : "");
	printf("from %s to %s, %lld host(s) in its scope\n", str_or_empty(d, "since"),
	       str_or_empty(d, "until"), int_of(d, "hosts_in_scope"));
	if (json_array_size(json_object_get(d, "groups")) > 0)
		printf("%-20s %-28s %-10s %-20s %-7s %s\n", "HOST", "SERVICE", "CATEGORY", "EFFECT",
		       "COUNT", "NEWEST");
	json_array_foreach(json_object_get(d, "groups"), i, g)
	{
		char service[300], effect[48], sample[700];

		if (json_is_string(json_object_get(g, "service")))
			snprintf(service, sizeof(service), "%s", str_or_empty(g, "service"));
		else
			snprintf(service, sizeof(service), "interactive%s%s",
				 json_is_string(json_object_get(g, "user")) ? ": " : "",
				 str_or_empty(g, "user"));
		snprintf(effect, sizeof(effect), "%s (%s)", str_or_empty(g, "effect"),
			 str_or_empty(g, "source"));
		sample_text(g, sample, sizeof(sample));
		printf("%-20s %-28s %-10s %-20s %-7lld %s\n", str_or_empty(g, "host"), service,
		       str_or_empty(g, "category"), effect, int_of(g, "count"), sample);
	}
	printf("would have: %lld prevented, %lld blocked, %lld alerted; %lld deviation(s) no"
	       " longer audited\n",
	       int_of(t, "prevent"), int_of(t, "block"), int_of(t, "alert"), int_of(t, "disabled"));
	printf("read %lld event(s) and %lld audit(s)\n", int_of(d, "events_scanned"),
	       int_of(d, "audits_scanned"));
	json_array_foreach(json_object_get(d, "masked_by"), i, m)
	{
		printf("masked: rule \"%s\" (id %lld, position %lld) decides %lld of these act(s)"
		       " first\n",
		       str_or_empty(m, "name"), int_of(m, "rule_id"), int_of(m, "position"),
		       int_of(m, "count"));
	}
	json_array_foreach(json_object_get(d, "truncated_why"), i, m)
	{
		printf("truncated: %s\n", ctl_term(json_string_value(m)));
	}
}

static int cmd_rehearse(struct ctl *c, int argc, char **argv)
{
	struct rehearse_args args;
	struct answer a;
	char *body = NULL;
	int rc;

	if ((rc = rehearse_parse(argc, argv, &args)) != 0)
		return rc < 0 ? EXIT_DONE : rc;
	if ((rc = rehearse_body(&args, &body)) != EXIT_DONE)
		return rc;
	/* Changes nothing: no idempotency key; a lost answer is a reason to run it again. */
	rc = call(c, "rehearse", "POST", "/api/v1/rules/rehearse", body, NULL, -1, &a);
	free(body);
	if (rc != 0)
		return rc;
	if (a.status != 200)
		rc = print_refused("rehearse", &a, 0);
	else if (args.json)
		print_json(a.doc);
	else
		print_rehearsal(a.doc);
	json_decref(a.doc);
	return rc;
}

int ctl_cmd_rules(struct ctl *c, int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(struct ctl *, int, char **);
	} cmds[] = {
	    {"list", cmd_list},
	    {"show", cmd_show},
	    {"add", cmd_add},
	    {"edit", cmd_edit},
	    {"rm", cmd_rm},
	    {"move", cmd_move},
	    {"export", cmd_export},
	    {"import", cmd_import},
	    {"versions", cmd_versions},
	    {"version", cmd_version},
	    {"rehearse", cmd_rehearse},
	};

	if (argc < 2) {
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(usage_text, stdout);
		return EXIT_DONE;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].fn(c, argc - 1, argv + 1);
	fprintf(stderr, "vigilctl rules: unknown command '%s'\n", ctl_term(argv[1]));
	fputs(usage_text, stderr);
	return EXIT_USAGE;
}
