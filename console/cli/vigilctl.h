/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_VIGILCTL_H
#define VIGIL_CONSOLE_VIGILCTL_H

/*
 * What vigilctl's command files share: the API connection settings and the
 * helpers that talk to the API.  Every helper prints its own error (the
 * program's one place to report it) and says so by returning NULL/false.
 */

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct ctl {
	const char *api;
	const char *ca;
	const char *token_file;
	char token[256];
	int failure; /* the exit code of the last failed request (ctl_failure) */
};

/*
 * The exit codes every command keeps (docs/api.md, "vigilctl"): done;
 * refused by the console (an error answer) or by vigilctl itself (no token,
 * a bad file); a usage error; the console not reached, or no answer to a
 * request vigilctl could not safely send again.
 */
enum {
	CTL_EXIT_OK = 0,
	CTL_EXIT_REFUSED = 1,
	CTL_EXIT_USAGE = 2,
	CTL_EXIT_UNREACHED = 3,
};

/* After a ctl_get_json / ctl_post_json that returned NULL: the exit code for it. */
int ctl_failure(const struct ctl *c);

/*
 * Read the API token (--token-file, $VIGIL_API_TOKEN, the local console's)
 * into c->token; -1 after printing why.
 */
int ctl_load_token(struct ctl *c);

/* GET path; the parsed JSON of a 200 answer (caller decrefs), or NULL after printing why. */
json_t *ctl_get_json(struct ctl *c, const char *path);

/*
 * POST path (empty JSON body), never repeated; the parsed JSON of a 2xx
 * answer, or NULL after printing why.  if_lost is printed when the request
 * was sent but its answer lost: what the operator should check.
 */
json_t *ctl_post_json(struct ctl *c, const char *path, const char *if_lost);

/*
 * method path with body (JSON, may be NULL) through the API, sent once; the
 * 2xx answer's JSON into *ret (caller decrefs).  Else the exit code, after
 * printing "vigilctl <who>: ..." with the API's error and field.  When a
 * change was sent and its answer lost, says to look before trying again:
 * with list_cmd ("vigilctl users list") when not NULL.
 */
int ctl_request(struct ctl *c, const char *who, const char *method, const char *path,
		const char *body, const char *list_cmd, json_t **ret);

/* o[k] when it is a string (made safe for a terminal, as ctl_term), else "-". */
const char *ctl_str(json_t *o, const char *k);

/*
 * s made safe for a terminal: control characters and terminal escapes from
 * hosts written out as \xNN / \u00NN (utf8_escape_controls).  The result
 * lives in one of 16 rotating buffers: enough for one printed row.
 */
const char *ctl_term(const char *s);

/*
 * Options "--NAME VALUE" of a command, mapped to query parameters of path
 * (names: option names without "--"; '-' becomes '_' in the query), plus
 * "--json" (*ret_json).  Returns 0, or 2 after printing a usage error.
 */
int ctl_query_opts(const char *cmd, int argc, char **argv, const char *const *names, char *path,
		   size_t len, bool *ret_json);

/* The learning commands (vigilctl_learning.c); each returns the exit code. */
int ctl_cmd_models(struct ctl *c, int argc, char **argv);
int ctl_cmd_model(struct ctl *c, int argc, char **argv);
int ctl_cmd_relearn(struct ctl *c, int argc, char **argv);
int ctl_cmd_activity(struct ctl *c, int argc, char **argv);
int ctl_cmd_sessions(struct ctl *c, int argc, char **argv);

/* The audit commands (vigilctl_audits.c). */
int ctl_cmd_audits(struct ctl *c, int argc, char **argv);
int ctl_cmd_audit(struct ctl *c, int argc, char **argv);
int ctl_cmd_accept(struct ctl *c, int argc, char **argv);

/* vigilctl rules ... (vigilctl_rules.c); returns the exit code. */
int ctl_cmd_rules(struct ctl *c, int argc, char **argv);

/* vigilctl users ... (vigilctl_users.c); returns the exit code. */
int ctl_cmd_users(struct ctl *c, int argc, char **argv);

/* vigilctl enroll token ... and hosts revoke|revocations ... (vigilctl_enroll.c). */
int ctl_cmd_enroll(struct ctl *c, int argc, char **argv);
int ctl_cmd_hosts_revoke(struct ctl *c, int argc, char **argv);

#endif
