/* SPDX-License-Identifier: Apache-2.0 */
#include "deliver/delivery.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deliver/batch_frame.h"
#include "event/json_writer.h"
#include "log.h"
#include "deliver/spool.h"
#include "vigil.pb-c.h"
#include "wire_limits.h"

#define LINE_MAX_BYTES (EV_RECORD_MAX * 3)

/*
 * The largest packed Batch a console accepts, once framed in its Envelope and
 * behind nng's 4-byte request id (the receiver's limit counts both).
 */
#define BATCH_WIRE_MAX (VIGIL_MSG_MAX - BATCH_FRAME_ENVELOPE_OVERHEAD - 64)

/* The longest a sender with nothing to send sleeps without being woken. */
#define IDLE_WAIT_MS 2000

/* A batch a sender has taken from the spool and not yet seen acknowledged. */
struct in_flight {
	uint64_t seq;
	bool done;    /* acknowledged (or refused for good) by the console */
	bool dropped; /* lost: too large to send, or refused for good (a gap says so) */
};

/* One sender thread: one request channel, one batch in flight at a time. */
struct sender {
	struct delivery *dl;
	int id;
	pthread_t thread;
	bool running;
	struct uplink_chan *ch; /* under lock: what delivery_stop aborts */
};

struct delivery {
	struct delivery_opts opts;
	/* Gaps taken from the spool, kept until the console acknowledges them (under lock). */
	struct spool_gap gaps[SPOOL_GAPS_MAX];
	size_t ngaps;
	struct uplink *up;
	struct spool *sp;
	pthread_mutex_t lock;	/* spool, batch, window, gaps, stats */
	pthread_cond_t changed; /* a batch was spooled, one was acknowledged, a barrier lifted */
	struct sender senders[DEFENDER_SEND_WINDOW_MAX];
	int nsenders;
	atomic_bool stop;
	/* The console's last reply said it takes LZ4-compressed batches (Reply.batch_lz4). */
	atomic_bool console_lz4;

	/*
	 * The send window (under lock): batches taken by the senders, in seq
	 * order.  The spool is acknowledged up to the first one not done.
	 * taken_through is the newest seq handed to a sender.  A batch that
	 * carries model deltas is a barrier: it is sent only once everything
	 * before it is acknowledged, and nothing after it until it is, because
	 * the console must apply a model's changes in the order they happened.
	 * Gap reports are a barrier too (see send_gaps).
	 */
	struct in_flight window[DEFENDER_SEND_WINDOW_MAX];
	size_t nwindow;
	uint64_t taken_through;
	uint64_t barrier_seq; /* 0: none in flight */
	bool sending_gaps;
	bool complained; /* "not delivered" was logged; say when it works again */

	/*
	 * Kernel ring positions (capture_read_pos): the end of the newest event
	 * in the batch, and how far everything read is spooled (or lost and
	 * counted), so the ring may be given back up to there.
	 */
	uint64_t batch_ring_end, ring_safe;

	/*
	 * The batch being built, packed as it grows: each event, deviation and
	 * model change is appended as a Batch field (tag + length + message) when
	 * it is added, so a flush spools these bytes as they are.  Repeated
	 * fields may come in any order; a console reads each in the order sent.
	 * The buffer is kept between batches (a batch is up to a few MiB, which
	 * malloc would map and unmap again each time, faulting every page in).
	 */
	uint8_t *packed;
	size_t packed_len, packed_cap;
	bool batch_models; /* it holds model deltas: a barrier (batch_frame.h) */
	/* The batch compressed for the spool (batch_spool_compress), kept like packed. */
	uint8_t *spooled;
	size_t spooled_cap;
	size_t nbatch;		/* events in it */
	size_t batch_max_bytes; /* flush before this: a batch must fit the spool many times over */
	uint64_t batch_started_ms;
	char *line; /* JSON scratch, capture thread */

