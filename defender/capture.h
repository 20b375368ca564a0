/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_CAPTURE_H
#define VIGIL_DEFENDER_CAPTURE_H

/*
 * Kernel capture.  For now: the exec counter (bpf/exec_count.bpf.c), which
 * proves that the defender can load and attach BPF on this host.
 */

#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct capture;

/*
 * Open, load and attach the BPF programs.  Returns NULL with errno set and
 * err explaining (no BPF in this build, not root, verifier refusal, ...).
 */
struct capture *capture_start(vigil_err *err);

/* Sum of execs counted on all CPUs (the defender's own are not counted). */
uint64_t capture_exec_count(const struct capture *cap);

/* Human-readable list of what is loaded, e.g. "exec_count (tracepoint sched_process_exec)". */
const char *capture_describe(const struct capture *cap);

/* Detach and free; accepts NULL. */
void capture_stop(struct capture *cap);

#endif
