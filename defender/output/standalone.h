/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_STANDALONE_H
#define VIGIL_DEFENDER_STANDALONE_H

/*
 * vigil-defender --events-json: capture without a console, enriched events as
 * JSON lines on stdout.  The first line is {"type":"ready",...}; a
 * {"type":"stats",...} line follows every stats interval and at the end, so a
 * reader always learns whether anything was lost.
 */

#include <signal.h>
#include <stdint.h>

#include "capture/capture.h"

struct standalone_opts {
	uint32_t type_mask; /* bit (1 << enum ev_type); 0: all */
	uint32_t pid;	    /* only this process (and, with descendants, its children); 0: all */
	bool descendants;
	const char *comm;      /* only this command name; NULL: all */
	int stats_interval_ms; /* 0: only at the end */
	/*
	 * A rule set file (the export form, vigilctl rules export) to enforce
	 * without a console, its decisions printed as {"type":"enforcement"}
	 * lines; NULL: none.
	 */
	const char *rules_file;
	struct capture_opts capture;
};

/*
 * Parse "exec,file,net" into a type mask (bit 1 << enum ev_type).  Returns 0;
 * -EINVAL for an unknown name or an empty list (*ret_mask untouched);
 * -ENAMETOOLONG for a list of 128 bytes or more.
 */
int standalone_parse_types(const char *list, uint32_t *ret_mask);

/* Run until *stop is set.  Returns the process exit status; errors are logged. */
int standalone_run(const struct standalone_opts *opts, volatile sig_atomic_t *stop);

#endif
