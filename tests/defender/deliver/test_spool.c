/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "deliver/spool.h"

#define HDR 24 /* frame header, see spool.h */
#define KiB 1024u
#define MiB (1024u * 1024)

static char base[64];
static char dir[128]; /* the spool: base/spool, created by spool_open */

static void setup(void)
{
	strcpy(base, "/tmp/vigil-spool-XXXXXX");
	cr_assert_not_null(mkdtemp(base));
	snprintf(dir, sizeof(dir), "%s/spool", base);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void teardown(void)
{
	nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(spool, .init = setup, .fini = teardown);

/* Payloads are a function of their seq, so any reader can check them. */
static size_t plen(uint64_t seq)
{
	return 1 + (size_t)((seq * 7919) % 3000);
}

static void fill(uint8_t *buf, uint64_t seq, size_t len)
{
	uint64_t x = seq * 0x9E3779B97F4A7C15ull + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (uint8_t)x;
	}
}

static int payload_is(const struct spool_record *r, size_t len)
{
	uint8_t *want = malloc(len ? len : 1);
	int ok;

	fill(want, r->seq, len);
	ok = r->len == len && memcmp(r->payload, want, len) == 0;
	free(want);
	return ok;
}

static struct spool *open_ok(uint64_t max)
{
	vigil_err err = {0};
	struct spool *sp = spool_open(dir, max, &err);

	cr_assert_not_null(sp, "spool_open: %s", err.msg);
	return sp;
}

/* Append a record of len bytes derived from the seq it will get; returns the seq. */
static uint64_t put(struct spool *sp, size_t len)
{
	struct spool_stats st;
	vigil_err err = {0};
	uint8_t *buf = malloc(len ? len : 1);
	uint64_t seq = 0;

	spool_stats(sp, &st);
	fill(buf, st.next_seq, len);
	cr_assert_eq(spool_append(sp, buf, len, &seq, &err), 0, "append: %s", err.msg);
	cr_assert_eq(seq, st.next_seq);
	free(buf);
	return seq;
}

/* Expect the pending records after `after` to be exactly first..last with plen() payloads. */
static void expect_range(struct spool *sp, uint64_t after, uint64_t first, uint64_t last)
{
	struct spool_record r;
	vigil_err err = {0};

	for (uint64_t s = first; s <= last; s++) {
		cr_assert_eq(spool_next(sp, after, &r, &err), 0, "next after %" PRIu64 ": %s",
			     after, err.msg);
		cr_assert_eq(r.seq, s, "got %" PRIu64 ", want %" PRIu64, r.seq, s);
		cr_assert(payload_is(&r, plen(s)), "payload of %" PRIu64 " differs", s);
		after = r.seq;
	}
	cr_assert_eq(spool_next(sp, after, &r, &err), -ENOENT);
}

static int count_segments(void)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	cr_assert_not_null(d);
	while ((de = readdir(d)) != NULL)
		n += strncmp(de->d_name, "seg-", 4) == 0;
	closedir(d);
	return n;
}

/* What the spool really occupies: the sizes of every file in its directory. */
static uint64_t dir_bytes(void)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	struct stat st;
	uint64_t n = 0;

	cr_assert_not_null(d);
	while ((de = readdir(d)) != NULL)
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode))
			n += (uint64_t)st.st_size;
	closedir(d);
	return n;
}

/* The path of the only (or the first) segment. */
static void first_segment(char *out, size_t len)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort), found = 0;

	for (int i = 0; i < n; i++) {
		if (!found && strncmp(names[i]->d_name, "seg-", 4) == 0) {
			snprintf(out, len, "%s/%s", dir, names[i]->d_name);
			found = 1;
		}
		free(names[i]);
	}
	free(names);
	cr_assert(found, "no segment in %s", dir);
}

static void flip_byte(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	uint8_t b;

	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, &b, 1, off), 1);
	b ^= 0x5a;
	cr_assert_eq(pwrite(fd, &b, 1, off), 1);
	close(fd);
}

