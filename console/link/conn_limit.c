/* SPDX-License-Identifier: Apache-2.0 */
#include "link/conn_limit.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"

/* An identity with at least one connection counted. */
struct ident {
	char key[CONN_LIMIT_KEY_MAX];
	unsigned conns;
};

/* A counted connection; id 0 marks an empty slot (nng pipe ids start at 1). */
struct conn {
	uint32_t id;
	struct ident *who;
	uint64_t seen_ms; /* admitted, or last heard from */
};

struct conn_limit {
	pthread_mutex_t lock;
	unsigned per_key, total;
	/* Open addressing, linear probing, deletion by backward shift: no tombstones to fill it. */
	struct conn *slots;
	uint32_t mask;	       /* slots - 1, a power of two at least 2 x total */
	struct strmap *idents; /* key -> struct ident (which owns the key) */
	unsigned conns, peak;
	uint64_t evicted;
	/* Ids removed before they were counted (see the header), newest at next - 1. */
	uint32_t gone[CONN_LIMIT_TOMBSTONES];
	unsigned gone_next;
};

static uint32_t home(const struct conn_limit *cl, uint32_t id)
{
	return (id * 2654435761u) & cl->mask;
}

struct conn_limit *conn_limit_new(unsigned per_key, unsigned total)
{
	struct conn_limit *cl;
	uint32_t cap = 1;

	if (per_key == 0 || per_key > total || total > CONN_LIMIT_TOTAL_MAX) {
		errno = EINVAL;
		return NULL;
	}
	while (cap < 2 * total)
		cap <<= 1;
	if ((cl = calloc(1, sizeof(*cl))) == NULL)
		return NULL;
	cl->per_key = per_key;
	cl->total = total;
	cl->mask = cap - 1;
	cl->slots = calloc(cap, sizeof(*cl->slots));
	cl->idents = strmap_new_borrowed();
	if (cl->slots == NULL || cl->idents == NULL) {
		free(cl->slots);
		strmap_free(cl->idents);
		free(cl);
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&cl->lock, NULL);
	return cl;
}

static void free_ident(const char *key, void *value, void *ctx)
{
	(void)key;
	(void)ctx;
	free(value);
}

void conn_limit_free(struct conn_limit *cl)
{
	if (cl == NULL)
		return;
	strmap_each(cl->idents, free_ident, NULL);
	strmap_free(cl->idents);
	free(cl->slots);
	pthread_mutex_destroy(&cl->lock);
	free(cl);
}

/* The slot holding id, or the empty slot where it would go.  Caller holds lock. */
static uint32_t find(const struct conn_limit *cl, uint32_t id)
{
	uint32_t i = home(cl, id);

	while (cl->slots[i].id != 0 && cl->slots[i].id != id)
		i = (i + 1) & cl->mask;
	return i;
}

/* Whether id was removed before it was added; forgets it if so.  Caller holds lock. */
static bool take_gone(struct conn_limit *cl, uint32_t id)
{
	for (unsigned i = 0; i < CONN_LIMIT_TOMBSTONES; i++) {
		if (cl->gone[i] == id) {
			cl->gone[i] = 0;
			return true;
		}
	}
	return false;
}

/*
 * Uncount the connection in slot i; its identity goes with its last
 * connection unless keep (the caller still needs it).  Caller holds lock.
 */
static void drop_slot(struct conn_limit *cl, uint32_t i, bool keep)
{
	struct ident *who = cl->slots[i].who;
	uint32_t j;

	if (--who->conns == 0 && !keep) {
		strmap_del(cl->idents, who->key);
		free(who);
	}
	cl->conns--;
	/* Backward shift: move up every later entry of the run that may sit in the hole. */
	for (j = i;;) {
		j = (j + 1) & cl->mask;
		if (cl->slots[j].id == 0)
			break;
		uint32_t h = home(cl, cl->slots[j].id);
		/* The entry at j stays when its home lies cyclically in (i, j]. */
		bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
		if (!stays) {
			cl->slots[i] = cl->slots[j];
			i = j;
		}
	}
	cl->slots[i] = (struct conn){0};
}

