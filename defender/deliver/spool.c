/* SPDX-License-Identifier: Apache-2.0 */
#include "deliver/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "crc32c.h"
#include "fsutil.h"

#define FRAME_MAGIC   0x31525356u /* "VSR1" */
#define HDR	      24u
#define SEG_MIN	      (64u * 1024)
#define SEG_MAX	      (4u * 1024 * 1024)
#define SEG_SCAN_MAX  ((uint64_t)SEG_MAX + HDR + SPOOL_RECORD_MAX) /* ours are never larger */
#define SEQ_LIMIT     (UINT64_C(1) << 62)
#define STATE_MAGIC   "VGSTATE1"
#define STATE_HDR_V1  48u /* version 1: no incarnation (a spool from before them: 0) */
#define STATE_HDR     56u /* version 2: the incarnation after version 1's fields */
#define STATE_GAP     32u
#define STATE_MAX     (STATE_HDR + SPOOL_GAPS_MAX * STATE_GAP + 4u)
#define STATE_RESERVE (2u * STATE_MAX) /* state and its temporary copy during a rewrite */

struct seg {
	uint64_t name; /* the seq it was created for */
	uint64_t last; /* highest seq stored in it; name - 1 while it holds none */
	uint64_t size;
};

/* Index entry of a pending record: segment number segno is segs[seg_head + segno - seg_base]. */
struct ent {
	uint64_t seq;
	uint32_t segno, off, len;
};

struct spool {
	char *dir;
	int dfd, afd, rfd; /* directory (flock'ed), newest segment, cached reader of an older one */
	uint32_t rsegno;
	uint64_t max_bytes, seg_max, seg_bytes, state_size;
	unsigned sync_every, unsynced;
	uint64_t next_seq, acked, dropped_through, lost_hw, synced_seq;
	uint64_t incarnation;
	int state_dirty;
	struct seg *segs; /* oldest first, in [seg_head, seg_head + seg_n) */
	size_t seg_head, seg_n, seg_cap;
	uint32_t seg_base;
	struct ent *ents; /* ascending seq, in [ent_head, ent_head + ent_n) */
	size_t ent_head, ent_n, ent_cap;
	struct spool_gap gaps[SPOOL_GAPS_MAX];
	size_t ngaps;
	uint8_t *buf;
	size_t buf_cap;
	struct spool_stats st;
};

/* ---- encoding ---- */

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t max64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

static void hdr_encode(uint8_t *h, uint64_t seq, const void *payload, uint32_t len)
{
	put_le(h, FRAME_MAGIC, 4);
	put_le(h + 4, len, 4);
	put_le(h + 8, seq, 8);
	put_le(h + 16, crc32c(0, h, 16), 4);
	put_le(h + 20, crc32c(crc32c(0, h, 16), payload, len), 4);
}

/* 1 when h is a frame header whose own CRC holds and whose fields are in range. */
static int hdr_ok(const uint8_t *h, uint64_t *seq, uint32_t *len)
{
	if (get_le(h, 4) != FRAME_MAGIC || get_le(h + 16, 4) != crc32c(0, h, 16))
		return 0;
	*len = (uint32_t)get_le(h + 4, 4);
	*seq = get_le(h + 8, 8);
	return *len <= SPOOL_RECORD_MAX && *seq > 0 && *seq < SEQ_LIMIT;
}

static int payload_ok(const uint8_t *h, const void *payload, uint32_t len)
{
	return get_le(h + 20, 4) == crc32c(crc32c(0, h, 16), payload, len);
}

/* ---- memory ---- */

static int buf_reserve(struct spool *sp, size_t len)
{
	size_t cap = len < 65536 ? 65536 : len;
	uint8_t *b;

	if (len <= sp->buf_cap && sp->buf != NULL)
		return 0;
	if ((b = realloc(sp->buf, cap)) == NULL)
		return -ENOMEM;
	sp->buf = b;
	sp->buf_cap = cap;
	return 0;
}

/* Room for one more element at the back of a deque kept in [head, head + n) of arr. */
static int deque_grow(void **arr, size_t *head, size_t n, size_t *cap, size_t elem)
{
	size_t ncap = *cap ? *cap * 2 : 64;
	void *a;

	if (*head + n < *cap)
		return 0;
	if (*head > 0 && *head >= *cap / 2) { /* half is free at the front: slide down */
		memmove(*arr, (char *)*arr + *head * elem, n * elem);
		*head = 0;
		return 0;
	}
	if ((a = realloc(*arr, ncap * elem)) == NULL)
		return -ENOMEM;
	*arr = a;
	*cap = ncap;
	return 0;
}

