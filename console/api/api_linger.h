/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_API_LINGER_H
#define VIGIL_CONSOLE_API_LINGER_H

/*
 * Answers to requests that ask to close the connection ("Connection: close",
 * or HTTP/1.0), written by the API itself and closed only once the client
 * has them.
 *
 * Why: nng 1.5.2's server closes such a connection as soon as the answer's
 * write completes (http_server.c, http_sconn_txdone -> http_sconn_close).
 * Over TLS a write completes when the ciphertext is in nng's 16 KiB send
 * buffer, not when TCP has it (tls_common.c: tls_do_send finishes the aio
 * once the engine took the bytes; the buffer goes to TCP from
 * tls_tcp_send_cb, on another callback), and tls_close drops whatever is
 * still buffered.  Python's urllib and nng's own HTTP client (vigilctl) send
 * "Connection: close" on every request, so ~2% of their answers were cut.
 *
 * What we do instead is a lingering close (RFC 9112 section 9.6): the API
 * writes the answer itself, with "Connection: close", and keeps the request
 * open in nng's server meanwhile, so that the server does not close.  It
 * reads until the client closes its side, which the client does only after
 * it has read the whole answer (so our buffers have drained by then), or
 * until a bounded linger has passed.  Only then does it finish the request,
 * without a response, and nng's server closes the connection.  Keep-alive
 * answers are written by api_send_whole, in one piece too, and nng's server
 * then reads the next request.
 *
 * Locking: the set locks itself; api_linger_answer may be called from any
 * thread, nng's included (it never blocks).  A thread of the set's own ends
 * the answers whose time is up and frees the finished ones.
 */

#include <stdbool.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "error.h"

/* How long a connection waits for its client to close after the answer was written. */
#define API_LINGER_MS 5000
/* How long writing one answer may take (a client that stopped reading is cut off then). */
#define API_LINGER_WRITE_MS 60000

struct api_linger;

/* What happened to the connections answered so far. */
struct api_linger_stats {
	uint64_t client_closed; /* closed after the client: normally once it had read the answer */
	uint64_t at_deadline;	/* written whole, closed after API_LINGER_MS */
	uint64_t write_failed;	/* the write failed (reset) or stalled for API_LINGER_WRITE_MS */
	uint64_t dropped;	/* out of memory: not answered, the connection closed */
};

/* A new set with its closer thread; NULL with err set. */
struct api_linger *api_linger_new(vigil_err *err);

/*
 * Whether the request of a handler's aio asks to close the connection after
 * its answer (HTTP/1.0, or a Connection header naming "close": nng's test).
 */
bool api_linger_wanted(nng_aio *aio);

/*
 * Answer the request of the handler's aio with text[0..len) (taken, freed
 * here): the whole HTTP answer, status line, headers (with "Connection:
 * close" and Content-Length) and body, written in one piece.  aio is
 * finished (and nng's server closes the connection) once the client has
 * closed, API_LINGER_MS after the write, or when the client is gone.
 *
 * One piece, because nng's server sockets have Nagle's algorithm on (nng
 * 1.5.2 offers no way to turn it off for its HTTP server): headers and body
 * written apart go as two TLS records, and the second small one would wait
 * for the client's delayed ACK (40 ms) now that no close pushes it out.
 */
void api_linger_answer(struct api_linger *lg, nng_aio *aio, char *text, size_t len);

/*
 * Answer a keep-alive request of the handler's aio with text[0..len)
 * (taken, freed here; the whole HTTP answer, without "Connection: close"),
 * written in one piece for the same reason as above.  aio is finished with
 * no response once the write is done, and nng's server reads the
 * connection's next request (http_server.c, http_sconn_cbdone); a write
 * that fails, or stalls API_LINGER_WRITE_MS because the client stopped
 * reading, closes the connection.  From any thread; never blocks.
 */
void api_send_whole(nng_aio *aio, char *text, size_t len);

/* The counts so far. */
void api_linger_stats(struct api_linger *lg, struct api_linger_stats *ret);

/*
 * Free the set: call after nng's server has stopped (which closes every
 * connection, so every answer ends).  Accepts NULL.
 */
void api_linger_free(struct api_linger *lg);

#endif
