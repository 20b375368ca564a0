/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What a watched syscall's caller passed in user memory, copied when the call
 * enters.
 *
 * Paths and socket addresses are pointers into the caller's memory.  Read at
 * syscall exit, they are whatever is there once the kernel is done with
 * them: another thread of the caller can rewrite the buffer while the call
 * runs and so choose what the defender reports.  The per-syscall enter
 * tracepoints run before the kernel copies the arguments, so what they copy
 * here is what the call was given, unless another thread rewrote it in the
 * few hundred nanoseconds between the two copies.  sys_exit takes the copy
 * and reads the caller's memory once more: if it changed while the call ran,
 * the event says so (EVF_RACED), since no ordinary program rewrites a path
 * its own syscall is using.
 *
 * Slots: a direct-mapped array indexed by a keyed hash of the thread id, two
 * candidate slots per thread, taken with compare-and-swap.  An array slot is
 * used in place (a hash map's update would copy 8 KiB per call), and the
 * table's memory is fixed.  A thread that finds both of its slots taken by
 * calls in flight in other threads has its event read at exit, flagged
 * EVF_ARG_AT_EXIT and counted (DROP_ARGS_AT_EXIT): nothing is lost, and
 * nothing is hidden.
 */
#ifndef VIGIL_BPF_LIB_STASH_H
#define VIGIL_BPF_LIB_STASH_H

#include "events.h"

#define STASH_SLOTS 256 /* power of two; 8.2 KiB each */

enum stash_flag {
	STASH_NAME = 1 << 0,  /* name holds the first path (or the sockaddr) */
	STASH_NAME2 = 1 << 1, /* name2 holds the second path */
	STASH_HOW = 1 << 2,   /* how_flags/how_mode hold openat2's struct open_how */
};

struct stash {
	__u64 owner; /* bpf_get_current_pid_tgid() of the thread in the call; 0: free */
	__u32 nr;    /* the syscall */
	__u32 flags; /* STASH_* */
	__u64 how_flags;
	__u64 how_mode;
	__u64 base;   /* what name is relative to at entry: dirfd's file, or the cwd's dentry */
	__u64 base2;  /* the same for name2 */
	__u64 fdfile; /* fd-based calls: the file behind the fd at entry */
	__u32 len;    /* bytes in name, its NUL included (a sockaddr: its length) */
	__u32 len2;
	char name[EV_PATH_MAX];
	char name2[EV_PATH_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, STASH_SLOTS);
	__type(key, __u32);
	__type(value, struct stash);
} stash SEC(".maps");

/*
 * A random key the defender writes once (it is pinned with the slots, so
 * programs handed over keep finding the slots their predecessors took): a
 * thread cannot choose which slots it shares.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} stash_key SEC(".maps");

static __always_inline __u64 stash_hash(__u64 id)
{
	__u32 zero = 0;
	__u64 *key = bpf_map_lookup_elem(&stash_key, &zero);
	__u64 x = id ^ (key ? *key : 0);

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static __always_inline struct stash *stash_slot(__u32 idx)
{
	idx &= STASH_SLOTS - 1;
	return bpf_map_lookup_elem(&stash, &idx);
}

/* A slot for thread id's call, taken; NULL when both of its slots are in use. */
static __always_inline struct stash *stash_claim(__u64 id)
{
	__u64 h = stash_hash(id);
	struct stash *s;

	for (int i = 0; i < 2; i++) {
		s = stash_slot(i == 0 ? (__u32)h : (__u32)(h >> 32));
		if (!s)
			return NULL;
		/* Its own: a call whose exit was never seen (the programs were swapped meanwhile).
		 */
		if (s->owner == id || __sync_val_compare_and_swap(&s->owner, 0, id) == 0)
			return s;
	}
	return NULL;
}

/* The slot thread id holds, or NULL. */
static __always_inline struct stash *stash_held(__u64 id)
{
	__u64 h = stash_hash(id);
	struct stash *s = stash_slot((__u32)h);

	if (s && s->owner == id)
		return s;
	s = stash_slot((__u32)(h >> 32));
	return s && s->owner == id ? s : NULL;
}

static __always_inline void stash_release(struct stash *s)
{
	if (s)
		__sync_lock_test_and_set(&s->owner, 0);
}

struct same_ctx {
	const char *a;
	const char *b;
	__u32 len;
	bool differ;
};

/* Eight bytes per call, from bpf_loop: the verifier checks the body once. */
static long same_step(__u32 i, void *data)
{
	struct same_ctx *c = data;
	__u32 at = i * 8;
	__u64 x = 0, y = 0, mask = ~0ULL;

	if (at >= c->len)
		return 1;
	if (c->len - at < 8)
		mask = (1ULL << ((c->len - at) * 8)) - 1; /* little endian: the low bytes */
	bpf_probe_read_kernel(&x, 8, c->a + (at & (EV_PATH_MAX - 1)));
	bpf_probe_read_kernel(&y, 8, c->b + (at & (EV_PATH_MAX - 1)));
	if ((x ^ y) & mask) {
		c->differ = true;
		return 1;
	}
	return 0;
}

/* Whether the first len (<= EV_PATH_MAX) bytes of a and b differ. */
static __always_inline bool bytes_differ(const char *a, const char *b, __u32 len)
{
	struct same_ctx c = {.a = a, .b = b, .len = len};

	bpf_loop(EV_PATH_MAX / 8, same_step, &c, 0);
	return c.differ;
}

#endif