	struct delivery_stats st;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * The batch as it goes into the spool: compressed once the console takes
 * compressed batches (batch_frame.h), else as packed.  Caller holds lock.
 */
static const uint8_t *spooled_form(struct delivery *dl, size_t *ret_len)
{
	size_t need = batch_spool_lz4_bound(dl->packed_len), n;

	*ret_len = dl->packed_len;
	if (!atomic_load(&dl->console_lz4) || need == 0)
		return dl->packed;
	if (need > dl->spooled_cap) {
		uint8_t *p = realloc(dl->spooled, need);

		if (p == NULL)
			return dl->packed; /* as it is: larger, but nothing lost */
		dl->spooled = p;
		dl->spooled_cap = need;
	}
	n = batch_spool_compress(dl->packed, dl->packed_len, dl->batch_models, dl->spooled,
				 dl->spooled_cap);
	if (n == 0)
		return dl->packed;
	dl->st.batches_spooled_lz4++;
	*ret_len = n;
	return dl->spooled;
}

/* Spool the batch built so far.  Caller holds lock. */
static void flush_locked(struct delivery *dl)
{
	vigil_err err = {0};
	const uint8_t *rec;
	size_t len;

	/*
	 * Gaps do not travel in spooled batches: a batch can itself be dropped,
	 * and the news of a loss must not be lost with it.  The sender sends
	 * them on their own (send_gaps) and forgets them only when acknowledged.
	 */
	if (dl->packed_len == 0)
		return;
	rec = spooled_form(dl, &len);
	if (spool_append(dl->sp, rec, len, NULL, &err) < 0) {
		/* Counted and reported in heartbeats; the events are lost here, visibly. */
		dl->st.append_errors++;
		log_error("cannot spool a batch of %zu events: %s", dl->nbatch, err.msg);
	} else {
		dl->st.batches_spooled++;
		pthread_cond_broadcast(&dl->changed);
	}
	/* Given back once batches become much smaller (a burst is over). */
	if (dl->packed_cap > 256 * 1024 && dl->packed_cap / 4 > dl->packed_len) {
		free(dl->packed);
		dl->packed = NULL;
		dl->packed_cap = 0;
		free(dl->spooled);
		dl->spooled = NULL;
		dl->spooled_cap = 0;
	}
	dl->nbatch = 0;
	dl->packed_len = 0;
	dl->batch_models = false;
	if (dl->batch_ring_end > dl->ring_safe)
		dl->ring_safe = dl->batch_ring_end;
}

/* Bytes a length-delimited field of len bytes takes in a packed Batch: key, length, value. */
static size_t field_bytes(size_t len)
{
	uint8_t v[BATCH_FRAME_VARINT_MAX];

	return 1 + batch_frame_varint(v, len) + len;
}

/* The packed batch can hold need bytes: 0 or -ENOMEM.  Caller holds lock. */
static int packed_reserve(struct delivery *dl, size_t need)
{
	size_t cap = dl->packed_cap ? dl->packed_cap : 64 * 1024;
	uint8_t *p;

	if (need <= dl->packed_cap)
		return 0;
	while (cap < need)
		cap *= 2;
	if ((p = realloc(dl->packed, cap)) == NULL)
		return -ENOMEM;
	dl->packed = p;
	dl->packed_cap = cap;
	return 0;
}

/* Start a length-delimited Batch field of len bytes at the end of the batch; returns where its
 * value goes.  Room was made (make_room_locked).  Caller holds lock. */
static uint8_t *field_start(struct delivery *dl, uint32_t field, size_t len)
{
	uint8_t *p = dl->packed + dl->packed_len;
	size_t h = 0;

	if (dl->packed_len == 0)
		dl->batch_started_ms = mono_ms();
	p[h++] = (uint8_t)((field << 3) | 2);
	h += batch_frame_varint(p + h, len);
	dl->packed_len += h + len;
	return p + h;
}

/*
 * Make room for an item of `bytes` in the batch being built: flush first when
 * it would not fit beside what is there.  An item too large for any batch a
 * console accepts is refused (-E2BIG): it could never be delivered; -ENOMEM
 * when the batch cannot grow.  Caller holds lock.
 */
static int make_room_locked(struct delivery *dl, size_t bytes)
{
	if (bytes > BATCH_WIRE_MAX)
		return -E2BIG;
	if (dl->packed_len > 0 && (dl->packed_len + bytes > dl->batch_max_bytes ||
				   dl->nbatch >= (size_t)dl->opts.batch_max_events))
		flush_locked(dl);
	return packed_reserve(dl, dl->packed_len + bytes);
}

/* A refused item, counted and said; caller holds lock, which this releases. */
static void refuse_unlock(struct delivery *dl, int rc, size_t bytes, const char *what)
{
	if (rc == -E2BIG)
		dl->st.oversize++;
	else
		dl->st.append_errors++;
	pthread_mutex_unlock(&dl->lock);
	if (rc == -E2BIG)
		log_error("%s of %zu bytes is larger than a console accepts: not sent (counted as"
			  " delivery.oversize)",
			  what, bytes);
	else
		log_error("out of memory queueing %s of %zu bytes (counted as"
			  " delivery.append_errors)",
			  what, bytes);
}

void delivery_add(struct delivery *dl, const struct event *ev, const struct event_enrich *en,
		  const Vigil__Activity *act, int64_t clock_offset_ns, uint64_t ring_end)
{
	Vigil__Event pb = VIGIL__EVENT__INIT;
	struct json_writer w;
	char comm[EV_COMM_LEN + 1];
	size_t len, bytes, at;
	int rc;

	json_writer_init(&w, dl->line, LINE_MAX_BYTES);
	event_json_write(&w, ev, en, clock_offset_ns);
	if (w.overflow)
		return;
	memcpy(comm, ev->hdr->comm, EV_COMM_LEN);
	comm[EV_COMM_LEN] = '\0';
	pb.type = ev->hdr->type;
	int64_t wall_ns = event_wall_ns(ev->hdr->ts_ns, clock_offset_ns);
	pb.ts_ns = wall_ns > 0 ? (uint64_t)wall_ns : 0;
	pb.pid = ev->hdr->pid;
	pb.ppid = ev->hdr->ppid;
	pb.uid = ev->hdr->uid;
	pb.comm = comm;
	pb.json = dl->line;
	pb.activity = (Vigil__Activity *)act;
	/* Its exact packed size, before it joins a batch: the batch must fit a console. */
	len = vigil__event__get_packed_size(&pb);
	bytes = field_bytes(len);
	pthread_mutex_lock(&dl->lock);
	if ((rc = make_room_locked(dl, bytes)) < 0) {
		refuse_unlock(dl, rc, bytes, "an event");
		return;
	}
	at = dl->packed_len;
	if (vigil__event__pack(&pb, field_start(dl, 1, len)) != len) {
		dl->packed_len = at; /* cannot happen: the size was taken from the same message */
		dl->st.append_errors++;
		pthread_mutex_unlock(&dl->lock);
		log_error("an event packed to another size than it said: not sent");
		return;
	}
	/* After any flush above: that batch did not hold this event. */
	if (ring_end > dl->batch_ring_end)
		dl->batch_ring_end = ring_end;
	dl->nbatch++;
	dl->st.events_added++;
	pthread_mutex_unlock(&dl->lock);
}

/*
 * Append msg to the batch as field `field` (length-delimited).  Deviations
 * and model changes take the same road as events: spooled, resent until
 * acknowledged, stored once.
 */
static void add_extra(struct delivery *dl, uint32_t field, const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg), bytes = field_bytes(len);
	int rc;

