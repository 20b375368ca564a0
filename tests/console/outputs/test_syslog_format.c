/* SPDX-License-Identifier: Apache-2.0 */
/* An audit as RFC 5424 over octet counting (outputs/syslog_format.h), hostile fields included. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "outputs/syslog_format.h"
#include "utf8.h"

static const struct syslog_opts opts = {
    .facility = 10, .hostname = "console-1", .sd_id = "vigil@32473"};

/* The message of audit, its frame's length checked and cut off. */
static char *format(json_t *audit)
{
	static char out[SYSLOG_FRAME_MAX + 1];
	size_t n = syslog_format(audit, &opts, out, sizeof(out) - 1);
	char *sp;
	long len;

	cr_assert_gt(n, 0);
	out[n] = '\0';
	len = strtol(out, &sp, 10);
	cr_assert_eq(*sp, ' ');
	cr_assert_eq((size_t)len, n - (size_t)(sp + 1 - out), "the frame's length is wrong");
	cr_assert_leq(len, SYSLOG_MSG_MAX);
	return sp + 1;
}

Test(syslog_format, a_deviation)
{
	json_t *a = json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:n,s:s}", "id", 7, "host_id",
			      "web-1", "ts", "2024-11-28T14:20:00.000000Z", "kind", "new_program",
			      "severity", "high", "summary", "nginx started /bin/sh", "service",
			      "nginx.service", "exe", "/usr/sbin/nginx", "rule", "effect", "alert");

	cr_expect_str_eq(format(a),
			 "<82>1 2024-11-28T14:20:00.000000Z web-1 vigil - new_program [vigil@32473"
			 " id=\"7\" host=\"web-1\" kind=\"new_program\" severity=\"high\""
			 " service=\"nginx.service\" exe=\"/usr/sbin/nginx\" effect=\"alert\"]"
			 " \xef\xbb\xbfnginx started /bin/sh");
	json_decref(a);
}

Test(syslog_format, the_consoles_own_audit_carries_the_consoles_name)
{
	json_t *a = json_pack("{s:i,s:s,s:s,s:s,s:s,s:s}", "id", 9, "host_id", "", "ts",
			      "2024-11-28T14:20:00.000000Z", "kind", "events_expired", "severity",
			      "low", "summary", "dropped");

	cr_expect_str_eq(format(a), "<85>1 2024-11-28T14:20:00.000000Z console-1 vigil -"
				    " events_expired [vigil@32473 id=\"9\" kind=\"events_expired\""
				    " severity=\"low\"] \xef\xbb\xbf"
				    "dropped");
	json_decref(a);
}

/* A header field that cannot be one is "-" (a host's name is not replaced by the console's). */
Test(syslog_format, hostile_values_cannot_break_the_structure)
{
	json_t *a = json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:s}", "id", 1, "host_id", "h o\"st", "ts",
			      "yesterday", "kind", "new write", "severity", "medium", "exe",
			      "/a]b\"c\\d\ne", "summary", "line1\nline2\r] \"x\\");

	cr_expect_str_eq(format(a),
			 "<84>1 - - vigil - - [vigil@32473 id=\"1\" host=\"h o\\\"st\""
			 " kind=\"new write\" severity=\"medium\" exe=\"/a\\]b\\\"c\\\\d#012e\"]"
			 " \xef\xbb\xbfline1#012line2#015] \"x\\");
	json_decref(a);
}

Test(syslog_format, long_values_are_cut_between_characters_and_the_message_bounded)
{
	char *big = malloc(20000);
	json_t *a;
	const char *m;

	for (int i = 0; i < 19998; i += 2)
		memcpy(big + i, "\xc3\xa9", 2); /* é */
	big[19998] = '\0';
	a = json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:s}", "id", 1, "host_id", "h", "ts",
		      "2024-11-28T14:20:00.000000Z", "kind", "new_write", "severity", "low", "exe",
		      big, "summary", big);
	m = format(a);
	const char *exe = strstr(m, "exe=\"") + 5;
	size_t elen = strcspn(exe, "\"");
	cr_expect_leq(elen, SYSLOG_VALUE_MAX);
	cr_expect_eq(elen % 2, 0, "a value cut inside a character");
	cr_expect(utf8_valid(m, strlen(m)), "the message was cut inside a character");
	cr_expect_leq(strlen(m), SYSLOG_MSG_MAX);
	json_decref(a);
	free(big);
}
