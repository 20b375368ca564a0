/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vigilctl: the operator's command line.
 *
 *   vigilctl [API options] hosts [--json]
 *   vigilctl [API options] audits [filters] [--json]
 *   vigilctl [API options] models|model|relearn|activity ...  (vigilctl_learning.c)
 *   vigilctl [API options] rules list|show|add|edit|rm|move|export|import|versions ...
 *                                                              (vigilctl_rules.c)
 *   vigilctl [API options] users list|add|passwd|role|rm ...   (vigilctl_users.c)
 *   vigilctl [API options] enroll token create|list|revoke ..., hosts revoke NAME,
 *                          hosts revocations                 (vigilctl_enroll.c)
 *   vigilctl pki init|issue|show ...
 */
#include <errno.h>
#include <stdbool.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/apiclient.h"
#include "fsutil.h"
#include "utf8.h"
#include "cli/vigilctl.h"
#include "cli/vigilctl_pki.h"

#define DEFAULT_STATE_DIR "/var/lib/vigil/console"

/* The local console's state: $VIGIL_HOME/console, as deploy/quickstart.sh lays it out. */
static const char *state_path(const char *file)
{
	static char paths[2][4096];
	static int next;
	const char *home = getenv("VIGIL_HOME");
	char *out = paths[next++ % 2];

	if (home != NULL && home[0] != '\0')
		snprintf(out, sizeof(paths[0]), "%s/console/%s", home, file);
	else
		snprintf(out, sizeof(paths[0]), "%s/%s", DEFAULT_STATE_DIR, file);
	return out;
}
#define DEFAULT_API "https://127.0.0.1:8443"

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: vigilctl [--api URL] [--ca FILE] [--token-file FILE] COMMAND ...\n"
	    "  hosts [--json]       the fleet: every host, connected or not\n"
	    "  hosts revoke NAME    cut a host off at once and refuse it from now on\n"
	    "  hosts revocations    the revoked hosts (hosts revoke --help)\n"
	    "  audits [--host H] [--kind K] [--service S] [--rule R] [--effect E]\n"
	    "         [--severity S] [--image I] [--container C] [--since T] [--until T]\n"
	    "         [--limit N] [--before-id ID] [--json]\n"
	    "                       what an operator must look at, newest first\n"
	    "  audits summary [--host H] [--since T] [--until T] [--json]\n"
	    "                       audits over time (default the last 24 h) by severity and host\n"
	    "  audit ID [--json]    one audit: what happened, the process chain, what was "
	    "expected\n"
	    "  accept ID [--json]   take what a model's deviation reported into the model\n"
	    "  models [--host H] [--service S] [--state learning|active] [--limit N]\n"
	    "         [--before-id ID] [--json]\n"
	    "                       the services' models, newest first\n"
	    "  model ID [--json]    one model: what each executable of the service does\n"
	    "  relearn ID           ask the model's defender to learn the service again\n"
	    "  activity [--host H] [--user U] [--session N] [--q TEXT] [--since T] [--until T]\n"
	    "         [--limit N] [--before-id ID] [--json]\n"
	    "                       what people did in interactive sessions, newest first\n"
	    "  sessions [--host H] [--user U] [--q TEXT] [--since T] [--until T] [--limit N]\n"
	    "         [--before-id ID] [--json]\n"
	    "                       the interactive sessions, the latest first\n"
	    "  rules list|show|add|edit|rm|move|export|import|versions|version|rehearse ...\n"
	    "                       the operators' rules, versioned, and what one would have\n"
	    "                       done over past events (vigilctl rules --help)\n"
	    "  users list|add|passwd|role|rm ...\n"
	    "                       who signs in to the web UI, and as what (users --help)\n"
	    "  enroll token create|list|revoke ...\n"
	    "                       join tokens: hosts enroll with one and get their certificate\n"
	    "                       (enroll --help)\n"
	    "  pki init|issue|show  certificate authority and host certificates\n"
	    "API options (defaults read the local console's state in %s, or $VIGIL_HOME/console):\n"
	    "  --api URL            console API; default %s (or $VIGIL_API)\n"
	    "  --ca FILE            CA that signed the console's certificate\n"
	    "  --token-file FILE    API bearer token (or $VIGIL_API_TOKEN)\n"
	    "COMMAND --help prints that command's usage.  Exit codes: 0 done; 1 refused by the\n"
	    "console or by vigilctl; 2 usage; 3 the console not reached (or no answer to a "
	    "write).\n",
	    DEFAULT_STATE_DIR, DEFAULT_API);
}

