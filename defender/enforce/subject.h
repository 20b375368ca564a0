/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_SUBJECT_H
#define VIGIL_DEFENDER_SUBJECT_H

/*
 * Who is making a call the kernel holds for a permission decision: its
 * process, service or interactive session (the pipeline's own
 * classification, process/classify, over an ancestry read from /proc), its
 * executable and its parent's.  For the fanotify listener, which must not
 * wait for the pipeline: everything is read from procfs at once.
 *
 * Differs from the pipeline's view in one way: a process whose parent died
 * is seen re-parented (the pipeline remembers the original parent).  A
 * service with a systemd unit is still its unit (by cgroup, which a process
 * cannot leave), so this only matters for services known by executable.
 *
 * One reader per thread.
 */

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "process/classify.h"
#include "process/container_cache.h"
#include "process/intern.h"
#include "process/procfs.h"

struct subject {
	uint32_t tid, tgid, ppid;
	bool interactive;
	char service[160];	   /* the model's name; "" when interactive */
	uint32_t leader_pid;	   /* the service's leader / the session's root */
	char exe[PATH_MAX];	   /* the caller's executable (before an exec completes) */
	char parent_exe[PATH_MAX]; /* its parent's: the section a started program is in */
	char why[192];		   /* the classification's reason */
	char image[CONTAINER_IMAGE_MAX + 1]; /* its container's image; "" none or not known */
};

struct subject_reader {
	struct procfs pf;
	struct intern strs;
	struct container_cache ctrs; /* CONTAINER_CACHE_NO_IO: this thread opens no file */
	uint64_t bytes;
};

int subject_reader_init(struct subject_reader *r);
void subject_reader_fini(struct subject_reader *r);

/* tid's thread group and parent from /proc/<tid>/status.  -ENOENT when gone. */
int subject_ids(uint32_t tid, uint32_t *ret_tgid, uint32_t *ret_ppid);

/*
 * The systemd unit of pid's cgroup ("nginx.service") into unit (len bytes);
 * "" when none.  Returns 0 or a negative errno.
 */
int subject_unit(uint32_t pid, char *unit, size_t len);

/* Classify tid's process.  Returns 0, -ENOENT when it is gone. */
int subject_resolve(struct subject_reader *r, uint32_t tid, struct subject *out);

/*
 * How the call tid is held in opens its file: 1 for writing, 0 read-only, -1
 * unknown (openat2's flags are in the caller's memory, which another thread
 * can rewrite; io_uring and the like).  From /proc/<tid>/syscall: the
 * registers of a call in progress, which the caller cannot change.
 */
int subject_open_writes(uint32_t tid);

#endif
