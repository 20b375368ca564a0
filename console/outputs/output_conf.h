/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_OUTPUT_CONF_H
#define VIGIL_CONSOLE_OUTPUT_CONF_H

/*
 * The outputs file (vigil-console --outputs FILE; docs/outputs.md), in the
 * kvconf format (common/kvconf.h): one sink per "output" line,
 *
 *   output = NAME KIND TARGET [OPTION=VALUE ...]
 *
 *   output = siem    syslog  tls://logs.example:6514 ca=/etc/vigil/logs-ca.crt
 *   output = archive jsonl   /var/log/vigil/audits.jsonl
 *   output = chat    webhook https://hooks.example/T0/B0/x format=slack min_severity=high
 *
 * NAME ([A-Za-z0-9._-], 1 to 64) keys the sink's cursor in the database:
 * renaming a sink starts it afresh.  KIND and TARGET:
 *   syslog   tcp://HOST:PORT or tls://HOST:PORT (RFC 5424 over RFC 6587
 *            octet counting, or RFC 5425 TLS)
 *   jsonl    an absolute file path
 *   webhook  http://... or https://... (a POST per audit)
 * Options, every kind: min_severity=low|medium|high (default low),
 * max_backlog=N audits (default 100000, 100 to 10000000), max_age=DURATION
 * (N with s, m, h or d; default 7d, 1m to 365d).  syslog: ca=FILE,
 * cert=FILE and key=FILE (a client certificate, both or neither),
 * server_name=NAME, facility=NAME|0..23 (default authpriv), sd_id=NAME@PEN
 * (default vigil@32473).  jsonl: fsync=batch|none (default batch),
 * mode=OCTAL (a new file's mode, default 0640).  webhook: format=json|slack
 * (default json), ca=FILE, server_name=NAME.  TLS without ca= verifies
 * against the system's bundle (OUTPUT_SYSTEM_CA).
 *
 * Nothing is ignored: an unknown key, kind or option, a repeated name, a
 * value out of range is an error naming the file and line.  Pure: nothing
 * here opens a connection or logs.
 */

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define OUTPUTS_MAX		   16
#define OUTPUT_NAME_MAX		   64
#define OUTPUT_MAX_BACKLOG_DEFAULT 100000
#define OUTPUT_MAX_BACKLOG_MIN	   100
#define OUTPUT_MAX_BACKLOG_MAX	   10000000
#define OUTPUT_MAX_AGE_DEFAULT_S   (7 * 86400)
#define OUTPUT_SYSTEM_CA	   "/etc/ssl/certs/ca-certificates.crt"
#define OUTPUT_SD_ID_DEFAULT	   "vigil@32473"

enum output_kind { OUTPUT_SYSLOG, OUTPUT_JSONL, OUTPUT_WEBHOOK };
enum output_format { OUTPUT_FORMAT_JSON, OUTPUT_FORMAT_SLACK };

struct output_conf {
	char name[OUTPUT_NAME_MAX + 1];
	enum output_kind kind;
	int line; /* in the file, for messages */
	/*
	 * The target as given (a webhook's URL may carry a token: never log
	 * it), and what may be logged: host:port, or the file's path.
	 */
	char target[2048];
	char where[PATH_MAX];
	int min_severity; /* 0 low, 1 medium, 2 high */
	int64_t max_backlog;
	int64_t max_age_s;
	/* syslog and webhook */
	bool tls;
	char url[320]; /* syslog: the nng URL, tcp://HOST:PORT or tls+tcp://HOST:PORT */
	char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
	char server_name[256]; /* "" : the target's host */
	int facility;	       /* 0..23 */
	char sd_id[33];
	/* jsonl */
	bool fsync;
	unsigned mode;
	/* webhook */
	enum output_format format;
};

struct output_confs {
	struct output_conf *v; /* owned: output_confs_fini */
	size_t n;
};

/* The kind's name: "syslog", "jsonl", "webhook". */
const char *output_kind_name(enum output_kind k);

/* Parse text (len bytes) read from source; *ret filled (zeroed first). */
int output_conf_parse(const char *text, size_t len, const char *source, struct output_confs *ret,
		      vigil_err *err);

/* Read and parse path. */
int output_conf_load(const char *path, struct output_confs *ret, vigil_err *err);

/* Free; accepts a zeroed one. */
void output_confs_fini(struct output_confs *c);

/* "low" 0, "medium" 1, "high" 2, anything else -1. */
int output_severity_rank(const char *s);

#endif
