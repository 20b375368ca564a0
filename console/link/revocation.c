/* SPDX-License-Identifier: Apache-2.0 */
/* Revoked hosts in memory, kept fresh, and the connections they cut (revocation.h). */
#include "link/revocation.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>

#include "log.h"
#include "store/enroll_store.h"
#include "store/pg_listen.h"
#include "store/store.h"
#include "strmap.h"
#include "tls.h"
#include "utf8.h"

/* How long one wait for a notification lasts: the thread looks at its stop flag this often. */
#define REVOCATION_WAIT_MS 250
/* Without a change, the tracked connections are still swept this often (to drop stale ids). */
#define REVOCATION_SWEEP_MS 60000

/* ---- the set ---- */

struct revoked_entry {
	size_t n;
	char **serials; /* good again: signed since the revocation, not revoked */
};

struct revoked_set {
	struct strmap *names; /* name -> struct revoked_entry */
	uint64_t digest;
};

static void entry_free(const char *key, void *value, void *ctx)
{
	struct revoked_entry *e = value;

	(void)key;
	(void)ctx;
	for (size_t i = 0; i < e->n; i++)
		free(e->serials[i]);
	free(e->serials);
	free(e);
}

void revoked_set_free(struct revoked_set *s)
{
	if (s == NULL)
		return;
	strmap_each(s->names, entry_free, NULL);
	strmap_free(s->names);
	free(s);
}

struct revoked_set *revoked_set_new(const struct store_revoked *v, size_t n)
{
	struct revoked_set *s;

	if (n > REVOCATION_NAMES_MAX) {
		errno = E2BIG;
		return NULL;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL || (s->names = strmap_new()) == NULL) {
		free(s);
		errno = ENOMEM;
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		struct revoked_entry *e = calloc(1, sizeof(*e));
		uint64_t h = strmap_hash(v[i].host_id);

		if (e == NULL || (v[i].nserials > 0 &&
				  (e->serials = calloc(v[i].nserials, sizeof(char *))) == NULL)) {
			free(e);
			goto nomem;
		}
		for (size_t k = 0; k < v[i].nserials; k++) {
			if ((e->serials[k] = strdup(v[i].serials[k])) == NULL) {
				entry_free(NULL, e, NULL);
				goto nomem;
			}
			e->n++;
			h = h * 31 + strmap_hash(v[i].serials[k]);
		}
		if (strmap_put(s->names, v[i].host_id, e) < 0) {
			entry_free(NULL, e, NULL);
			goto nomem;
		}
		/* A sum: the database lists names in no particular order. */
		s->digest += h;
	}
	return s;
nomem:
	revoked_set_free(s);
	errno = ENOMEM;
	return NULL;
}

bool revoked_set_refuses(const struct revoked_set *s, const char *cn, const char *serial)
{
	const struct revoked_entry *e;

	if (s == NULL || (e = strmap_get(s->names, cn)) == NULL)
		return false;
	for (size_t i = 0; i < e->n; i++)
		if (strcmp(e->serials[i], serial) == 0)
			return false;
	return true;
}

size_t revoked_set_count(const struct revoked_set *s)
{
	return s != NULL ? strmap_count(s->names) : 0;
}

uint64_t revoked_set_digest(const struct revoked_set *s)
{
	return s != NULL ? s->digest : 0;
}

/* ---- the tracker: established connections, by pipe id ---- */

struct tracker {
	uint32_t *slots; /* 0: free (nng pipe ids are never 0) */
	size_t mask, count, max;
};

static size_t slot_of(const struct tracker *t, uint32_t id)
{
	return (size_t)((id * 2654435761u) & t->mask);
}

static int tracker_add(struct tracker *t, uint32_t id)
{
	size_t i = slot_of(t, id);

	while (t->slots[i] != 0 && t->slots[i] != id)
		i = (i + 1) & t->mask;
	if (t->slots[i] == id)
		return 0;
	if (t->count >= t->max)
		return -ENOSPC;
	t->slots[i] = id;
	t->count++;
	return 0;
}

static void tracker_remove(struct tracker *t, uint32_t id)
{
	size_t i = slot_of(t, id), j;

	while (t->slots[i] != 0 && t->slots[i] != id)
		i = (i + 1) & t->mask;
	if (t->slots[i] == 0)
		return;
	t->count--;
	/* Backward shift: later entries of the probe run move up, no tombstones. */
	for (j = i;;) {
		size_t k;

		j = (j + 1) & t->mask;
		if (t->slots[j] == 0)
			break;
		k = slot_of(t, t->slots[j]);
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		t->slots[i] = t->slots[j];
		i = j;
	}
	t->slots[i] = 0;
}

/* ---- the live set ---- */