int ctl_load_token(struct ctl *c)
{
	const char *env = getenv("VIGIL_API_TOKEN");
	char *text;
	size_t len;
	vigil_err err = {0};

	if (env != NULL && c->token_file == NULL) {
		snprintf(c->token, sizeof(c->token), "%s", env);
		return 0;
	}
	if (c->token_file == NULL)
		c->token_file = state_path("api-token");
	if (fs_read_file(c->token_file, 4096, &text, &len, &err) < 0) {
		fprintf(stderr, "vigilctl: API token: %s (use --token-file or $VIGIL_API_TOKEN)\n",
			err.msg);
		return -1;
	}
	len = strcspn(text, "\r\n");
	if (len == 0 || len >= sizeof(c->token)) {
		fprintf(stderr, "vigilctl: API token file %s is empty or too long\n",
			c->token_file);
		free(text);
		return -1;
	}
	memcpy(c->token, text, len);
	c->token[len] = '\0';
	free(text);
	return 0;
}

/* The JSON of a 2xx answer, or NULL after printing the API's error. */
static json_t *answer_json(struct ctl *c, const char *path, int status, char *body)
{
	json_error_t jerr;
	json_t *doc = json_loads(body, 0, &jerr);

	c->failure = CTL_EXIT_REFUSED;
	if (status < 200 || status > 299) {
		json_t *e = doc != NULL ? json_object_get(doc, "error") : NULL;
		fprintf(stderr, "vigilctl: %s%s answered %d: %s\n", c->api, path, status,
			json_is_string(e) ? ctl_term(json_string_value(e)) : "(no detail)");
		json_decref(doc);
		free(body);
		return NULL;
	}
	if (doc == NULL)
		fprintf(stderr, "vigilctl: %s%s sent invalid JSON: %s\n", c->api, path, jerr.text);
	free(body);
	return doc;
}

json_t *ctl_get_json(struct ctl *c, const char *path)
{
	vigil_err err = {0};
	char *body = NULL;
	int status, rc;

	c->failure = CTL_EXIT_REFUSED;
	if (ctl_load_token(c) < 0)
		return NULL;
	if ((rc = apiclient_get(c->api, path, c->token, c->ca, &status, &body, &err)) < 0) {
		fprintf(stderr, "vigilctl: %s\n", err.msg);
		c->failure = CTL_EXIT_UNREACHED; /* as the rules commands: no answer came */
		return NULL;
	}
	return answer_json(c, path, status, body);
}

json_t *ctl_post_json(struct ctl *c, const char *path, const char *if_lost)
{
	vigil_err err = {0};
	char *body = NULL;
	int status, rc;

	c->failure = CTL_EXIT_REFUSED;
	if (ctl_load_token(c) < 0)
		return NULL;
	rc = apiclient_post(c->api, path, NULL, c->token, c->ca, &status, &body, &err);
	if (rc == -EPROTO) {
		fprintf(stderr, "vigilctl: %s.\nvigilctl: %s\n", err.msg, if_lost);
		c->failure = CTL_EXIT_UNREACHED;
		return NULL;
	}
	if (rc < 0) {
		fprintf(stderr, "vigilctl: %s\n", err.msg);
		c->failure = CTL_EXIT_UNREACHED; /* as the rules commands: no answer came */
		return NULL;
	}
	return answer_json(c, path, status, body);
}

int ctl_failure(const struct ctl *c)
{
	return c->failure != 0 ? c->failure : CTL_EXIT_REFUSED;
}

