/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_SYSLOG_FORMAT_H
#define VIGIL_CONSOLE_SYSLOG_FORMAT_H

/*
 * An audit as an RFC 5424 syslog message, framed by octet counting (RFC
 * 6587 section 3.4.1, which RFC 5425 uses over TLS too):
 *
 *   LEN SP <PRI>1 TIMESTAMP HOSTNAME vigil - MSGID [SD-ID id="7" host="web-1"
 *       kind="new_program" severity="high" service="..." exe="..." rule="..."
 *       effect="..."] BOM summary
 *
 *   PRI        facility * 8 + the audit's severity: high 2 (crit), medium 4
 *              (warning), low 5 (notice)
 *   TIMESTAMP  the audit's ts (RFC 3339, microseconds, UTC), "-" if it is not
 *   HOSTNAME   the audit's host, or for the console's own audits (host "")
 *              the console's hostname
 *   MSGID      the audit's kind
 *   SD         one element, the audit's fields that are set; each value with
 *              '"', '\' and ']' escaped by a backslash (RFC 5424 6.3.3)
 *   MSG        the summary, UTF-8 with its BOM
 *
 * Everything in an audit may come from a host (hostile): control
 * characters in values and the summary are written as #ooo (octal, as
 * rsyslog itself escapes them), header fields that are not printable ASCII
 * become "-", each SD value is cut at SYSLOG_VALUE_MAX bytes and the whole
 * message at SYSLOG_MSG_MAX (cut inside the summary, between characters),
 * the size RFC 5425 says receivers should take.  Pure: no I/O.
 */

#include <stddef.h>

#include <jansson.h>

#define SYSLOG_MSG_MAX	 8192
#define SYSLOG_VALUE_MAX 512
/* The frame: the length's digits and a space before the message. */
#define SYSLOG_FRAME_MAX (SYSLOG_MSG_MAX + 8)

struct syslog_opts {
	int facility;	      /* 0..23 */
	const char *hostname; /* the console's, for its own audits; NULL or "" : "-" */
	const char *sd_id;    /* "vigil@32473" */
};

/*
 * Write the framed message of audit (the API's audit object) into out
 * (at least SYSLOG_FRAME_MAX bytes); returns its length.
 */
size_t syslog_format(const json_t *audit, const struct syslog_opts *o, char *out, size_t outlen);

/* The syslog severity of an audit's severity text (high 2, medium 4, low 5, else 6). */
int syslog_severity(const char *audit_severity);

#endif