struct revocation {
	pthread_rwlock_t set_lock; /* set */
	struct revoked_set *set;
	pthread_mutex_t track_lock; /* tracked */
	struct tracker tracked;
	struct store *st;
	struct pg_listen *listen;
	pthread_t thread;
	bool started;
	atomic_bool stop;
	atomic_uint_fast64_t reloads, closed, refused_handshakes, refused_requests, names;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool revocation_refused(struct revocation *r, const char *cn, const char *serial)
{
	bool refused;

	pthread_rwlock_rdlock(&r->set_lock);
	refused = revoked_set_refuses(r->set, cn, serial);
	pthread_rwlock_unlock(&r->set_lock);
	return refused;
}

bool revocation_tls_check(const char *cn, const char *serial, void *arg)
{
	struct revocation *r = arg;

	if (!revocation_refused(r, cn, serial))
		return false;
	atomic_fetch_add(&r->refused_handshakes, 1);
	return true;
}

void revocation_count_request(struct revocation *r)
{
	atomic_fetch_add(&r->refused_requests, 1);
}

int revocation_track(struct revocation *r, uint32_t pipe_id)
{
	int rc;

	pthread_mutex_lock(&r->track_lock);
	rc = tracker_add(&r->tracked, pipe_id);
	pthread_mutex_unlock(&r->track_lock);
	return rc;
}

void revocation_untrack(struct revocation *r, uint32_t pipe_id)
{
	pthread_mutex_lock(&r->track_lock);
	tracker_remove(&r->tracked, pipe_id);
	pthread_mutex_unlock(&r->track_lock);
}

/*
 * Look at every tracked connection again: gone ones are forgotten (a
 * removal that came before its add leaves one behind), revoked ones
 * closed.  since_ms: when the change that led here was heard of (0: none).
 */
static void sweep(struct revocation *r, uint64_t since_ms)
{
	uint32_t *ids;
	size_t n = 0;

	pthread_mutex_lock(&r->track_lock);
	ids = malloc((r->tracked.count > 0 ? r->tracked.count : 1) * sizeof(*ids));
	for (size_t i = 0; ids != NULL && i <= r->tracked.mask; i++)
		if (r->tracked.slots[i] != 0)
			ids[n++] = r->tracked.slots[i];
	pthread_mutex_unlock(&r->track_lock);
	if (ids == NULL) {
		log_warn("revocations: out of memory looking at the established connections;"
			 " tried again at the next change");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		nng_pipe p = NNG_PIPE_INITIALIZER;
		struct tls_peer peer;
		char who[sizeof(peer.cn) * 4];
		int rc;

		p.id = ids[i];
		rc = tls_pipe_peer(p, &peer);
		if (rc == -ENOTCONN) {
			revocation_untrack(r, ids[i]);
			continue;
		}
		if (rc < 0 || !revocation_refused(r, peer.cn, peer.serial))
			continue;
		nng_pipe_close(p);
		atomic_fetch_add(&r->closed, 1);
		utf8_escape_controls(peer.cn, strlen(peer.cn), who, sizeof(who));
		if (since_ms != 0)
			log_warn("link: closed the connection of revoked host %s (certificate %s),"
				 " %" PRIu64 " ms after the revocation was announced",
				 who, peer.serial, mono_ms() - since_ms);
		else
			log_warn("link: closed the connection of revoked host %s (certificate %s)",
				 who, peer.serial);
	}
	free(ids);
}

/*
 * Read the set again and swap it in; sweep the connections when it changed
 * (or sweep_anyway).  Returns 0, or a negative errno with err saying why
 * (the set held stays in force).
 */
static int reload(struct revocation *r, uint64_t since_ms, bool sweep_anyway, vigil_err *err)
{
	struct store_revoked *v = NULL;
	struct revoked_set *set, *old;
	size_t n = 0;
	bool changed;
	int rc;

	if ((rc = store_revoked_load(r->st, &v, &n, err)) < 0)
		return rc;
	set = revoked_set_new(v, n);
	store_revoked_free(v, n);
	atomic_fetch_add(&r->reloads, 1);
	if (set == NULL)
		return verr_set(err, -errno, "%zu revoked hosts %s", n,
				errno == E2BIG
				    ? "are more than the console holds (REVOCATION_NAMES_MAX)"
				    : "do not fit in memory");
	pthread_rwlock_wrlock(&r->set_lock);
	old = r->set;
	changed = old == NULL || revoked_set_digest(old) != revoked_set_digest(set) ||
		  revoked_set_count(old) != revoked_set_count(set);
	r->set = set;
	pthread_rwlock_unlock(&r->set_lock);
	atomic_store(&r->names, revoked_set_count(set));
	if (changed && old != NULL)
		log_info("revocations: %zu host(s) revoked (was %zu)", revoked_set_count(set),
			 revoked_set_count(old));
	revoked_set_free(old);
	if (changed || sweep_anyway)
		sweep(r, changed ? since_ms : 0);
	return 0;
}

static void *revocation_main(void *arg)
{
	struct revocation *r = arg;
	uint64_t last_read = mono_ms(), last_sweep = mono_ms();
	bool down = false, failing = false;

	while (!atomic_load(&r->stop)) {
		vigil_err err = {0};
		int rc = pg_listen_wait(r->listen, REVOCATION_WAIT_MS, NULL, &err);
		uint64_t now = mono_ms();
		bool due = now - last_read >= REVOCATION_POLL_MS;

		if (rc < 0) {
			if (!down)
				log_warn("revocations: %s; the set is read every %d s meanwhile",
					 err.msg, REVOCATION_POLL_MS / 1000);
			down = true;
			if (!due) {
				struct timespec ts = {0, REVOCATION_WAIT_MS * 1000000L};

				nanosleep(&ts, NULL);
				continue;
			}
		} else if (rc == PG_LISTEN_CONNECTED && down) {
			log_info("revocations: listening for revocations again");
			down = false;
		}
		if (rc != PG_LISTEN_NOTIFIED && rc != PG_LISTEN_CONNECTED && !due)
			continue;
		verr_clear(&err);
		rc = reload(r, rc == PG_LISTEN_NOTIFIED ? now : 0,
			    now - last_sweep >= REVOCATION_SWEEP_MS, &err);
		if (rc < 0 && !failing)
			log_warn("revocations: cannot read the revoked hosts (the set held stays in"
				 " force; tried again every %d s): %s",
				 REVOCATION_POLL_MS / 1000, err.msg);
		else if (rc == 0 && failing)
			log_info("revocations: the revoked hosts are read again");
		failing = rc < 0;
		last_read = mono_ms();
		if (now - last_sweep >= REVOCATION_SWEEP_MS)
			last_sweep = now;
	}
	return NULL;
}

void revocation_stats_get(struct revocation *r, struct revocation_stats *ret)
{
	*ret = (struct revocation_stats){.names = atomic_load(&r->names),
					 .reloads = atomic_load(&r->reloads),
					 .closed = atomic_load(&r->closed),
					 .refused_handshakes = atomic_load(&r->refused_handshakes),
					 .refused_requests = atomic_load(&r->refused_requests)};
}

static void revocation_free(struct revocation *r)
{
	revoked_set_free(r->set);
	free(r->tracked.slots);
	store_close(r->st);
	pg_listen_free(r->listen);
	pthread_rwlock_destroy(&r->set_lock);
	pthread_mutex_destroy(&r->track_lock);
	free(r);
}

struct revocation *revocation_new(unsigned conns_max, vigil_err *err)
{
	struct revocation *r = calloc(1, sizeof(*r));
	size_t slots = 2;

