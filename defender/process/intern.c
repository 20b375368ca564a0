/* SPDX-License-Identifier: Apache-2.0 */
#include "process/intern.h"

#include <errno.h>
#include <string.h>

#include "process/memacct.h"

#define INTERN_BUCKETS_MIN 1024u

struct intern_str {
	struct intern_str *next; /* hash chain */
	uint32_t hash;
	uint32_t refs;
	uint32_t len;
	char s[]; /* len bytes, then a NUL */
};

static uint32_t hash_bytes(const char *p, size_t len)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a 64 */

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)p[i];
		h *= 1099511628211ull;
	}
	return (uint32_t)(h ^ (h >> 32));
}

static struct intern_str *str_hdr(const char *s)
{
	return (struct intern_str *)(void *)(s - offsetof(struct intern_str, s));
}

static size_t str_cost(uint32_t len)
{
	return sizeof(struct intern_str) + len + 1;
}

int intern_init(struct intern *in, uint64_t *bytes)
{
	memset(in, 0, sizeof(*in));
	in->bytes = bytes;
	in->buckets = memacct_zalloc(bytes, INTERN_BUCKETS_MIN * sizeof(*in->buckets));
	if (in->buckets == NULL)
		return -ENOMEM;
	in->nbuckets = INTERN_BUCKETS_MIN;
	return 0;
}

void intern_fini(struct intern *in)
{
	if (in->buckets == NULL)
		return;
	for (uint32_t i = 0; i < in->nbuckets; i++) {
		struct intern_str *s = in->buckets[i], *next;

		for (; s != NULL; s = next) {
			next = s->next;
			memacct_free(in->bytes, s, str_cost(s->len));
		}
	}
	memacct_free(in->bytes, in->buckets, in->nbuckets * sizeof(*in->buckets));
	in->buckets = NULL;
	in->nbuckets = 0;
	in->count = in->payload = 0;
}

static void intern_rehash(struct intern *in)
{
	uint32_t nb = in->nbuckets * 2;
	struct intern_str **b = memacct_zalloc(in->bytes, nb * sizeof(*b));

	if (b == NULL)
		return; /* longer chains, still correct */
	for (uint32_t i = 0; i < in->nbuckets; i++) {
		struct intern_str *s = in->buckets[i], *next;

		for (; s != NULL; s = next) {
			next = s->next;
			s->next = b[s->hash & (nb - 1)];
			b[s->hash & (nb - 1)] = s;
		}
	}
	memacct_free(in->bytes, in->buckets, in->nbuckets * sizeof(*b));
	in->buckets = b;
	in->nbuckets = nb;
}

const char *intern_get(struct intern *in, const char *p, size_t len)
{
	uint32_t h = hash_bytes(p, len);
	struct intern_str *s;

	for (s = in->buckets[h & (in->nbuckets - 1)]; s != NULL; s = s->next) {
		if (s->hash == h && s->len == len && memcmp(s->s, p, len) == 0) {
			s->refs++;
			return s->s;
		}
	}
	s = memacct_alloc(in->bytes, str_cost((uint32_t)len));
	if (s == NULL)
		return NULL;
	s->hash = h;
	s->refs = 1;
	s->len = (uint32_t)len;
	memcpy(s->s, p, len);
	s->s[len] = '\0';
	s->next = in->buckets[h & (in->nbuckets - 1)];
	in->buckets[h & (in->nbuckets - 1)] = s;
	in->count++;
	in->payload += len;
	if (in->count > in->nbuckets)
		intern_rehash(in);
	return s->s;
}

const char *intern_ref(const char *s)
{
	if (s != NULL)
		str_hdr(s)->refs++;
	return s;
}

void intern_put(struct intern *in, const char *s)
{
	struct intern_str *h, **pp;

	if (s == NULL)
		return;
	h = str_hdr(s);
	if (--h->refs > 0)
		return;
	for (pp = &in->buckets[h->hash & (in->nbuckets - 1)]; *pp != h; pp = &(*pp)->next)
		;
	*pp = h->next;
	in->count--;
	in->payload -= h->len;
	memacct_free(in->bytes, h, str_cost(h->len));
}
