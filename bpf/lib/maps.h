/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The capture object's maps and counters.  Every event that is not delivered
 * is counted here by reason (enum ev_drop_reason); events filtered on purpose
 * are counted separately (enum ev_filter_reason).  User space reads both.
 */
#ifndef VIGIL_BPF_LIB_MAPS_H
#define VIGIL_BPF_LIB_MAPS_H

#include "events.h"

/* Sized by user space before load (bpf_map__set_max_entries). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DROP_REASON_MAX);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FILTER_REASON_MAX);
	__type(key, __u32);
	__type(value, __u64);
} filtered SEC(".maps");

/* Records delivered, per enum ev_type. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EV_TYPE_MAX);
	__type(key, __u32);
	__type(value, __u64);
} delivered SEC(".maps");

/*
 * Shared with user space.  gen: which defender's programs may emit.  A
 * defender that restarts after a crash finds the previous one's programs
 * still attached and feeding the ring (they are pinned); it attaches its
 * own, then hands over by writing its generation here, and only then
 * detaches the old ones: nothing is missed and nothing doubled meanwhile.
 * read_pos: how far user space has read the ring (it commits the ring's
 * consumer position only once what it read is spooled), for the wakeup
 * decision in emit().
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE); /* user space writes read_pos with a plain store */
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ev_control);
} control SEC(".maps");

/* This object's generation (set before load); see struct control. */
const volatile __u32 my_gen = 0;

/*
 * Execs seen on the host (the defender's own excepted), whether delivered or
 * not: the heartbeat's exec_count.  One per-CPU counter.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} execs_seen SEC(".maps");

/*
 * Working memory for one record and one path walk.  A per-CPU value must stay
 * under 32 KiB, so the two live in separate maps.  Offsets into them are
 * masked to their halves so the verifier can prove every access in bounds.
 */
#define REC_BUF	     32768
#define REC_OFF_MASK (16384 - 1)
#define STR_MASK     (EV_PATH_MAX - 1)
#define PATH_BUF     (2 * EV_PATH_MAX)

struct rec_buf {
	char b[REC_BUF];
};

struct path_buf {
	char b[PATH_BUF];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rec_buf);
} rec_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct path_buf);
} path_scratch SEC(".maps");

static __always_inline void count_in(void *map, __u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(map, &idx);

	/* An in-range per-CPU array lookup cannot fail; the check is for the verifier. */
	if (v)
		*v += 1;
}

#define count_drop(reason)     count_in(&drops, (reason))
#define count_filtered(reason) count_in(&filtered, (reason))

/*
 * Wake the reader only when the bytes waiting cross a multiple of this: a
 * wakeup per event costs the host more than the event itself.  Each wakeup
 * is an irq_work (a self-interrupt, a VM exit in a guest), so it is sent
 * once per crossing, not for every event while the reader has yet to catch
 * up.  The reader drains everything once woken (edge-triggered) and also
 * polls on a short timeout, so a quiet host's events still arrive promptly.
 * CPUs emitting at once may both wake it, or between them miss a crossing;
 * the next crossing or that timeout wakes it then.
 */
#define WAKEUP_SHIFT 16
#define WAKEUP_BYTES (1 << WAKEUP_SHIFT)

/* Send size bytes of rec; counts the delivery or the loss. */
static __always_inline void emit(void *rec, __u32 size, __u16 type)
{
	__u32 zero = 0;
	struct ev_control *c = bpf_map_lookup_elem(&control, &zero);
	__u64 flags, waiting;

	/* Not ours to emit: a newer defender took over (or none has yet). */
	if (!c || c->gen != my_gen)
		return;
	if (size == 0 || size > EV_RECORD_MAX)
		return;
	waiting = bpf_ringbuf_query(&events, BPF_RB_PROD_POS) - c->read_pos;
	flags = (waiting + size) >> WAKEUP_SHIFT != waiting >> WAKEUP_SHIFT ? BPF_RB_FORCE_WAKEUP
									    : BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_output(&events, rec, size & (REC_BUF / 2 - 1), flags) != 0) {
		count_drop(DROP_RINGBUF_FULL);
		return;
	}
	count_in(&delivered, type);
}

#endif