	if (r == NULL) {
		verr_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	pthread_rwlock_init(&r->set_lock, NULL);
	pthread_mutex_init(&r->track_lock, NULL);
	while (slots < 2 * (size_t)(conns_max > 0 ? conns_max : 1))
		slots *= 2;
	r->tracked = (struct tracker){
	    .slots = calloc(slots, sizeof(uint32_t)), .mask = slots - 1, .max = conns_max};
	if (r->tracked.slots == NULL) {
		verr_set(err, -ENOMEM, "out of memory");
		revocation_free(r);
		return NULL;
	}
	return r;
}

int revocation_start(struct revocation *r, const char *dsn, vigil_err *err)
{
	int rc;

	if ((r->st = store_open(dsn, err)) == NULL)
		return err->code != 0 ? err->code : -EIO;
	/* Connections made before the set was read are looked at now. */
	if ((rc = reload(r, 0, true, err)) < 0)
		return rc;
	if ((r->listen = pg_listen_new(dsn, ENROLL_REVOKE_CHANNEL, "vigil-console-revoked",
				       "revocations")) == NULL)
		return verr_set(err, -ENOMEM, "out of memory");
	if ((rc = pthread_create(&r->thread, NULL, revocation_main, r)) != 0)
		return verr_set(err, -rc, "cannot start the revocation thread: %s", strerror(rc));
	r->started = true;
	return 0;
}

void revocation_stop(struct revocation *r)
{
	struct revocation_stats s;

	if (r == NULL)
		return;
	if (r->started) {
		atomic_store(&r->stop, true);
		pthread_join(r->thread, NULL);
	}
	revocation_stats_get(r, &s);
	log_info("revocations: %" PRIu64 " host(s) revoked; refused %" PRIu64
		 " handshake(s) and %" PRIu64 " request(s) of revoked certificates, closed %" PRIu64
		 " established connection(s); the set was read %" PRIu64 " time(s)",
		 s.names, s.refused_handshakes, s.refused_requests, s.closed, s.reloads);
	revocation_free(r);
}
