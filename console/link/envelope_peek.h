/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_ENVELOPE_PEEK_H
#define VIGIL_CONSOLE_ENVELOPE_PEEK_H

/*
 * The top-level fields of a packed Envelope (proto/vigil.proto), read
 * without unpacking it: what a refusal needs (seq, stream, which body) from
 * a message too large to hand to protobuf-c, which would allocate for all
 * of it (upstream #796).  Walks the fields once, skipping each body by its
 * length; allocates nothing.
 */

#include <stddef.h>
#include <stdint.h>

struct envelope_head {
	uint64_t seq;
	uint64_t incarnation;
	/* VIGIL__ENVELOPE__BODY_HELLO, _HEARTBEAT, _BATCH, _WATCH, _BATCH_LZ4, _RENEW; 0: none */
	int body_case;
	size_t body_len;     /* that body's length in bytes */
	uint64_t batch_size; /* batch_lz4: the size it says it decompresses to */
};

/*
 * Fill *ret from the len bytes at buf (later fields win, as in protobuf).
 * Returns 0, or -EBADMSG when buf is not a well-formed run of fields, or a
 * known field has the wrong wire type; *ret is then untouched.
 */
int envelope_peek(const uint8_t *buf, size_t len, struct envelope_head *ret);

#endif
