/* SPDX-License-Identifier: Apache-2.0 */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fs_read_file(const char *path, size_t max, char **ret_buf, size_t *ret_len, vigil_err *err)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return verr_set(err, -errno, "cannot open %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		rc = verr_set(err, -errno, "cannot stat %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = verr_set(err, -EINVAL, "%s is not a regular file", path);
		goto out;
	}
	if ((size_t)st.st_size > max) {
		rc = verr_set(err, -EFBIG, "%s is %lld bytes, more than the %zu allowed", path,
			      (long long)st.st_size, max);
		goto out;
	}
	buf = malloc(max + 1);
	if (buf == NULL) {
		rc = verr_set(err, -ENOMEM, "out of memory reading %s", path);
		goto out;
	}
	/* Read up to max+1 so a file that grew after fstat is still refused. */
	for (;;) {
		ssize_t n = read(fd, buf + len, max + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = verr_set(err, -errno, "cannot read %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			rc = verr_set(err, -EFBIG, "%s is larger than the %zu bytes allowed", path,
				      max);
			goto out;
		}
	}
	buf[len] = '\0';
	*ret_buf = buf;
	buf = NULL;
	if (ret_len != NULL)
		*ret_len = len;
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

int fs_write_file(const char *path, const void *data, size_t len, mode_t mode, int exclusive,
		  vigil_err *err)
{
	char tmp[PATH_MAX];
	const char *p = data;
	int fd, rc;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return verr_set(err, -ENAMETOOLONG, "path too long: %s", path);
	if (exclusive && fs_exists(path))
		return verr_set(err, -EEXIST, "%s already exists; refusing to overwrite it", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return verr_set(err, -errno, "cannot create %s: %s", tmp, strerror(errno));
	/* The umask must not widen or narrow what the caller asked for. */
	if (fchmod(fd, mode) < 0) {
		rc = verr_set(err, -errno, "cannot chmod %s: %s", tmp, strerror(errno));
		goto fail;
	}
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = verr_set(err, -errno, "cannot write %s: %s", tmp, strerror(errno));
			goto fail;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) < 0) {
		rc = verr_set(err, -errno, "cannot sync %s: %s", tmp, strerror(errno));
		goto fail;
	}
	close(fd);
	fd = -1;
	if (exclusive) {
		/* link() fails if path appeared meanwhile: no overwrite race. */
		if (link(tmp, path) < 0) {
			rc = verr_set(err, -errno, "cannot create %s: %s", path, strerror(errno));
			goto fail;
		}
		unlink(tmp);
		return 0;
	}
	if (rename(tmp, path) < 0) {
		rc =
		    verr_set(err, -errno, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		goto fail;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return rc;
}

int fs_mkdir_p(const char *path, mode_t mode, vigil_err *err)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return verr_set(err, -ENAMETOOLONG, "bad directory path '%s'", path);
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (mkdir(buf, mode) < 0 && errno != EEXIST)
				return verr_set(err, -errno, "cannot create directory %s: %s", buf,
						strerror(errno));
			*p = c;
			if (c == '\0')
				break;
		}
	}
	struct stat st;
	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
		return verr_set(err, -ENOTDIR, "%s is not a directory", path);
	return 0;
}

int fs_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}
