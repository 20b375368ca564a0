/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An Envelope as the console's listener receives it (console/link/listener.c,
 * handle()): unpacked by protobuf-c from at most LISTENER_MSG_MAX bytes, then
 * per body what the handlers do before the database:
 *   hello      the listener's label limit, then store_host_hello's checks
 *   heartbeat  store_host_heartbeat's and store_commands_sync's checks
 *   batch      batch_decode_pb, then the store's checks and encoders that run
 *              before a statement: learning_activity_ok, the deviation and
 *              delta checks, the COPY encoders, store_ingest's limits.
 * The store here has no connection (conn NULL): every call must stop at the
 * first statement with an error, so a 0 from one of them is a failure too.
 * handle() itself is static and needs an nng pipe with a peer certificate,
 * so its switch is repeated here; the heartbeat's counter checks
 * (counters_json) are static in listener.c and not reached.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "link/batch_decode.h"
#include "link/envelope_peek.h"
#include "link/pb_arena.h"
#include "link/listener.h"
#include "store/host_commands.h"
#include "store/ingest.h"
#include "store/learning_store.h"
#include "store/store.h"
#include "store/store_priv.h"
#include "vigil.pb-c.h"

#define HOST_ID	   "web-01" /* the certificate's CN in the real listener */
#define LABELS_MAX 32	    /* listener.c */

static struct store offline = {.lock = PTHREAD_MUTEX_INITIALIZER, .conn = NULL};
static struct pb_arena *arena; /* as a listener worker's, reset after each input */

/* An offline store call may fail only: 0 means a statement "ran" without a database. */
static void expect_failure(int rc, const char *what)
{
	if (rc == 0)
		fuzz_fail("%s returned 0 without a database", what);
}

static void fuzz_hello(const Vigil__Envelope *env)
{
	const Vigil__Hello *h = env->hello;
	struct store_label labels[LABELS_MAX];
	struct store_hello sh = {0};
	vigil_err err = {0};

	if (h->n_labels > LABELS_MAX)
		return;
	for (size_t i = 0; i < h->n_labels; i++) {
		labels[i].key = h->labels[i]->key;
		labels[i].value = h->labels[i]->value;
	}
	sh.host_id = HOST_ID;
	sh.hostname = h->hostname;
	sh.kernel = h->kernel;
	sh.os = h->os;
	sh.defender_version = h->defender_version;
	sh.bpf_status = h->bpf_status;
	sh.labels = labels;
	sh.nlabels = h->n_labels;
	expect_failure(store_host_hello(&offline, &sh, &err), "store_host_hello");
}

static void fuzz_heartbeat(const Vigil__Envelope *env)
{
	struct store_heartbeat hb = {.exec_count = env->heartbeat->exec_count};
	struct store_command cmds[COMMANDS_PER_REPLY];
	vigil_err err = {0};
	size_t n = 0;

	expect_failure(store_host_heartbeat(&offline, HOST_ID, &hb, &err), "store_host_heartbeat");
	expect_failure(store_commands_sync(&offline, HOST_ID, env->heartbeat->commands_done,
					   env->heartbeat->n_commands_done, cmds,
					   COMMANDS_PER_REPLY, &n, &err),
		       "store_commands_sync");
	if (n != 0)
		fuzz_fail("store_commands_sync handed out %zu commands without a database", n);
}

/* What batch_decode_pb built must be what the message holds, within the limits. */
static void check_decoded(const Vigil__Batch *pb, const struct batch_decode *w)
{
	const struct ingest_batch *b = &w->b;

	if (b->nevents != pb->n_events || b->ngaps != pb->n_gaps ||
	    b->ndeviations != pb->n_deviations || b->ndeltas != pb->n_models)
		fuzz_fail("batch_decode_pb: counts differ from the message");
	for (size_t i = 0; i < b->nevents; i++) {
		const struct store_event *e = &b->events[i];
		if (e->json != pb->events[i]->json || e->comm != pb->events[i]->comm ||
		    (e->activity == NULL) != (pb->events[i]->activity == NULL))
			fuzz_fail("batch_decode_pb: event %zu differs from the message", i);
	}
	for (size_t i = 0; i < b->ndeviations; i++) {
		const struct store_deviation *d = &b->deviations[i];
		const Vigil__Deviation *pd = pb->deviations[i];

		if (d->nchain != pd->n_chain)
			fuzz_fail("batch_decode_pb: deviation %zu chain count differs", i);
		if (d->nchain > LEARN_CHAIN_MAX)
			continue;
		for (size_t j = 0; j < d->nchain; j++)
			if (d->chain[j].exe != pd->chain[j]->exe ||
			    d->chain[j].comm != pd->chain[j]->comm ||
			    d->chain[j].pid != pd->chain[j]->pid)
				fuzz_fail("batch_decode_pb: deviation %zu link %zu differs", i, j);
	}
	for (size_t i = 0; i < b->ndeltas; i++) {
		const struct store_model_delta *d = &b->deltas[i];
		const Vigil__ModelDelta *pd = pb->models[i];

		if (d->nentries != pd->n_entries)
			fuzz_fail("batch_decode_pb: delta %zu entry count differs", i);
		if (d->nentries > LEARN_DELTA_ENTRIES_MAX)
			continue;
		for (size_t j = 0; j < d->nentries; j++)
			if (d->entries[j].pattern != pd->entries[j]->pattern ||
			    d->entries[j].exe != pd->entries[j]->exe ||
			    d->entries[j].count != pd->entries[j]->count)
				fuzz_fail("batch_decode_pb: delta %zu entry %zu differs", i, j);
	}
}

