/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vigilctl users: the console's users (who signs in to the web UI, and as
 * what) through the console's API, with the API token as every vigilctl
 * command:
 *
 *   users list [--json]
 *   users add NAME --role admin|read [--password-file F]
 *   users passwd NAME [--password-file F]
 *   users role NAME admin|read
 *   users rm NAME
 *
 * A password comes from --password-file (its first line), else from stdin:
 * asked for twice without echo on a terminal, else its first line.  It is
 * sent to the console only (which keeps an argon2id hash of it), never
 * printed.  A new password or role ends the user's sessions.  Writes are
 * sent once; when the answer is lost vigilctl says the change may have been
 * made.  Exit codes as every vigilctl command (vigilctl.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/apiclient.h"
#include "cli/vigilctl.h"
#include "fsutil.h"

#define USERS_PATH "/api/v1/users"

/* As the console takes them (console/api/api_auth.h, store/users.h). */
#define NAME_MAX_LEN 64
#define PASSWORD_MIN 8
#define PASSWORD_MAX 1024

static const char usage_text[] =
    "usage: vigilctl [API options] users COMMAND ...\n"
    "  list [--json]                        the users, their roles and last sign-ins\n"
    "  add NAME --role admin|read [--password-file F]\n"
    "                                       add a user who signs in to the web UI\n"
    "  passwd NAME [--password-file F]      set a user's password (its sessions end)\n"
    "  role NAME admin|read                 set a user's role (its sessions end)\n"
    "  rm NAME                              delete a user (its sessions end)\n"
    "NAME: 1 to 64 letters, digits, '.', '_' or '-'.  admin may change everything,\n"
    "read only look.  The password (8 to 1024 bytes) is the first line of F, else\n"
    "read from stdin: asked for twice without echo on a terminal, else its first line.\n"
    "Exit codes: 0 done, 1 refused (by the console, or a bad password), 2 usage,\n"
    "3 the console could not be reached (or did not answer).\n";

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vigilctl users %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (vigilctl users --help)\n");
	return CTL_EXIT_USAGE;
}

/* What one subcommand was given. */
struct args {
	const char *cmd;
	const char *pos[2];
	int npos;
	bool json;
	const char *role;	   /* --role */
	const char *password_file; /* --password-file */
};

/*
 * Options and up to maxpos positional arguments; allowed names the options
 * the subcommand takes.  -1 when --help was printed, else 0 or
 * CTL_EXIT_USAGE after printing why.
 */
static int parse_args(int argc, char **argv, int maxpos, const char *allowed, struct args *a)
{
	*a = (struct args){.cmd = argv[0]};
	for (int k = 1; k < argc; k++) {
		const char *o = argv[k];

		if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
			fputs(usage_text, stdout);
			return -1;
		}
		if (o[0] != '-') {
			if (a->npos >= maxpos)
				return usage_error(a->cmd, "unexpected argument '%s'", ctl_term(o));
			a->pos[a->npos++] = o;
			continue;
		}
		if (strncmp(o, "--", 2) != 0 || strstr(allowed, o + 2) == NULL)
			return usage_error(a->cmd, "unknown option '%s'", ctl_term(o));
		if (strcmp(o, "--json") == 0) {
			a->json = true;
		} else if (strcmp(o, "--role") == 0 || strcmp(o, "--password-file") == 0) {
			if (k + 1 >= argc)
				return usage_error(a->cmd, "%s needs a value", o);
			if (strcmp(o, "--role") == 0)
				a->role = argv[++k];
			else
				a->password_file = argv[++k];
		} else {
			return usage_error(a->cmd, "unknown option '%s'", ctl_term(o));
		}
	}
	return 0;
}

static bool name_ok(const char *cmd, const char *name)
{
	size_t len = strlen(name);

	if (len >= 1 && len <= NAME_MAX_LEN &&
	    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
		len)
		return true;
	usage_error(cmd, "'%s' is not a user name (1 to 64 letters, digits, '.', '_' or '-')",
		    ctl_term(name));
	return false;
}

static bool role_ok(const char *cmd, const char *role)
{
	if (strcmp(role, "admin") == 0 || strcmp(role, "read") == 0)
		return true;
	usage_error(cmd, "the role must be admin or read, not '%s'", ctl_term(role));
	return false;
}

/* One line of f without its end into buf (cap bytes); the length, or -1 at EOF. */
static long read_line(FILE *f, char *buf, size_t cap)
{
	size_t len;

	if (fgets(buf, (int)cap, f) == NULL)
		return -1;
	len = strcspn(buf, "\n");
	if (len > 0 && buf[len - 1] == '\r' && buf[len] == '\n')
		len--;
	buf[len] = '\0';
	return (long)len;
}

/* A line from the terminal on stdin, without echo, after prompt. */
static long read_hidden(const char *prompt, char *buf, size_t cap)
{
	struct termios old, quiet;
	long len;

	fputs(prompt, stderr);
	fflush(stderr);
	if (tcgetattr(STDIN_FILENO, &old) != 0)
		return -1;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	len = read_line(stdin, buf, cap);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	return len;
}