Test(spool, append_next_ack_in_order)
{
	struct spool *sp = open_ok(4 * MiB);
	struct spool_stats st;
	struct spool_record r;
	struct stat dst;

	cr_assert_eq(stat(dir, &dst), 0);
	cr_expect_eq(dst.st_mode & 0777, 0700);
	for (uint64_t s = 1; s <= 10; s++)
		cr_assert_eq(put(sp, plen(s)), s);
	expect_range(sp, 0, 1, 10);
	expect_range(sp, 4, 5, 10); /* several in flight: ask for the one after the last sent */
	cr_assert_eq(spool_ack(sp, 5, NULL), 0);
	cr_assert_eq(spool_next(sp, 0, &r, NULL), 0);
	cr_expect_eq(r.seq, 6);
	cr_assert_eq(spool_next(sp, 3, &r, NULL), 0);
	cr_expect_eq(r.seq, 6);
	spool_stats(sp, &st);
	cr_expect_eq(st.records_pending, 5);
	cr_expect_eq(st.acked_seq, 5);
	cr_expect_eq(st.next_seq, 11);
	cr_assert_eq(put(sp, 0), 11); /* empty payloads are records too */
	cr_assert_eq(spool_next(sp, 10, &r, NULL), 0);
	cr_expect_eq(r.len, 0);
	spool_close(sp);
}

Test(spool, seq_survives_reopen_even_when_everything_was_acked)
{
	struct spool *sp = open_ok(4 * MiB);
	struct spool_stats st;

	for (int i = 0; i < 3; i++)
		put(sp, 100);
	spool_close(sp);
	sp = open_ok(4 * MiB);
	cr_assert_eq(put(sp, 100), 4);
	cr_assert_eq(spool_ack(sp, 4, NULL), 0);
	spool_close(sp);
	cr_expect_eq(count_segments(), 0, "fully acknowledged segments stay on disk");

	sp = open_ok(4 * MiB);
	spool_stats(sp, &st);
	cr_expect_eq(st.next_seq, 5);
	cr_expect_eq(st.acked_seq, 4);
	cr_expect_eq(st.records_pending, 0);
	cr_assert_eq(put(sp, 10), 5);
	spool_close(sp);
}

Test(spool, incarnation_is_kept_across_reopens_and_new_when_the_state_is_lost)
{
	struct spool *sp = open_ok(4 * MiB);
	uint64_t first = spool_incarnation(sp);
	struct spool_stats st;

	cr_expect_neq(first, 0);
	cr_expect_leq(first, (uint64_t)INT64_MAX, "the console keeps it in a bigint");
	for (int i = 0; i < 3; i++)
		put(sp, 100);
	spool_close(sp);
	sp = open_ok(4 * MiB);
	cr_expect_eq(spool_incarnation(sp), first);
	spool_close(sp);
	/* The state directory is wiped (re-imaged host, container without a volume). */
	teardown();
	cr_assert_eq(mkdir(base, 0700), 0);
	sp = open_ok(4 * MiB);
	spool_stats(sp, &st);
	cr_expect_eq(st.next_seq, 1);
	cr_expect_neq(spool_incarnation(sp), 0);
	cr_expect_neq(spool_incarnation(sp), first, "a new stream must not reuse the old id");
	spool_close(sp);
}

Test(spool, a_version_1_state_file_loads_as_the_legacy_incarnation_0)
{
	uint8_t b[52] = "VGSTATE1";
	char path[256];
	int fd;

	cr_assert_eq(mkdir(dir, 0700), 0);
	b[8] = 1;  /* version */
	b[16] = 5; /* next_seq */
	b[24] = 4; /* acked */
	uint32_t crc = crc32c(0, b, 48);
	for (int i = 0; i < 4; i++)
		b[48 + i] = (uint8_t)(crc >> (8 * i));
	snprintf(path, sizeof(path), "%s/state", dir);
	cr_assert_geq(fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600), 0);
	cr_assert_eq(write(fd, b, sizeof(b)), (ssize_t)sizeof(b));
	close(fd);

	struct spool *sp = open_ok(4 * MiB);
	cr_expect_eq(spool_incarnation(sp), 0);
	cr_expect_eq(put(sp, 10), 5, "the old stream goes on numbering");
	spool_close(sp);
	/* Written back as version 2, it is still incarnation 0. */
	sp = open_ok(4 * MiB);
	cr_expect_eq(spool_incarnation(sp), 0);
	cr_expect_eq(put(sp, 10), 6);
	spool_close(sp);
}

Test(spool, reopen_replays_exactly_the_unacked_records)
{
	struct spool *sp = open_ok(4 * MiB);
	struct spool_stats st;

	for (uint64_t s = 1; s <= 20; s++)
		put(sp, plen(s));
	cr_assert_eq(spool_ack(sp, 7, NULL), 0);
	spool_close(sp);

	sp = open_ok(4 * MiB);
	spool_stats(sp, &st);
	cr_expect_eq(st.records_pending, 13);
	cr_expect_eq(st.gaps_pending, 0);
	cr_expect_eq(st.corrupt_records_skipped + st.torn_tail_truncations, 0);
	expect_range(sp, 0, 8, 20);
	spool_close(sp);
}