static struct seg *seg_at(struct spool *sp, size_t i)
{
	return &sp->segs[sp->seg_head + i];
}

static struct seg *seg_last(struct spool *sp)
{
	return sp->seg_n ? seg_at(sp, sp->seg_n - 1) : NULL;
}

/* Records at or below the floor are not pending: acknowledged or dropped. */
static uint64_t spool_floor(const struct spool *sp)
{
	return max64(sp->acked, sp->dropped_through);
}

static void seg_path(const struct spool *sp, uint64_t name, char *out, size_t len)
{
	snprintf(out, len, "%s/seg-%020" PRIu64 ".log", sp->dir, name);
}

static int seg_push(struct spool *sp, uint64_t name)
{
	if (deque_grow((void **)&sp->segs, &sp->seg_head, sp->seg_n, &sp->seg_cap,
		       sizeof(*sp->segs)) < 0)
		return -ENOMEM;
	*seg_at(sp, sp->seg_n++) = (struct seg){name, name - 1, 0};
	return 0;
}

/* Index a record of the newest segment. */
static int ent_push(struct spool *sp, uint64_t seq, uint64_t off, uint32_t len)
{
	if (deque_grow((void **)&sp->ents, &sp->ent_head, sp->ent_n, &sp->ent_cap,
		       sizeof(*sp->ents)) < 0)
		return -ENOMEM;
	sp->ents[sp->ent_head + sp->ent_n++] =
	    (struct ent){seq, sp->seg_base + (uint32_t)(sp->seg_n - 1), (uint32_t)off, len};
	return 0;
}

static void ent_pop_front(struct spool *sp)
{
	sp->ent_head++;
	if (--sp->ent_n == 0)
		sp->ent_head = 0;
}

/* ---- gaps and the state file ---- */

static void gap_add(struct spool *sp, uint64_t first, uint64_t last, uint64_t count,
		    enum spool_gap_reason why)
{
	struct spool_gap *g = sp->ngaps ? &sp->gaps[sp->ngaps - 1] : NULL;

	sp->state_dirty = 1;
	if (g != NULL &&
	    ((g->reason == why && g->last_seq + 1 == first) || sp->ngaps == SPOOL_GAPS_MAX)) {
		g->first_seq = first < g->first_seq ? first : g->first_seq;
		g->last_seq = max64(g->last_seq, last);
		/*
		 * This spool never reports a seq twice, but a state file it did not
		 * write (CRC intact) may claim seqs that recovery then finds missing:
		 * a merged gap still cannot have lost more records than its range holds.
		 */
		g->count = g->count + count < g->last_seq - g->first_seq + 1
			       ? g->count + count
			       : g->last_seq - g->first_seq + 1;
		return;
	}
	sp->gaps[sp->ngaps++] = (struct spool_gap){first, last, count, why};
}

/* Seqs first..last were assigned and are gone: report the part not reported before. */
static void gap_lost(struct spool *sp, uint64_t first, uint64_t last)
{
	if (last <= sp->lost_hw)
		return;
	first = max64(first, sp->lost_hw + 1);
	gap_add(sp, first, last, last - first + 1, SPOOL_GAP_LOST);
	sp->st.lost_records += last - first + 1;
	sp->lost_hw = last;
}

static int state_write(struct spool *sp, vigil_err *err)
{
	size_t n = STATE_HDR + sp->ngaps * STATE_GAP;
	char path[PATH_MAX];
	uint8_t b[STATE_MAX];
	int rc;

	memcpy(b, STATE_MAGIC, 8);
	put_le(b + 8, 2, 4);
	put_le(b + 12, sp->ngaps, 4);
	put_le(b + 16, sp->next_seq, 8);
	put_le(b + 24, sp->acked, 8);
	put_le(b + 32, sp->dropped_through, 8);
	put_le(b + 40, sp->lost_hw, 8);
	put_le(b + 48, sp->incarnation, 8);
	for (size_t i = 0; i < sp->ngaps; i++) {
		uint8_t *g = b + STATE_HDR + i * STATE_GAP;
		put_le(g, sp->gaps[i].first_seq, 8);
		put_le(g + 8, sp->gaps[i].last_seq, 8);
		put_le(g + 16, sp->gaps[i].count, 8);
		put_le(g + 24, sp->gaps[i].reason, 8);
	}
	put_le(b + n, crc32c(0, b, n), 4);
	snprintf(path, sizeof(path), "%s/state", sp->dir);
	/* Temporary file, fsync, rename; then the directory, so the rename itself is durable. */
	if ((rc = fs_write_file(path, b, n + 4, 0600, 0, err)) < 0)
		return rc;
	if (fsync(sp->dfd) < 0)
		return verr_set(err, -errno, "cannot sync %s: %s", sp->dir, strerror(errno));
	sp->state_size = n + 4;
	sp->state_dirty = 0;
	return 0;
}

