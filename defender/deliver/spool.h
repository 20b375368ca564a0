/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_SPOOL_H
#define VIGIL_DEFENDER_SPOOL_H

/*
 * The defender's disk spool: every batch bound for the console is appended
 * here first and stays until the console acknowledges it, so a dead console,
 * a broken network or a restarted defender loses nothing; what the spool does
 * lose (space, damaged disk) becomes an explicit gap, never a silent hole.
 *
 * Records: an opaque payload of at most SPOOL_RECORD_MAX bytes and the seq the
 * spool assigned it.  Seqs start at 1, grow by one per record and never go
 * back, across restarts too (also after every record was acknowledged and
 * every segment deleted: the state file remembers the next seq).
 *
 * On disk (all integers little-endian), in a directory created 0700:
 *   seg-<20-digit seq>.log  append-only segments; the number is the seq the
 *                           segment was created for and orders them.  Each
 *                           holds frames back to back:
 *                             u32 magic "VSR1", u32 payload length, u64 seq,
 *                             u32 CRC32C of the 16 bytes before it,
 *                             u32 CRC32C of those 16 bytes + the payload,
 *                             payload.
 *                           A segment rotates past min(4 MiB, max(64 KiB,
 *                           max_bytes / 8)); one frame may exceed that alone.
 *   state                   written whole (state.tmp, fsync, rename, fsync of
 *                           the directory): magic "VGSTATE1", u32 version 1,
 *                           u32 gap count, u64 next_seq, u64 acked_seq,
 *                           u64 dropped_through, u64 lost_reported_through,
 *                           gaps (u64 first, u64 last, u64 count, u32 reason,
 *                           u32 0) and a u32 CRC32C of everything before it.
 *                           Rewritten on ack, when records are dropped or
 *                           found lost, at open after repairs and at close (if
 *                           gaps were taken); an append writes it only when it
 *                           drops records.
 * Other names in the directory are ignored and counted (foreign_files), except
 * that the spool removes its own leftover state.tmp.* and renames a non-file
 * squatting on the name of a segment it is creating to <name>.moved.  The directory is flock'ed, so
 * a second spool_open of it (any process) fails with -EBUSY.
 *
 * Size: segments + room for the state file (twice its largest size, about
 * 4 KiB) never exceed max_bytes.  An append that would pass it first deletes
 * the oldest segments; their unacknowledged records become a "spool_full"
 * gap.  A record that cannot fit even into an empty spool is refused with
 * -EFBIG and nothing is dropped for it.  When the filesystem itself is full
 * (ENOSPC) the oldest segments are dropped the same way ("disk_full") while
 * any remain besides the one being written.
 *
 * Durability:
 *   - spool_set_sync(sp, 1) (the default): spool_append returns after
 *     write(2) of the whole frame and fdatasync: the record survives a power
 *     loss.
 *   - spool_set_sync(sp, n > 1): fdatasync every n appends; spool_set_sync(sp,
 *     0): never on its own.  A returned append then survives the defender's
 *     death (the bytes are in the kernel) but not an OS crash or power loss
 *     until the next spool_sync (or the n-th append) returns.
 *   - spool_next never hands out a record that is not durable yet: it syncs
 *     first.  So the console never holds a seq that a crash could make the
 *     spool assign again.
 *   - spool_ack and gap changes are durable when spool_ack returns.
 *
 * Crash recovery (spool_open): every frame is checked (length bounds, both
 * CRCs, seqs increasing).  The first bad frame ends a segment: in the newest
 * segment the rest of the file is cut off (torn_tail_truncations; a complete
 * frame with a bad CRC also counts in corrupt_records_skipped); in an older
 * segment reading stops there (corrupt_records_skipped).  Seqs known to have
 * been assigned (from frames, from the cut-off tail's intact headers, from
 * next_seq in the state file) but no longer readable become one "spool_lost"
 * gap, reported once (lost_reported_through).  A frame whose write never
 * finished (the process died inside write(2)) was never acknowledged to the
 * caller and is simply cut off; its seq is assigned again.  Limits: records
 * appended after the last sync and last state write that an OS crash takes
 * with the page cache vanish without a gap (they were never sent: see
 * spool_next), which is what a sync policy other than 1 trades; and if the
 * disk later damages the header of the newest record after it was sent, its
 * seq may be assigned again.
 *
 * Damaged state file: spool_open fails with -EBADMSG rather than guess (a
 * wrong next_seq would make the console discard new batches as duplicates).
 * Moving the file aside starts over from what the segments show.
 *
 * Memory: an index entry (24 bytes) per pending record, built at open and
 * kept on append, so spool_next is a binary search plus one pread; at most
 * max_bytes / 24 entries, in practice max_bytes / average batch.  One read
 * buffer, as large as the largest record read.  At most SPOOL_GAPS_MAX gaps
 * are kept: a gap that touches the previous one with the same reason extends
 * it; past the limit new gaps merge into the last one (counts stay exact, the
 * range widens).  The append path allocates nothing except when the index
 * array doubles.
 *
 * Threading: none.  One thread (the uplink's) owns a spool and makes every
 * call on it.  Counters in spool_stats count since spool_open; gaps carry
 * the durable account of what was lost.
 */

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define SPOOL_RECORD_MAX (4u * 1024 * 1024) /* largest payload */
#define SPOOL_MIN_BYTES	 (128u * 1024)	    /* smallest max_bytes accepted */
#define SPOOL_GAPS_MAX	 64		    /* gaps remembered until taken */

