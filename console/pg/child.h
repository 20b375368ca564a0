/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_CHILD_H
#define VIGIL_CONSOLE_CHILD_H

/*
 * A supervised child process: a program started, optionally as another user,
 * with its stdout and stderr in a log file, stdin on /dev/null, its own
 * session, default signal handlers, an empty signal mask, no inherited
 * descriptors and a death signal; then waited for or stopped.  What the child
 * could not do before exec (setuid, chdir, exec itself, ...) comes back to
 * child_spawn through a pipe, so a bad program or directory is an error there,
 * not a bare exit status later.
 *
 * Ownership: everything passed in is borrowed for the call only; the log
 * descriptor stays the caller's to close.  The pid child_spawn returns is the
 * caller's, who must reap it (child_wait until it returns 0, or
 * child_kill_wait).  Nothing here keeps state between calls.
 *
 * Process rules for the caller: children are reaped with waitpid(<their pid>),
 * so the process must not set SIGCHLD to SIG_IGN nor reap every child
 * (waitpid(-1, ...)) while one runs.  The death signal fires when the *thread*
 * that called child_spawn exits, so spawn from a thread that lives as long as
 * the child.  Between fork and exec the child makes async-signal-safe calls
 * only, so the caller may have other threads.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/* Who a child runs as. */
struct child_user {
	bool drop; /* become uid/gid before exec (needs root); else stay */
	uid_t uid;
	gid_t gid;	  /* with drop, also the only group: no supplementary ones */
	const char *name; /* with drop, the user's name, for messages */
};

struct child_spec {
	const char *path;  /* absolute path of the program */
	char *const *argv; /* NULL-terminated */
	char *const *envp; /* the whole environment, NULL-terminated */
	const char *cwd;   /* entered as user, before exec */
	int out_fd;	   /* becomes stdout and stderr */
	const struct child_user *user;
	int death_signal; /* sent to the child when the spawning thread exits; 0: none */
};

/* Where a child stopped before exec; child_spawn's *ret_step on failure. */
enum child_step {
	CHILD_STEP_NONE, /* the failure was ours (fork, pipe), not the child's */
	CHILD_STEP_FD,
	CHILD_STEP_SETGROUPS,
	CHILD_STEP_SETGID,
	CHILD_STEP_SETUID,
	CHILD_STEP_PDEATHSIG,
	CHILD_STEP_SETSID,
	CHILD_STEP_CHDIR,
	CHILD_STEP_EXEC,
};

/*
 * Start spec's program.  Returns 0 once it has exec'd, with *ret_pid set; or
 * a negative errno with err filled ("cannot start P as user U: chdir failed:
 * ...") and, when ret_step is not NULL, *ret_step saying which step failed
 * (CHILD_STEP_NONE when the child never ran), so the caller can explain it
 * better.  A child that failed is reaped here.
 */
int child_spawn(const struct child_spec *spec, pid_t *ret_pid, enum child_step *ret_step,
		vigil_err *err);

/*
 * Reap pid before deadline_ms (on child_now_ms's clock; 0 or a past deadline
 * only checks once): 0 with the wait status in *ret_status (may be NULL),
 * -ETIMEDOUT while it still runs, or another negative errno from waitpid.
 */
int child_wait(pid_t pid, int64_t deadline_ms, int *ret_status);

/* Send sig, wait up to wait_ms, then SIGKILL; pid is reaped either way. */
void child_kill_wait(pid_t pid, int sig, int wait_ms);

/* A wait status as text: "exit status 1", "killed by signal 9 (Killed)". */
void child_status_text(int status, char *out, size_t size);

/*
 * Open (create, mode 0600) a log file for a child's output, truncated or
 * appended to; with user->drop it is chowned to the user, since a child
 * that reopens nothing must still be able to write it.  Returns the
 * descriptor (O_CLOEXEC, the caller closes it) or a negative errno with err
 * filled.
 */
int child_log_open(const char *path, bool append, const struct child_user *user, vigil_err *err);

/*
 * The last few lines of a child's log on one line in out (size > 0): line
 * breaks as '|', control characters as spaces, the end kept when it does
 * not fit; "" when the log cannot be read.
 */
void child_log_tail(const char *path, char *out, size_t size);

/* CLOCK_MONOTONIC in milliseconds: the clock of child_wait's deadline. */
int64_t child_now_ms(void);

/* Sleep about ms milliseconds; a signal may end it early (re-check deadlines). */
void child_sleep_ms(int ms);

#endif
