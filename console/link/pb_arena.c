/* SPDX-License-Identifier: Apache-2.0 */
/* Memory for one request's unpacked messages, given back at once (pb_arena.h). */
#include "link/pb_arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>

#define ALIGN	  alignof(max_align_t)
#define BLOCK_MIN (64u * 1024)

/*
 * Under AddressSanitizer, what is not handed out is poisoned: a read or
 * write past one allocation into the next, or into the free rest of a
 * block, is caught as it would be between two mallocs.
 */
#if defined(__SANITIZE_ADDRESS__)
#define ARENA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_ASAN 1
#endif
#endif
#ifdef ARENA_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

struct block {
	struct block *next; /* older blocks of this request */
	size_t size, used;  /* bytes in data */
	alignas(max_align_t) unsigned char data[];
};

struct pb_arena {
	ProtobufCAllocator alloc;  /* first: protobuf-c hands its allocator_data back */
	struct block *head;	   /* where allocations go now; older ones behind it */
	size_t keep, held, wanted; /* wanted: what this request took in all */
};

static struct block *block_new(size_t size)
{
	struct block *b;

	if (size > SIZE_MAX - sizeof(*b) || (b = malloc(sizeof(*b) + size)) == NULL)
		return NULL;
	b->next = NULL;
	b->size = size;
	b->used = 0;
	POISON(b->data, size);
	return b;
}

void *pb_arena_alloc(struct pb_arena *a, size_t size)
{
	struct block *b = a->head;
	size_t need;
	void *p;

	if (size > SIZE_MAX / 2)
		return NULL;
	need = (size + (ALIGN - 1)) & ~(size_t)(ALIGN - 1);
	if (b == NULL || b->size - b->used < need) {
		/* Twice the last block, so that a large request takes few blocks. */
		size_t grow = b != NULL && b->size <= SIZE_MAX / 2 ? 2 * b->size : BLOCK_MIN;
		struct block *n = block_new(need > grow ? need : grow);

		if (n == NULL)
			return NULL;
		n->next = b;
		a->head = b = n;
		a->held += n->size;
	}
	p = b->data + b->used;
	UNPOISON(p, size); /* the padding up to need stays poisoned */
	b->used += need;
	a->wanted += need;
	return p;
}

static void *arena_alloc_cb(void *data, size_t size)
{
	return pb_arena_alloc(data, size);
}

static void arena_free_cb(void *data, void *p)
{
	(void)data;
	(void)p; /* given back by pb_arena_reset */
}

struct pb_arena *pb_arena_new(size_t keep_bytes)
{
	struct pb_arena *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return NULL;
	a->alloc = (ProtobufCAllocator){arena_alloc_cb, arena_free_cb, a};
	a->keep = keep_bytes;
	return a;
}

ProtobufCAllocator *pb_arena_allocator(struct pb_arena *a)
{
	return a != NULL ? &a->alloc : NULL;
}

static void free_blocks(struct block *b)
{
	while (b != NULL) {
		struct block *next = b->next;
		UNPOISON(b->data, b->size);
		free(b);
		b = next;
	}
}

void pb_arena_reset(struct pb_arena *a)
{
	size_t wanted = a->wanted;

	a->wanted = 0;
	if (a->head == NULL)
		return;
	if (a->head->next == NULL && a->head->size <= a->keep) {
		a->head->used = 0; /* the usual case: one block was enough */
		POISON(a->head->data, a->head->size);
		return;
	}
	/* Several blocks, or one over the limit: next time one block of what this took. */
	free_blocks(a->head);
	a->head = NULL;
	a->held = 0;
	if (wanted <= a->keep && (a->head = block_new(wanted > BLOCK_MIN ? wanted : BLOCK_MIN)))
		a->held = a->head->size;
}

size_t pb_arena_held(const struct pb_arena *a)
{
	return a->held;
}

void pb_arena_free(struct pb_arena *a)
{
	if (a == NULL)
		return;
	free_blocks(a->head);
	free(a);
}
