/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_TESTS_FUZZ_UTIL_H
#define VIGIL_TESTS_FUZZ_UTIL_H

/*
 * What the fuzz targets share: silencing the daemons' logger (the loaders
 * log every bad file they skip), a scratch directory per process for the
 * targets that read files, and the failure of a property check.
 *
 * Scratch directories live under $VIGIL_FUZZ_TMP (tests/fuzz/run.sh makes
 * one on tmpfs and removes it), else /dev/shm, else $TMPDIR or /tmp.
 */

#include <stdbool.h>
#include <stddef.h>

/* Log nothing: the fuzzer's output stays readable and fast. */
void fuzz_quiet(void);

/*
 * A fresh, empty directory "<base>/<name>-<pid>" for this process, made on the
 * first call and removed at exit (a crash leaves it for run.sh to remove).
 * The returned string is static.
 */
const char *fuzz_scratch_dir(const char *name);

/* Remove everything inside dir (recursively), keeping dir. */
void fuzz_empty_dir(const char *dir);

/* Write len bytes to dir/name (mode 0600), replacing it; aborts on failure. */
void fuzz_write_file(const char *dir, const char *name, const void *data, size_t len);

/*
 * Whether the known, not yet fixed finding id (docs/reliability.md) is to be
 * stepped around: listed in $VIGIL_FUZZ_KNOWN (comma-separated), so that a
 * long run looks for new failures instead of finding that one again.  Off
 * by default: run.sh replays and fuzzes without it.
 */
bool fuzz_known(const char *id);

/* A property the target checks does not hold: say which, and abort (libFuzzer saves the input). */
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
