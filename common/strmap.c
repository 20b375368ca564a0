/* SPDX-License-Identifier: Apache-2.0 */
#include "strmap.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A slot is empty (key NULL), a tombstone (key == TOMB) or in use. */
static char tomb_marker;
#define TOMB (&tomb_marker)

struct slot {
	char *key;
	void *value;
	uint64_t hash;
};

struct strmap {
	struct slot *slots;
	size_t cap;    /* a power of two */
	size_t used;   /* live entries */
	size_t filled; /* live entries + tombstones: what probing has to walk past */
	bool borrowed; /* keys belong to the caller */
};

/* FNV-1a: short keys, no adversary can make it quadratic beyond the map's bound. */
uint64_t strmap_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

struct strmap *strmap_new(void)
{
	struct strmap *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->cap = 8;
	if ((m->slots = calloc(m->cap, sizeof(*m->slots))) == NULL) {
		free(m);
		return NULL;
	}
	return m;
}

struct strmap *strmap_new_borrowed(void)
{
	struct strmap *m = strmap_new();

	if (m != NULL)
		m->borrowed = true;
	return m;
}

void strmap_free(struct strmap *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->cap && !m->borrowed; i++)
		if (m->slots[i].key != NULL && m->slots[i].key != TOMB)
			free(m->slots[i].key);
	free(m->slots);
	free(m);
}

/* The slot holding key, or NULL. */
static struct slot *find(const struct strmap *m, const char *key, uint64_t h)
{
	for (size_t i = h & (m->cap - 1), n = 0; n < m->cap; i = (i + 1) & (m->cap - 1), n++) {
		struct slot *s = &m->slots[i];

		if (s->key == NULL)
			return NULL;
		if (s->key != TOMB && s->hash == h && strcmp(s->key, key) == 0)
			return s;
	}
	return NULL;
}

void *strmap_get(const struct strmap *m, const char *key)
{
	struct slot *s = find(m, key, strmap_hash(key));

	return s != NULL ? s->value : NULL;
}

static int grow(struct strmap *m)
{
	/* Rehash into a table that live entries fill to at most 40%. */
	size_t cap = m->cap;
	struct slot *old = m->slots, *ns;

	while ((m->used + 1) * 5 >= cap * 2)
		cap *= 2;
	if ((ns = calloc(cap, sizeof(*ns))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < m->cap; i++) {
		if (old[i].key == NULL || old[i].key == TOMB)
			continue;
		size_t j = old[i].hash & (cap - 1);
		while (ns[j].key != NULL)
			j = (j + 1) & (cap - 1);
		ns[j] = old[i];
	}
	free(old);
	m->slots = ns;
	m->cap = cap;
	m->filled = m->used;
	return 0;
}

int strmap_put(struct strmap *m, const char *key, void *value)
{
	uint64_t h = strmap_hash(key);
	struct slot *s = find(m, key, h);
	char *copy;

	if (s != NULL) {
		s->value = value;
		return 0;
	}
	/* Linear probing stays short up to about 70% full (tombstones included). */
	if ((m->filled + 1) * 10 > m->cap * 7 && grow(m) < 0)
		return -ENOMEM;
	if ((copy = m->borrowed ? (char *)key : strdup(key)) == NULL)
		return -ENOMEM;
	for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		s = &m->slots[i];
		if (s->key == NULL || s->key == TOMB) {
			if (s->key == NULL)
				m->filled++;
			s->key = copy;
			s->value = value;
			s->hash = h;
			m->used++;
			return 0;
		}
	}
}

void *strmap_del(struct strmap *m, const char *key)
{
	struct slot *s = find(m, key, strmap_hash(key));
	void *v;

	if (s == NULL)
		return NULL;
	v = s->value;
	if (!m->borrowed)
		free(s->key);
	s->key = TOMB;
	s->value = NULL;
	m->used--;
	return v;
}

size_t strmap_count(const struct strmap *m)
{
	return m->used;
}

void strmap_each(const struct strmap *m, void (*fn)(const char *key, void *value, void *ctx),
		 void *ctx)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key != NULL && m->slots[i].key != TOMB)
			fn(m->slots[i].key, m->slots[i].value, ctx);
}
