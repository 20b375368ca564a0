/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_FANGUARD_H
#define VIGIL_DEFENDER_FANGUARD_H

/*
 * Exec and open permission decisions with fanotify: the kernel holds an
 * exec (FAN_OPEN_EXEC_PERM) or open (FAN_OPEN_PERM) of a marked file until
 * the defender answers allow or deny; a denied call fails with EPERM before
 * the program runs or the file is opened.
 *
 * Marks go only on what the rules name: a file, the files of a directory,
 * or, for execs only, whole filesystems (a model's program list and "any
 * shell" can only be checked by seeing every exec).  Opens are never marked
 * filesystem-wide: every open on the host would wait for the defender.
 *
 * Safety:
 * - The listener thread never opens a path: it names an event's file by
 *   readlink of /proc/self/fd/N (fanotify's own fd does not raise events),
 *   and reads only procfs.  A listener that opened a marked file would wait
 *   for its own answer, and every exec or open of that file on the host
 *   with it.
 * - The defender's own threads and PID 1 are always allowed, undecided.
 * - Every request is answered within answer_ms: a watchdog thread answers
 *   allow for whatever the listener has not answered in time (it also reads
 *   and allows new requests while the listener is stuck), counts each, and
 *   reports it through on_fail_open.  When the defender exits or is killed
 *   its fanotify fd closes and the kernel allows everything pending (and
 *   marks vanish): the host keeps working.
 * - block: the caller's thread group is sent SIGKILL before the answer, while
 *   the kernel still holds it inside the call (no pid reuse race), then the
 *   call is denied.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

enum fan_act {
	FAN_ACT_EXEC = 1,
	FAN_ACT_OPEN,
};

/* One held call, as the decide callback sees it. */
struct fan_request {
	enum fan_act act;
	uint32_t tid;	  /* the calling thread (FAN_REPORT_TID) */
	uint32_t tgid;	  /* its process, filled in by the decision when it kills */
	const char *path; /* the file, as the kernel names it now */
	int fd;		  /* the file itself (fstat it; never read or re-open it); -1: none */
};

enum fan_answer {
	FAN_ANSWER_ALLOW = 0,
	FAN_ANSWER_DENY,
	FAN_ANSWER_KILL, /* kill req->tgid, then deny */
};

typedef enum fan_answer (*fanguard_decide_fn)(struct fan_request *rq, void *ctx);
/* The watchdog let rq through unanswered by the listener (rq->path may be ""). */
typedef void (*fanguard_fail_open_fn)(const struct fan_request *rq, void *ctx);

enum fanguard_mark_kind {
	FG_MARK_FILE = 1,   /* the file at path */
	FG_MARK_CHILDREN,   /* the files of the directory at path */
	FG_MARK_FILESYSTEM, /* every file of the filesystem path is on (execs only) */
};

struct fanguard_mark {
	char path[4096];
	enum fanguard_mark_kind kind;
	bool exec, open; /* which calls to hold */
};

struct fanguard_stats {
	uint64_t requests, allowed, denied, killed;
	uint64_t own;	    /* the defender's own calls, allowed undecided */
	uint64_t fail_open; /* answered allow by the watchdog */
	uint64_t errors;    /* answers the kernel refused, unreadable events */
	uint64_t marks, mark_errors;
};

struct fanguard;

/*
 * What this kernel offers: exec and open permission events, for the
 * defender (CAP_SYS_ADMIN).  why says what is missing.
 */
void fanguard_probe(bool *ret_exec, bool *ret_open, char *why, size_t whylen);

/*
 * Start the listener and the watchdog.  NULL with err when fanotify cannot
 * be used.
 */
struct fanguard *fanguard_start(fanguard_decide_fn decide, fanguard_fail_open_fn fail_open,
				void *ctx, unsigned answer_ms, vigil_err *err);

/*
 * Put exactly these marks in place (added before the old ones are removed:
 * no gap).  A mark that cannot be set is counted and named in why (the first
 * one); the rest are still set.  Returns how many could not be set.  From
 * one thread at a time.
 */
size_t fanguard_set_marks(struct fanguard *g, const struct fanguard_mark *marks, size_t n,
			  char *why, size_t whylen);

void fanguard_stats(struct fanguard *g, struct fanguard_stats *out);

/* Stop both threads; pending calls are allowed by the kernel as the fd closes. */
void fanguard_stop(struct fanguard *g);

#endif
