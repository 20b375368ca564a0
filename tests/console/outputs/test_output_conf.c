/* SPDX-License-Identifier: Apache-2.0 */
/* The outputs file (outputs/output_conf.h): what it takes, and that it names the line it refuses.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "outputs/output_conf.h"

static int parse(const char *text, struct output_confs *c, vigil_err *err)
{
	return output_conf_parse(text, strlen(text), "out.conf", c, err);
}

Test(output_conf, every_kind_with_its_defaults_and_options)
{
	struct output_confs c;
	vigil_err err = {0};

	cr_assert_eq(
	    parse("# audits out\n"
		  "output = siem syslog tls://logs.example:6514 ca=/etc/ca.pem"
		  " facility=local3 min_severity=medium max_backlog=5000 max_age=2h\n"
		  "output = plain syslog tcp://[::1]:514\n"
		  "output = archive jsonl /var/log/vigil/audits.jsonl fsync=none mode=0600\n"
		  "\n"
		  "output = chat webhook https://hooks.example/T0/B0/secret format=slack\n",
		  &c, &err),
	    0, "%s", err.msg);
	cr_assert_eq(c.n, 4);
	cr_expect_str_eq(c.v[0].name, "siem");
	cr_expect_eq(c.v[0].kind, OUTPUT_SYSLOG);
	cr_expect(c.v[0].tls);
	cr_expect_str_eq(c.v[0].url, "tls+tcp://logs.example:6514");
	cr_expect_str_eq(c.v[0].where, "logs.example:6514");
	cr_expect_str_eq(c.v[0].ca, "/etc/ca.pem");
	cr_expect_eq(c.v[0].facility, 19);
	cr_expect_eq(c.v[0].min_severity, 1);
	cr_expect_eq(c.v[0].max_backlog, 5000);
	cr_expect_eq(c.v[0].max_age_s, 7200);
	cr_expect_str_eq(c.v[0].sd_id, OUTPUT_SD_ID_DEFAULT);
	cr_expect_eq(c.v[0].line, 2);
	cr_expect(!c.v[1].tls);
	cr_expect_str_eq(c.v[1].url, "tcp://[::1]:514");
	cr_expect_eq(c.v[1].facility, 10, "authpriv by default");
	cr_expect_eq(c.v[1].max_backlog, OUTPUT_MAX_BACKLOG_DEFAULT);
	cr_expect_eq(c.v[1].max_age_s, OUTPUT_MAX_AGE_DEFAULT_S);
	cr_expect_eq(c.v[2].kind, OUTPUT_JSONL);
	cr_expect(!c.v[2].fsync);
	cr_expect_eq(c.v[2].mode, 0600);
	cr_expect_eq(c.v[3].kind, OUTPUT_WEBHOOK);
	cr_expect_eq(c.v[3].format, OUTPUT_FORMAT_SLACK);
	cr_expect_str_eq(c.v[3].where, "hooks.example:443", "only the host is shown");
	cr_expect_str_eq(c.v[3].ca, OUTPUT_SYSTEM_CA);
	cr_expect_eq(c.v[3].line, 6);
	output_confs_fini(&c);
}

/* text must be refused with an error containing want (and never secret, if given). */
static void refused(const char *text, const char *want, const char *secret)
{
	struct output_confs c;
	vigil_err err = {0};

	cr_expect_lt(parse(text, &c, &err), 0, "accepted: %s", text);
	cr_expect(strstr(err.msg, want) != NULL, "'%s' does not say '%s'", err.msg, want);
	if (secret != NULL)
		cr_expect(strstr(err.msg, secret) == NULL, "'%s' repeats the URL", err.msg);
	cr_expect_eq(c.n, 0);
}

Test(output_conf, refusals_name_the_line_and_keep_secrets)
{
	refused("output = a syslog udp://h:514\n", "out.conf:1: output a: syslog target", NULL);
	refused("\noutput = a syslog tcp://h\n", "out.conf:2:", NULL);
	refused("output = a syslog tcp://h:70000\n", "port", NULL);
	refused("output = a jsonl relative/path\n", "absolute", NULL);
	refused("output = a webhook ftp://h/x?token=s3cret\n", "http:// or https://", "s3cret");
	refused("output = a webhook https://h/s3cret colour=red\n", "unknown option 'colour'",
		"s3cret");
	refused("output = a webhook https://h/x facility=local0\n",
		"'facility' does not apply to a webhook", NULL);
	refused("output = a jsonl /x mode=0444\n", "mode", NULL);
	refused("output = a jsonl /x min_severity=urgent\n", "min_severity", NULL);
	refused("output = a jsonl /x max_backlog=10\n", "max_backlog", NULL);
	refused("output = a jsonl /x max_age=10s\n", "max_age", NULL);
	refused("output = a jsonl /x fsync=batch fsync=none\n", "twice", NULL);
	refused("output = a syslog tcp://h:514 ca=/ca.pem\n", "TLS", NULL);
	refused("output = a syslog tls://h:514 cert=/c.pem\n", "cert and key go together", NULL);
	refused("output = a jsonl /x\noutput = a jsonl /y\n",
		"out.conf:2: output name 'a' is taken"
		" (line 1)",
		NULL);
	refused("output = a/b jsonl /x\n", "output name", NULL);
	refused("output = a jsonl\n", "NAME KIND TARGET", NULL);
	refused("output = a ftp /x\n", "unknown kind", NULL);
	refused("sink = a jsonl /x\n", "unknown key 'sink'", NULL);
	refused("output = a syslog tcp://h:1 sd_id=nopen\n", "sd_id", NULL);
}

Test(output_conf, at_most_sixteen)
{
	char text[4096] = "";
	struct output_confs c;
	vigil_err err = {0};

	for (int i = 0; i < OUTPUTS_MAX; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text),
			 "output = s%d jsonl /x%d\n", i, i);
	cr_assert_eq(parse(text, &c, &err), 0, "%s", err.msg);
	cr_expect_eq(c.n, OUTPUTS_MAX);
	output_confs_fini(&c);
	strcat(text, "output = one-more jsonl /y\n");
	cr_expect_lt(parse(text, &c, &err), 0);
	cr_expect(strstr(err.msg, "more than 16 outputs") != NULL, "%s", err.msg);
}
