/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Operator mistakes get one clear message naming what is wrong and a
 * non-zero exit: missing files, a port in use, a database that cannot be
 * reached, a malformed configuration.
 */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static char dir[H_PATH];
static struct h_pki pki;

static void setup(void)
{
	h_tmpdir(dir);
	h_pki_make(dir, &pki);
}

static void teardown(void)
{
	h_rmrf(dir);
}

TestSuite(errors, .init = setup, .fini = teardown, .timeout = 120);

/* Run the console with args; expect a failing exit and want in its output. */
static void expect_console_fails(const char *want, char *const extra[])
{
	char log[H_PATH], state[H_PATH], listen[64], api[64];
	char *argv[32];
	int n = 0, rc;

	snprintf(log, sizeof(log), "%s/console.log", dir);
	unlink(log);
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(listen, sizeof(listen), "tls+tcp://127.0.0.1:%d", h_free_port());
	snprintf(api, sizeof(api), "https://127.0.0.1:%d", h_free_port());
	argv[n++] = (char *)h_bin("vigil-console");
	argv[n++] = "--state-dir";
	argv[n++] = state;
	argv[n++] = "--listen";
	argv[n++] = listen;
	argv[n++] = "--api";
	argv[n++] = api;
	for (int i = 0; extra[i] != NULL; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	rc = h_run(log, 60000, argv);
	char *out = h_slurp(log);
	cr_expect_gt(rc, 0, "console exit %d; output:\n%s", rc, out);
	cr_expect(strstr(out, want) != NULL, "expected '%s' in:\n%s", want, out);
	free(out);
}

Test(errors, console_names_a_missing_certificate)
{
	char missing[H_PATH];

	snprintf(missing, sizeof(missing), "%s/nope.crt", dir);
	char *extra[] = {"--ca", pki.ca, "--cert", missing, "--key", pki.console_key, NULL};
	expect_console_fails(missing, extra);
}

Test(errors, console_names_a_key_that_does_not_match)
{
	char *extra[] = {"--ca", pki.ca, "--cert", pki.console_cert, "--key", pki.host_key, NULL};
	expect_console_fails("does not match", extra);
}

Test(errors, console_names_a_port_in_use)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	char url[64], log[H_PATH], state[H_PATH];
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 1) == 0);
	getsockname(fd, (struct sockaddr *)&sa, &len);
	snprintf(url, sizeof(url), "tls+tcp://127.0.0.1:%d", ntohs(sa.sin_port));
	snprintf(log, sizeof(log), "%s/console.log", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	char *argv[] = {(char *)h_bin("vigil-console"),
			"--state-dir",
			state,
			"--listen",
			url,
			"--ca",
			pki.ca,
			"--cert",
			pki.console_cert,
			"--key",
			pki.console_key,
			NULL};
	int rc = h_run(log, 30000, argv);
	char *out = h_slurp(log);
	cr_expect_gt(rc, 0);
	cr_expect(strstr(out, url) != NULL && strstr(out, "in use") != NULL, "%s", out);
	free(out);
	close(fd);
}

Test(errors, console_names_an_unreachable_database)
{
	char dsn[H_PATH];

	snprintf(dsn, sizeof(dsn), "host=%s/no-such-socket-dir dbname=vigil connect_timeout=2",
		 dir);
	char *extra[] = {"--db",	   dsn,	    "--ca",	     pki.ca, "--cert",
			 pki.console_cert, "--key", pki.console_key, NULL};
	expect_console_fails("no-such-socket-dir", extra);
}

Test(errors, defender_names_the_bad_config_line)
{
	char conf[H_PATH], log[H_PATH];
	const char *text = "console = tls+tcp://127.0.0.1:1\n# fine\nthis line is wrong\n";

	snprintf(conf, sizeof(conf), "%s/bad.conf", dir);
	snprintf(log, sizeof(log), "%s/defender.log", dir);
	FILE *f = fopen(conf, "w");
	fputs(text, f);
	fclose(f);
	char *argv[] = {(char *)h_bin("vigil-defender"), "--config", conf, NULL};
	cr_expect_eq(h_run(log, 10000, argv), 2);
	char *out = h_slurp(log);
	cr_expect(strstr(out, "bad.conf:3") != NULL, "%s", out);
	free(out);
}

Test(errors, defender_names_an_unreadable_key)
{
	char conf[H_PATH], log[H_PATH], text[2048], missing[H_PATH];

	snprintf(missing, sizeof(missing), "%s/gone.key", dir);
	snprintf(conf, sizeof(conf), "%s/d.conf", dir);
	snprintf(log, sizeof(log), "%s/defender.log", dir);
	char pins[H_PATH];
	h_bpf_pin_dir(dir, pins);
	snprintf(text, sizeof(text),
		 "console = tls+tcp://127.0.0.1:1\nca = %s\ncert = %s\nkey = %s\nstate_dir = %s/s\n"
		 "bpf_pin_dir = %s\n",
		 pki.ca, pki.host_cert, missing, dir, pins);
	FILE *f = fopen(conf, "w");
	fputs(text, f);
	fclose(f);
	char *argv[] = {(char *)h_bin("vigil-defender"), "--config", conf, NULL};
	cr_expect_eq(h_run(log, 10000, argv), 1);
	char *out = h_slurp(log);
	cr_expect(strstr(out, missing) != NULL, "%s", out);
	free(out);
}
