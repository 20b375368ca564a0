/* SPDX-License-Identifier: Apache-2.0 */
#include "link/envelope_peek.h"

#include <errno.h>
#include <stdbool.h>

#include "vigil.pb-c.h"

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

/* Read a varint at *p (before end) into *ret and advance *p; false when cut or too long. */
static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *ret)
{
	uint64_t v = 0;

	for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;

		/* A tenth byte's bits past 64 are dropped, as protobuf-c drops them. */
		v |= (uint64_t)(b & 0x7f) << shift;
		if ((b & 0x80) == 0) {
			*ret = v;
			return true;
		}
	}
	return false;
}

int envelope_peek(const uint8_t *buf, size_t len, struct envelope_head *ret)
{
	struct envelope_head h = {0};
	const uint8_t *p = buf, *end = buf + len;

	while (p < end) {
		uint64_t key, v, field;
		unsigned wt;
		bool body, scalar;

		/*
		 * Any field number protobuf-c takes: it holds neither to the spec's
		 * 2^29 nor to "not 0", and skips what it does not know.
		 */
		if (!read_varint(&p, end, &key))
			return -EBADMSG;
		field = key >> 3;
		wt = (unsigned)(key & 7);
		body = field == 2 || field == 3 || field == 4 || field == 6 || field == 7 ||
		       field == 20;
		scalar = field == 1 || field == 5 || field == 8;
		switch (wt) {
		case WT_VARINT:
			if (!read_varint(&p, end, &v) || body)
				return -EBADMSG;
			if (field == 1)
				h.seq = v;
			else if (field == 5)
				h.incarnation = v;
			else if (field == 8)
				h.batch_size = v;
			break;
		case WT_LEN:
			if (!read_varint(&p, end, &v) || v > (uint64_t)(end - p) || scalar)
				return -EBADMSG;
			if (body) {
				h.body_case = field == 2   ? VIGIL__ENVELOPE__BODY_HELLO
					      : field == 3 ? VIGIL__ENVELOPE__BODY_HEARTBEAT
					      : field == 4 ? VIGIL__ENVELOPE__BODY_BATCH
					      : field == 6 ? VIGIL__ENVELOPE__BODY_WATCH
					      : field == 7 ? VIGIL__ENVELOPE__BODY_BATCH_LZ4
							   : VIGIL__ENVELOPE__BODY_RENEW;
				h.body_len = (size_t)v;
			}
			p += v;
			break;
		case WT_I64:
		case WT_I32:
			if (body || scalar || (size_t)(end - p) < (wt == WT_I64 ? 8u : 4u))
				return -EBADMSG;
			p += wt == WT_I64 ? 8 : 4;
			break;
		default: /* groups, or no wire type at all */
			return -EBADMSG;
		}
	}
	*ret = h;
	return 0;
}