static void fuzz_batch(const Vigil__Envelope *env, const Vigil__Batch *batch)
{
	struct ingest_problems p = {0};
	struct ingest_result res;
	struct batch_decode w;
	const char *why = NULL;
	vigil_err err = {0};
	size_t n = 0, m = 0;
	int rc;

	rc = batch_decode_pb(batch, &w, &why);
	if (rc < 0) {
		if (why == NULL)
			fuzz_fail("batch_decode_pb failed (%d) without saying why", rc);
		return;
	}
	w.b.incarnation = env->incarnation;
	check_decoded(batch, &w);

	/* The checks and encoders store_ingest runs inside its transaction. */
	for (size_t i = 0; i < w.b.nevents; i++)
		if (w.b.events[i].activity != NULL)
			learning_activity_ok(w.b.events[i].activity, i, &p);
	problems_reset(&p);
	rc = ingest_copy_events(&offline, HOST_ID, env->seq, w.b.events, w.b.nevents, NULL, &err);
	expect_failure(rc, "ingest_copy_events");
	/* 0 is right when no event has an acceptable activity: nothing to write. */
	ingest_copy_activity(&offline, HOST_ID, w.b.events, w.b.nevents, NULL, &p, &n, &err);
	if (p.count > 0 && p.first[0] == '\0')
		fuzz_fail("problems counted without a first one");
	problems_reset(&p);
	learning_store_deviations(&offline, HOST_ID, w.b.deviations, w.b.ndeviations, &p, &n, &err);
	problems_reset(&p);
	learning_store_deltas(&offline, HOST_ID, w.b.deltas, w.b.ndeltas, &p, &n, &m, &err);
	if (m != 0)
		fuzz_fail("learning_store_deltas wrote %zu entries without a database", m);
	problems_reset(&p);
	rc = store_ingest(&offline, HOST_ID, env->seq, &w.b, &res, &err);
	/* Only a gap report with no gaps (seq 0, nothing in it) has nothing to write. */
	if (env->seq != 0 || w.b.ngaps > 0 || w.b.nevents > 0 || w.b.ndeviations > 0 ||
	    w.b.ndeltas > 0)
		expect_failure(rc, "store_ingest");
	batch_decode_free(&w);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Vigil__Envelope *env, *aenv;

	struct envelope_head head;
	int peeked;

	if (size > LISTENER_MSG_MAX) /* refused unread (envelope_peek), never unpacked */
		return -1;
	/* The refusal path reads these without protobuf-c: it must never read out of bounds. */
	peeked = envelope_peek(data, size, &head);
	env = vigil__envelope__unpack(NULL, size, data);
	/* The listener unpacks into its worker's arena: it must take exactly what malloc does. */
	if (arena == NULL && (arena = pb_arena_new(8u << 20)) == NULL)
		fuzz_fail("no memory for the arena");
	aenv = vigil__envelope__unpack(pb_arena_allocator(arena), size, data);
	if ((env == NULL) != (aenv == NULL))
		fuzz_fail("protobuf-c %s the envelope with malloc, %s it in the arena",
			  env ? "took" : "refused", aenv ? "took" : "refused");
	if (env == NULL) {
		pb_arena_reset(arena);
		return 0;
	}
	/* What protobuf-c accepts, the peek reads the same way (later fields win in both). */
	if (peeked != 0 || head.seq != env->seq || head.incarnation != env->incarnation ||
	    head.body_case != (int)env->body_case) {
		fprintf(stderr,
			"envelope_peek disagrees with protobuf-c: rc %d seq %llu/%llu"
			" incarnation %llu/%llu body %d/%d\n",
			peeked, (unsigned long long)head.seq, (unsigned long long)env->seq,
			(unsigned long long)head.incarnation, (unsigned long long)env->incarnation,
			head.body_case, (int)env->body_case);
		abort();
	}
	switch (env->body_case) {
	case VIGIL__ENVELOPE__BODY_HELLO:
		fuzz_hello(env);
		break;
	case VIGIL__ENVELOPE__BODY_HEARTBEAT:
		fuzz_heartbeat(env);
		break;
	case VIGIL__ENVELOPE__BODY_BATCH:
		fuzz_batch(env, env->batch);
		break;
	case VIGIL__ENVELOPE__BODY_BATCH_LZ4: {
		/*
		 * Whatever the bytes, it decompresses within batch_size or says why
		 * not; as the listener does it, into the arena.
		 */
		const char *why;
		Vigil__Batch *b = batch_decode_lz4(aenv, arena, &why);
		if (b != NULL)
			fuzz_batch(env, b);
		else if (why == NULL && env->batch_size <= LISTENER_MSG_MAX)
			fuzz_fail("batch_decode_lz4 failed without saying why");
		break;
	}
	default:
		break;
	}
	vigil__envelope__free_unpacked(env, NULL);
	pb_arena_reset(arena);
	return 0;
}
