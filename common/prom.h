/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_COMMON_PROM_H
#define VIGIL_COMMON_PROM_H

/*
 * Prometheus metrics as the text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/), for the
 * console's GET /metrics and the defender's optional metrics port.
 *
 * A prom_buf is a bounded text buffer: a family is its "# HELP" and
 * "# TYPE" lines, then its samples, all written by the same caller in one
 * go (the format wants a family's samples together).  Label values and
 * help texts are escaped as the format says (backslash, double quote and
 * newline in label values; backslash and newline in help), so a value that
 * came from a host cannot forge a line.  Past the buffer's bound the
 * buffer stops growing and says so (prom_buf.over): never a cut line.
 *
 * Collectors: process-wide, a module registers a function that writes its
 * families (the link's counters, the outputs', the ingest's), and the one
 * serving /metrics calls them all.  The registry locks itself; a collector
 * runs with its lock held, so once prom_unregister returned it runs no
 * more.  A collector must not call the registry.
 *
 * Nothing here logs.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The Content-Type of the text format. */
#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct prom_buf {
	char *text; /* NUL-terminated; owned, prom_buf_fini frees it */
	size_t len, cap, max;
	bool over; /* something did not fit under max and was left out */
};

/* An empty buffer that will hold at most max bytes. */
void prom_buf_init(struct prom_buf *b, size_t max);

/* Free the text (the buffer may be initialized again). */
void prom_buf_fini(struct prom_buf *b);

/*
 * Start a family: "# HELP name help" and "# TYPE name type" (type:
 * "counter", "gauge", "untyped").  name must match [a-zA-Z_:][a-zA-Z0-9_:]*
 * (the caller's constant); help is escaped.
 */
void prom_family(struct prom_buf *b, const char *name, const char *type, const char *help);

/*
 * A sample "name{k="v",...} value": labels is NULL or a NULL-terminated
 * list of name, value pairs (names the caller's constants; values escaped,
 * NULL written as ""); value an integer.  prom_sample_f for a float (NaN
 * and infinities as the format spells them).
 */
void prom_sample(struct prom_buf *b, const char *name, const char *const *labels, int64_t value);
void prom_sample_u(struct prom_buf *b, const char *name, const char *const *labels, uint64_t value);
void prom_sample_f(struct prom_buf *b, const char *name, const char *const *labels, double value);

/*
 * Escape s for a label value (in "...") into out (outlen > 0, always
 * terminated); returns the length written, or outlen when it did not fit
 * (cut between characters).
 */
size_t prom_escape_label(const char *s, char *out, size_t outlen);

/* A collector: writes its families into b; arg as registered. */
typedef void (*prom_collect_fn)(struct prom_buf *b, void *arg);

#define PROM_COLLECTORS_MAX 16

/* Register fn(arg).  0, or -ENOSPC when PROM_COLLECTORS_MAX are registered. */
int prom_register(prom_collect_fn fn, void *arg);

/* Unregister fn(arg) (nothing when it is not registered); it runs no more once this returns. */
void prom_unregister(prom_collect_fn fn, void *arg);

/* Run every registered collector on b, in the order they registered. */
void prom_collect(struct prom_buf *b);

#endif
