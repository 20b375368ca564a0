/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The harness (harness.c) in a program that is not a criterion suite: a
 * benchmark links this file instead of libcriterion, and every cr_assert in
 * the harness then works as in a test, except that a failed one prints its
 * file, line and message to stderr and calls exit(1), so the program's
 * atexit handlers stop what it started and remove its directory.
 *
 * These are the entry points criterion 2.4's assertion macros call
 * (criterion/internal/assert.h); a passing assertion calls only
 * cri_asserts_passed_incr.  Not thread-safe in the failing case (exit is
 * not): call the harness from one thread, as the suites do.
 */
#include <criterion/criterion.h>
#include <criterion/internal/asprintf-compat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct criterion_options criterion_options;

int cr_vasprintf(char **strp, const char *fmt, va_list ap)
{
	return vasprintf(strp, fmt, ap);
}

int cr_asprintf(char **strp, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(strp, fmt, ap);
	va_end(ap);
	if (n < 0)
		*strp = NULL;
	return n;
}

void cr_asprintf_free(char *buf)
{
	free(buf);
}

/* The default message of an assertion without one of its own (a new string). */
char *cr_translate_assert_msg(int msg_index, ...)
{
	const char *expr = NULL;
	va_list ap;
	char *s = NULL;

	va_start(ap, msg_index);
	if (msg_index == CRITERION_ASSERT_MSG_EXPR_FALSE ||
	    msg_index == CRITERION_ASSERT_MSG_EXPR_AS_STRINGS_FALSE)
		expr = va_arg(ap, const char *);
	va_end(ap);
	if (cr_asprintf(&s, "%s%s", expr != NULL ? "false: " : "assertion failed",
			expr != NULL ? expr : "") < 0)
		return NULL;
	return s;
}

void cri_asserts_passed_incr(void)
{
}

void criterion_send_assert(struct criterion_assert_stats *stats)
{
	if (stats->passed)
		return;
	fprintf(stderr, "%s:%u: %s\n", stats->file, stats->line,
		stats->message != NULL ? stats->message : "assertion failed");
	fflush(stderr);
}

void criterion_abort_test(void)
{
	exit(1);
}

/* A harness step this host cannot take (no ptys, say): a program cannot skip, it stops. */
void criterion_skip_test(const char *format, ...)
{
	va_list ap;

	va_start(ap, format);
	fprintf(stderr, "cannot run here: ");
	vfprintf(stderr, format, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}
