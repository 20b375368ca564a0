/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_SESSION_H
#define VIGIL_DEFENDER_SESSION_H

/*
 * The defender's session with its consoles, on the main thread: a hello
 * (host facts, labels, BPF status), then a heartbeat every interval with
 * the capture, delivery and learning counters and the commands carried out;
 * commands in the replies (relearn) go to the pipeline, once each.  Every
 * hello and heartbeat says which rule-set version the defender holds (and
 * the last it refused); a reply with a newer set hands it to the rulebook,
 * and the next heartbeat goes at once, so the console hears of it within
 * a round trip.  When no
 * console answers, the session says hello again to whichever answers next
 * (it may be another console), and closes connections that stay silent.
 *
 * Ownership: the session borrows everything in session_parts (they must
 * outlive session_free) and owns its request channel.
 */

struct enforcer;

#include <signal.h>

#include "capture/capture.h"
#include "config/defender_config.h"
#include "deliver/delivery.h"
#include "deliver/hostinfo.h"
#include "deliver/uplink.h"
#include "error.h"
#include "pipeline.h"
#include "rules/rulebook.h"

struct session_parts {
	const struct defender_config *cfg;
	const struct hostinfo *host; /* for the hello */
	struct uplink *up;
	struct capture *cap;	/* NULL: running without kernel capture */
	struct delivery *dl;	/* NULL when cap is */
	struct pipeline *pipe;	/* NULL when cap is */
	const char *bpf_status; /* "loaded: ..." or "not loaded: why" */
	struct rulebook *rules; /* the rule set held: reported, and replaced by newer ones */
	struct enforcer *enf;	/* puts each rule set taken in force; reports what it can */
};

struct session;

/* Open a request channel.  Returns NULL with err set. */
struct session *session_new(const struct session_parts *parts, vigil_err *err);

/* Hello, heartbeats and commands until *stop is set. */
void session_run(struct session *s, volatile sig_atomic_t *stop);

/*
 * For a stop, from another thread: end the request under way at once (and
 * refuse new ones), so session_run returns as soon as *stop is set.
 */
void session_abort(struct session *s);

/* Close the channel and free.  Accepts NULL. */
void session_free(struct session *s);

#endif
