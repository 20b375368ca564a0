/* SPDX-License-Identifier: Apache-2.0 */
#include "fuzz_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static char scratch[4096];

void fuzz_quiet(void)
{
	/* One above the highest level: log_msg drops everything. */
	log_init("vigil-fuzz", (enum log_level)(LOG_LVL_ERROR + 1));
}

void fuzz_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz property failed: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

bool fuzz_known(const char *id)
{
	const char *list = getenv("VIGIL_FUZZ_KNOWN");
	size_t n = strlen(id);

	for (const char *p = list; p != NULL && *p != '\0'; p += strcspn(p, ",")) {
		p += *p == ',';
		if (strncmp(p, id, n) == 0 && (p[n] == ',' || p[n] == '\0'))
			return true;
	}
	return false;
}

static void remove_tree(int dfd)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;

	if (d == NULL) {
		close(dfd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			continue;
		if (errno == EISDIR || errno == EPERM) {
			int sub = openat(dirfd(d), de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				remove_tree(sub);
			unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
		}
	}
	closedir(d);
}

void fuzz_empty_dir(const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (dfd >= 0)
		remove_tree(dfd);
}

static void scratch_remove(void)
{
	if (scratch[0] != '\0') {
		fuzz_empty_dir(scratch);
		rmdir(scratch);
	}
}

const char *fuzz_scratch_dir(const char *name)
{
	const char *base = getenv("VIGIL_FUZZ_TMP");
	struct stat st;

	if (scratch[0] != '\0')
		return scratch;
	if (base == NULL || base[0] == '\0')
		base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : NULL;
	if (base == NULL)
		base = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
	snprintf(scratch, sizeof(scratch), "%s/vigil-fuzz-%s-%d", base, name, (int)getpid());
	fuzz_empty_dir(scratch);
	if (mkdir(scratch, 0700) < 0 && errno != EEXIST)
		fuzz_fail("cannot make scratch directory %s: %s", scratch, strerror(errno));
	atexit(scratch_remove);
	return scratch;
}

void fuzz_write_file(const char *dir, const char *name, const void *data, size_t len)
{
	char path[4096 + 256];
	const char *p = data;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		fuzz_fail("cannot write %s: %s", path, strerror(errno));
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fuzz_fail("cannot write %s: %s", path, strerror(errno));
		p += n;
		len -= (size_t)n;
	}
	close(fd);
}
