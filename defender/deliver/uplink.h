/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_UPLINK_H
#define VIGIL_DEFENDER_UPLINK_H

/*
 * The defender's link to its consoles: one nng req socket with a dialer per
 * configured console URL, each over mutual TLS with the host's certificate.
 * nng redials on its own with exponential backoff (100 ms .. 5 s); a request
 * goes to whichever console is connected, so a second console is a fail-over.
 *
 * Used by one thread (the defender's main loop), but for the request channels
 * (one thread each) and uplink_reload (the renewal thread, any time).
 */

#include <stddef.h>

#include "config/defender_config.h"
#include "error.h"
#include "vigil.pb-c.h"
#include "wire_limits.h"

/*
 * A reply may carry a rule set compiled for this host, which the console
 * keeps under VIGIL_MSG_MAX; anything larger is refused by nng before we
 * parse it (64 bytes: nng's header and request id).
 */
#define UPLINK_REPLY_MAX (VIGIL_MSG_MAX + 64)

struct uplink;

/* Build TLS configurations from cfg's files and start dialing.  err names the file or URL. */
struct uplink *uplink_open(const struct defender_config *cfg, vigil_err *err);

/*
 * A request channel: its own nng context on the socket, so the heartbeat
 * (main thread) and batch delivery (sender thread) never wait on each other.
 * One thread per channel.
 */
struct uplink_chan;

struct uplink_chan *uplink_chan_open(struct uplink *up, vigil_err *err);
void uplink_chan_close(struct uplink_chan *ch);

/* After how long an unanswered request is sent again (default 2000 ms). */
void uplink_chan_set_resend(struct uplink_chan *ch, int ms);

/*
 * From another thread, for a stop: end the request ch is waiting on now, and
 * every later one at once, with -ECANCELED, so that a stop never waits out a
 * timeout.  For good: the channel is only good for closing afterwards.
 */
void uplink_chan_abort(struct uplink_chan *ch);

/*
 * Send env (or, with env NULL, the already packed Envelope bytes data/len)
 * and wait up to timeout_ms for the reply.  On success *ret_reply is a new
 * message (free with vigil__reply__free_unpacked(r, NULL)).  Returns
 * -ETIMEDOUT when no console answered, -EBADMSG for a malformed reply.
 */
int uplink_request(struct uplink_chan *ch, const Vigil__Envelope *env, const void *data, size_t len,
		   int timeout_ms, Vigil__Reply **ret_reply, vigil_err *err);

/* How many console connections are up right now (any thread). */
int uplink_connections(struct uplink *up);

/*
 * Close every open connection so that the dialers dial again; returns how
 * many were open.  For a connection nng still counts as open while nothing
 * comes back on it: after a network cut, a connection whose end was lost
 * may never be noticed as closed, and a req socket with a pipe never
 * redials.  Requests in flight are resent on the new connection.
 */
#define UPLINK_PIPES_MAX 16
int uplink_close_links(struct uplink *up);

/*
 * Dial every console again with the certificate and key now in cfg's files
 * (after a renewal): new dialers with them are started, then the old ones
 * closed, with their connections; requests in flight are sent again on the
 * new connections.  Any thread.  On failure (a file unreadable, the key not
 * the certificate's) the old dialers go on and err says why.
 */
int uplink_reload(struct uplink *up, const struct defender_config *cfg, vigil_err *err);

/*
 * Why the consoles are unreachable: dials each URL once with the same TLS
 * settings and describes what happened (refused, certificate rejected, ...).
 * Writes into buf; for the log when requests keep timing out.
 */
void uplink_diagnose(struct uplink *up, char *buf, size_t len);

/*
 * Stopping (any thread): cancel a diagnosis under way and refuse new ones.
 * Request channels are aborted on their own (uplink_chan_abort).
 */
void uplink_abort(struct uplink *up);

void uplink_close(struct uplink *up);

#endif
