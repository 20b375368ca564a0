/* SPDX-License-Identifier: Apache-2.0 */
/* Exec and open permission decisions with fanotify (fanguard.h). */
#include "enforce/fanguard.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef FAN_REPORT_TID
#define FAN_REPORT_TID 0x00000100
#endif

#define BATCH_MAX 64 /* requests read at once (a read of 64 KiB holds ~2,700) */
#define READ_BUF  (BATCH_MAX * sizeof(struct fanotify_event_metadata))

struct held {
	int fd;
	uint32_t tid;
	bool answered;
	enum fan_act act;
};

struct fanguard {
	int fan, stop_fd;
	pthread_t listener, watchdog;
	bool listener_up, watchdog_up;
	fanguard_decide_fn decide;
	fanguard_fail_open_fn fail_open;
	void *ctx;
	unsigned answer_ms;
	pid_t self;

	/* The batch the listener is deciding; the watchdog answers it when late. */
	pthread_mutex_t lock;
	struct held batch[BATCH_MAX];
	size_t nbatch;
	uint64_t batch_ms; /* when it was read */
	bool busy;
	/*
	 * The watchdog ticks only while batches come: after a second without
	 * one it waits on held (watchdog_idle set) until take_batch or
	 * fanguard_stop wakes it, so an idle guard costs no wakeups.
	 */
	pthread_cond_t held;
	bool watchdog_idle, stopping;

	atomic_uint_fast64_t requests, allowed, denied, killed, own, fail_opens, errors;
	uint64_t marks, mark_errors;

	struct fanguard_mark *cur; /* the marks in place */
	size_t ncur;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int fan_open(void)
{
	return fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK | FAN_UNLIMITED_QUEUE |
				 FAN_REPORT_TID,
			     O_RDONLY | O_LARGEFILE | O_CLOEXEC);
}

void fanguard_probe(bool *ret_exec, bool *ret_open, char *why, size_t whylen)
{
	int fd = fan_open();

	*ret_exec = *ret_open = false;
	why[0] = '\0';
	if (fd < 0) {
		snprintf(why, whylen, "fanotify_init: %s", strerror(errno));
		return;
	}
	/* Marking the root directory itself, for nothing but the probe, then removing it. */
	*ret_open = fanotify_mark(fd, FAN_MARK_ADD, FAN_OPEN_PERM, AT_FDCWD, "/") == 0;
	if (!*ret_open)
		snprintf(why, whylen, "FAN_OPEN_PERM: %s", strerror(errno));
	*ret_exec = fanotify_mark(fd, FAN_MARK_ADD, FAN_OPEN_EXEC_PERM, AT_FDCWD, "/") == 0;
	if (!*ret_exec)
		snprintf(why, whylen, "FAN_OPEN_EXEC_PERM: %s", strerror(errno));
	close(fd); /* the marks go with it */
}

