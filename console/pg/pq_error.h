/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_PQ_ERROR_H
#define VIGIL_CONSOLE_PQ_ERROR_H

/*
 * libpq's messages, made fit for a vigil_err: what the cluster code (pgembed)
 * and the store share.  No state; any thread may call these.
 */

#include <stddef.h>

/*
 * A libpq message (several lines, a trailing newline) as one line in buf
 * (size > 0): a line break or tab becomes a space unless one is already
 * there, trailing spaces go, a message that does not fit is cut.  NULL
 * reads as "".  Returns buf.
 */
const char *pq_error_flat(const char *msg, char *buf, size_t size);

/*
 * A PQnoticeProcessor that drops every notice: library code never logs, and
 * libpq's default would print them to stderr.  Install it with
 * PQsetNoticeProcessor(conn, pq_error_notice_ignore, NULL).
 */
void pq_error_notice_ignore(void *arg, const char *message);

#endif