Test(spool, torn_tail_is_cut_and_appends_continue)
{
	struct spool *sp = open_ok(4 * MiB);
	struct spool_stats st;
	char seg[256];
	struct stat fst;

	for (uint64_t s = 1; s <= 10; s++)
		put(sp, plen(s));
	spool_close(sp);
	first_segment(seg, sizeof(seg));
	cr_assert_eq(stat(seg, &fst), 0);
	cr_assert_eq(truncate(seg, fst.st_size - (off_t)plen(10) / 2), 0); /* inside record 10 */

	sp = open_ok(4 * MiB);
	spool_stats(sp, &st);
	cr_expect_eq(st.torn_tail_truncations, 1);
	cr_expect_eq(st.corrupt_records_skipped, 0);
	cr_expect_eq(st.gaps_pending, 0, "an unfinished write is not a lost record");
	expect_range(sp, 0, 1, 9);
	cr_assert_eq(put(sp, plen(10)), 10);
	cr_assert_eq(put(sp, plen(11)), 11);
	spool_close(sp);

	sp = open_ok(4 * MiB);
	spool_stats(sp, &st);
	cr_expect_eq(st.torn_tail_truncations, 0);
	expect_range(sp, 0, 1, 11);
	spool_close(sp);
}

Test(spool, a_zero_filled_tail_is_torn_not_corrupt)
{
	struct spool *sp = open_ok(4 * MiB);
	static const uint8_t zeros[4096];
	struct spool_stats st;
	char seg[256];
	int fd;

	for (uint64_t s = 1; s <= 5; s++)
		put(sp, plen(s));
	spool_close(sp);
	/* What some file systems show after a power loss: the size grew, the data never came. */
	first_segment(seg, sizeof(seg));
	fd = open(seg, O_WRONLY | O_APPEND);
	cr_assert_eq(write(fd, zeros, sizeof(zeros)), (ssize_t)sizeof(zeros));
	close(fd);

	sp = open_ok(4 * MiB);
	spool_stats(sp, &st);
	cr_expect_eq(st.torn_tail_truncations, 1);
	cr_expect_eq(st.corrupt_records_skipped, 0);
	cr_expect_eq(st.gaps_pending, 0);
	expect_range(sp, 0, 1, 5);
	cr_assert_eq(put(sp, plen(6)), 6);
	spool_close(sp);
}

Test(spool, corrupt_payload_is_caught_by_the_crc)
{
	struct spool *sp = open_ok(4 * MiB);
	struct spool_stats st;
	struct spool_gap g[4];
	char seg[256];

	for (uint64_t s = 1; s <= 5; s++)
		put(sp, plen(s));
	spool_close(sp);
	first_segment(seg, sizeof(seg));
	/* A byte in the middle of record 3's payload. */
	flip_byte(seg, (off_t)(2 * HDR + plen(1) + plen(2) + HDR + plen(3) / 2));

	sp = open_ok(4 * MiB);
	spool_stats(sp, &st);
	cr_expect_eq(st.corrupt_records_skipped, 1);
	cr_expect_eq(st.torn_tail_truncations, 1);
	expect_range(sp, 0, 1, 2);
	/* 3 is damaged and 4, 5 were cut with it: one gap says so, and their seqs are not reused.
	 */
	cr_assert_eq(spool_take_gaps(sp, g, 4), 1);
	cr_expect_eq(g[0].first_seq, 3);
	cr_expect_eq(g[0].last_seq, 5);
	cr_expect_eq(g[0].count, 3);
	cr_expect_eq(g[0].reason, SPOOL_GAP_LOST);
	cr_expect_str_eq(spool_gap_reason_str(g[0].reason), "spool_lost");
	cr_assert_eq(put(sp, plen(6)), 6);
	spool_close(sp);

	/* Reported once: the next open neither finds the damage again nor repeats the gap. */
	sp = open_ok(4 * MiB);
	spool_stats(sp, &st);
	cr_expect_eq(st.gaps_pending, 0);
	cr_expect_eq(st.corrupt_records_skipped, 0);
	spool_close(sp);
}