	pthread_mutex_lock(&dl->lock);
	if ((rc = make_room_locked(dl, bytes)) < 0) {
		refuse_unlock(dl, rc, bytes, "a deviation or model change");
		return;
	}
	protobuf_c_message_pack(msg, field_start(dl, field, len));
	if (field == BATCH_FIELD_MODELS)
		dl->batch_models = true; /* after any flush above: this batch holds it */
	pthread_mutex_unlock(&dl->lock);
}

void delivery_add_deviation(struct delivery *dl, const Vigil__Deviation *d)
{
	add_extra(dl, 3, &d->base);
}

void delivery_add_model_delta(struct delivery *dl, const Vigil__ModelDelta *d)
{
	add_extra(dl, BATCH_FIELD_MODELS, &d->base);
}

void delivery_tick(struct delivery *dl, uint64_t ring_pos)
{
	pthread_mutex_lock(&dl->lock);
	if (dl->packed_len > 0 && mono_ms() - dl->batch_started_ms >= (uint64_t)dl->opts.batch_ms)
		flush_locked(dl);
	/* Nothing waiting: whatever was read up to here needed no spooling. */
	if (dl->packed_len == 0 && ring_pos > dl->ring_safe)
		dl->ring_safe = ring_pos;
	pthread_mutex_unlock(&dl->lock);
}

void delivery_flush(struct delivery *dl)
{
	pthread_mutex_lock(&dl->lock);
	flush_locked(dl);
	pthread_mutex_unlock(&dl->lock);
}

uint64_t delivery_ring_safe(struct delivery *dl)
{
	uint64_t pos;

	pthread_mutex_lock(&dl->lock);
	pos = dl->ring_safe;
	pthread_mutex_unlock(&dl->lock);
	return pos;
}

/* Take seq out of gap g, if g counted it as lost; returns whether it did. */
static bool gap_forget(struct delivery *dl, size_t g, uint64_t seq)
{
	struct spool_gap *gp = &dl->gaps[g];

	if (seq < gp->first_seq || seq > gp->last_seq || gp->count == 0)
		return false;
	gp->count--;
	if (gp->count == 0) {
		dl->gaps[g] = dl->gaps[--dl->ngaps];
	} else if (seq == gp->first_seq) {
		gp->first_seq++;
	} else if (seq == gp->last_seq) {
		gp->last_seq--;
	}
	return true;
}

/* seq was delivered: it is not lost, whatever a gap taken meanwhile says. */
static void gaps_forget_delivered(struct delivery *dl, uint64_t seq)
{
	for (size_t i = 0; i < dl->ngaps; i++)
		if (gap_forget(dl, i, seq))
			return;
}

