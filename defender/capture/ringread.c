/* SPDX-License-Identifier: Apache-2.0 */
#include "capture/ringread.h"

#include <errno.h>
#include <linux/bpf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

struct ringread {
	int map_fd, epfd;
	size_t size, mask, page;
	volatile uint64_t *consumer; /* the kernel's consumer position, ours to write */
	const volatile uint64_t *producer;
	const uint8_t *data;
	uint64_t read_pos;
	volatile uint64_t *publish;
	bool autocommit;
	bool more; /* the last poll stopped with records left */
};

struct ringread *ringread_open(int map_fd, size_t size, volatile uint64_t *publish, bool autocommit,
			       vigil_err *err)
{
	struct ringread *r = calloc(1, sizeof(*r));
	struct epoll_event ev = {.events = EPOLLIN | EPOLLET};
	void *m;

	if (r == NULL) {
		verr_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	r->map_fd = map_fd;
	r->epfd = -1;
	r->publish = publish;
	r->autocommit = autocommit;
	r->size = size;
	r->mask = size - 1;
	r->page = (size_t)sysconf(_SC_PAGESIZE);
	m = mmap(NULL, r->page, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
	if (m == MAP_FAILED)
		goto fail;
	r->consumer = m;
	/* The producer page, then the data twice over: a record is always contiguous. */
	m = mmap(NULL, r->page + 2 * size, PROT_READ, MAP_SHARED, map_fd, (off_t)r->page);
	if (m == MAP_FAILED)
		goto fail;
	r->producer = m;
	r->data = (const uint8_t *)m + r->page;
	/* Edge-triggered: the ring stays "readable" while read data is uncommitted. */
	if ((r->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    epoll_ctl(r->epfd, EPOLL_CTL_ADD, map_fd, &ev) < 0)
		goto fail;
	r->read_pos = __atomic_load_n(r->consumer, __ATOMIC_ACQUIRE);
	if (r->publish != NULL)
		__atomic_store_n(r->publish, r->read_pos, __ATOMIC_RELAXED);
	return r;
fail:
	verr_set(err, -errno, "cannot map the ring buffer: %s", strerror(errno));
	ringread_close(r);
	return NULL;
}

int ringread_poll(struct ringread *r, int timeout_ms, ringread_fn fn, void *ctx)
{
	struct epoll_event ev;
	int n = 0;

	uint64_t limit;

	if (epoll_wait(r->epfd, &ev, 1, r->more ? 0 : timeout_ms) < 0 && errno != EINTR)
		return -errno;
	limit = __atomic_load_n(r->producer, __ATOMIC_ACQUIRE);
	r->more = false;
	for (;;) {
		uint64_t prod = __atomic_load_n(r->producer, __ATOMIC_ACQUIRE);

		if (r->read_pos >= limit) {
			r->more = prod > limit;
			return n;
		}
		const uint32_t *hdr = (const uint32_t *)(r->data + (r->read_pos & r->mask));
		uint32_t word = __atomic_load_n(hdr, __ATOMIC_ACQUIRE);

		if (word & BPF_RINGBUF_BUSY_BIT)
			return n; /* reserved, not yet committed by the producer */
		uint32_t len = word & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
		uint64_t total = ((uint64_t)len + BPF_RINGBUF_HDR_SZ + 7) & ~7ull;

		if (total > r->size || r->read_pos + total > prod)
			return -EBADMSG; /* the kernel never writes this: do not read past it */
		r->read_pos += total;
		if (r->publish != NULL)
			__atomic_store_n(r->publish, r->read_pos, __ATOMIC_RELAXED);
		int rc = 0;
		if (!(word & BPF_RINGBUF_DISCARD_BIT)) {
			n++;
			rc = fn(ctx, (const uint8_t *)hdr + BPF_RINGBUF_HDR_SZ, len, r->read_pos);
		}
		/*
		 * Give the space back only once fn is done with the record: from
		 * then on the kernel may write the next records over it.
		 */
		if (r->autocommit)
			__atomic_store_n(r->consumer, r->read_pos, __ATOMIC_RELEASE);
		if (rc < 0)
			return n;
	}
}

uint64_t ringread_read_pos(const struct ringread *r)
{
	return r->read_pos;
}

uint64_t ringread_committed(const struct ringread *r)
{
	return __atomic_load_n(r->consumer, __ATOMIC_ACQUIRE);
}

void ringread_commit(struct ringread *r, uint64_t pos)
{
	if (pos > r->read_pos)
		pos = r->read_pos;
	if (pos > ringread_committed(r))
		__atomic_store_n(r->consumer, pos, __ATOMIC_RELEASE);
}

uint64_t ringread_unread(const struct ringread *r)
{
	uint64_t prod = __atomic_load_n(r->producer, __ATOMIC_ACQUIRE);

	return prod > r->read_pos ? prod - r->read_pos : 0;
}

void ringread_close(struct ringread *r)
{
	if (r == NULL)
		return;
	if (r->epfd >= 0)
		close(r->epfd);
	if (r->consumer != NULL)
		munmap((void *)r->consumer, r->page);
	if (r->producer != NULL)
		munmap((void *)r->producer, r->page + 2 * r->size);
	free(r);
}