Test(spool, damage_in_an_older_segment_stops_that_segment_only)
{
	struct spool *sp = open_ok(1 * MiB); /* 128 KiB segments */
	struct spool_gap g[4];
	struct spool_stats st;
	struct spool_record r;
	char seg[256];
	uint64_t seg2_first;

	for (int i = 0; i < 100; i++)
		put(sp, 4000); /* plen() not used: fixed size so segment boundaries are known */
	spool_close(sp);
	cr_assert_geq(count_segments(), 3);
	first_segment(seg, sizeof(seg));
	flip_byte(seg, (off_t)(HDR + 4000 + HDR + 10)); /* record 2's payload */

	sp = open_ok(1 * MiB);
	spool_stats(sp, &st);
	cr_expect_eq(st.corrupt_records_skipped, 1);
	cr_expect_eq(st.torn_tail_truncations, 0);
	cr_assert_eq(spool_next(sp, 0, &r, NULL), 0);
	cr_expect_eq(r.seq, 1);
	cr_assert_eq(spool_next(sp, 1, &r, NULL), 0);
	seg2_first = r.seq; /* the first record of the second segment */
	cr_expect_eq(seg2_first, (128 * KiB) / (HDR + 4000) + 1);
	cr_assert_eq(spool_take_gaps(sp, g, 4), 1);
	cr_expect_eq(g[0].first_seq, 2);
	cr_expect_eq(g[0].last_seq, seg2_first - 1);
	cr_expect_eq(g[0].count, seg2_first - 2);
	cr_expect_eq(st.records_pending, 100 - (seg2_first - 2));
	spool_close(sp);
}

Test(spool, a_missing_segment_becomes_a_lost_gap)
{
	struct spool *sp = open_ok(1 * MiB);
	struct spool_gap g[4];
	struct spool_record r;
	char seg[256];

	for (int i = 0; i < 100; i++)
		put(sp, 4000);
	spool_close(sp);
	first_segment(seg, sizeof(seg));
	cr_assert_eq(unlink(seg), 0);

	sp = open_ok(1 * MiB);
	cr_assert_eq(spool_next(sp, 0, &r, NULL), 0);
	cr_assert_eq(spool_take_gaps(sp, g, 4), 1);
	cr_expect_eq(g[0].first_seq, 1);
	cr_expect_eq(g[0].last_seq, r.seq - 1);
	cr_expect_eq(g[0].reason, SPOOL_GAP_LOST);
	spool_close(sp);
}

Test(spool, bounded_by_bytes_drops_oldest_and_reports_a_gap)
{
	const uint64_t max = 256 * KiB;
	struct spool *sp = open_ok(max);
	struct spool_gap g[4];
	struct spool_stats st;
	struct spool_record r;
	uint64_t first;

	for (uint64_t s = 1; s <= 600; s++) {
		put(sp, plen(s) % 1024 + 512);
		cr_assert_leq(dir_bytes(), max, "spool at %" PRIu64 " bytes after %" PRIu64,
			      dir_bytes(), s);
	}
	spool_stats(sp, &st);
	cr_assert_gt(st.dropped_records, 0);
	cr_expect_leq(st.bytes, max);
	cr_expect_eq(st.bytes, dir_bytes());
	cr_assert_eq(spool_next(sp, 0, &r, NULL), 0);
	first = r.seq;
	cr_expect_eq(st.dropped_records, first - 1);
	cr_expect_eq(st.records_pending, 600 - (first - 1));
	cr_expect_eq(st.gaps_pending, 1, "contiguous drops are one gap");
	spool_close(sp);

	/* The gap survives a restart until it is taken. */
	sp = open_ok(max);
	cr_assert_eq(spool_take_gaps(sp, g, 4), 1);
	cr_expect_eq(g[0].first_seq, 1);
	cr_expect_eq(g[0].last_seq, first - 1);
	cr_expect_eq(g[0].count, first - 1);
	cr_expect_eq(g[0].reason, SPOOL_GAP_FULL);
	cr_expect_str_eq(spool_gap_reason_str(g[0].reason), "spool_full");
	cr_expect_eq(spool_take_gaps(sp, g, 4), 0);
	for (uint64_t s = first, after = 0; s <= 600; s++) {
		cr_assert_eq(spool_next(sp, after, &r, NULL), 0);
		cr_assert_eq(r.seq, s);
		cr_assert(payload_is(&r, plen(s) % 1024 + 512));
		after = s;
	}
	spool_close(sp);
	sp = open_ok(max);
	spool_stats(sp, &st);
	cr_expect_eq(st.gaps_pending, 0);
	cr_expect_eq(st.next_seq, 601);
	spool_close(sp);
}