const char *ctl_term(const char *s)
{
	/* Enough for every string of one printed row; vigilctl is single-threaded. */
	static char ring[16][4096];
	static unsigned next;
	char *out = ring[next++ % 16];

	utf8_escape_controls(s, strlen(s), out, sizeof(ring[0]));
	return out;
}

const char *ctl_str(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_string(v) ? ctl_term(json_string_value(v)) : "-";
}

int ctl_request(struct ctl *c, const char *who, const char *method, const char *path,
		const char *body, const char *list_cmd, json_t **ret)
{
	vigil_err err = {0};
	char *text = NULL;
	json_t *doc;
	const char *f;
	int status = 0, rc;

	*ret = NULL;
	if (ctl_load_token(c) < 0)
		return CTL_EXIT_REFUSED;
	rc = apiclient_request(c->api, method, path, body, NULL, c->token, c->ca, &status, &text,
			       &err);
	if (rc == -EPROTO && strcmp(method, "GET") != 0) {
		if (list_cmd != NULL)
			fprintf(stderr,
				"vigilctl %s: %s: the change may have been made; see '%s' before"
				" trying again\n",
				who, err.msg, list_cmd);
		else
			fprintf(stderr,
				"vigilctl %s: %s: the change may have been made; list before trying"
				" again\n",
				who, err.msg);
		return CTL_EXIT_UNREACHED;
	}
	if (rc < 0) {
		fprintf(stderr, "vigilctl %s: %s\n", who, err.msg);
		return CTL_EXIT_UNREACHED;
	}
	doc = json_loads(text, 0, NULL);
	free(text);
	if (status >= 200 && status <= 299 && doc != NULL) {
		*ret = doc;
		return CTL_EXIT_OK;
	}
	f = json_string_value(json_object_get(doc, "field"));
	fprintf(stderr, "vigilctl %s: %s%s answered %d: %s%s%s%s\n", who, c->api, path, status,
		json_is_string(json_object_get(doc, "error")) ? ctl_str(doc, "error")
							      : "(no detail)",
		f != NULL && *f != '\0' ? " (field " : "",
		f != NULL && *f != '\0' ? ctl_term(f) : "", f != NULL && *f != '\0' ? ")" : "");
	json_decref(doc);
	return CTL_EXIT_REFUSED;
}

/* Labels as "k=v,k=v" into buf. */
static void labels_text(json_t *labels, char *buf, size_t len)
{
	const char *k;
	json_t *v;
	size_t off = 0;

	buf[0] = '\0';
	json_object_foreach(labels, k, v)
	{
		if (off >= len)
			break;
		off += (size_t)snprintf(buf + off, len - off, "%s%s=", off ? "," : "", ctl_term(k));
		if (off < len)
			off += (size_t)snprintf(buf + off, len - off, "%s",
						json_is_string(v) ? ctl_term(json_string_value(v))
								  : "?");
	}
	if (buf[0] == '\0')
		snprintf(buf, len, "-");
}

/* Events the host's kernel side could not deliver (truncations are not losses). */
static long long lost_events(json_t *host)
{
	/* stash_full: sent by defenders before 2026-11-29 (arguments kept from sys_enter). */
	static const char *const lossy[] = {"ringbuf_full", "scratch", "stash_full"};
	json_t *drops = json_object_get(json_object_get(host, "capture"), "drops");
	long long sum = 0;

	if (!json_is_object(drops))
		return -1;
	for (size_t i = 0; i < sizeof(lossy) / sizeof(lossy[0]); i++)
		sum += json_integer_value(json_object_get(drops, lossy[i]));
	return sum;
}

/*
 * The host's rule set for the table: "7" when it enforces the current
 * version, "5<7 refused|offline|pending|unsupported" when it lags (held <
 * current, and why), "-" when the console predates rule sets.
 */
