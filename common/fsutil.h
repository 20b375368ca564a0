/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_COMMON_FSUTIL_H
#define VIGIL_COMMON_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "error.h"

/*
 * Read a whole regular file of at most max bytes into a new NUL-terminated
 * buffer (caller frees *ret_buf).  A larger file is refused with -EFBIG rather
 * than truncated.  ret_len may be NULL.  err names the file and the reason.
 */
int fs_read_file(const char *path, size_t max, char **ret_buf, size_t *ret_len, vigil_err *err);

/*
 * Write len bytes to path with mode, atomically: a temporary file in the same
 * directory is written, fsync'd and renamed over path.  When exclusive is set,
 * an existing path is left untouched and -EEXIST returned.
 */
int fs_write_file(const char *path, const void *data, size_t len, mode_t mode, int exclusive,
		  vigil_err *err);

/* mkdir -p with mode for the directories it creates.  Existing directories are fine. */
int fs_mkdir_p(const char *path, mode_t mode, vigil_err *err);

/* 1 if path exists (any type), 0 if not. */
int fs_exists(const char *path);

#endif