Test(spool, taken_gaps_come_back_if_the_process_dies_before_the_next_state_write)
{
	struct spool *sp = open_ok(256 * KiB);
	struct spool_gap g[4];
	int status;
	pid_t pid;

	for (int i = 0; i < 400; i++)
		put(sp, 1000);
	cr_assert_eq(spool_take_gaps(sp, g, 4), 1);
	spool_close(sp); /* the close persists the take */
	sp = open_ok(256 * KiB);
	cr_expect_eq(spool_take_gaps(sp, g, 4), 0);
	for (int i = 0; i < 400; i++)
		put(sp, 1000);
	spool_close(sp);

	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) { /* take, then die without a state write */
		sp = spool_open(dir, 256 * KiB, NULL);
		_exit(sp != NULL && spool_take_gaps(sp, g, 4) == 1 ? 0 : 1);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	sp = open_ok(256 * KiB);
	cr_assert_eq(spool_take_gaps(sp, g, 4), 1, "a taken gap was lost with its taker");
	cr_expect_eq(g[0].reason, SPOOL_GAP_FULL);
	cr_assert_eq(spool_ack(sp, 500, NULL), 0); /* any state write makes the take durable */
	spool_close(sp);
	sp = open_ok(256 * KiB);
	cr_expect_eq(spool_take_gaps(sp, g, 4), 0);
	spool_close(sp);
}

Test(spool, a_smaller_limit_at_open_drops_the_oldest)
{
	struct spool *sp = open_ok(1 * MiB);
	struct spool_stats st;
	struct spool_gap g[4];

	for (int i = 0; i < 200; i++)
		put(sp, 4000);
	spool_close(sp);
	sp = open_ok(256 * KiB);
	spool_stats(sp, &st);
	cr_expect_leq(dir_bytes(), 256 * KiB);
	cr_expect_gt(st.dropped_records, 0);
	cr_assert_eq(spool_take_gaps(sp, g, 4), 1);
	cr_expect_eq(g[0].first_seq, 1);
	cr_expect_eq(g[0].count, st.dropped_records);
	cr_expect_eq(st.records_pending + st.dropped_records, 200);
	spool_close(sp);
}

Test(spool, a_record_that_can_never_fit_is_refused)
{
	struct spool *sp = open_ok(SPOOL_MIN_BYTES);
	struct spool_stats st;
	vigil_err err = {0};
	uint8_t *big = calloc(1, SPOOL_RECORD_MAX + 1);

	put(sp, 1000);
	cr_expect_eq(spool_append(sp, big, SPOOL_RECORD_MAX + 1, NULL, &err), -EFBIG);
	cr_expect_eq(spool_append(sp, big, SPOOL_MIN_BYTES, NULL, &err), -EFBIG);
	cr_expect(strstr(err.msg, "never fit") != NULL, "%s", err.msg);
	spool_stats(sp, &st);
	cr_expect_eq(st.records_pending, 1, "nothing may be dropped for a refused record");
	cr_expect_eq(st.dropped_records, 0);
	cr_expect_eq(st.next_seq, 2);
	free(big);
	spool_close(sp);
}

Test(spool, ack_below_is_a_no_op_and_above_last_is_invalid)
{
	struct spool *sp = open_ok(4 * MiB);
	struct spool_stats st;
	vigil_err err = {0};

	cr_expect_eq(spool_ack(sp, 0, NULL), 0);
	cr_expect_eq(spool_ack(sp, 1, &err), -EINVAL);
	for (int i = 0; i < 5; i++)
		put(sp, 10);
	cr_expect_eq(spool_ack(sp, 3, NULL), 0);
	cr_expect_eq(spool_ack(sp, 2, NULL), 0);
	spool_stats(sp, &st);
	cr_expect_eq(st.acked_seq, 3);
	cr_expect_eq(st.records_pending, 2);
	cr_expect_eq(spool_ack(sp, 6, &err), -EINVAL);
	cr_expect(strstr(err.msg, "last record appended is 5") != NULL, "%s", err.msg);
	cr_expect_eq(spool_ack(sp, 5, NULL), 0);
	spool_stats(sp, &st);
	cr_expect_eq(st.records_pending, 0);
	spool_close(sp);
}

