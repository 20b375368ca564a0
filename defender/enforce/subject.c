/* SPDX-License-Identifier: Apache-2.0 */
/* Who is making a held call (subject.h). */
#include "enforce/subject.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "process/proctree_priv.h"

#define ANCESTRY_MAX 64

#define NR_OPEN		     2
#define NR_CREAT	     85
#define NR_OPENAT	     257
#define NR_OPENAT2	     437
#define NR_OPEN_BY_HANDLE_AT 304

int subject_reader_init(struct subject_reader *r)
{
	memset(r, 0, sizeof(*r));
	if (intern_init(&r->strs, &r->bytes) < 0 ||
	    procfs_init(&r->pf, "/proc", 0, &r->bytes) < 0 ||
	    container_cache_init(&r->ctrs, NULL, 0, CONTAINER_CACHE_NO_IO, &r->bytes) < 0) {
		subject_reader_fini(r);
		return -ENOMEM;
	}
	return 0;
}

void subject_reader_fini(struct subject_reader *r)
{
	procfs_fini(&r->pf);
	intern_fini(&r->strs);
	container_cache_fini(&r->ctrs);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Up to len-1 bytes of a small procfs file into buf, NUL-terminated; its length or -errno. */
static ssize_t read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0)
		n = -errno;
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return n;
}

int subject_ids(uint32_t tid, uint32_t *ret_tgid, uint32_t *ret_ppid)
{
	char path[64], buf[2048];
	const char *tg, *pp;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%" PRIu32 "/status", tid);
	if ((n = read_small(path, buf, sizeof(buf))) < 0)
		return n == -ESRCH ? -ENOENT : (int)n;
	tg = strstr(buf, "\nTgid:\t");
	pp = strstr(buf, "\nPPid:\t");
	if (tg == NULL || pp == NULL)
		return -EINVAL;
	*ret_tgid = (uint32_t)strtoul(tg + 7, NULL, 10);
	*ret_ppid = (uint32_t)strtoul(pp + 7, NULL, 10);
	return *ret_tgid > 0 ? 0 : -EINVAL;
}

int subject_unit(uint32_t pid, char *unit, size_t len)
{
	char path[64], buf[4096];
	const char *u, *line;
	size_t ulen;
	ssize_t n;

	unit[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%" PRIu32 "/cgroup", pid);
	if ((n = read_small(path, buf, sizeof(buf))) < 0)
		return (int)n;
	/* cgroup v2: the "0::" line; its path ends in the unit. */
	line = strncmp(buf, "0::", 3) == 0 ? buf : strstr(buf, "\n0::");
	if (line == NULL)
		return 0;
	line += line == buf ? 3 : 4;
	((char *)line)[strcspn(line, "\n")] = '\0';
	if ((u = classify_unit(line, &ulen)) != NULL && ulen < len) {
		memcpy(unit, u, ulen);
		unit[ulen] = '\0';
	}
	return 0;
}

int subject_resolve(struct subject_reader *r, uint32_t tid, struct subject *out)
{
	struct proc_entry chain[ANCESTRY_MAX];
	const struct proc_entry *cp[ANCESTRY_MAX];
	struct classification cls;
	size_t n = 0;
	uint32_t pid;
	int rc;

	memset(out, 0, offsetof(struct subject, exe));
	out->exe[0] = out->parent_exe[0] = '\0';
	out->tid = tid;
	if ((rc = subject_ids(tid, &out->tgid, &out->ppid)) < 0)
		return rc;
	for (pid = out->tgid; pid > 0 && n < ANCESTRY_MAX; n++) {
		bool zombie;

		memset(&chain[n], 0, sizeof(chain[n]));
		if (procfs_load(&r->pf, &r->strs, pid, &chain[n], &zombie) < 0)
			break;
		cp[n] = &chain[n];
		if (pid == 1)
			pid = 0;
		else
			pid = chain[n].ppid;
	}
	if (n == 0)
		return -ENOENT;
	classify(
	    cp, n,
	    chain[0].container_id != NULL
		? container_cache_get(&r->ctrs, chain[0].container_id, chain[0].cgroup, mono_ms())
		: NULL,
	    &cls);
	snprintf(out->image, sizeof(out->image), "%s", cls.image);
	out->interactive = cls.cls == CLASS_INTERACTIVE;
	out->leader_pid = cls.leader_pid;
	snprintf(out->service, sizeof(out->service), "%s", cls.service);
	snprintf(out->why, sizeof(out->why), "%s", cls.why);
	snprintf(out->exe, sizeof(out->exe), "%s", chain[0].exe != NULL ? chain[0].exe : "");
	snprintf(out->parent_exe, sizeof(out->parent_exe), "%s",
		 n > 1 && chain[1].exe != NULL ? chain[1].exe : "");
	for (size_t i = 0; i < n; i++)
		proctree_entry_put_strings(&r->strs, &chain[i]);
	return 0;
}

int subject_open_writes(uint32_t tid)
{
	char path[64], buf[512];
	unsigned long long nr, a[6];
	unsigned long long flags;

	snprintf(path, sizeof(path), "/proc/%" PRIu32 "/syscall", tid);
	if (read_small(path, buf, sizeof(buf)) <= 0 ||
	    sscanf(buf, "%llu %llx %llx %llx %llx %llx %llx", &nr, &a[0], &a[1], &a[2], &a[3],
		   &a[4], &a[5]) != 7)
		return -1;
	switch (nr) {
	case NR_OPEN:
		flags = a[1];
		break;
	case NR_OPENAT:
	case NR_OPEN_BY_HANDLE_AT:
		flags = a[2];
		break;
	case NR_CREAT:
		return 1;
	default:
		return -1; /* openat2 (flags in user memory), io_uring, ... */
	}
	return (flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC)) ? 1 : 0;
}