static int state_load(struct spool *sp, vigil_err *err)
{
	char path[PATH_MAX], *c = NULL;
	const uint8_t *b;
	size_t n = 0, ngaps, hdr;
	uint32_t version;
	int rc;

	snprintf(path, sizeof(path), "%s/state", sp->dir);
	if (!fs_exists(path))
		return -ENOENT;
	rc = fs_read_file(path, STATE_MAX, &c, &n, err);
	if (rc < 0 && rc != -EFBIG)
		return rc;
	b = (const uint8_t *)c;
	if (b == NULL || n < STATE_HDR_V1 + 4 || memcmp(b, STATE_MAGIC, 8) != 0)
		goto bad;
	version = (uint32_t)get_le(b + 8, 4);
	if (version != 1 && version != 2)
		goto bad;
	hdr = version == 1 ? STATE_HDR_V1 : STATE_HDR;
	ngaps = get_le(b + 12, 4);
	if (ngaps > SPOOL_GAPS_MAX || n != hdr + ngaps * STATE_GAP + 4 ||
	    get_le(b + n - 4, 4) != crc32c(0, b, n - 4))
		goto bad;
	sp->next_seq = get_le(b + 16, 8);
	sp->acked = get_le(b + 24, 8);
	sp->dropped_through = get_le(b + 32, 8);
	sp->lost_hw = get_le(b + 40, 8);
	sp->incarnation = version == 1 ? 0 : get_le(b + 48, 8);
	/* 0 stays 0: a spool from before incarnations keeps numbering its one stream. */
	/* next_seq == SEQ_LIMIT: a segment held the last seq there is; appends then refuse. */
	if (sp->incarnation > INT64_MAX || sp->next_seq == 0 || sp->next_seq > SEQ_LIMIT ||
	    max64(max64(sp->acked, sp->dropped_through), sp->lost_hw) >= sp->next_seq)
		goto bad;
	for (size_t i = 0; i < ngaps; i++) {
		const uint8_t *g = b + hdr + i * STATE_GAP;
		struct spool_gap *o = &sp->gaps[i];
		*o = (struct spool_gap){get_le(g, 8), get_le(g + 8, 8), get_le(g + 16, 8),
					(enum spool_gap_reason)get_le(g + 24, 8)};
		if (o->first_seq == 0 || o->first_seq > o->last_seq || o->count == 0 ||
		    o->count > o->last_seq - o->first_seq + 1 || o->last_seq >= sp->next_seq ||
		    get_le(g + 24, 8) - 1 >= SPOOL_GAP_OVERSIZE)
			goto bad;
	}
	sp->ngaps = ngaps;
	sp->state_size = n;
	free(c);
	return 0;
bad:
	free(c);
	return verr_set(err, -EBADMSG,
			"spool state file %s is damaged; refusing to guess the next sequence "
			"number (move the file aside to start over from the segments)",
			path);
}

/* ---- dropping and deleting ---- */

/* Delete the oldest segment file and forget it (its index entries must be gone). */
static void seg_delete_front(struct spool *sp)
{
	char path[PATH_MAX];
	struct seg *s = seg_at(sp, 0);

	seg_path(sp, s->name, path, sizeof(path));
	unlink(path);
	if (sp->rfd >= 0 && sp->rsegno == sp->seg_base) {
		close(sp->rfd);
		sp->rfd = -1;
	}
	if (sp->seg_n == 1 && sp->afd >= 0) {
		close(sp->afd);
		sp->afd = -1;
	}
	sp->seg_bytes -= s->size;
	sp->seg_head++;
	sp->seg_base++;
	if (--sp->seg_n == 0)
		sp->seg_head = 0;
}

/* Drop the oldest segment for space: its pending records become a gap. */
static void seg_drop_oldest(struct spool *sp, enum spool_gap_reason why)
{
	uint64_t n = 0, first = 0, last = 0;

	for (; sp->ent_n > 0 && sp->ents[sp->ent_head].segno == sp->seg_base; ent_pop_front(sp)) {
		first = n++ ? first : sp->ents[sp->ent_head].seq;
		last = sp->ents[sp->ent_head].seq;
	}
	sp->dropped_through = max64(sp->dropped_through, seg_at(sp, 0)->last);
	seg_delete_front(sp);
	if (n > 0) {
		gap_add(sp, first, last, n, why);
		sp->st.dropped_records += n;
		/* Best effort: otherwise the next state write carries the gap, and a crash
		 * before that shows the hole at open as "spool_lost": never silent. */
		state_write(sp, NULL);
	}
}