Test(spool, segments_rotate_and_acked_ones_are_deleted)
{
	struct spool *sp = open_ok(1 * MiB); /* 128 KiB segments */
	struct spool_stats st;
	int before;

	for (int i = 0; i < 100; i++)
		put(sp, 4000);
	before = count_segments();
	spool_stats(sp, &st);
	cr_assert_geq(before, 3, "no rotation: %d segment(s)", before);
	cr_expect_eq(st.segments, (uint64_t)before);
	cr_expect_eq(st.bytes, dir_bytes());
	cr_assert_eq(spool_ack(sp, 40, NULL), 0); /* past the whole first segment */
	cr_expect_lt(count_segments(), before);
	cr_assert_eq(spool_ack(sp, 100, NULL), 0);
	cr_expect_eq(count_segments(), 1, "only the segment being appended to stays");
	put(sp, plen(101));
	spool_close(sp);
	cr_expect_eq(count_segments(), 1); /* 101 is not acknowledged */
	sp = open_ok(1 * MiB);
	expect_range(sp, 0, 101, 101); /* only 101 is pending */
	spool_close(sp);
}

Test(spool, garbage_in_the_directory_is_ignored_and_counted)
{
	const char *junk[] = {"notes.txt", "seg-12.log", "seg-0000000000000000000x.log",
			      "seg-00000000000000000001.log.bak"};
	char path[256];
	uint8_t noise[5000];
	struct spool_stats st;
	struct spool *sp;
	int fd;

	cr_assert_eq(mkdir(dir, 0700), 0);
	for (size_t i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, junk[i]);
		fd = open(path, O_WRONLY | O_CREAT, 0600);
		cr_assert_geq(fd, 0);
		cr_assert_eq(write(fd, "hello", 5), 5);
		close(fd);
	}
	/* A directory with the name the first segment will want. */
	snprintf(path, sizeof(path), "%s/seg-00000000000000000001.log", dir);
	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/seg-00000000000000000098.log", dir);
	cr_assert_eq(symlink("/etc/passwd", path), 0);
	/* A segment's name over random bytes. */
	fill(noise, 42, sizeof(noise));
	snprintf(path, sizeof(path), "%s/seg-00000000000000000002.log", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	cr_assert_eq(write(fd, noise, sizeof(noise)), (ssize_t)sizeof(noise));
	close(fd);

	sp = open_ok(4 * MiB);
	spool_stats(sp, &st);
	cr_expect_eq(st.foreign_files, 6);
	cr_expect_eq(st.records_pending, 0);
	cr_expect_eq(st.torn_tail_truncations, 1);
	for (uint64_t s = 1; s <= 3; s++)
		cr_assert_eq(put(sp, plen(s)), s);
	expect_range(sp, 0, 1, 3);
	spool_close(sp);
	snprintf(path, sizeof(path), "%s/notes.txt", dir);
	cr_expect_eq(access(path, F_OK), 0, "foreign files are left alone");
	snprintf(path, sizeof(path), "%s/seg-00000000000000000001.log.moved", dir);
	cr_expect_eq(access(path, F_OK), 0, "the directory in the way was not moved aside");
	sp = open_ok(4 * MiB);
	spool_stats(sp, &st);
	cr_expect_eq(st.foreign_files, 6);
	expect_range(sp, 0, 1, 3);
	spool_close(sp);
}

/* Every segment's path, oldest first; returns how many (at most max). */
static int segments(char paths[][256], int max)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort), k = 0;

	for (int i = 0; i < n; i++) {
		if (k < max && strncmp(names[i]->d_name, "seg-", 4) == 0)
			snprintf(paths[k++], 256, "%s/%s", dir, names[i]->d_name);
		free(names[i]);
	}
	free(names);
	return k;
}

