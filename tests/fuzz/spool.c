/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A crafted spool directory (defender/deliver/spool.c) opened with spool_open
 * and used as the uplink does, in a scratch directory on tmpfs.
 *
 * Input: one flags byte, then chunks of (u8 tag, u16 little-endian length,
 * that many bytes):
 *   tag 0        the state file
 *   tag 1..254   the segment seg-<tag as 20 digits>.log
 *   tag 255      a foreign file
 * A later chunk for the same name replaces the earlier one.  Flags:
 *   bit 0        fix the state file's CRC (its last 4 bytes)
 *   bit 1        fix every frame's magic and CRCs, walking frames by their
 *                length fields (so the fuzzer gets past the checksums)
 *   bits 2-3     max_bytes: 128 KiB, 256 KiB, 1 MiB, 64 MiB
 * The seed corpus holds directories the spool itself wrote.
 *
 * Then: drain with spool_next (each seq must be above the last and below
 * next_seq, its payload exactly as long as said), take the gaps (each
 * first <= last, count within the range, a known reason), acknowledge the
 * middle record, append one, read from the start, close; open again (what
 * the spool wrote itself must open: a damaged state file refuses the open),
 * drain and close.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crc32c.h"
#include "deliver/spool.h"
#include "fuzz_util.h"

#define FRAME_MAGIC 0x31525356u /* "VSR1" */
#define HDR	    24u
#define RECORDS_MAX 4096 /* drained per open; the input cannot hold more frames */

static char dir[4200];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	snprintf(dir, sizeof(dir), "%s/spool", fuzz_scratch_dir("spool"));
	return 0;
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void fix_frames(uint8_t *b, size_t len)
{
	for (size_t off = 0; len - off >= HDR;) {
		uint8_t *h = b + off;
		uint64_t plen = get_le(h + 4, 4);

		put_le(h, FRAME_MAGIC, 4);
		put_le(h + 16, crc32c(0, h, 16), 4);
		if (plen > len - off - HDR)
			break; /* a torn tail: header only */
		put_le(h + 20, crc32c(crc32c(0, h, 16), h + HDR, plen), 4);
		off += HDR + plen;
	}
}

/* Drain every pending record; returns how many. */
static size_t drain(struct spool *sp)
{
	struct spool_stats st;
	struct spool_record r;
	uint64_t after = 0;
	vigil_err err = {0};
	size_t n = 0;

	spool_stats(sp, &st);
	while (n < RECORDS_MAX && spool_next(sp, after, &r, &err) == 0) {
		if (r.seq <= after || r.seq >= st.next_seq)
			fuzz_fail("spool_next: seq %" PRIu64 " after %" PRIu64 ", next %" PRIu64,
				  r.seq, after, st.next_seq);
		if (r.len > SPOOL_RECORD_MAX || (r.len > 0 && r.payload == NULL))
			fuzz_fail("spool_next: record %" PRIu64 " of %zu bytes", r.seq, r.len);
		if (r.len > 0) {
			/* Touch both ends: ASan checks the buffer really holds len bytes. */
			volatile uint8_t x = ((const uint8_t *)r.payload)[0];
			x = ((const uint8_t *)r.payload)[r.len - 1];
			(void)x;
		}
		after = r.seq;
		n++;
	}
	return n;
}

static void take_gaps(struct spool *sp)
{
	struct spool_gap g[SPOOL_GAPS_MAX + 1];
	size_t n = spool_take_gaps(sp, g, sizeof(g) / sizeof(g[0]));

	if (n > SPOOL_GAPS_MAX)
		fuzz_fail("spool_take_gaps: %zu gaps", n);
	for (size_t i = 0; i < n; i++)
		if (g[i].first_seq == 0 || g[i].first_seq > g[i].last_seq ||
		    ((g[i].count == 0 || g[i].count > g[i].last_seq - g[i].first_seq + 1) &&
		     !fuzz_known("spool-state-gap-count")) ||
		    strcmp(spool_gap_reason_str(g[i].reason), "unknown") == 0)
			fuzz_fail("spool gap %" PRIu64 "..%" PRIu64 " count %" PRIu64 " reason %d",
				  g[i].first_seq, g[i].last_seq, g[i].count, (int)g[i].reason);
}

static void use(struct spool *sp)
{
	static const char payload[] = "one more batch";
	struct spool_stats st;
	struct spool_record r;
	vigil_err err = {0};
	uint64_t seq = 0;
	size_t n;

	spool_set_sync(sp, 0); /* tmpfs: syncs cost nothing, but no need to ask */
	n = drain(sp);
	take_gaps(sp);
	spool_stats(sp, &st);
	if (st.records_pending != n)
		fuzz_fail("%" PRIu64 " records pending, %zu drained", st.records_pending, n);
	if (n > 0 && spool_next(sp, 0, &r, &err) == 0)
		spool_ack(sp, r.seq + n / 2 < st.next_seq ? r.seq + n / 2 : r.seq, &err);
	if (spool_append(sp, payload, sizeof(payload), &seq, &err) == 0) {
		if (seq != st.next_seq)
			fuzz_fail("spool_append: seq %" PRIu64 ", next was %" PRIu64, seq,
				  st.next_seq);
	}
	drain(sp);
	take_gaps(sp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t sizes[] = {128u << 10, 256u << 10, 1u << 20, 64u << 20};
	struct spool *sp;
	vigil_err err = {0};
	uint8_t flags;

	if (size < 1)
		return -1;
	flags = data[0];
	fuzz_empty_dir(dir);
	mkdir(dir, 0700);
	for (size_t off = 1; size - off >= 3;) {
		uint8_t tag = data[off];
		size_t len = (size_t)get_le(data + off + 1, 2);
		uint8_t *b;
		char name[40];

		off += 3;
		len = len < size - off ? len : size - off;
		b = malloc(len ? len : 1);
		if (b == NULL)
			return 0;
		memcpy(b, data + off, len);
		off += len;
		if (tag == 0) {
			if ((flags & 1) && len >= 4)
				put_le(b + len - 4, crc32c(0, b, len - 4), 4);
			snprintf(name, sizeof(name), "state");
		} else if (tag == 255) {
			snprintf(name, sizeof(name), "seg-1.log");
		} else {
			if (flags & 2)
				fix_frames(b, len);
			snprintf(name, sizeof(name), "seg-%020u.log", tag);
		}
		fuzz_write_file(dir, name, b, len);
		free(b);
	}

	sp = spool_open(dir, sizes[(flags >> 2) & 3], &err);
	if (sp == NULL) {
		if (err.code == 0 || err.msg[0] == '\0')
			fuzz_fail("spool_open failed without saying why");
		return 0;
	}
	use(sp);
	spool_close(sp);

	/* What the spool left must open again. */
	sp = spool_open(dir, sizes[(flags >> 2) & 3], &err);
	if (sp == NULL)
		fuzz_fail("spool_open refuses what the spool wrote itself: %s", err.msg);
	drain(sp);
	take_gaps(sp);
	spool_close(sp);
	return 0;
}
