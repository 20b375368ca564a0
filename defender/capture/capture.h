/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_CAPTURE_H
#define VIGIL_DEFENDER_CAPTURE_H

/*
 * Kernel capture: loads bpf/capture.bpf.c (process life, file and network
 * syscalls into one ring buffer, and the counters) and hands each record to
 * a callback.  One thread polls; counters may be read from any
 * thread.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "events.h"

struct capture;

struct capture_opts {
	size_t ringbuf_bytes;	  /* power of two, >= 64 KiB; 0: 8 MiB */
	bool filter_read_repeat;  /* report a read-only open once per (process, inode) */
	bool filter_failed_reads; /* don't report read-only opens that failed */
	/*
	 * Copy opens' paths as the call enters too (see bpf/lib/stash.h).  The
	 * copy matters only for an open that fails (a successful one's path is
	 * its new file's); it costs every open on the host a tracepoint.  false:
	 * a failed open's path is read at exit, flagged path_read_after_call.
	 */
	bool copy_open_args;
	/*
	 * NULL: the ring is released as it is read, and capture ends with the
	 * process.  A directory on bpffs: the programs, the ring and the counters
	 * are pinned there and outlive a defender that is killed; the next one
	 * takes them over, and reads on from what the last one committed
	 * (capture_commit).  capture_stop releases them.
	 */
	const char *pin_dir;
};

#define CAPTURE_OPTS_DEFAULT                                                                       \
	{                                                                                          \
		.ringbuf_bytes = 0, .filter_read_repeat = true, .filter_failed_reads = true,       \
		.copy_open_args = true, .pin_dir = NULL                                            \
	}

/* What the kernel side counted since load, summed over CPUs. */
struct capture_counters {
	uint64_t delivered[EV_TYPE_MAX]; /* by enum ev_type */
	uint64_t drops[DROP_REASON_MAX];
	uint64_t filtered[FILTER_REASON_MAX];
	uint64_t user_malformed; /* records user space refused as malformed */
};

/* Names for the counters, for JSON and the console: "ringbuf_full", "read_repeat", "exec"... */
const char *capture_drop_name(int reason);
const char *capture_filter_name(int reason);
const char *capture_type_name(int type);

/*
 * Open, load and attach.  Returns NULL with errno set and err explaining (no
 * BPF in this build, not root, verifier refusal, ...).
 */
struct capture *capture_start(const struct capture_opts *opts, vigil_err *err);

/*
 * Called for each record, already checked to hold at least a header whose
 * size matches len.  Return 0 to go on, negative to stop the poll.
 */
typedef int (*capture_record_fn)(const struct ev_hdr *rec, size_t len, void *ctx);

/* Wait up to timeout_ms for records and deliver all that are ready.  Returns records seen or
 * -errno. */
int capture_poll(struct capture *cap, int timeout_ms, capture_record_fn fn, void *ctx);

/*
 * The ring position just after the record being handed out (inside the
 * callback) or the last one read.  With pin_dir, the ring is given back to
 * the kernel only up to what capture_commit was told: call it with a
 * position once everything read before it is safe (spooled).
 */
uint64_t capture_read_pos(const struct capture *cap);
void capture_commit(struct capture *cap, uint64_t pos);

/* Whether this capture took over programs a previous defender left running. */
bool capture_took_over(const struct capture *cap);

void capture_read_counters(struct capture *cap, struct capture_counters *out);

/*
 * Events the kernel lost so far (ring full, no scratch buffer): the drops
 * map's two loss entries only, a lookup each, for callers that poll.
 */
uint64_t capture_losses(const struct capture *cap);

/* Sum of execs counted on all CPUs (the defender's own are not counted). */
uint64_t capture_exec_count(const struct capture *cap);

/* The ring buffer's size in bytes. */
size_t capture_ringbuf_bytes(const struct capture *cap);

/* Human-readable list of what is loaded. */
const char *capture_describe(const struct capture *cap);

/* Detach (with pin_dir: unpin everything, so capture ends) and free; accepts NULL. */
void capture_stop(struct capture *cap);

/* The network guard's maps (bpf/lib/guard.h), owned by the capture. */
struct capture_guard {
	int entries_fd, conf_fd, cgroups_fd;
	char cgroup2[256]; /* the cgroup v2 tree the programs are attached at */
};

/*
 * Whether the guard's cgroup programs are attached: *ret gets their maps;
 * otherwise false with why (len bytes).
 */
bool capture_guard(const struct capture *cap, struct capture_guard *ret, char *why, size_t len);

#endif