/*
 * The new password of name into buf (PASSWORD_MAX + 2 bytes): file's first
 * line, or stdin's (asked twice without echo on a terminal).  Its length, or
 * -1 after printing why.
 */
static long read_password(const char *cmd, const char *name, const char *file, char *buf,
			  size_t cap)
{
	char again[PASSWORD_MAX + 2], prompt[128];
	vigil_err err = {0};
	char *text = NULL;
	size_t flen = 0;
	long len;

	if (file != NULL) {
		const char *nl;
		size_t n;
		bool nul;

		if (fs_read_file(file, 64 * 1024, &text, &flen, &err) < 0) {
			fprintf(stderr, "vigilctl users %s: %s\n", cmd, err.msg);
			return -1;
		}
		nl = memchr(text, '\n', flen);
		n = nl != NULL ? (size_t)(nl - text) : flen;
		if (n > 0 && text[n - 1] == '\r')
			n--;
		nul = memchr(text, '\0', n) != NULL;
		if (!nul && n < cap) {
			memcpy(buf, text, n);
			buf[n] = '\0';
		}
		explicit_bzero(text, flen);
		free(text);
		if (nul) {
			fprintf(stderr, "vigilctl users %s: the password in %s has a NUL byte\n",
				cmd, file);
			return -1;
		}
		len = n < cap ? (long)n : PASSWORD_MAX + 1; /* too long: refused below */
	} else if (isatty(STDIN_FILENO)) {
		snprintf(prompt, sizeof(prompt), "New password for %s: ", name);
		len = read_hidden(prompt, buf, cap);
		if (len >= 0 && read_hidden("Again: ", again, sizeof(again)) >= 0 &&
		    strcmp(again, buf) != 0) {
			explicit_bzero(again, sizeof(again));
			fprintf(stderr, "vigilctl users %s: the two passwords differ\n", cmd);
			return -1;
		}
		explicit_bzero(again, sizeof(again));
	} else {
		len = read_line(stdin, buf, cap);
	}
	if (len < 0) {
		fprintf(stderr,
			"vigilctl users %s: no password given (--password-file, or stdin)\n", cmd);
		return -1;
	}
	if (len < PASSWORD_MIN || len > PASSWORD_MAX) {
		fprintf(stderr, "vigilctl users %s: the password must be %d to %d bytes\n", cmd,
			PASSWORD_MIN, PASSWORD_MAX);
		return -1;
	}
	return len;
}

/*
 * method path with body (JSON, may be NULL), sent once; the answer's JSON
 * into *ret (caller decrefs) on a 2xx.  Else the exit code after printing
 * why.
 */
static int call(struct ctl *c, const char *cmd, const char *method, const char *path,
		const char *body, json_t **ret)
{
	char who[64];

	snprintf(who, sizeof(who), "users %s", cmd);
	return ctl_request(c, who, method, path, body, "vigilctl users list", ret);
}

/* A time field to the second ("2026-12-05T10:00:00Z"), or "-". */
static const char *when(json_t *o, const char *k, char buf[24])
{
	const char *v = ctl_str(o, k);

	if (strlen(v) < 19)
		return "-";
	snprintf(buf, 24, "%.19sZ", v);
	return buf;
}