static void make_room(struct spool *sp, uint64_t need)
{
	while (sp->seg_n > 0 && sp->seg_bytes + need + STATE_RESERVE > sp->max_bytes)
		seg_drop_oldest(sp, SPOOL_GAP_FULL);
}

/* Forget acknowledged records; delete fully acknowledged segments but the newest. */
static void gc(struct spool *sp)
{
	uint64_t fl = spool_floor(sp);

	while (sp->ent_n > 0 && sp->ents[sp->ent_head].seq <= fl)
		ent_pop_front(sp);
	while (sp->seg_n > 1 && seg_at(sp, 0)->last <= fl)
		seg_delete_front(sp);
}

/* ---- recovery ---- */

enum stop { STOP_END, STOP_TORN, STOP_CORRUPT };

struct scan {
	uint64_t floor, expected, last; /* expected: the seq that should come next */
};

/* Index the newest segment's valid frames; *ret_good is where its valid prefix ends. */
static int seg_scan(struct spool *sp, int fd, struct scan *sc, uint64_t *ret_good,
		    enum stop *ret_stop)
{
	static const uint8_t zero[HDR];
	struct seg *s = seg_last(sp);
	uint64_t off, seq;
	uint8_t h[HDR];
	uint32_t len;
	int rc;

	*ret_stop = STOP_END;
	for (off = 0; off < s->size; off += HDR + len) {
		if (s->size - off < HDR || pread(fd, h, HDR, (off_t)off) != HDR) {
			*ret_stop = STOP_TORN;
			break;
		}
		if (!hdr_ok(h, &seq, &len)) {
			/* Zeros are space a file system extended and never wrote: torn, too. */
			*ret_stop = memcmp(h, zero, HDR) == 0 ? STOP_TORN : STOP_CORRUPT;
			break;
		}
		if (off + HDR + len > s->size) {
			*ret_stop = STOP_TORN;
			break;
		}
		if ((rc = buf_reserve(sp, len)) < 0)
			return rc;
		if (off + HDR + len > SEG_SCAN_MAX || seq <= sc->last ||
		    pread(fd, sp->buf, len, (off_t)(off + HDR)) != (ssize_t)len ||
		    !payload_ok(h, sp->buf, len)) {
			*ret_stop = STOP_CORRUPT;
			break;
		}
		sc->last = s->last = seq;
		if (seq <= sc->floor)
			continue;
		if (seq > sc->expected)
			gap_lost(sp, sc->expected, seq - 1);
		if ((rc = ent_push(sp, seq, off, len)) < 0)
			return rc;
		sc->expected = seq + 1;
	}
	*ret_good = off;
	return 0;
}

/*
 * The highest seq above `above` of a complete frame with a valid header in
 * [from, size) of the newest segment, about to be cut off: those seqs were
 * assigned and may have been sent, so they must not be assigned again.  A
 * frame running past the end was never finished, never acknowledged to the
 * caller, and does not count.
 */
static uint64_t tail_max_seq(int fd, uint64_t from, uint64_t size, uint64_t above)
{
	uint64_t n = size - from < SEG_SCAN_MAX ? size - from : SEG_SCAN_MAX, best = 0, seq;
	uint8_t *b = malloc(n ? n : 1);
	uint32_t len;

	if (b != NULL && pread(fd, b, n, (off_t)from) == (ssize_t)n) {
		for (uint64_t p = 0; p + HDR <= n;) {
			if (!hdr_ok(b + p, &seq, &len) || p + HDR + len > n) {
				p++;
				continue;
			}
			best = seq > above ? max64(best, seq) : best;
			p += HDR + len;
		}
	}
	free(b);
	return best;
}