enum spool_gap_reason {
	SPOOL_GAP_FULL = 1,	 /* "spool_full": dropped to stay under max_bytes */
	SPOOL_GAP_DISK_FULL = 2, /* "disk_full": dropped because the filesystem was full */
	SPOOL_GAP_LOST = 3,	 /* "spool_lost": stored, then found missing or damaged */
	SPOOL_GAP_OVERSIZE = 4,	 /* "oversize": larger than a console accepts, never sendable */
};

/* Seqs first_seq..last_seq, of which count records were lost (count <= the range). */
struct spool_gap {
	uint64_t first_seq;
	uint64_t last_seq;
	uint64_t count;
	enum spool_gap_reason reason;
};

/* payload belongs to the spool: valid until the next call on it other than spool_stats. */
struct spool_record {
	uint64_t seq;
	const void *payload;
	size_t len;
};

struct spool_stats {
	uint64_t bytes; /* on disk now: segments + state file */
	uint64_t max_bytes;
	uint64_t segments;
	uint64_t records_pending; /* appended, not acknowledged, not dropped */
	uint64_t next_seq;	  /* the seq the next append gets */
	uint64_t acked_seq;
	uint64_t dropped_records; /* since open: dropped for space (spool_full, disk_full) */
	uint64_t lost_records;	  /* since open: found missing or damaged (spool_lost) */
	uint64_t gaps_pending;
	uint64_t corrupt_records_skipped; /* since open: frames that failed a check */
	uint64_t torn_tail_truncations;	  /* since open: newest segment cut at open */
	uint64_t foreign_files;		  /* names in the directory that are not the spool's */
};

struct spool;

/*
 * Open (creating it 0700 when missing) the spool in dir, bounded by max_bytes
 * (at least SPOOL_MIN_BYTES), and recover whatever a crash left.  Returns a
 * spool the caller frees with spool_close, or NULL with errno set and err
 * naming the file and the reason (-EBUSY: open elsewhere; -EBADMSG: state
 * file damaged; -EINVAL: max_bytes too small).
 */
struct spool *spool_open(const char *dir, uint64_t max_bytes, vigil_err *err);

/*
 * Sync policy: fdatasync after every n-th append (1, the default: every
 * append; 0: only in spool_sync and spool_next).  See "Durability" above.
 */
void spool_set_sync(struct spool *sp, unsigned every_n);

/*
 * Append one record of len bytes (copied; payload may be NULL when len is 0)
 * and give its seq in *ret_seq (may be NULL).  May delete the oldest segments
 * to make room (see "Size").  Returns 0, -EFBIG for a record that can never
 * fit, or the write/sync error, in which case nothing was appended and no seq
 * used; except when a failed fdatasync cannot even be undone (ftruncate fails
 * too): then the record stays queued, *ret_seq is set and the sync error is
 * returned: do not append it again.
 */
int spool_append(struct spool *sp, const void *payload, size_t len, uint64_t *ret_seq,
		 vigil_err *err);

/* Make every appended record durable (fdatasync).  Returns 0 or the sync error. */
int spool_sync(struct spool *sp, vigil_err *err);

/*
 * The first pending record with seq > after_seq, in *out (payload owned by the
 * spool, see struct spool_record); spool_next(sp, 0, ...) is the oldest.
 * Syncs first if that record is not durable yet.  A record found damaged now
 * becomes a "spool_lost" gap and the next one is returned.  Returns 0,
 * -ENOENT when there is none, or an I/O error.
 */
int spool_next(struct spool *sp, uint64_t after_seq, struct spool_record *out, vigil_err *err);

/*
 * Acknowledge every record with seq <= seq (cumulative), persist that, and
 * delete the segments now fully acknowledged (all but the one being appended
 * to).  seq at or below the current acknowledgement is a no-op (0); above the
 * last appended seq is -EINVAL.  Costs an fsync'ed rewrite of the state file.
 */
int spool_ack(struct spool *sp, uint64_t seq, vigil_err *err);

/*
 * Move up to max pending gaps, oldest first, into out; returns how many.  They
 * are forgotten on disk at the next state write (spool_ack, a drop, close): a
 * crash before that returns them again at open, so a gap is reported at least
 * once (the console should treat a repeated identical range as one).
 */
size_t spool_take_gaps(struct spool *sp, struct spool_gap *out, size_t max);

/* "spool_full", "disk_full", "spool_lost", or "unknown". */
const char *spool_gap_reason_str(enum spool_gap_reason reason);

/*
 * Give up on pending record seq, which can never be delivered: it becomes a
 * gap of one with reason why (taken by spool_take_gaps like any other), and is
 * acknowledged with the records around it.  The gap is written to the state
 * file before this returns.  -ENOENT when seq is not pending.
 */
int spool_discard(struct spool *sp, uint64_t seq, enum spool_gap_reason why, vigil_err *err);

/*
 * The spool's incarnation: a random id (1..INT64_MAX) given when the spool
 * was created (no state file), kept for its life.  Seqs are numbered within
 * it, so (incarnation, seq) names a batch even after the spool was lost and
 * began again at seq 1.  0 for a spool written before incarnations existed.
 */
uint64_t spool_incarnation(const struct spool *sp);

void spool_stats(const struct spool *sp, struct spool_stats *out);

/*
 * Sync, persist the state, delete the newest segment if every record in it is
 * acknowledged, release the directory lock and free.  Accepts NULL.  Errors
 * here are not reported: call spool_sync first when it matters.
 */
void spool_close(struct spool *sp);

#endif
