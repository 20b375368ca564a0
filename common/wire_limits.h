/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_COMMON_WIRE_LIMITS_H
#define VIGIL_COMMON_WIRE_LIMITS_H

/*
 * Limits both ends of the defender <-> console link must agree on.  A
 * message over VIGIL_MSG_MAX is cut off by the console's receiver (nng closes
 * the connection without an answer), so the defender packs every batch, with
 * its Envelope, to fit it and never spools one that does not.
 */
#define VIGIL_MSG_MAX (1024 * 1024)

#endif
