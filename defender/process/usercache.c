/* SPDX-License-Identifier: Apache-2.0 */
#include "process/usercache.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "process/memacct.h"

#define PW_BUF_MAX (1u << 20)

_Static_assert(PROCTREE_USER_CACHE < USERCACHE_NIL, "user indexes are 16-bit");

void usercache_init(struct usercache *uc, uint64_t *bytes)
{
	memset(uc, 0, sizeof(*uc));
	uc->bytes = bytes;
	uc->head = uc->tail = USERCACHE_NIL;
	memset(uc->buckets, 0xff, sizeof(uc->buckets));
}

void usercache_fini(struct usercache *uc)
{
	for (uint16_t i = 0; i < uc->count; i++) {
		memacct_free(uc->bytes, uc->users[i].name, strlen(uc->users[i].name) + 1);
		uc->users[i].name = NULL;
	}
	uc->count = 0;
	uc->head = uc->tail = USERCACHE_NIL;
	memset(uc->buckets, 0xff, sizeof(uc->buckets));
}

static void lru_unlink(struct usercache *uc, uint16_t i)
{
	struct usercache_user *u = &uc->users[i];

	if (u->prev != USERCACHE_NIL)
		uc->users[u->prev].next = u->next;
	else
		uc->head = u->next;
	if (u->next != USERCACHE_NIL)
		uc->users[u->next].prev = u->prev;
	else
		uc->tail = u->prev;
}

static void lru_push(struct usercache *uc, uint16_t i)
{
	struct usercache_user *u = &uc->users[i];

	u->prev = USERCACHE_NIL;
	u->next = uc->head;
	if (uc->head != USERCACHE_NIL)
		uc->users[uc->head].prev = i;
	else
		uc->tail = i;
	uc->head = i;
}

static uint16_t uid_bucket(uint32_t uid)
{
	return (uint16_t)((uid * 0x9e3779b1u) >> 24) % PROCTREE_USER_CACHE;
}

/* A new name for uid, counted in uc->bytes: its passwd name, or its number.  NULL: no memory. */
static char *resolve_user(struct usercache *uc, uint32_t uid, char *buf, size_t cap)
{
	struct passwd pw, *res = NULL;
	char *big = NULL, *name;
	char num[16];
	const char *src;
	size_t len;
	int r;

	for (;;) {
		r = getpwuid_r((uid_t)uid, &pw, buf, cap, &res);
		if (r != ERANGE || cap >= PW_BUF_MAX)
			break;
		cap *= 2;
		free(big);
		big = buf = malloc(cap);
		if (buf == NULL)
			break;
	}
	if (r == 0 && res != NULL && res->pw_name != NULL && res->pw_name[0] != '\0') {
		src = res->pw_name;
	} else {
		snprintf(num, sizeof(num), "%u", uid);
		src = num;
	}
	len = strlen(src);
	name = memacct_alloc(uc->bytes, len + 1);
	if (name != NULL)
		memcpy(name, src, len + 1);
	free(big);
	return name;
}

const char *usercache_name(struct usercache *uc, uint32_t uid, char *buf, size_t cap)
{
	uint16_t b = uid_bucket(uid), i, *pp;
	struct usercache_user *u;
	char *name;

	for (i = uc->buckets[b]; i != USERCACHE_NIL; i = uc->users[i].hnext) {
		if (uc->users[i].uid == uid) {
			lru_unlink(uc, i);
			lru_push(uc, i);
			return uc->users[i].name;
		}
	}
	name = resolve_user(uc, uid, buf, cap);
	if (name == NULL)
		return "?"; /* out of memory: a constant, so the contract holds */
	if (uc->count < PROCTREE_USER_CACHE) {
		i = uc->count++;
	} else {
		i = uc->tail;
		u = &uc->users[i];
		lru_unlink(uc, i);
		for (pp = &uc->buckets[uid_bucket(u->uid)]; *pp != i; pp = &uc->users[*pp].hnext)
			;
		*pp = u->hnext;
		memacct_free(uc->bytes, u->name, strlen(u->name) + 1);
	}
	u = &uc->users[i];
	u->uid = uid;
	u->name = name;
	u->hnext = uc->buckets[b];
	uc->buckets[b] = i;
	lru_push(uc, i);
	return name;
}