static void rules_text(json_t *host, char *buf, size_t len)
{
	json_t *r = json_object_get(host, "rules"), *v = json_object_get(r, "version");
	char held[24];

	if (!json_is_object(r)) {
		snprintf(buf, len, "-");
		return;
	}
	if (json_is_integer(v))
		snprintf(held, sizeof(held), "%lld", (long long)json_integer_value(v));
	else
		snprintf(held, sizeof(held), "-");
	if (!json_is_true(json_object_get(r, "lagging")))
		snprintf(buf, len, "%s", held);
	else
		snprintf(buf, len, "%s<%lld %s", held,
			 (long long)json_integer_value(json_object_get(r, "current")),
			 ctl_str(r, "why"));
}

/*
 * What the host can enforce for the table: its available backends by what
 * they stop ("exec,open,net,kill"), "-" when none (or the defender does not
 * say), "?" when the console refused the list (rules.report_problem says
 * why).
 */
static void enforce_text(json_t *host, char *buf, size_t len)
{
	static const char *const shorts[][2] = {{"fanotify-exec", "exec"},
						{"fanotify-open", "open"},
						{"cgroup-sock", "net"},
						{"bpf-signal", "kill"}};
	json_t *r = json_object_get(host, "rules"), *list = json_object_get(r, "backends"), *b;
	size_t i, off = 0;

	snprintf(buf, len, "-");
	if (json_is_null(list) && json_is_string(json_object_get(r, "report_problem")))
		snprintf(buf, len, "?");
	json_array_foreach(list, i, b)
	{
		const char *name = ctl_str(b, "name");

		if (!json_is_true(json_object_get(b, "available")) || off >= len)
			continue;
		for (size_t k = 0; k < sizeof(shorts) / sizeof(shorts[0]); k++)
			if (strcmp(name, shorts[k][0]) == 0)
				name = shorts[k][1];
		off += (size_t)snprintf(buf + off, len - off, "%s%s", off > 0 ? "," : "", name);
	}
}

/* Shortfalls listed per host under the table; --json has them all. */
#define HOSTS_SHORTFALLS_SHOWN 5

/* What a host's rules ask for and it cannot deliver, and what the console left out, as lines. */
static void print_shortfalls(json_t *h)
{
	json_t *r = json_object_get(h, "rules"), *list = json_object_get(r, "shortfalls"), *s;
	size_t i;

	json_array_foreach(list, i, s)
	{
		if (i == HOSTS_SHORTFALLS_SHOWN) {
			printf("%s: ... and %zu more shortfall(s) (vigilctl hosts --json)\n",
			       ctl_str(h, "host_id"), json_array_size(list) - i);
			break;
		}
		printf("%s: rule \"%s\" (%s) wants %s, applies %s: %s\n", ctl_str(h, "host_id"),
		       ctl_str(s, "rule"), ctl_str(s, "section"), ctl_str(s, "wanted"),
		       ctl_str(s, "applied"), ctl_str(s, "why"));
	}
	if (json_is_string(json_object_get(r, "report_problem")))
		printf("%s: the console left out part of what the host can enforce: %s\n",
		       ctl_str(h, "host_id"), ctl_str(r, "report_problem"));
}