static int list_segments(struct spool *sp, vigil_err *err)
{
	DIR *d = opendir(sp->dir);
	unsigned long long name;
	struct dirent *de;
	struct stat st;

	if (d == NULL)
		return verr_set(err, -errno, "cannot list %s: %s", sp->dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		const char *nm = de->d_name;
		if (strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0 || strcmp(nm, "state") == 0)
			continue;
		if (strncmp(nm, "state.tmp.", 10) == 0) { /* a state write that died */
			unlinkat(sp->dfd, nm, 0);
			continue;
		}
		if (strlen(nm) != 28 || strncmp(nm, "seg-", 4) != 0 ||
		    strspn(nm + 4, "0123456789") != 20 || strcmp(nm + 24, ".log") != 0 ||
		    (name = strtoull(nm + 4, NULL, 10)) == 0 || name >= SEQ_LIMIT ||
		    fstatat(sp->dfd, nm, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) {
			sp->st.foreign_files++;
			continue;
		}
		if (seg_push(sp, name) < 0) {
			closedir(d);
			return verr_set(err, -ENOMEM, "out of memory listing %s", sp->dir);
		}
	}
	closedir(d);
	return 0;
}

static int seg_cmp(const void *a, const void *b)
{
	const struct seg *x = a, *y = b;
	return x->name < y->name ? -1 : x->name > y->name;
}

static int recover(struct spool *sp, vigil_err *err)
{
	struct scan sc = {.floor = spool_floor(sp), .expected = spool_floor(sp) + 1};
	uint64_t tail_max = 0, cut = UINT64_MAX, good;
	size_t nsegs = sp->seg_n;
	char path[PATH_MAX];
	enum stop stop;
	struct stat st;
	struct seg *s;
	int rc;

	if (nsegs > 1)
		qsort(sp->segs, nsegs, sizeof(*sp->segs), seg_cmp);
	/* Scan one segment at a time as the newest, so ent_push files records under it. */
	for (sp->seg_n = 0; sp->seg_n < nsegs;) {
		int newest = sp->seg_n + 1 == nsegs, fd;
		s = seg_at(sp, sp->seg_n++);
		seg_path(sp, s->name, path, sizeof(path));
		fd = open(path, (newest ? O_RDWR | O_APPEND : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 || fstat(fd, &st) < 0) {
			rc = verr_set(err, -errno, "cannot open %s: %s", path, strerror(errno));
			if (fd >= 0)
				close(fd);
			return rc;
		}
		s->size = (uint64_t)st.st_size;
		if ((rc = seg_scan(sp, fd, &sc, &good, &stop)) < 0) {
			close(fd);
			return verr_set(err, rc, "cannot index %s: %s", path, strerror(-rc));
		}
		sp->st.corrupt_records_skipped += stop == STOP_CORRUPT;
		if (stop != STOP_END && newest) {
			sp->st.torn_tail_truncations++;
			tail_max = tail_max_seq(fd, good, s->size, sc.last);
			cut = good;
		}
		if (newest)
			sp->afd = fd;
		else
			close(fd);
		sp->seg_bytes += s->size;
	}
	sp->next_seq = max64(max64(sp->next_seq, sc.last + 1), max64(tail_max + 1, sc.expected));
	if (sp->next_seq > sc.expected) /* cut off, or lost with an unsynced page cache */
		gap_lost(sp, sc.expected, sp->next_seq - 1);
	/* Remember the seqs about to be cut off before cutting them. */
	if ((sp->state_dirty || cut != UINT64_MAX) && (rc = state_write(sp, err)) < 0)
		return rc;
	if ((s = seg_last(sp)) != NULL && cut != UINT64_MAX) {
		if (ftruncate(sp->afd, (off_t)cut) < 0)
			return verr_set(err, -errno, "cannot cut the damaged tail of %s: %s", path,
					strerror(errno));
		sp->seg_bytes -= s->size - cut;
		s->size = cut;
	}
	/* What the last process wrote may still be only in the page cache. */
	if (sp->afd >= 0 && fdatasync(sp->afd) < 0)
		return verr_set(err, -errno, "cannot sync %s: %s", path, strerror(errno));
	fsync(sp->dfd);
	sp->synced_seq = sp->next_seq - 1;
	gc(sp);
	/* A newest segment without one valid record proves nothing, not even its name. */
	if ((s = seg_last(sp)) != NULL && s->last < s->name) {
		seg_path(sp, s->name, path, sizeof(path));
		unlink(path);
		close(sp->afd);
		sp->afd = -1;
		sp->seg_bytes -= s->size;
		sp->seg_n--;
	}
	return 0;
}

/* ---- public ---- */

static void spool_free(struct spool *sp)
{
	if (sp->afd >= 0)
		close(sp->afd);
	if (sp->rfd >= 0)
		close(sp->rfd);
	if (sp->dfd >= 0)
		close(sp->dfd); /* releases the flock */
	free(sp->segs);
	free(sp->ents);
	free(sp->buf);
	free(sp->dir);
	free(sp);
}

/* A random id in 1..INT64_MAX (the console keeps it in a bigint). */
static int new_incarnation(uint64_t *ret, vigil_err *err)
{
	uint64_t v = 0;

	while (v == 0) {
		if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
			return verr_set(err, -errno,
					"no random bytes for the spool's incarnation: %s",
					strerror(errno));
		v &= (uint64_t)INT64_MAX;
	}
	*ret = v;
	return 0;
}

int spool_discard(struct spool *sp, uint64_t seq, enum spool_gap_reason why, vigil_err *err)
{
	if (seq <= spool_floor(sp) || seq >= sp->next_seq)
		return verr_set(err, -ENOENT, "batch %" PRIu64 " is not pending in spool %s", seq,
				sp->dir);
	gap_add(sp, seq, seq, 1, why);
	sp->st.dropped_records++;
	return state_write(sp, err);
}

uint64_t spool_incarnation(const struct spool *sp)
{
	return sp->incarnation;
}

struct spool *spool_open(const char *dir, uint64_t max_bytes, vigil_err *err)
{
	struct spool *sp = NULL;
	int rc = -ENOMEM;

	if (max_bytes < SPOOL_MIN_BYTES) {
		rc = verr_set(err, -EINVAL, "spool size %" PRIu64 " is below the minimum of %u",
			      max_bytes, SPOOL_MIN_BYTES);
		goto fail;
	}
	if ((sp = calloc(1, sizeof(*sp))) != NULL)
		sp->dfd = sp->afd = sp->rfd = -1;
	if (sp == NULL || (sp->dir = strdup(dir)) == NULL) {
		verr_set(err, rc, "out of memory opening spool %s", dir);
		goto fail;
	}
	sp->max_bytes = max_bytes;
	sp->seg_max = max64(SEG_MIN, max_bytes / 8 < SEG_MAX ? max_bytes / 8 : SEG_MAX);
	sp->sync_every = 1;
	sp->next_seq = 1;
	if ((rc = fs_mkdir_p(dir, 0700, err)) < 0)
		goto fail;
	if ((sp->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		rc = verr_set(err, -errno, "cannot open spool %s: %s", dir, strerror(errno));
		goto fail;
	}
	if (flock(sp->dfd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		verr_set(err, rc, "cannot lock spool %s: %s", dir,
			 rc == -EBUSY ? "another spool has it open" : strerror(-rc));
		goto fail;
	}
	rc = state_load(sp, err);
	if (rc == -ENOENT) {
		/*
		 * A new stream: the console tells it from the old one's batches by
		 * this id, so a defender whose state was lost is never taken for a
		 * run of duplicates.  Written at once, before any seq is handed out.
		 */
		if ((rc = new_incarnation(&sp->incarnation, err)) < 0 ||
		    (rc = state_write(sp, err)) < 0)
			goto fail;
	} else if (rc < 0) {
		goto fail;
	}
	if ((rc = list_segments(sp, err)) < 0 || (rc = recover(sp, err)) < 0)
		goto fail;
	make_room(sp, 0); /* max_bytes may have shrunk since the last run */
	return sp;
fail:
	if (sp != NULL)
		spool_free(sp);
	errno = -rc;
	return NULL;
}

void spool_set_sync(struct spool *sp, unsigned every_n)
{
	sp->sync_every = every_n;
}

static int seg_new(struct spool *sp, vigil_err *err)
{
	char path[PATH_MAX];
	int rc;

	seg_path(sp, sp->next_seq, path, sizeof(path));
	if (seg_push(sp, sp->next_seq) < 0)
		return verr_set(err, -ENOMEM, "out of memory adding a spool segment");
	for (int tries = 0; tries < 2; tries++) {
		sp->afd =
		    open(path, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (sp->afd >= 0 || errno != EEXIST)
			break;
		/* Something foreign (a directory, a symlink) has the name: move it aside. */
		char aside[PATH_MAX + 8];
		snprintf(aside, sizeof(aside), "%s.moved", path);
		rename(path, aside);
	}
	/* The new name must be durable before any record depends on it. */
	if (sp->afd < 0 || fsync(sp->dfd) < 0) {
		rc = verr_set(err, -errno, "cannot create %s: %s", path, strerror(errno));
		if (sp->afd >= 0) {
			close(sp->afd);
			unlink(path);
		}
		sp->afd = -1;
		sp->seg_n--;
		return rc;
	}
	return 0;
}

/* Take a failed append back off the newest segment; if even that fails, account for it. */
static void seg_cut_back(struct spool *sp)
{
	struct seg *s = seg_last(sp);
	struct stat st;

	if (ftruncate(sp->afd, (off_t)s->size) < 0 && fstat(sp->afd, &st) == 0) {
		/* The stray bytes stay; open cuts them (or reports what follows as lost). */
		sp->seg_bytes += (uint64_t)st.st_size - s->size;
		s->size = (uint64_t)st.st_size;
	}
}

static int frame_write(int fd, const uint8_t *h, const void *payload, size_t len)
{
	struct iovec iov[2] = {{(void *)h, HDR}, {(void *)payload, len}};
	int i = 0;

	while (i < 2) { /* one writev of the whole frame; the loop is for short writes */
		ssize_t n = writev(fd, iov + i, 2 - i);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		for (; i < 2 && (size_t)n >= iov[i].iov_len; i++)
			n -= (ssize_t)iov[i].iov_len;
		if (i < 2) {
			iov[i].iov_base = (char *)iov[i].iov_base + n;
			iov[i].iov_len -= (size_t)n;
		}
	}
	return 0;
}

int spool_append(struct spool *sp, const void *payload, size_t len, uint64_t *ret_seq,
		 vigil_err *err)
{
	uint64_t seq = sp->next_seq, frame = HDR + (uint64_t)len;
	uint8_t h[HDR];
	struct seg *s;
	int rc;

	if (len > SPOOL_RECORD_MAX || frame + STATE_RESERVE > sp->max_bytes)
		return verr_set(err, -EFBIG,
				"a record of %zu bytes can never fit in spool %s (%" PRIu64
				" bytes, records up to %u)",
				len, sp->dir, sp->max_bytes, SPOOL_RECORD_MAX);
	if (payload == NULL && len > 0)
		return verr_set(err, -EINVAL, "spool_append: NULL payload of %zu bytes", len);
	if (seq >= SEQ_LIMIT)
		return verr_set(err, -EOVERFLOW, "spool %s ran out of sequence numbers", sp->dir);
	make_room(sp, frame);
	s = seg_last(sp);
	if (sp->afd >= 0 && s->size > 0 && s->size + frame > sp->seg_max) {
		if (fdatasync(sp->afd) < 0)
			return verr_set(err, -errno, "cannot sync a segment of %s: %s", sp->dir,
					strerror(errno));
		sp->synced_seq = seq - 1;
		sp->unsynced = 0;
		close(sp->afd);
		sp->afd = -1;
	}
	if (sp->afd < 0) {
		if ((rc = seg_new(sp, err)) < 0)
			return rc;
		gc(sp); /* the segment just closed may be fully acknowledged */
	}
	/* Reserve the index slot first: after the write only the sync can fail. */
	if (deque_grow((void **)&sp->ents, &sp->ent_head, sp->ent_n, &sp->ent_cap,
		       sizeof(*sp->ents)) < 0)
		return verr_set(err, -ENOMEM, "out of memory indexing spool %s", sp->dir);
	hdr_encode(h, seq, payload, (uint32_t)len);
	while ((rc = frame_write(sp->afd, h, payload, len)) < 0) {
		seg_cut_back(sp);
		if (rc != -ENOSPC || sp->seg_n < 2)
			return verr_set(err, rc, "cannot append record %" PRIu64 " to %s: %s", seq,
					sp->dir, strerror(-rc));
		seg_drop_oldest(sp, SPOOL_GAP_DISK_FULL);
	}
	if (sp->sync_every > 0 && ++sp->unsynced >= sp->sync_every) {
		if (fdatasync(sp->afd) < 0) {
			rc = verr_set(err, -errno, "cannot sync record %" PRIu64 " in %s: %s", seq,
				      sp->dir, strerror(errno));
			seg_cut_back(sp);
			return rc;
		}
		sp->unsynced = 0;
		sp->synced_seq = seq;
	}
	s = seg_last(sp);
	ent_push(sp, seq, s->size, (uint32_t)len);
	s->size += frame;
	s->last = seq;
	sp->seg_bytes += frame;
	sp->next_seq = seq + 1;
	if (ret_seq != NULL)
		*ret_seq = seq;
	return 0;
}

int spool_sync(struct spool *sp, vigil_err *err)
{
	if (sp->afd < 0 || sp->synced_seq + 1 >= sp->next_seq)
		return 0;
	if (fdatasync(sp->afd) < 0)
		return verr_set(err, -errno, "cannot sync spool %s: %s", sp->dir, strerror(errno));
	sp->synced_seq = sp->next_seq - 1;
	sp->unsynced = 0;
	return 0;
}

/* Read and check record e into sp->buf: 0, -EBADMSG when damaged, or an I/O error. */
static int rec_read(struct spool *sp, const struct ent *e)
{
	uint32_t idx = e->segno - sp->seg_base, len;
	char path[PATH_MAX];
	uint8_t h[HDR];
	uint64_t seq;
	int fd = sp->afd;
	ssize_t n;

	if (idx + 1 != sp->seg_n || fd < 0) {
		if (sp->rfd < 0 || sp->rsegno != e->segno) {
			if (sp->rfd >= 0)
				close(sp->rfd);
			seg_path(sp, seg_at(sp, idx)->name, path, sizeof(path));
			if ((sp->rfd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
				return errno == ENOENT ? -EBADMSG : -errno;
			sp->rsegno = e->segno;
		}
		fd = sp->rfd;
	}
	if (buf_reserve(sp, e->len) < 0)
		return -ENOMEM;
	struct iovec iov[2] = {{h, HDR}, {sp->buf, e->len}};
	while ((n = preadv(fd, iov, 2, e->off)) < 0 && errno == EINTR)
		;
	if (n < 0)
		return -errno;
	if ((size_t)n != HDR + e->len || !hdr_ok(h, &seq, &len) || seq != e->seq || len != e->len ||
	    !payload_ok(h, sp->buf, len))
		return -EBADMSG;
	return 0;
}

int spool_next(struct spool *sp, uint64_t after_seq, struct spool_record *out, vigil_err *err)
{
	for (;;) {
		uint64_t key = max64(after_seq, spool_floor(sp));
		size_t lo = 0, hi = sp->ent_n;
		struct ent *e;
		int rc;

		while (lo < hi) { /* the first entry with seq > key */
			size_t mid = lo + (hi - lo) / 2;
			if (sp->ents[sp->ent_head + mid].seq <= key)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo == sp->ent_n)
			return verr_set(err, -ENOENT, "no pending record after %" PRIu64, key);
		e = &sp->ents[sp->ent_head + lo];
		/* Never hand out what a crash could take back: its seq would be reused. */
		if (e->seq > sp->synced_seq && (rc = spool_sync(sp, err)) < 0)
			return rc;
		if ((rc = rec_read(sp, e)) == 0) {
			*out = (struct spool_record){e->seq, sp->buf, e->len};
			return 0;
		}
		if (rc != -EBADMSG)
			return verr_set(err, rc, "cannot read record %" PRIu64 " from %s: %s",
					e->seq, sp->dir, strerror(-rc));
		/* Damaged since open: account for it and go on with the next one. */
		sp->st.corrupt_records_skipped++;
		sp->st.lost_records++;
		gap_add(sp, e->seq, e->seq, 1, SPOOL_GAP_LOST);
		sp->lost_hw = max64(sp->lost_hw, e->seq);
		memmove(e, e + 1, (sp->ent_n - lo - 1) * sizeof(*e));
		if (--sp->ent_n == 0)
			sp->ent_head = 0;
		state_write(sp, NULL); /* best effort, as for drops */
	}
}

int spool_ack(struct spool *sp, uint64_t seq, vigil_err *err)
{
	uint64_t old = sp->acked;
	int rc;

	if (seq >= sp->next_seq)
		return verr_set(err, -EINVAL,
				"cannot acknowledge %" PRIu64
				": the last record appended is %" PRIu64,
				seq, sp->next_seq - 1);
	if (seq <= sp->acked)
		return 0;
	sp->acked = seq;
	if ((rc = state_write(sp, err)) < 0) {
		sp->acked = old;
		return rc;
	}
	gc(sp);
	return 0;
}

size_t spool_take_gaps(struct spool *sp, struct spool_gap *out, size_t max)
{
	size_t n = sp->ngaps < max ? sp->ngaps : max;

	memcpy(out, sp->gaps, n * sizeof(*out));
	memmove(sp->gaps, sp->gaps + n, (sp->ngaps - n) * sizeof(*out));
	sp->ngaps -= n;
	sp->state_dirty |= n > 0;
	return n;
}

const char *spool_gap_reason_str(enum spool_gap_reason reason)
{
	static const char *const names[] = {"unknown", "spool_full", "disk_full", "spool_lost",
					    "oversize"};

	return (unsigned)reason <= SPOOL_GAP_OVERSIZE ? names[reason] : names[0];
}

void spool_stats(const struct spool *sp, struct spool_stats *out)
{
	*out = sp->st;
	out->bytes = sp->seg_bytes + sp->state_size;
	out->max_bytes = sp->max_bytes;
	out->segments = sp->seg_n;
	out->records_pending = sp->ent_n;
	out->next_seq = sp->next_seq;
	out->acked_seq = sp->acked;
	out->gaps_pending = sp->ngaps;
}

void spool_close(struct spool *sp)
{
	struct seg *s;

	if (sp == NULL)
		return;
	if (sp->afd >= 0)
		fdatasync(sp->afd);
	s = seg_last(sp);
	/* All acknowledged: leave only the state file, which holds next_seq. */
	if (s != NULL && sp->seg_n == 1 && s->last <= spool_floor(sp) && state_write(sp, NULL) == 0)
		seg_delete_front(sp);
	if (sp->state_dirty)
		state_write(sp, NULL);
	spool_free(sp);
}