/* Whether tid is a thread of this process; procfs only, no open. */
static bool own_thread(uint32_t tid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/task/%u", tid);
	return faccessat(AT_FDCWD, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

static int respond(struct fanguard *g, int fd, uint32_t response)
{
	struct fanotify_response r = {.fd = fd, .response = response};

	if (write(g->fan, &r, sizeof(r)) != (ssize_t)sizeof(r)) {
		atomic_fetch_add(&g->errors, 1);
		return -errno;
	}
	return 0;
}

/* Answer batch entry i unless the watchdog did; under g->lock. */
static void answer_locked(struct fanguard *g, size_t i, uint32_t response)
{
	if (g->batch[i].answered)
		return;
	respond(g, g->batch[i].fd, response);
	g->batch[i].answered = true;
}

/* Decide one held call (not under the lock: deciding reads procfs). */
static void decide_one(struct fanguard *g, size_t i)
{
	struct held h = g->batch[i]; /* fd, tid, act do not change while held */
	char link[64], path[PATH_MAX];
	struct fan_request rq = {.act = h.act, .tid = h.tid, .path = path, .fd = h.fd};
	enum fan_answer a;
	ssize_t n;

	atomic_fetch_add(&g->requests, 1);
	if (h.tid == 1 || h.tid == (uint32_t)g->self || own_thread(h.tid)) {
		atomic_fetch_add(&g->own, 1);
		a = FAN_ANSWER_ALLOW;
	} else {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", h.fd);
		n = readlink(link, path, sizeof(path) - 1);
		path[n > 0 ? n : 0] = '\0';
		a = g->decide(&rq, g->ctx);
	}
	if (a == FAN_ANSWER_KILL && rq.tgid > 1 && rq.tgid != (uint32_t)g->self) {
		/* Still held in the call: this pid cannot have been reused yet. */
		kill((pid_t)rq.tgid, SIGKILL);
		atomic_fetch_add(&g->killed, 1);
	}
	atomic_fetch_add(a == FAN_ANSWER_ALLOW ? &g->allowed : &g->denied, 1);
	pthread_mutex_lock(&g->lock);
	answer_locked(g, i, a == FAN_ANSWER_ALLOW ? FAN_ALLOW : FAN_DENY);
	pthread_mutex_unlock(&g->lock);
}

/* Parse what read returned into the batch (under g->lock); other events are closed. */
static void take_batch(struct fanguard *g, const char *buf, ssize_t len)
{
	const struct fanotify_event_metadata *m = (const void *)buf;

	g->nbatch = 0;
	for (; FAN_EVENT_OK(m, len); m = FAN_EVENT_NEXT(m, len)) {
		if (m->vers != FANOTIFY_METADATA_VERSION || m->fd < 0) {
			atomic_fetch_add(&g->errors, 1);
			if (m->fd >= 0)
				close(m->fd);
			continue;
		}
		if (!(m->mask & (FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM)) || g->nbatch == BATCH_MAX) {
			/* Not ours to hold (or no room, which READ_BUF rules out): let it go. */
			if (m->mask & (FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM))
				respond(g, m->fd, FAN_ALLOW);
			close(m->fd);
			continue;
		}
		g->batch[g->nbatch++] = (struct held){
		    .fd = m->fd,
		    .tid = (uint32_t)m->pid,
		    .act = m->mask & FAN_OPEN_EXEC_PERM ? FAN_ACT_EXEC : FAN_ACT_OPEN};
	}
	g->batch_ms = mono_ms();
	g->busy = g->nbatch > 0;
	if (g->busy && g->watchdog_idle) {
		g->watchdog_idle = false;
		pthread_cond_signal(&g->held);
	}
}

static void *listener_main(void *arg)
{
	struct fanguard *g = arg;
	char buf[READ_BUF] __attribute__((aligned(8)));

	for (;;) {
		struct pollfd p[2] = {{.fd = g->fan, .events = POLLIN},
				      {.fd = g->stop_fd, .events = POLLIN}};
		ssize_t n;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		n = read(g->fan, buf, sizeof(buf));
		if (n <= 0)
			continue; /* EAGAIN: the watchdog took them */
		pthread_mutex_lock(&g->lock);
		take_batch(g, buf, n);
		pthread_mutex_unlock(&g->lock);
		for (size_t i = 0; i < g->nbatch; i++)
			decide_one(g, i);
		pthread_mutex_lock(&g->lock);
		for (size_t i = 0; i < g->nbatch; i++)
			close(g->batch[i].fd);
		g->nbatch = 0;
		g->busy = false;
		pthread_mutex_unlock(&g->lock);
	}
	return NULL;
}

/* Let everything readable now through, unexamined: the listener is stuck. */
static void drain_allowing(struct fanguard *g)
{
	char buf[READ_BUF] __attribute__((aligned(8)));
	ssize_t n;

	while ((n = read(g->fan, buf, sizeof(buf))) > 0) {
		const struct fanotify_event_metadata *m = (const void *)buf;

		for (; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
			struct fan_request rq = {.tid = (uint32_t)m->pid, .path = "", .fd = -1};

			if (m->fd < 0)
				continue;
			rq.act = m->mask & FAN_OPEN_EXEC_PERM ? FAN_ACT_EXEC : FAN_ACT_OPEN;
			if (m->mask & (FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM)) {
				respond(g, m->fd, FAN_ALLOW);
				atomic_fetch_add(&g->fail_opens, 1);
				if (g->fail_open != NULL)
					g->fail_open(&rq, g->ctx);
			}
			close(m->fd);
		}
	}
}

/* How long the watchdog keeps ticking after the last batch before it waits for the next. */
#define WATCHDOG_IDLE_MS 1000

static void *watchdog_main(void *arg)
{
	struct fanguard *g = arg;
	int tick = g->answer_ms / 4 > 0 ? (int)(g->answer_ms / 4) : 1;

	pthread_mutex_lock(&g->lock);
	while (!g->stopping) {
		struct fan_request late[BATCH_MAX];
		struct timespec until;
		size_t nlate = 0;
		bool stuck;

		if (!g->busy && mono_ms() - g->batch_ms > WATCHDOG_IDLE_MS) {
			g->watchdog_idle = true;
			while (g->watchdog_idle && !g->stopping)
				pthread_cond_wait(&g->held, &g->lock);
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += (long)tick * 1000000L;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&g->held, &g->lock, &until);
		if (g->stopping)
			break;
		stuck = g->busy && mono_ms() - g->batch_ms > g->answer_ms;
		for (size_t i = 0; stuck && i < g->nbatch; i++) {
			if (g->batch[i].answered)
				continue;
			answer_locked(g, i, FAN_ALLOW);
			late[nlate++] = (struct fan_request){
			    .act = g->batch[i].act, .tid = g->batch[i].tid, .path = ""};
		}
		pthread_mutex_unlock(&g->lock);
		atomic_fetch_add(&g->fail_opens, nlate);
		for (size_t i = 0; i < nlate && g->fail_open != NULL; i++)
			g->fail_open(&late[i], g->ctx);
		if (stuck)
			drain_allowing(g);
		pthread_mutex_lock(&g->lock);
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

struct fanguard *fanguard_start(fanguard_decide_fn decide, fanguard_fail_open_fn fail_open,
				void *ctx, unsigned answer_ms, vigil_err *err)
{
	struct fanguard *g = calloc(1, sizeof(*g));
	pthread_condattr_t ca;

	if (g == NULL) {
		verr_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	g->decide = decide;
	g->fail_open = fail_open;
	g->ctx = ctx;
	g->answer_ms = answer_ms > 0 ? answer_ms : 1;
	g->self = getpid();
	g->stop_fd = -1;
	g->fan = -1;
	pthread_mutex_init(&g->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->held, &ca);
	pthread_condattr_destroy(&ca);
	if ((g->fan = fan_open()) < 0) {
		verr_set(err, -errno, "fanotify_init: %s", strerror(errno));
		goto fail;
	}
	if ((g->stop_fd = eventfd(0, EFD_CLOEXEC)) < 0) {
		verr_set(err, -errno, "eventfd: %s", strerror(errno));
		goto fail;
	}
	if (pthread_create(&g->listener, NULL, listener_main, g) != 0) {
		verr_set(err, -EAGAIN, "cannot start the fanotify listener");
		goto fail;
	}
	g->listener_up = true;
	if (pthread_create(&g->watchdog, NULL, watchdog_main, g) != 0) {
		verr_set(err, -EAGAIN, "cannot start the fanotify watchdog");
		goto fail;
	}
	g->watchdog_up = true;
	return g;
fail:
	fanguard_stop(g);
	return NULL;
}

static unsigned mark_type(enum fanguard_mark_kind k)
{
	return k == FG_MARK_FILESYSTEM ? FAN_MARK_FILESYSTEM : FAN_MARK_INODE;
}

static uint64_t mark_mask(const struct fanguard_mark *m)
{
	uint64_t mask = (m->exec ? FAN_OPEN_EXEC_PERM : 0) | (m->open ? FAN_OPEN_PERM : 0);

	return m->kind == FG_MARK_CHILDREN ? mask | FAN_EVENT_ON_CHILD : mask;
}

static const struct fanguard_mark *find_mark(const struct fanguard_mark *v, size_t n,
					     const struct fanguard_mark *m)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].kind == m->kind && strcmp(v[i].path, m->path) == 0)
			return &v[i];
	return NULL;
}

size_t fanguard_set_marks(struct fanguard *g, const struct fanguard_mark *marks, size_t n,
			  char *why, size_t whylen)
{
	struct fanguard_mark *copy = n > 0 ? malloc(n * sizeof(*copy)) : NULL;
	size_t failed = 0;

	why[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		const struct fanguard_mark *m = &marks[i];

		if (fanotify_mark(g->fan, FAN_MARK_ADD | mark_type(m->kind), mark_mask(m), AT_FDCWD,
				  m->path) < 0) {
			if (failed++ == 0)
				snprintf(why, whylen, "cannot mark %.200s: %s", m->path,
					 strerror(errno));
			g->mark_errors++;
		}
	}
	/* Then take away what the new marks no longer ask for. */
	for (size_t i = 0; i < g->ncur; i++) {
		const struct fanguard_mark *old = &g->cur[i];
		const struct fanguard_mark *now = find_mark(marks, n, old);
		uint64_t gone = mark_mask(old) & ~(now != NULL ? mark_mask(now) : 0);

		if ((gone & ~FAN_EVENT_ON_CHILD) != 0)
			fanotify_mark(g->fan, FAN_MARK_REMOVE | mark_type(old->kind), gone,
				      AT_FDCWD, old->path);
	}
	free(g->cur);
	g->cur = copy;
	g->ncur = copy != NULL ? n : 0;
	if (copy != NULL)
		memcpy(copy, marks, n * sizeof(*copy));
	g->marks = g->ncur;
	return failed;
}

void fanguard_stats(struct fanguard *g, struct fanguard_stats *out)
{
	out->requests = atomic_load(&g->requests);
	out->allowed = atomic_load(&g->allowed);
	out->denied = atomic_load(&g->denied);
	out->killed = atomic_load(&g->killed);
	out->own = atomic_load(&g->own);
	out->fail_open = atomic_load(&g->fail_opens);
	out->errors = atomic_load(&g->errors);
	out->marks = g->marks;
	out->mark_errors = g->mark_errors;
}

void fanguard_stop(struct fanguard *g)
{
	uint64_t one = 1;

	if (g == NULL)
		return;
	if (g->stop_fd >= 0 && write(g->stop_fd, &one, sizeof(one)) < 0)
		g->errors++;
	pthread_mutex_lock(&g->lock);
	g->stopping = true;
	pthread_cond_broadcast(&g->held);
	pthread_mutex_unlock(&g->lock);
	if (g->listener_up)
		pthread_join(g->listener, NULL);
	if (g->watchdog_up)
		pthread_join(g->watchdog, NULL);
	if (g->fan >= 0)
		close(g->fan); /* the kernel allows whatever is still held */
	if (g->stop_fd >= 0)
		close(g->stop_fd);
	pthread_mutex_destroy(&g->lock);
	pthread_cond_destroy(&g->held);
	free(g->cur);
	free(g);
}