/* Wait on dl->changed for at most ms (also woken by any change).  Caller holds lock. */
static void wait_changed(struct delivery *dl, long ms)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += ms * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
	}
	pthread_cond_timedwait(&dl->changed, &dl->lock, &until);
}

/* Sleep ms in steps, returning early on stop. */
static void nap(struct delivery *dl, int ms)
{
	for (int slept = 0; slept < ms && !atomic_load(&dl->stop); slept += 50) {
		struct timespec ts = {0, 50 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

/*
 * Take the spool's new gaps.  A batch the console has acknowledged stays in
 * the spool until every batch before it is acknowledged too (the spool's
 * acknowledgement is cumulative), so the spool may drop it meanwhile and
 * count it lost: it was not, take it out of the new gap.  Caller holds lock.
 */
static void take_gaps(struct delivery *dl)
{
	size_t old = dl->ngaps;

	dl->ngaps += spool_take_gaps(dl->sp, dl->gaps + dl->ngaps, SPOOL_GAPS_MAX - dl->ngaps);
	/* Backwards: a gap emptied here is replaced by the last one, already done. */
	for (size_t g = dl->ngaps; g-- > old;) {
		for (size_t i = 0; i < dl->nwindow; i++) {
			size_t n = dl->ngaps;

			if (dl->window[i].done && !dl->window[i].dropped)
				gap_forget(dl, g, dl->window[i].seq);
			if (dl->ngaps != n)
				break;
		}
	}
}

/*
 * Take new gaps from the spool and send every unacknowledged one as a
 * gap-only batch (seq 0; the console stores each gap range once).  Gap
 * reports wait until no batch is in flight and hold new ones back while
 * they travel: a batch acknowledged meanwhile would have to come out of a
 * gap already reported (gaps_forget_delivered).  Caller holds lock (released
 * while sending).  Returns true when none is left unsent.
 */
static bool send_gaps(struct delivery *dl, struct uplink_chan *ch)
{
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Batch b = VIGIL__BATCH__INIT;
	Vigil__Gap gpb[SPOOL_GAPS_MAX], *gpp[SPOOL_GAPS_MAX];
	Vigil__Reply *reply = NULL;
	vigil_err err = {0};
	size_t n;
	int rc;

	take_gaps(dl);
	if (dl->ngaps == 0)
		return true;
	if (dl->nwindow > 0 || dl->sending_gaps)
		return false;
	dl->sending_gaps = true;
	n = dl->ngaps;
	for (size_t i = 0; i < n; i++) {
		vigil__gap__init(&gpb[i]);
		gpb[i].first_seq = dl->gaps[i].first_seq;
		gpb[i].last_seq = dl->gaps[i].last_seq;
		gpb[i].count = dl->gaps[i].count;
		gpb[i].reason = (char *)spool_gap_reason_str(dl->gaps[i].reason);
		gpp[i] = &gpb[i];
	}
	pthread_mutex_unlock(&dl->lock);
	b.n_gaps = n;
	b.gaps = gpp;
	env.seq = 0;
	env.incarnation = spool_incarnation(dl->sp);
	env.body_case = VIGIL__ENVELOPE__BODY_BATCH;
	env.batch = &b;
	rc = uplink_request(ch, &env, NULL, 0, 15000, &reply, &err);
	pthread_mutex_lock(&dl->lock);
	if (rc == 0 && (reply->status == VIGIL__REPLY__STATUS__OK ||
			reply->status == VIGIL__REPLY__STATUS__REFUSED)) {
		for (size_t i = 0; i < n; i++)
			log_warn(
			    "reported to the console: spool lost %llu batch(es), seq %llu..%llu "
			    "(%s)",
			    (unsigned long long)gpb[i].count, (unsigned long long)gpb[i].first_seq,
			    (unsigned long long)gpb[i].last_seq, gpb[i].reason);
		/* Only this thread touches gaps[0..n) meanwhile: no batch was in flight. */
		memmove(dl->gaps, dl->gaps + n, (dl->ngaps - n) * sizeof(dl->gaps[0]));
		dl->ngaps -= n;
	}
	dl->sending_gaps = false;
	pthread_cond_broadcast(&dl->changed);
	if (reply != NULL)
		vigil__reply__free_unpacked(reply, NULL);
	return dl->ngaps == 0;
}

/* Whether a batch before seq is still unacknowledged.  Caller holds lock. */
static bool earlier_in_flight(const struct delivery *dl, uint64_t seq)
{
	for (size_t i = 0; i < dl->nwindow && dl->window[i].seq < seq; i++)
		if (!dl->window[i].done)
			return true;
	return false;
}

static void window_done(struct delivery *dl, uint64_t seq);

/*
 * The console refused batch seq for good: it is never sent again, and it is
 * lost, so it becomes a gap like any other loss and the stream's account
 * (stored + reported lost = last seq) still adds up.  The console's own
 * batch_refused audit says why, but it may be missing (an older console, a
 * database error while auditing); the gap travels until acknowledged.  The
 * spool knows no "refused" reason: "oversize" ("more than a console
 * accepts") is the nearest, and the usual cause (a console of another
 * version, with a smaller limit).  Caller holds lock; window_done follows.
 */
static void batch_refused(struct delivery *dl, uint64_t seq)
{
	vigil_err err = {0};
	int rc;

	dl->st.batches_refused++;
	/* Not taken out of a gap as delivered (take_gaps): it was not. */
	for (size_t i = 0; i < dl->nwindow; i++)
		if (dl->window[i].seq == seq)
			dl->window[i].dropped = true;
	rc = spool_discard(dl->sp, seq, SPOOL_GAP_OVERSIZE, &err);
	if (rc == -ENOENT)
		return; /* the spool dropped it meanwhile: in a gap already */
	if (rc < 0)
		log_error("cannot record the refused batch %llu as lost in the spool: %s",
			  (unsigned long long)seq, err.msg);
}

/*
 * A batch on its way: its Envelope uncompressed, and the same compressed for
 * a console that takes that (NULL: not compressed).  A batch spooled
 * compressed has only the compressed one until a console wants the other
 * (outgoing_inflate).
 */
struct outgoing {
	uint64_t seq, incarnation;
	uint8_t *msg; /* Envelope{seq, incarnation, batch}, malloc'ed */
	size_t len;
	size_t batch_len; /* the packed Batch at the end of msg */
	uint8_t *lz4;	  /* Envelope{seq, incarnation, batch_size, batch_lz4}, or NULL */
	size_t lz4_len;
	size_t block_len; /* spooled compressed: the LZ4 block ending lz4 (msg built on demand) */
};

/*
 * Compress o's batch when the console takes that and it comes out smaller.
 * Outside the lock: a 1 MiB batch takes a millisecond or two, which the
 * capture thread must not wait for.
 */
static void compress_outgoing(struct delivery *dl, struct outgoing *o)
{
	if (o->lz4 != NULL || !atomic_load(&dl->console_lz4))
		return; /* spooled compressed, or a console that does not take it */
	o->lz4 = batch_frame_envelope_lz4(o->incarnation, o->seq, o->msg + o->len - o->batch_len,
					  o->batch_len, &o->lz4_len);
}

/*
 * Batch seq is never to be sent: drop it from the spool as a gap of reason
 * (reported like any loss) and pass over it.  Caller holds lock.
 */
static int take_none(struct delivery *dl, uint64_t seq, enum spool_gap_reason reason)
{
	vigil_err err = {0};

	if (spool_discard(dl->sp, seq, reason, &err) < 0)
		log_error("cannot record the dropped batch in the spool: %s", err.msg);
	dl->taken_through = seq;
	dl->window[dl->nwindow++] = (struct in_flight){.seq = seq, .dropped = true};
	window_done(dl, seq);
	return -EAGAIN;
}

/*
 * Take the next batch into the window: its Envelope in *out, compressed when
 * it was spooled compressed (msg built on demand, outgoing_inflate).
 * Returns 0, -EAGAIN when there is nothing to take now (after waiting a
 * little), or -EIO when the spool cannot be read.  Caller holds lock; it is
 * released while waiting for the batches before a barrier.
 */
static int take_next(struct delivery *dl, struct outgoing *out)
{
	struct batch_spooled sb;
	struct spool_record rec;
	vigil_err err = {0};
	bool barrier;
	int rc;

	if (dl->sending_gaps || dl->barrier_seq != 0 || dl->nwindow == (size_t)dl->nsenders) {
		wait_changed(dl, 200);
		return -EAGAIN;
	}
	rc = spool_next(dl->sp, dl->taken_through, &rec, &err);
	if (rc == -ENOENT) {
		/*
		 * Nothing to send: a spooled batch (flush_locked) or a stop wakes
		 * this; the timeout only bounds a wakeup missed by a bug.  Four
		 * idle senders polling every 200 ms were a fifth of an idle
		 * defender's CPU.
		 */
		wait_changed(dl, IDLE_WAIT_MS);
		return -EAGAIN;
	}
	if (rc < 0) {
		log_error("cannot read the spool: %s", err.msg);
		return -EIO;
	}
	if (!batch_spool_parse(rec.payload, rec.len, &sb)) {
		/* Only a damaged disk or a hand-edited file: both checksums held. */
		log_error("spooled batch %llu is framed in no way this defender writes: dropped"
			  " and reported as lost",
			  (unsigned long long)rec.seq);
		return take_none(dl, rec.seq, SPOOL_GAP_LOST);
	}
	if (sb.raw_len > BATCH_WIRE_MAX) {
		/*
		 * Spooled by a defender that packed past the console's limit: the
		 * console would cut the connection at every attempt, forever.
		 * Dropped, and reported as a gap like any other lost batch.
		 */
		log_error("spooled batch %llu is %zu bytes, more than a console accepts (%d):"
			  " dropped and reported as lost",
			  (unsigned long long)rec.seq, sb.raw_len, BATCH_WIRE_MAX);
		dl->st.oversize++;
		return take_none(dl, rec.seq, SPOOL_GAP_OVERSIZE);
	}
	out->seq = rec.seq;
	out->incarnation = spool_incarnation(dl->sp);
	out->batch_len = sb.raw_len;
	if (sb.compressed) {
		out->lz4 = batch_frame_envelope_lz4_block(out->incarnation, rec.seq, sb.data,
							  sb.data_len, sb.raw_len, &out->lz4_len);
		out->block_len = sb.data_len;
		barrier = sb.models;
	} else {
		out->msg = batch_frame_envelope(out->incarnation, rec.seq, rec.payload, rec.len,
						&out->len);
		barrier = batch_frame_has_models(rec.payload, rec.len);
	}
	if (out->msg == NULL && out->lz4 == NULL) {
		log_error("cannot read the spool: out of memory");
		return -EIO;
	}
	dl->taken_through = rec.seq;
	dl->window[dl->nwindow++] = (struct in_flight){.seq = rec.seq};
	if (barrier) {
		dl->barrier_seq = rec.seq;
		while (earlier_in_flight(dl, rec.seq) && !atomic_load(&dl->stop))
			wait_changed(dl, 200);
	}
	return 0;
}

/*
 * seq is acknowledged (or refused for good): mark it, acknowledge in the
 * spool everything up to the first batch still in flight, lift its barrier.
 * Caller holds lock.
 */
static void window_done(struct delivery *dl, uint64_t seq)
{
	uint64_t through = 0;
	size_t k = 0;
	vigil_err err = {0};

	for (size_t i = 0; i < dl->nwindow; i++)
		if (dl->window[i].seq == seq)
			dl->window[i].done = true;
	while (k < dl->nwindow && dl->window[k].done)
		through = dl->window[k++].seq;
	memmove(dl->window, dl->window + k, (dl->nwindow - k) * sizeof(dl->window[0]));
	dl->nwindow -= k;
	if (through != 0 && spool_ack(dl->sp, through, &err) < 0)
		log_error("cannot acknowledge batch %llu in the spool: %s",
			  (unsigned long long)through, err.msg);
	if (dl->barrier_seq == seq)
		dl->barrier_seq = 0;
	pthread_cond_broadcast(&dl->changed);
}

/*
 * The uncompressed Envelope of a batch spooled compressed, for a console that
 * does not take compressed ones: 0, -ENOMEM, or -EBADMSG when the block does
 * not decompress to the length its header gives.
 */
static int outgoing_inflate(struct outgoing *o)
{
	struct batch_spooled sb = {.compressed = true,
				   .raw_len = o->batch_len,
				   .data = o->lz4 + o->lz4_len - o->block_len,
				   .data_len = o->block_len};
	uint8_t *batch;
	int rc;

	if ((rc = batch_spool_inflate(&sb, &batch)) < 0)
		return rc;
	o->msg = batch_frame_envelope(o->incarnation, o->seq, batch, o->batch_len, &o->len);
	free(batch);
	return o->msg != NULL ? 0 : -ENOMEM;
}

/*
 * Send one batch until the console takes it (or refuses it for good, or the
 * defender stops): returns the console's final status, or RETRY on stop.
 */
static Vigil__Reply__Status send_batch(struct delivery *dl, struct uplink_chan *ch,
				       struct outgoing *o)
{
	uint64_t seq = o->seq;
	bool counted = false;

	int backoff_ms = 0;

	while (!atomic_load(&dl->stop)) {
		Vigil__Reply *reply = NULL;
		vigil_err err = {0};
		bool lz4 = o->lz4 != NULL;
		int rc = uplink_request(ch, NULL, lz4 ? o->lz4 : o->msg, lz4 ? o->lz4_len : o->len,
					15000, &reply, &err);
		Vigil__Reply__Status status = rc == 0 ? reply->status : VIGIL__REPLY__STATUS__RETRY;

		if (rc == 0)
			atomic_store(&dl->console_lz4, reply->batch_lz4);

		if (status == VIGIL__REPLY__STATUS__HELLO_REQUIRED)
			status = VIGIL__REPLY__STATUS__RETRY; /* the main thread says hello */
		if (status == VIGIL__REPLY__STATUS__REFUSED && lz4 && !reply->batch_lz4) {
			/* Not this batch's fault: a console from before compression took the
			 * place of the one that said it takes them.  The batch as it is. */
			log_info("the console does not take compressed batches: batch %llu"
				 " sent again as it is",
				 (unsigned long long)seq);
			vigil__reply__free_unpacked(reply, NULL);
			if (o->msg == NULL && (rc = outgoing_inflate(o)) < 0) {
				if (rc == -EBADMSG) {
					log_error("spooled batch %llu does not decompress: dropped"
						  " and reported as lost",
						  (unsigned long long)seq);
					return VIGIL__REPLY__STATUS__REFUSED;
				}
				nap(dl, 1000); /* out of memory: the compressed one again */
				continue;
			}
			free(o->lz4);
			o->lz4 = NULL;
			continue;
		}
		if (status == VIGIL__REPLY__STATUS__REFUSED)
			/* Resending cannot help: dropped, reported as a gap, counted. */
			log_error("console refused batch %llu for good: %s (dropped, reported as"
				  " lost)",
				  (unsigned long long)seq, reply->error);
		pthread_mutex_lock(&dl->lock);
		if (!counted && rc == 0) { /* what this batch put on the wire, once */
			counted = true;
			dl->st.batches_lz4 += lz4;
			dl->st.batch_bytes += o->batch_len;
			dl->st.batch_bytes_sent += lz4 ? o->lz4_len : o->len;
		}
		if (status == VIGIL__REPLY__STATUS__OK || status == VIGIL__REPLY__STATUS__REFUSED) {
			if (dl->complained)
				log_info("batches are delivered again");
			dl->complained = false;
		} else {
			dl->st.resends++;
			/* -ECANCELED: the uplink was aborted, we are stopping; the batch stays
			 * spooled. */
			if (!dl->complained && rc != -ECANCELED)
				log_warn("batch %llu not delivered (%s); spooling and retrying",
					 (unsigned long long)seq,
					 rc < 0 ? err.msg
						: (reply->error[0] ? reply->error : "retry"));
			dl->complained = true;
		}
		pthread_mutex_unlock(&dl->lock);
		if (reply != NULL)
			vigil__reply__free_unpacked(reply, NULL);
		if (status == VIGIL__REPLY__STATUS__OK || status == VIGIL__REPLY__STATUS__REFUSED)
			return status;
		backoff_ms = backoff_ms == 0 ? 100 : backoff_ms * 2;
		if (backoff_ms > 2000)
			backoff_ms = 2000;
		nap(dl, backoff_ms);
	}
	return VIGIL__REPLY__STATUS__RETRY;
}

/*
 * A sender: takes the next batch of the window, sends it until the console
 * has it, acknowledges it, and again.  Sender 0 also reports the gaps.
 */
static void *sender_main(void *arg)
{
	struct sender *sd = arg;
	struct delivery *dl = sd->dl;
	struct uplink_chan *ch;
	vigil_err err = {0};

	if ((ch = uplink_chan_open(dl->up, &err)) == NULL) {
		log_error("delivery cannot start: %s", err.msg);
		return NULL;
	}
	/*
	 * nng resends an unanswered request on its own after this long; a batch
	 * commit can take a while under load, and a resend is harmless (stored
	 * once per seq) but wasted work.
	 */
	uplink_chan_set_resend(ch, 10000);
	pthread_mutex_lock(&dl->lock);
	sd->ch = ch;
	while (!atomic_load(&dl->stop)) {
		struct outgoing o = {0};
		uint64_t seq;
		int rc;

		/* Losses first: an operator should hear of them before anything else. */
		if (sd->id == 0 && !send_gaps(dl, ch)) {
			if (dl->nwindow == 0 && !dl->sending_gaps) {
				pthread_mutex_unlock(&dl->lock);
				nap(dl, 500); /* the report failed: not in a tight loop */
				pthread_mutex_lock(&dl->lock);
			} else {
				wait_changed(dl, 200);
			}
			continue;
		}
		if (dl->ngaps > 0 && sd->id != 0) {
			wait_changed(dl, 200); /* sender 0 reports them first */
			continue;
		}
		rc = take_next(dl, &o);
		if (rc == -EAGAIN)
			continue;
		if (rc < 0) {
			pthread_mutex_unlock(&dl->lock);
			nap(dl, 1000);
			pthread_mutex_lock(&dl->lock);
			continue;
		}
		pthread_mutex_unlock(&dl->lock);
		compress_outgoing(dl, &o);
		Vigil__Reply__Status status = send_batch(dl, ch, &o);
		free(o.lz4);
		free(o.msg);
		seq = o.seq;
		pthread_mutex_lock(&dl->lock);
		if (status != VIGIL__REPLY__STATUS__OK && status != VIGIL__REPLY__STATUS__REFUSED)
			break; /* stopping: the batch stays in the spool for the next start */
		/*
		 * While this batch was in flight the spool may have dropped it
		 * to make room and counted it as lost; it was delivered after
		 * all, so take it out of that gap before the gap is reported.
		 */
		take_gaps(dl);
		if (status == VIGIL__REPLY__STATUS__OK) {
			gaps_forget_delivered(dl, seq);
			dl->st.batches_acked++;
		} else {
			batch_refused(dl, seq);
		}
		window_done(dl, seq);
	}
	sd->ch = NULL;
	pthread_mutex_unlock(&dl->lock);
	uplink_chan_close(ch);
	return NULL;
}

/* Stop and join every sender; a batch in flight stays in the spool. */
static void stop_senders(struct delivery *dl)
{
	atomic_store(&dl->stop, true);
	pthread_mutex_lock(&dl->lock);
	pthread_cond_broadcast(&dl->changed);
	/* A batch in flight to a console that does not answer would hold the stop for 15 s. */
	for (int i = 0; i < dl->nsenders; i++)
		if (dl->senders[i].ch != NULL)
			uplink_chan_abort(dl->senders[i].ch);
	pthread_mutex_unlock(&dl->lock);
	for (int i = 0; i < dl->nsenders; i++)
		if (dl->senders[i].running) {
			pthread_join(dl->senders[i].thread, NULL);
			dl->senders[i].running = false;
		}
}

struct delivery *delivery_start(const struct delivery_opts *opts, struct uplink *up, vigil_err *err)
{
	struct delivery *dl = calloc(1, sizeof(*dl));
	int rc;

	if (dl == NULL) {
		verr_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	dl->opts = *opts;
	if (dl->opts.batch_max_events <= 0)
		dl->opts.batch_max_events = 2000;
	if (dl->opts.batch_ms <= 0)
		dl->opts.batch_ms = 250;
	dl->up = up;
	/* At most what a console accepts, and small enough that a spool holds at least 8. */
	dl->batch_max_bytes = opts->spool_max_bytes / 8 < BATCH_WIRE_MAX
				  ? (size_t)(opts->spool_max_bytes / 8)
				  : (size_t)BATCH_WIRE_MAX;
	pthread_mutex_init(&dl->lock, NULL);
	pthread_cond_init(&dl->changed, NULL);
	dl->line = malloc(LINE_MAX_BYTES);
	if (dl->line == NULL) {
		verr_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	dl->sp = spool_open(opts->spool_dir, opts->spool_max_bytes, err);
	if (dl->sp == NULL)
		goto fail;
	/* Capture's batches are synced before they are sent (spool_next), not one by one. */
	spool_set_sync(dl->sp, 0);
	dl->nsenders = opts->window < 1				 ? 1
		       : opts->window > DEFENDER_SEND_WINDOW_MAX ? DEFENDER_SEND_WINDOW_MAX
								 : opts->window;
	for (int i = 0; i < dl->nsenders; i++) {
		struct sender *sd = &dl->senders[i];

		sd->dl = dl;
		sd->id = i;
		if ((rc = pthread_create(&sd->thread, NULL, sender_main, sd)) != 0) {
			verr_set(err, -rc, "cannot start a sender thread: %s", strerror(rc));
			goto fail;
		}
		sd->running = true;
	}
	return dl;
fail:
	stop_senders(dl);
	spool_close(dl->sp);
	free(dl->line);
	free(dl->packed);
	free(dl->spooled);
	pthread_mutex_destroy(&dl->lock);
	pthread_cond_destroy(&dl->changed);
	free(dl);
	return NULL;
}

void delivery_stats(struct delivery *dl, struct delivery_stats *out)
{
	struct spool_stats ss;

	pthread_mutex_lock(&dl->lock);
	*out = dl->st;
	spool_stats(dl->sp, &ss);
	out->spool_bytes = ss.bytes;
	out->spool_pending = ss.records_pending;
	out->spool_dropped = ss.dropped_records + ss.lost_records;
	pthread_mutex_unlock(&dl->lock);
}

void delivery_stop(struct delivery *dl)
{
	if (dl == NULL)
		return;
	pthread_mutex_lock(&dl->lock);
	flush_locked(dl);
	pthread_mutex_unlock(&dl->lock);
	stop_senders(dl);
	spool_close(dl->sp);
	free(dl->line);
	free(dl->packed);
	free(dl->spooled);
	pthread_mutex_destroy(&dl->lock);
	pthread_cond_destroy(&dl->changed);
	free(dl);
}
