/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_COMMON_LOG_H
#define VIGIL_COMMON_LOG_H

/*
 * The daemons' logger: one line per message on stderr,
 * "2026-11-28T18:00:00.123Z vigil-console[123] warn: ...".  Only programs
 * (console/, defender/) call it; library code returns errors instead.
 * Thread-safe: each line is written with one write(2).
 */

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

void log_init(const char *progname, enum log_level min_level);

/* Parse "debug", "info", "warn", "error"; returns -1 for anything else. */
int log_level_parse(const char *s);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)

#endif
