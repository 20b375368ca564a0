/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vigilctl as scripts use it: every command answers --help with its usage
 * and exit 0; a usage error is 2; a console that cannot be reached is 3,
 * for reads and writes alike (docs/api.md, "vigilctl").  No console runs
 * here: the API address is a port nothing listens on.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static char dir[H_PATH], out[H_PATH], api[64], token[H_PATH];
static struct h_pki pki;

static void setup(void)
{
	h_tmpdir(dir);
	snprintf(out, sizeof(out), "%s/out", dir);
	snprintf(api, sizeof(api), "https://127.0.0.1:%d", h_free_port());
	h_write_file(dir, "token", "0123456789abcdef0123456789abcdef\n", token);
	h_pki_make(dir, &pki);
}

static void teardown(void)
{
	h_rmrf(dir);
}

TestSuite(vigilctl, .init = setup, .fini = teardown, .timeout = 60);

/* vigilctl with the API options and args (NULL-terminated); its exit code. */
static int run(const char *const *args)
{
	char *argv[24] = {
	    (char *)h_bin("vigilctl"), "--api", api, "--ca", pki.ca, "--token-file", token};
	int n = 7;

	for (; *args != NULL && n < 23; args++)
		argv[n++] = (char *)*args;
	argv[n] = NULL;
	return h_run(out, 20000, argv);
}

Test(vigilctl, every_command_answers_help_with_its_usage)
{
	static const char *const commands[] = {"hosts",	   "audits", "audit",	"accept",
					       "models",   "model",  "relearn", "activity",
					       "sessions", "rules",  "pki",	"users"};

	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		const char *args[] = {commands[i], "--help", NULL};
		int rc = run(args);
		char *text = h_slurp(out);

		cr_expect_eq(rc, 0, "vigilctl %s --help exited %d: %s", commands[i], rc, text);
		cr_expect(strstr(text, commands[i]) != NULL && strlen(text) > 20,
			  "vigilctl %s --help printed no usage: %s", commands[i], text);
		free(text);
	}
}

Test(vigilctl, a_usage_error_is_2)
{
	const char *unknown[] = {"audits", "--colour", "red", NULL};
	const char *no_id[] = {"audit", NULL};
	const char *bad_id[] = {"accept", "12x", NULL};
	const char *no_command[] = {"frobnicate", NULL};

	cr_expect_eq(run(unknown), 2, "%s", h_slurp(out));
	cr_expect_eq(run(no_id), 2, "%s", h_slurp(out));
	cr_expect_eq(run(bad_id), 2, "%s", h_slurp(out));
	cr_expect_eq(run(no_command), 2, "%s", h_slurp(out));
}

Test(vigilctl, a_console_not_reached_is_3)
{
	const char *read[] = {"hosts", NULL};
	const char *list[] = {"audits", "--severity", "high", NULL};
	const char *write[] = {"accept", "7", NULL};
	const char *rules[] = {"rules", "list", NULL};

	cr_expect_eq(run(read), 3, "%s", h_slurp(out));
	cr_expect_eq(run(list), 3, "%s", h_slurp(out));
	cr_expect_eq(run(write), 3, "%s", h_slurp(out));
	cr_expect_eq(run(rules), 3, "%s", h_slurp(out));
}