bool conn_limit_remove(struct conn_limit *cl, uint32_t id)
{
	uint32_t i;

	pthread_mutex_lock(&cl->lock);
	i = find(cl, id);
	if (id == 0 || cl->slots[i].id != id) {
		/* Refused, or its add is still to come: remember it for that add. */
		cl->gone[cl->gone_next++ % CONN_LIMIT_TOMBSTONES] = id;
		pthread_mutex_unlock(&cl->lock);
		return false;
	}
	drop_slot(cl, i, false);
	pthread_mutex_unlock(&cl->lock);
	return true;
}

void conn_limit_touch(struct conn_limit *cl, uint32_t id, uint64_t now_ms)
{
	uint32_t i;

	pthread_mutex_lock(&cl->lock);
	i = find(cl, id);
	if (id != 0 && cl->slots[i].id == id)
		cl->slots[i].seen_ms = now_ms;
	pthread_mutex_unlock(&cl->lock);
}

/*
 * The slot of who's connection silent longest, if silent for idle_ms by
 * now_ms; UINT32_MAX when none.  A walk over the table: it runs only at an
 * identity's cap.  Caller holds lock.
 */
static uint32_t stalest(const struct conn_limit *cl, const struct ident *who, uint64_t now_ms,
			uint64_t idle_ms)
{
	uint32_t best = UINT32_MAX;

	for (uint32_t i = 0; i <= cl->mask; i++) {
		const struct conn *c = &cl->slots[i];

		if (c->id == 0 || c->who != who || now_ms < c->seen_ms ||
		    now_ms - c->seen_ms < idle_ms)
			continue;
		if (best == UINT32_MAX || c->seen_ms < cl->slots[best].seen_ms)
			best = i;
	}
	return best;
}

enum conn_limit_verdict conn_limit_add(struct conn_limit *cl, uint32_t id, const char *key,
				       uint64_t now_ms, uint64_t idle_ms, unsigned *ret_key_conns,
				       uint32_t *ret_evicted)
{
	enum conn_limit_verdict v = CONN_LIMIT_ADMITTED;
	struct ident *who;
	char k[CONN_LIMIT_KEY_MAX];
	unsigned n = 0;
	uint32_t slot, old, evicted = 0;

	snprintf(k, sizeof(k), "%s", key);
	pthread_mutex_lock(&cl->lock);
	who = strmap_get(cl->idents, k);
	n = who != NULL ? who->conns : 0;
	slot = find(cl, id);
	if (id == 0 || cl->slots[slot].id == id || take_gone(cl, id)) {
		v = CONN_LIMIT_GONE; /* 0 or counted already: never from nng; count nothing */
	} else if (n >= cl->per_key && (old = stalest(cl, who, now_ms, idle_ms)) != UINT32_MAX) {
		/* Give up the stalest for the newcomer; who stays (it gets the newcomer). */
		evicted = cl->slots[old].id;
		drop_slot(cl, old, true);
		cl->evicted++;
		slot = find(cl, id); /* the shift may have moved the run */
	} else if (n >= cl->per_key) {
		v = CONN_LIMIT_PER_KEY;
	} else if (cl->conns >= cl->total) {
		v = CONN_LIMIT_TOTAL;
	} else if (who == NULL) {
		if ((who = calloc(1, sizeof(*who))) == NULL) {
			v = CONN_LIMIT_NOMEM;
		} else {
			memcpy(who->key, k, sizeof(k));
			if (strmap_put(cl->idents, who->key, who) < 0) {
				free(who);
				who = NULL;
				v = CONN_LIMIT_NOMEM;
			}
		}
	}
	if (v == CONN_LIMIT_ADMITTED) {
		cl->slots[slot] = (struct conn){.id = id, .who = who, .seen_ms = now_ms};
		n = ++who->conns;
		if (++cl->conns > cl->peak)
			cl->peak = cl->conns;
	}
	pthread_mutex_unlock(&cl->lock);
	if (ret_key_conns != NULL)
		*ret_key_conns = n;
	if (ret_evicted != NULL)
		*ret_evicted = evicted;
	return v;
}

void conn_limit_counts(struct conn_limit *cl, struct conn_limit_counts *ret)
{
	pthread_mutex_lock(&cl->lock);
	*ret = (struct conn_limit_counts){.conns = cl->conns,
					  .peak = cl->peak,
					  .keys = (unsigned)strmap_count(cl->idents),
					  .evicted = cl->evicted};
	pthread_mutex_unlock(&cl->lock);
}
