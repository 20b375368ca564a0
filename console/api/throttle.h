/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_THROTTLE_H
#define VIGIL_CONSOLE_THROTTLE_H

/*
 * Failures counted per key (a user name, a source address) within a
 * window: past max_fails, the key's attempts are refused until the window
 * that began with its first failure has passed.  Sign-ins and enrollments
 * use it (api_auth.h, api_enroll.h).
 *
 * Bounded: a fixed table of max_keys; when full, the key that failed least
 * recently is dropped (counted, and logged at the first and every 1000th).
 * An attempt is charged one failure when it begins, so that attempts at
 * the same time cannot pass the limit together; the caller refunds the
 * charge when the attempt did not fail.
 *
 * Times are the caller's, in seconds of a monotonic clock (testable).
 * Locking: a throttle locks itself.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define THROTTLE_KEY_MAX 80 /* bytes of a key, its NUL included; longer keys are cut */

struct throttle;

/* what names the table in the log ("sign-in throttle"); a string constant.  NULL: no memory. */
struct throttle *throttle_new(size_t max_keys, unsigned max_fails, int64_t window_s,
			      const char *what);
void throttle_free(struct throttle *t);

/*
 * Before an attempt by keys[0..n): 0 when none is at max_fails in its
 * window, and then each is charged one failure; else the seconds until the
 * last of them leaves its window, nothing charged (counted as refused).
 */
int64_t throttle_begin(struct throttle *t, const char *const *keys, int n, int64_t now);

/* The attempt did not fail: give back key's charge. */
void throttle_refund(struct throttle *t, const char *key);

/* Forget key's failures altogether (its owner proved who they are). */
void throttle_forget(struct throttle *t, const char *key);

/* Attempts refused, and keys dropped for room, since throttle_new. */
void throttle_counts(struct throttle *t, uint64_t *ret_refused, uint64_t *ret_evicted);

#endif