static int cmd_hosts(struct ctl *c, int argc, char **argv)
{
	int json_out = 0;
	json_t *doc, *hosts, *h;
	size_t i;

	for (int k = 1; k < argc; k++) {
		if (strcmp(argv[k], "--json") == 0) {
			json_out = 1;
		} else {
			fprintf(stderr, "vigilctl hosts: unknown option '%s'\n", ctl_term(argv[k]));
			return CTL_EXIT_USAGE;
		}
	}
	if ((doc = ctl_get_json(c, "/api/v1/hosts")) == NULL)
		return ctl_failure(c);
	hosts = json_object_get(doc, "hosts");
	if (!json_is_array(hosts)) {
		fprintf(stderr, "vigilctl: the API's answer has no 'hosts' list\n");
		json_decref(doc);
		return 1;
	}
	if (json_out) {
		json_dumpf(hosts, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
		putchar('\n');
		json_decref(doc);
		return 0;
	}
	printf("%-24s %-20s %-9s %-20s %-10s %-8s %-6s %-16s %-18s %s\n", "HOST", "HOSTNAME",
	       "STATE", "LAST SEEN", "VERSION", "EXECS", "LOST", "RULES", "ENFORCE", "LABELS");
	json_array_foreach(hosts, i, h)
	{
		char labels[256];
		json_t *conn = json_object_get(h, "connected");

		labels_text(json_object_get(h, "labels"), labels, sizeof(labels));
		/* Seconds are precise enough for a table; --json has the microseconds. */
		long long lost = lost_events(h);
		char lost_text[24];

		if (lost < 0)
			snprintf(lost_text, sizeof(lost_text), "-");
		else
			snprintf(lost_text, sizeof(lost_text), "%lld", lost);
		char rules[64], enforce[128];

		rules_text(h, rules, sizeof(rules));
		enforce_text(h, enforce, sizeof(enforce));
		printf("%-24s %-20s %-9s %-.19sZ %-10s %-8lld %-6s %-16s %-18s %s\n",
		       ctl_str(h, "host_id"), ctl_str(h, "hostname"),
		       json_is_true(conn) ? "connected" : "gone", ctl_str(h, "last_seen"),
		       ctl_str(h, "defender_version"),
		       (long long)json_integer_value(json_object_get(h, "exec_count")), lost_text,
		       rules, enforce, labels);
	}
	/* Refusals after the table: a reason does not fit in a column. */
	json_array_foreach(hosts, i, h)
	{
		json_t *ref = json_object_get(json_object_get(h, "rules"), "refused");

		if (json_is_object(ref))
			printf("%s: rule set %lld refused by the %s: %s\n", ctl_str(h, "host_id"),
			       (long long)json_integer_value(json_object_get(ref, "version")),
			       ctl_str(ref, "by"), ctl_str(ref, "reason"));
		print_shortfalls(h);
	}
	printf("%zu host(s)\n", json_array_size(hosts));
	json_decref(doc);
	return 0;
}

/* Percent-encode s for a query string into out. */
static void url_encode(const char *s, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s && o + 4 < len; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~' || c == ':') {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
}

int ctl_query_opts(const char *cmd, int argc, char **argv, const char *const *names, char *path,
		   size_t len, bool *ret_json)
{
	size_t off = strlen(path);
	char enc[1600], key[32];

	*ret_json = false;
	for (int k = 1; k < argc; k++) {
		bool known = false;

		if (strcmp(argv[k], "--json") == 0) {
			*ret_json = true;
			continue;
		}
		for (size_t p = 0; names[p] != NULL && !known; p++) {
			if (strncmp(argv[k], "--", 2) != 0 || strcmp(argv[k] + 2, names[p]) != 0)
				continue;
			if (k + 1 >= argc) {
				fprintf(stderr, "vigilctl %s: %s needs a value\n", cmd, argv[k]);
				return 2;
			}
			snprintf(key, sizeof(key), "%s", names[p]);
			for (char *d = strchr(key, '-'); d != NULL; d = strchr(d, '-'))
				*d = '_';
			url_encode(argv[++k], enc, sizeof(enc));
			if (off >= len || (size_t)snprintf(path + off, len - off, "%c%s=%s",
							   strchr(path, '?') ? '&' : '?', key,
							   enc) >= len - off) {
				fprintf(stderr, "vigilctl %s: options too long\n", cmd);
				return 2;
			}
			off += strlen(path + off);
			known = true;
		}
		if (!known) {
			fprintf(stderr, "vigilctl %s: unknown option '%s' (", cmd, argv[k]);
			for (size_t p = 0; names[p] != NULL; p++)
				fprintf(stderr, "--%s, ", names[p]);
			fprintf(stderr, "--json)\n");
			return 2;
		}
	}
	return 0;
}

/*
 * "COMMAND --help" (or -h) for the commands whose usage is one line of
 * usage(): that line and what follows it.  rules, pki and users print
 * their own.  true when it printed.
 */
static bool command_help(int argc, char **argv)
{
	static const char *const simple[] = {"hosts", "audits",	 "audit",    "accept",	 "models",
					     "model", "relearn", "activity", "sessions", NULL};
	bool asked = false;
	char *text = NULL, *line;
	size_t len = 0;
	FILE *f;

	for (int k = 1; k < argc; k++)
		asked = asked || strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0;
	for (size_t i = 0; asked && simple[i] != NULL; i++) {
		size_t n = strlen(simple[i]);
		bool in = false;

		if (strcmp(argv[0], simple[i]) != 0)
			continue;
		if ((f = open_memstream(&text, &len)) == NULL)
			return false;
		usage(f);
		fclose(f);
		/* Its lines: "  NAME ..." and the indented ones after it. */
		for (line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
			if (strncmp(line, "  ", 2) == 0 && line[2] != ' ')
				in = strncmp(line + 2, simple[i], n) == 0 &&
				     (line[2 + n] == ' ' || line[2 + n] == '\0');
			else if (strncmp(line, "  ", 2) != 0)
				in = false;
			if (in)
				printf("%s\n", line);
		}
		printf("(vigilctl --help: the API options and exit codes)\n");
		free(text);
		return true;
	}
	return false;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"api", required_argument, NULL, 'a'},	  {"ca", required_argument, NULL, 'c'},
	    {"token-file", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},	  {0},
	};
	struct ctl c = {0};
	int opt;

	c.api = getenv("VIGIL_API") != NULL ? getenv("VIGIL_API") : DEFAULT_API;
	c.ca = state_path("pki/ca.crt");
	/* '+': stop at the command; its options are its own. */
	while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (opt) {
		case 'a':
			c.api = optarg;
			break;
		case 'c':
			c.ca = optarg;
			break;
		case 't':
			c.token_file = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("vigilctl %s\n", VIGIL_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	argc -= optind;
	argv += optind;
	/* Before command_help: these have a usage of their own. */
	if (strcmp(argv[0], "hosts") == 0 && argc > 1 &&
	    (strcmp(argv[1], "revoke") == 0 || strcmp(argv[1], "revocations") == 0))
		return ctl_cmd_hosts_revoke(&c, argc, argv);
	if (command_help(argc, argv))
		return CTL_EXIT_OK;
	if (strcmp(argv[0], "hosts") == 0)
		return cmd_hosts(&c, argc, argv);
	if (strcmp(argv[0], "audits") == 0)
		return ctl_cmd_audits(&c, argc, argv);
	if (strcmp(argv[0], "audit") == 0)
		return ctl_cmd_audit(&c, argc, argv);
	if (strcmp(argv[0], "accept") == 0)
		return ctl_cmd_accept(&c, argc, argv);
	if (strcmp(argv[0], "sessions") == 0)
		return ctl_cmd_sessions(&c, argc, argv);
	if (strcmp(argv[0], "models") == 0)
		return ctl_cmd_models(&c, argc, argv);
	if (strcmp(argv[0], "model") == 0)
		return ctl_cmd_model(&c, argc, argv);
	if (strcmp(argv[0], "relearn") == 0)
		return ctl_cmd_relearn(&c, argc, argv);
	if (strcmp(argv[0], "activity") == 0)
		return ctl_cmd_activity(&c, argc, argv);
	if (strcmp(argv[0], "rules") == 0)
		return ctl_cmd_rules(&c, argc, argv);
	if (strcmp(argv[0], "users") == 0)
		return ctl_cmd_users(&c, argc, argv);
	if (strcmp(argv[0], "enroll") == 0)
		return ctl_cmd_enroll(&c, argc, argv);
	if (strcmp(argv[0], "pki") == 0) {
		optind = 1; /* the subcommand parses its own options */
		return vigilctl_pki_main(argc, argv);
	}
	fprintf(stderr, "vigilctl: unknown command '%s'\n", argv[0]);
	usage(stderr);
	return 2;
}