static int cmd_list(struct ctl *c, int argc, char **argv)
{
	struct args a;
	json_t *doc, *users, *u;
	size_t i;
	int rc;

	if ((rc = parse_args(argc, argv, 0, "json", &a)) != 0)
		return rc < 0 ? CTL_EXIT_OK : rc;
	if ((rc = call(c, "list", "GET", USERS_PATH, NULL, &doc)) != 0)
		return rc;
	users = json_object_get(doc, "users");
	if (a.json) {
		json_dumpf(users, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
		putchar('\n');
		json_decref(doc);
		return CTL_EXIT_OK;
	}
	printf("%-24s %-6s %-20s %-20s %s\n", "NAME", "ROLE", "CREATED", "PASSWORD SET",
	       "LAST SIGN-IN");
	json_array_foreach(users, i, u)
	{
		char t1[24], t2[24], t3[24];

		printf("%-24s %-6s %-20s %-20s %s\n", ctl_str(u, "name"), ctl_str(u, "role"),
		       when(u, "created_at", t1), when(u, "password_changed_at", t2),
		       when(u, "last_login", t3));
	}
	printf("%zu user(s)\n", json_array_size(users));
	json_decref(doc);
	return CTL_EXIT_OK;
}

/* PUT or POST body (taken) to path; prints done on success. */
static int write_user(struct ctl *c, const char *cmd, const char *method, const char *path,
		      json_t *body, const char *done)
{
	char *text = json_dumps(body, JSON_COMPACT);
	json_t *doc = NULL;
	int rc;

	json_decref(body);
	if (text == NULL) {
		fprintf(stderr, "vigilctl users %s: out of memory\n", cmd);
		return CTL_EXIT_REFUSED;
	}
	rc = call(c, cmd, method, path, text, &doc);
	explicit_bzero(text, strlen(text)); /* it may hold the password */
	free(text);
	if (rc == 0)
		printf("%s\n", done);
	json_decref(doc);
	return rc;
}

static int cmd_add(struct ctl *c, int argc, char **argv)
{
	char pw[PASSWORD_MAX + 2], done[160];
	struct args a;
	json_t *body;
	long len;
	int rc;

	if ((rc = parse_args(argc, argv, 1, "role password-file", &a)) != 0)
		return rc < 0 ? CTL_EXIT_OK : rc;
	if (a.npos != 1)
		return usage_error("add", "which user? (add NAME --role admin|read)");
	if (a.role == NULL)
		return usage_error("add", "--role admin or --role read is required");
	if (!name_ok("add", a.pos[0]) || !role_ok("add", a.role))
		return CTL_EXIT_USAGE;
	if ((len = read_password("add", a.pos[0], a.password_file, pw, sizeof(pw))) < 0)
		return CTL_EXIT_REFUSED;
	body = json_pack("{s:s,s:s%,s:s}", "name", a.pos[0], "password", pw, (size_t)len, "role",
			 a.role);
	explicit_bzero(pw, sizeof(pw));
	if (body == NULL) {
		fprintf(stderr, "vigilctl users add: the password is not UTF-8 text\n");
		return CTL_EXIT_REFUSED;
	}
	snprintf(done, sizeof(done), "added user %s (role %s)", a.pos[0], a.role);
	return write_user(c, "add", "POST", USERS_PATH, body, done);
}

static int cmd_passwd(struct ctl *c, int argc, char **argv)
{
	char pw[PASSWORD_MAX + 2], path[128], done[160];
	struct args a;
	json_t *body;
	long len;
	int rc;

	if ((rc = parse_args(argc, argv, 1, "password-file", &a)) != 0)
		return rc < 0 ? CTL_EXIT_OK : rc;
	if (a.npos != 1)
		return usage_error("passwd", "which user? (passwd NAME)");
	if (!name_ok("passwd", a.pos[0]))
		return CTL_EXIT_USAGE;
	if ((len = read_password("passwd", a.pos[0], a.password_file, pw, sizeof(pw))) < 0)
		return CTL_EXIT_REFUSED;
	body = json_pack("{s:s%}", "password", pw, (size_t)len);
	explicit_bzero(pw, sizeof(pw));
	if (body == NULL) {
		fprintf(stderr, "vigilctl users passwd: the password is not UTF-8 text\n");
		return CTL_EXIT_REFUSED;
	}
	snprintf(path, sizeof(path), USERS_PATH "/%s", a.pos[0]);
	snprintf(done, sizeof(done), "set the password of user %s; its sessions have ended",
		 a.pos[0]);
	return write_user(c, "passwd", "PUT", path, body, done);
}

static int cmd_role(struct ctl *c, int argc, char **argv)
{
	char path[128], done[160];
	struct args a;
	int rc;

	if ((rc = parse_args(argc, argv, 2, "", &a)) != 0)
		return rc < 0 ? CTL_EXIT_OK : rc;
	if (a.npos != 2)
		return usage_error("role", "which user and role? (role NAME admin|read)");
	if (!name_ok("role", a.pos[0]) || !role_ok("role", a.pos[1]))
		return CTL_EXIT_USAGE;
	snprintf(path, sizeof(path), USERS_PATH "/%s", a.pos[0]);
	snprintf(done, sizeof(done), "user %s has role %s", a.pos[0], a.pos[1]);
	return write_user(c, "role", "PUT", path, json_pack("{s:s}", "role", a.pos[1]), done);
}

static int cmd_rm(struct ctl *c, int argc, char **argv)
{
	char path[128];
	struct args a;
	json_t *doc = NULL;
	int rc;

	if ((rc = parse_args(argc, argv, 1, "", &a)) != 0)
		return rc < 0 ? CTL_EXIT_OK : rc;
	if (a.npos != 1)
		return usage_error("rm", "which user? (rm NAME)");
	if (!name_ok("rm", a.pos[0]))
		return CTL_EXIT_USAGE;
	snprintf(path, sizeof(path), USERS_PATH "/%s", a.pos[0]);
	if ((rc = call(c, "rm", "DELETE", path, NULL, &doc)) != 0)
		return rc;
	printf("deleted user %s and its sessions\n", a.pos[0]);
	json_decref(doc);
	return CTL_EXIT_OK;
}

int ctl_cmd_users(struct ctl *c, int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(struct ctl *, int, char **);
	} cmds[] = {
	    {"list", cmd_list}, {"add", cmd_add}, {"passwd", cmd_passwd},
	    {"role", cmd_role}, {"rm", cmd_rm},
	};

	if (argc < 2) {
		fputs(usage_text, stderr);
		return CTL_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(usage_text, stdout);
		return CTL_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].fn(c, argc - 1, argv + 1);
	fprintf(stderr, "vigilctl users: unknown command '%s'\n", ctl_term(argv[1]));
	fputs(usage_text, stderr);
	return CTL_EXIT_USAGE;
}
