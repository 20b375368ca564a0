/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_COMMON_WIRE_LIMITS_H
#define VIGIL_COMMON_WIRE_LIMITS_H

/*
 * Limits both ends of the defender <-> console link must agree on.  The
 * console answers a message over VIGIL_MSG_MAX with REFUSED ("batch too
 * large"), unread, and the defender then drops that batch and reports it as
 * a gap; so the defender packs every batch, with its Envelope, to fit, and
 * never spools one that does not.
 */
#define VIGIL_MSG_MAX (1024 * 1024)

#endif
