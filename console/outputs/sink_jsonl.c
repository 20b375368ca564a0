/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The JSON lines sink: one audit per line (the API's audit object),
 * appended to a file for a SIEM's agent to tail (Filebeat, Vector, the
 * Splunk forwarder, fluent-bit).
 *
 * Lines are written with O_APPEND in one write per batch and fsync'd
 * before the batch counts as delivered (fsync=none leaves that to the
 * kernel: faster, a crash of the host may lose the last seconds, never a
 * torn line that the console would then skip).  A write that fails half
 * way is cut back (ftruncate to the size before it), so a disk that
 * filled up leaves no broken line, and the batch is written again once
 * there is room.
 *
 * logrotate-friendly: before each batch the path is looked up again; when
 * it is gone or is another file (another inode: "rename and create"), the
 * sink opens the path anew (creating it with the configured mode).  With
 * copytruncate the file keeps its inode and O_APPEND writes at its new end.
 * SIGHUP reopens too.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "outputs/outputs.h"
#include "outputs/sink.h"

/* A batch's lines are gathered up to this and written in one go. */
#define JSONL_BUF_MAX (1024 * 1024)

struct jsonl {
	int fd;
	dev_t dev;
	ino_t ino;
	char *buf;
	size_t len, cap;
};

static int jsonl_open(struct sink *s, vigil_err *err)
{
	struct jsonl *j = s->priv;
	struct stat st;

	if (j->fd >= 0)
		return 0;
	j->fd = open(s->conf->target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
		     (mode_t)s->conf->mode);
	if (j->fd < 0)
		return verr_set(err, -errno, "cannot open %s: %s", s->conf->target,
				strerror(errno));
	if (fstat(j->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		int e = errno != 0 ? errno : EINVAL;

		close(j->fd);
		j->fd = -1;
		return verr_set(err, -e, "%s is not a regular file", s->conf->target);
	}
	j->dev = st.st_dev;
	j->ino = st.st_ino;
	s->reopened = outputs_reopen_count();
	return 0;
}

static void jsonl_close(struct sink *s)
{
	struct jsonl *j = s->priv;

	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
	j->len = 0;
}

/* Whether the path still names the open file (not renamed away, not deleted). */
static bool jsonl_same(struct sink *s)
{
	struct jsonl *j = s->priv;
	struct stat st;

	if (stat(s->conf->target, &st) < 0)
		return false;
	return st.st_dev == j->dev && st.st_ino == j->ino;
}

static int jsonl_send(struct sink *s, const json_t *audit, int *retry_after_ms, vigil_err *err)
{
	struct jsonl *j = s->priv;
	char *line;
	size_t n;
	int rc;

	(void)retry_after_ms;
	if (j->len == 0 && (outputs_reopen_count() != s->reopened || !jsonl_same(s))) {
		/* Rotated (or asked to reopen): the next batch goes to the path's new file. */
		jsonl_close(s);
		if ((rc = jsonl_open(s, err)) < 0)
			return rc;
	}
	line = json_dumps(audit, JSON_COMPACT);
	if (line == NULL)
		return verr_set(err, -ENOMEM, "out of memory writing an audit as JSON");
	n = strlen(line);
	if (j->len + n + 1 > j->cap) {
		size_t cap = j->cap > 0 ? j->cap : 64 * 1024;
		char *b;

		while (cap < j->len + n + 1)
			cap *= 2;
		if ((b = realloc(j->buf, cap)) == NULL) {
			free(line);
			return verr_set(err, -ENOMEM, "out of memory");
		}
		j->buf = b;
		j->cap = cap;
	}
	memcpy(j->buf + j->len, line, n);
	j->buf[j->len + n] = '\n';
	j->len += n + 1;
	free(line);
	if (j->len >= JSONL_BUF_MAX)
		return s->ops->flush(s, err);
	return 0;
}

static int jsonl_flush(struct sink *s, vigil_err *err)
{
	struct jsonl *j = s->priv;
	struct stat st;
	size_t off = 0;
	int e;

	if (j->len == 0)
		return 0;
	if (j->fd < 0 || fstat(j->fd, &st) < 0) {
		j->len = 0;
		return verr_set(err, -EBADF, "%s is not open", s->conf->target);
	}
	while (off < j->len) {
		ssize_t w = write(j->fd, j->buf + off, j->len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			e = w < 0 ? errno : ENOSPC;
			/* No torn line: cut back to where this batch began. */
			if (ftruncate(j->fd, st.st_size) < 0) {
				/* Nothing more to do: the next open starts a new line. */
			}
			j->len = 0;
			return verr_set(err, -e, "cannot write to %s: %s", s->conf->target,
					strerror(e));
		}
		off += (size_t)w;
	}
	j->len = 0;
	if (s->conf->fsync && fdatasync(j->fd) < 0) {
		e = errno;
		return verr_set(err, -e, "cannot fsync %s: %s", s->conf->target, strerror(e));
	}
	return 0;
}

static void jsonl_free(struct sink *s)
{
	struct jsonl *j = s->priv;

	if (j == NULL)
		return;
	jsonl_close(s);
	free(j->buf);
	free(j);
	s->priv = NULL;
}

static const struct sink_ops jsonl_ops = {
    .buffered = true,
    .open = jsonl_open,
    .send = jsonl_send,
    .flush = jsonl_flush,
    .close = jsonl_close,
    .free = jsonl_free,
};

int sink_jsonl_init(struct sink *s, vigil_err *err)
{
	struct jsonl *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return verr_set(err, -ENOMEM, "out of memory");
	j->fd = -1;
	s->priv = j;
	s->ops = &jsonl_ops;
	return 0;
}
