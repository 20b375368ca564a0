/* SPDX-License-Identifier: Apache-2.0 */
#include "log.h"

#include "utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_progname = "vigil";
static enum log_level log_min = LOG_LVL_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *progname, enum log_level min_level)
{
	log_progname = progname;
	log_min = min_level;
}

int log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	return -1;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[2048], safe[2048 + 64];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n, m, prefix;

	if (level < log_min)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
		     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] %s: ", tm.tm_year + 1900,
		     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     ts.tv_nsec / 1000000, log_progname, (int)getpid(), level_names[level]);
	prefix = n;
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	/*
	 * Names, paths and messages from hosts and peers reach this line: their
	 * control characters and terminal escapes must neither forge log lines
	 * nor act on the terminal of whoever reads the log.  The prefix is ours.
	 */
	memcpy(safe, line, (size_t)prefix);
	size_t len =
	    (size_t)prefix + utf8_escape_controls(line + prefix, (size_t)(n - prefix),
						  safe + prefix, sizeof(safe) - (size_t)prefix - 1);
	safe[len++] = '\n';
	(void)!write(STDERR_FILENO, safe, len);
}