Test(spool, random_damage_never_breaks_open_or_returns_bad_data)
{
	struct spool *sp = open_ok(1 * MiB);
	char paths[64][256];
	uint64_t lost = 0;

	srand(12345);
	for (int round = 0; round < 60; round++) {
		struct spool_stats st;
		struct spool_record r;
		struct spool_gap g[SPOOL_GAPS_MAX];
		vigil_err err = {0};
		struct stat fst;
		uint64_t after = 0, seen = 0;
		int n, rc;

		for (int i = 0; i < 20; i++)
			put(sp, plen((uint64_t)rand()) * 2); /* payload checked by seq below */
		spool_close(sp);
		n = segments(paths, 64);
		cr_assert_gt(n, 0);
		const char *victim = paths[rand() % n];
		cr_assert_eq(stat(victim, &fst), 0);
		if (fst.st_size > 0) {
			off_t at = rand() % fst.st_size;
			switch (rand() % 3) {
			case 0:
				flip_byte(victim, at);
				break;
			case 1:
				cr_assert_eq(truncate(victim, at), 0);
				break;
			default: {
				uint8_t junk[333];
				int fd = open(victim, O_WRONLY | O_APPEND);
				fill(junk, (uint64_t)round, sizeof(junk));
				cr_assert_eq(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
				close(fd);
			}
			}
		}
		sp = spool_open(dir, 1 * MiB, &err);
		cr_assert_not_null(sp, "round %d: %s", round, err.msg);
		while ((rc = spool_next(sp, after, &r, &err)) == 0) {
			cr_assert_gt(r.seq, after);
			/* Whatever comes back is exactly what was appended under that seq. */
			uint8_t *want = malloc(r.len ? r.len : 1);
			fill(want, r.seq, r.len);
			cr_assert(memcmp(want, r.payload, r.len) == 0,
				  "round %d: bad payload %" PRIu64, round, r.seq);
			free(want);
			after = r.seq;
			seen++;
		}
		cr_assert_eq(rc, -ENOENT, "round %d: %s", round, err.msg);
		spool_stats(sp, &st);
		cr_assert_eq(seen, st.records_pending);
		for (size_t k = spool_take_gaps(sp, g, SPOOL_GAPS_MAX); k > 0; k--)
			lost += g[k - 1].count;
		if (round % 7 == 6 && after > 0)
			cr_assert_eq(spool_ack(sp, after - after / 4, &err), 0, "%s", err.msg);
	}
	cr_log_info("random damage: %" PRIu64 " records reported lost over 60 rounds", lost);
	spool_close(sp);
}

Test(spool, one_owner_at_a_time)
{
	struct spool *sp = open_ok(4 * MiB), *again;
	vigil_err err = {0};
	int e;

	again = spool_open(dir, 4 * MiB, &err);
	e = errno;
	cr_expect_null(again);
	cr_expect_eq(err.code, -EBUSY);
	cr_expect_eq(e, EBUSY);
	spool_close(sp);
	sp = open_ok(4 * MiB);
	spool_close(sp);
}

Test(spool, a_damaged_state_file_is_refused)
{
	struct spool *sp = open_ok(4 * MiB);
	vigil_err err = {0};
	char path[256];

	put(sp, 10);
	cr_assert_eq(spool_ack(sp, 1, NULL), 0);
	spool_close(sp);
	snprintf(path, sizeof(path), "%s/state", dir);
	flip_byte(path, 20);
	cr_expect_null(spool_open(dir, 4 * MiB, &err));
	cr_expect_eq(err.code, -EBADMSG);
	cr_expect(strstr(err.msg, "state") != NULL, "%s", err.msg);
	cr_expect_null(spool_open(dir, 1000, &err));
	cr_expect_eq(err.code, -EINVAL);
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/*
 * A segment (written by hand: counting to 2^62 takes too long) whose record
 * has the last seq there is: the spool opens, says so when asked for one more,
 * and what it wrote on the way out opens again.  Found by the spool fuzz target.
 */
Test(spool, a_spool_out_of_sequence_numbers_opens_and_refuses_appends)
{
	const uint64_t last = (UINT64_C(1) << 62) - 1;
	uint8_t frame[HDR + 5] = {0};
	struct spool_stats st;
	struct spool_record r;
	vigil_err err = {0};
	struct spool *sp;
	char path[256];
	uint64_t seq;
	FILE *f;

	cr_assert_eq(mkdir(dir, 0700), 0);
	put_le(frame, 0x31525356u, 4); /* "VSR1" */
	put_le(frame + 4, 5, 4);
	put_le(frame + 8, last, 8);
	put_le(frame + 16, crc32c(0, frame, 16), 4);
	memcpy(frame + HDR, "batch", 5);
	put_le(frame + 20, crc32c(crc32c(0, frame, 16), frame + HDR, 5), 4);
	snprintf(path, sizeof(path), "%s/seg-%020" PRIu64 ".log", dir, last);
	cr_assert_not_null(f = fopen(path, "wb"));
	cr_assert_eq(fwrite(frame, 1, sizeof(frame), f), sizeof(frame));
	fclose(f);

	for (int round = 0; round < 2; round++) {
		sp = open_ok(4 * MiB);
		spool_stats(sp, &st);
		cr_expect_eq(st.next_seq, last + 1);
		cr_expect_eq(spool_next(sp, 0, &r, &err), 0, "%s", err.msg);
		cr_expect_eq(r.seq, last);
		cr_expect_eq(spool_append(sp, "more", 4, &seq, &err), -EOVERFLOW);
		cr_expect(strstr(err.msg, "ran out of sequence numbers") != NULL, "%s", err.msg);
		spool_close(sp);
	}
}

/* Mostly small batches, every 16th large enough that a kill may land inside its write. */
static size_t kill_len(uint64_t seq)
{
	return seq % 16 == 0 ? 128 * KiB + (size_t)(seq * 104729 % (256 * KiB))
			     : (size_t)(seq * 104729 % (4 * KiB));
}

/* Child: append until killed, reporting each seq once append + sync returned. */
static void appender(int wfd, int round)
{
	vigil_err err = {0};
	struct spool *sp = spool_open(dir, 512 * MiB, &err);
	uint8_t *buf = malloc(384 * KiB);

	if (sp == NULL || buf == NULL)
		_exit(2);
	spool_set_sync(sp, round % 2 ? 1 : 0);
	for (;;) {
		struct spool_stats st;
		uint64_t seq;
		size_t len;

		spool_stats(sp, &st);
		len = kill_len(st.next_seq);
		fill(buf, st.next_seq, len);
		if (spool_append(sp, buf, len, &seq, &err) < 0 || seq != st.next_seq)
			_exit(3);
		if (round % 2 == 0 && spool_sync(sp, &err) < 0)
			_exit(4);
		if (write(wfd, &seq, sizeof(seq)) != sizeof(seq))
			_exit(5);
	}
}

Test(spool, survives_sigkill_at_a_random_moment, .timeout = 100)
{
	uint64_t *confirmed = NULL, seq;
	size_t n = 0, cap = 0;

	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	for (int round = 0; round < 8; round++) {
		struct spool_record r;
		struct spool_stats st;
		vigil_err err = {0};
		struct spool *sp;
		int p[2], status;
		pid_t pid;

		cr_assert_eq(pipe(p), 0);
		pid = fork();
		cr_assert_geq(pid, 0);
		if (pid == 0) {
			close(p[0]);
			appender(p[1], round);
		}
		close(p[1]);
		usleep(20000 + (useconds_t)(rand() % 200000));
		kill(pid, SIGKILL);
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFSIGNALED(status), "appender exited early (status %d)", status);
		while (read(p[0], &seq, sizeof(seq)) == sizeof(seq)) {
			if (n == cap) {
				cap = cap ? cap * 2 : 1024;
				confirmed = realloc(confirmed, cap * sizeof(*confirmed));
			}
			confirmed[n++] = seq;
		}
		close(p[0]);

		sp = spool_open(dir, 512 * MiB, &err);
		cr_assert_not_null(sp, "reopen after kill in round %d: %s", round, err.msg);
		spool_stats(sp, &st);
		cr_expect_eq(st.gaps_pending, 0);
		cr_expect_eq(st.corrupt_records_skipped, 0);
		for (size_t i = 0; i < n; i++) {
			cr_assert_eq(spool_next(sp, confirmed[i] - 1, &r, &err), 0,
				     "confirmed %" PRIu64 " missing: %s", confirmed[i], err.msg);
			cr_assert_eq(r.seq, confirmed[i]);
			cr_assert(payload_is(&r, kill_len(r.seq)), "payload of %" PRIu64 " differs",
				  r.seq);
		}
		cr_log_info("kill round %d: %zu confirmed records, %" PRIu64
			    " in the spool, torn tails cut %" PRIu64,
			    round, n, st.records_pending, st.torn_tail_truncations);
		spool_close(sp);
	}
	cr_expect_gt(n, 0);
	free(confirmed);
}

Test(spool, throughput_with_batched_sync)
{
	struct spool *sp = open_ok(256 * MiB);
	uint8_t payload[1024];
	struct timespec a, b;
	const int n = 20000;
	vigil_err err = {0};
	double secs;

	memset(payload, 0xab, sizeof(payload));
	spool_set_sync(sp, 64);
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < n; i++)
		cr_assert_eq(spool_append(sp, payload, sizeof(payload), NULL, &err), 0, "%s",
			     err.msg);
	cr_assert_eq(spool_sync(sp, &err), 0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	cr_log_info("spool: %.0f appends/s (1 KiB payloads, fdatasync every 64 records)", n / secs);
	spool_set_sync(sp, 1); /* for comparison: every append durable when it returns */
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < n / 10; i++)
		cr_assert_eq(spool_append(sp, payload, sizeof(payload), NULL, &err), 0, "%s",
			     err.msg);
	clock_gettime(CLOCK_MONOTONIC, &b);
	secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	cr_log_info("spool: %.0f appends/s (1 KiB payloads, fdatasync every record)",
		    n / 10 / secs);
	spool_close(sp);
}
