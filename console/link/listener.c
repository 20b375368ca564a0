/* SPDX-License-Identifier: Apache-2.0 */
#include "link/listener.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include <jansson.h>

#include "store/host_commands.h"
#include "store/ingest.h"
#include "log.h"
#include "tls.h"
#include "vigil.pb-c.h"
#include "link/batch_decode.h"

#define LABELS_MAX 32

struct listener {
	nng_socket sock;
	nng_listener nl;
	struct store **stores; /* one per worker: batches commit in parallel */
	int heartbeat_interval_ms;
	pthread_t workers[LISTENER_WORKERS];
	int nworkers;
};

/* Each worker thread's own database connection. */
static __thread struct store *worker_store;

struct listener *listener_bind(const char *url, nng_tls_config *tls, vigil_err *err)
{
	struct listener *l = calloc(1, sizeof(*l));
	int rv;

	if (l == NULL) {
		verr_set(err, -ENOMEM, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	if ((rv = nng_rep0_open(&l->sock)) != 0) {
		verr_set(err, -ENOMEM, "cannot open rep socket: %s", nng_strerror(rv));
		free(l);
		errno = ENOMEM;
		return NULL;
	}
	nng_socket_set_size(l->sock, NNG_OPT_RECVMAXSZ, LISTENER_MSG_MAX);
	if ((rv = nng_listener_create(&l->nl, l->sock, url)) != 0 ||
	    (rv = nng_listener_set_ptr(l->nl, NNG_OPT_TLS_CONFIG, tls)) != 0 ||
	    (rv = nng_listener_start(l->nl, 0)) != 0) {
		verr_set(err, rv == NNG_EADDRINUSE ? -EADDRINUSE : -EINVAL,
			 "cannot listen on %s: %s%s", url, nng_strerror(rv),
			 rv == NNG_EADDRINUSE ? " (another process has the port)" : "");
		nng_close(l->sock);
		free(l);
		errno = rv == NNG_EADDRINUSE ? EADDRINUSE : EINVAL;
		return NULL;
	}
	return l;
}

/* A reply carrying cmds (n of them, at most COMMANDS_PER_REPLY; may be NULL). */
static nng_msg *reply_cmds(uint64_t seq, Vigil__Reply__Status status, const char *error,
			   int heartbeat_interval_ms, const struct store_command *cmds, size_t n)
{
	Vigil__Reply r = VIGIL__REPLY__INIT;
	Vigil__Command pb[COMMANDS_PER_REPLY], *pp[COMMANDS_PER_REPLY];
	nng_msg *m;

	r.seq = seq;
	r.status = status;
	r.error = (char *)(error != NULL ? error : "");
	r.heartbeat_interval_ms = (uint32_t)heartbeat_interval_ms;
	for (size_t i = 0; i < n && i < COMMANDS_PER_REPLY; i++) {
		vigil__command__init(&pb[i]);
		pb[i].id = cmds[i].id;
		pb[i].kind = (char *)cmds[i].kind;
		pb[i].service = (char *)cmds[i].service;
		pp[i] = &pb[i];
		r.n_commands = i + 1;
	}
	r.commands = pp;
	if (nng_msg_alloc(&m, vigil__reply__get_packed_size(&r)) != 0)
		return NULL;
	vigil__reply__pack(&r, nng_msg_body(m));
	return m;
}

static nng_msg *reply_msg(uint64_t seq, Vigil__Reply__Status status, const char *error,
			  int heartbeat_interval_ms)
{
	return reply_cmds(seq, status, error, heartbeat_interval_ms, NULL, 0);
}

static Vigil__Reply__Status status_for(int rc)
{
	return rc == -EINVAL ? VIGIL__REPLY__STATUS__REFUSED : VIGIL__REPLY__STATUS__RETRY;
}

static nng_msg *handle_hello(struct listener *l, const char *host_id, const Vigil__Envelope *env)
{
	const Vigil__Hello *h = env->hello;
	struct store_label labels[LABELS_MAX];
	struct store_hello sh = {0};
	vigil_err err = {0};
	int rc;

	if (h->n_labels > LABELS_MAX)
		return reply_msg(env->seq, VIGIL__REPLY__STATUS__REFUSED, "too many labels",
				 l->heartbeat_interval_ms);
	for (size_t i = 0; i < h->n_labels; i++) {
		labels[i].key = h->labels[i]->key;
		labels[i].value = h->labels[i]->value;
	}
	sh.host_id = host_id;
	sh.hostname = h->hostname;
	sh.kernel = h->kernel;
	sh.os = h->os;
	sh.defender_version = h->defender_version;
	sh.bpf_status = h->bpf_status;
	sh.labels = labels;
	sh.nlabels = h->n_labels;
	rc = store_host_hello(worker_store, &sh, &err);
	if (rc < 0) {
		log_warn("hello from host %s not stored: %s", host_id, err.msg);
		return reply_msg(env->seq, status_for(rc), err.msg, l->heartbeat_interval_ms);
	}
	log_info("host %s (hostname %s, defender %s) registered", host_id, h->hostname,
		 h->defender_version);
	return reply_msg(env->seq, VIGIL__REPLY__STATUS__OK, NULL, l->heartbeat_interval_ms);
}

#define COUNTERS_MAX 64

/* A counter name from a defender: "<group>.<name>", lowercase, digits and '_'. */
static bool counter_name_ok(const char *name, const char **ret_dot)
{
	static const char *const groups[] = {"delivered", "drops", "filtered", "user",
					     "delivery",  "learn", "process"};
	const char *dot = strchr(name, '.');
	size_t glen, n = strlen(name);

	if (dot == NULL || n > 64)
		return false;
	glen = (size_t)(dot - name);
	bool group_ok = false;
	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
		if (strlen(groups[i]) == glen && strncmp(name, groups[i], glen) == 0)
			group_ok = true;
	if (!group_ok || dot[1] == '\0' ||
	    strspn(dot + 1, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(dot + 1))
		return false;
	*ret_dot = dot;
	return true;
}

/*
 * The heartbeat's counters as {"drops":{"ringbuf_full":0,...},...}; a new
 * string (free it) or NULL when there are none.  -EINVAL for bad names.
 */
static int counters_json(const Vigil__Heartbeat *hb, char **ret)
{
	json_t *root;

	*ret = NULL;
	if (hb->n_counters == 0)
		return 0;
	if (hb->n_counters > COUNTERS_MAX)
		return -EINVAL;
	root = json_object();
	for (size_t i = 0; i < hb->n_counters; i++) {
		const char *name = hb->counters[i]->name, *dot;
		char group[16];
		json_t *g;

		if (!counter_name_ok(name, &dot) || hb->counters[i]->value > (uint64_t)INT64_MAX) {
			json_decref(root);
			return -EINVAL;
		}
		snprintf(group, sizeof(group), "%.*s", (int)(dot - name), name);
		g = json_object_get(root, group);
		if (g == NULL) {
			g = json_object();
			json_object_set_new(root, group, g);
		}
		json_object_set_new(g, dot + 1, json_integer((json_int_t)hb->counters[i]->value));
	}
	*ret = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(root);
	return *ret != NULL ? 0 : -ENOMEM;
}

/*
 * The host's pending commands for the reply, after recording the ones it
 * says are done; how many were put in cmds.  A database error costs only
 * this exchange: the heartbeat is stored, the commands go with a later one
 * (the defender lists done commands until they stop coming).
 */
static size_t heartbeat_commands(const char *host_id, const Vigil__Heartbeat *hb,
				 struct store_command cmds[COMMANDS_PER_REPLY])
{
	vigil_err err = {0};
	size_t n = 0;

	if (store_commands_sync(worker_store, host_id, hb->commands_done, hb->n_commands_done, cmds,
				COMMANDS_PER_REPLY, &n, &err) < 0) {
		log_warn("commands for host %s not exchanged: %s", host_id, err.msg);
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		log_debug("command %llu (%s %s) sent to host %s", (unsigned long long)cmds[i].id,
			  cmds[i].kind, cmds[i].service, host_id);
	return n;
}

static nng_msg *handle_heartbeat(struct listener *l, const char *host_id,
				 const Vigil__Envelope *env)
{
	struct store_heartbeat hb = {.exec_count = env->heartbeat->exec_count};
	struct store_command cmds[COMMANDS_PER_REPLY];
	vigil_err err = {0};
	char *counters = NULL;
	size_t ncmds;
	int rc;

	if (counters_json(env->heartbeat, &counters) < 0)
		return reply_msg(env->seq, VIGIL__REPLY__STATUS__REFUSED,
				 "bad counters: at most 64, named group.name",
				 l->heartbeat_interval_ms);
	hb.capture_json = counters;
	rc = store_host_heartbeat(worker_store, host_id, &hb, &err);
	free(counters);

	if (rc == -ENOENT)
		return reply_msg(env->seq, VIGIL__REPLY__STATUS__HELLO_REQUIRED, NULL,
				 l->heartbeat_interval_ms);
	if (rc < 0) {
		log_warn("heartbeat from host %s not stored: %s", host_id, err.msg);
		return reply_msg(env->seq, status_for(rc), err.msg, l->heartbeat_interval_ms);
	}
	ncmds = heartbeat_commands(host_id, env->heartbeat, cmds);
	return reply_cmds(env->seq, VIGIL__REPLY__STATUS__OK, NULL, l->heartbeat_interval_ms, cmds,
			  ncmds);
}

/* A batch refused for good: the defender drops it, so an operator must hear of it. */
static void audit_refused(const char *host_id, const Vigil__Envelope *env, const char *why)
{
	vigil_err err = {0};

	log_warn("batch %llu from host %s refused for good: %s", (unsigned long long)env->seq,
		 host_id, why);
	if (env->seq != 0 &&
	    store_batch_refused(worker_store, host_id, env->incarnation, env->seq, why, &err) < 0)
		log_warn("cannot record the refused batch %llu of host %s: %s",
			 (unsigned long long)env->seq, host_id, err.msg);
}

static nng_msg *handle_batch(struct listener *l, const char *host_id, const Vigil__Envelope *env)
{
	struct batch_decode w;
	struct ingest_result res;
	vigil_err err = {0};
	const char *why = NULL;
	int rc;

	rc = batch_decode_pb(env->batch, &w, &why);
	if (rc < 0) {
		if (rc == -EINVAL)
			audit_refused(host_id, env, why);
		return reply_msg(env->seq,
				 rc == -EINVAL ? VIGIL__REPLY__STATUS__REFUSED
					       : VIGIL__REPLY__STATUS__RETRY,
				 why, l->heartbeat_interval_ms);
	}
	w.b.incarnation = env->incarnation;
	rc = store_ingest(worker_store, host_id, env->seq, &w.b, &res, &err);
	if (rc < 0) {
		if (rc == -EINVAL)
			audit_refused(host_id, env, err.msg);
		else
			log_warn("batch %llu from host %s not stored: %s",
				 (unsigned long long)env->seq, host_id, err.msg);
		batch_decode_free(&w);
		return reply_msg(env->seq, status_for(rc), err.msg, l->heartbeat_interval_ms);
	}
	if (res.new_stream)
		log_warn("host %s started a new delivery stream (%llu): its defender's state was"
			 " reset (audited as defender_reset)",
			 host_id, (unsigned long long)env->incarnation);
	if (res.refused > 0)
		log_warn("batch %llu from host %s: %zu malformed event(s) left out (audited)",
			 (unsigned long long)env->seq, host_id, res.refused);
	if (res.malformed > 0)
		log_warn("batch %llu from host %s: %zu malformed learning item(s) left out"
			 " (audited as malformed_input)",
			 (unsigned long long)env->seq, host_id, res.malformed);
	for (size_t i = 0; i < w.b.ngaps; i++)
		log_warn("host %s reports %llu batch(es) lost (seq %llu..%llu, %s)", host_id,
			 (unsigned long long)w.gaps[i].count,
			 (unsigned long long)w.gaps[i].first_seq,
			 (unsigned long long)w.gaps[i].last_seq, w.gaps[i].reason);
	batch_decode_free(&w);
	return reply_msg(env->seq, VIGIL__REPLY__STATUS__OK, NULL, l->heartbeat_interval_ms);
}

/* Answer one request; returns the reply (NULL only when out of memory). */
static nng_msg *handle(struct listener *l, nng_msg *req)
{
	char host_id[128];
	Vigil__Envelope *env;
	nng_msg *rep;
	int rc;

	rc = tls_pipe_peer_cn(nng_msg_get_pipe(req), host_id, sizeof(host_id));
	if (rc == -ENOTCONN) {
		/*
		 * The connection closed while the request waited for a worker (a
		 * storm, a redial): no answer can reach it, and the defender sends
		 * the request again on its next connection.  Not a refusal: a
		 * refused batch would be dropped for good.
		 */
		log_debug("request on a connection that has closed since: not answered");
		return reply_msg(0, VIGIL__REPLY__STATUS__RETRY, "connection closed",
				 l->heartbeat_interval_ms);
	}
	if (rc < 0) {
		/* Cannot happen with auth REQUIRED; refuse rather than guess an identity. */
		log_warn("request from a peer without a verified certificate identity refused");
		return reply_msg(0, VIGIL__REPLY__STATUS__REFUSED, "no verified identity",
				 l->heartbeat_interval_ms);
	}
	env = vigil__envelope__unpack(NULL, nng_msg_len(req), nng_msg_body(req));
	if (env == NULL) {
		log_warn("malformed message from host %s refused", host_id);
		return reply_msg(0, VIGIL__REPLY__STATUS__REFUSED, "malformed message",
				 l->heartbeat_interval_ms);
	}
	switch (env->body_case) {
	case VIGIL__ENVELOPE__BODY_HELLO:
		rep = handle_hello(l, host_id, env);
		break;
	case VIGIL__ENVELOPE__BODY_HEARTBEAT:
		rep = handle_heartbeat(l, host_id, env);
		break;
	case VIGIL__ENVELOPE__BODY_BATCH:
		rep = handle_batch(l, host_id, env);
		break;
	default:
		rep = reply_msg(env->seq, VIGIL__REPLY__STATUS__REFUSED, "unknown message kind",
				l->heartbeat_interval_ms);
	}
	vigil__envelope__free_unpacked(env, NULL);
	return rep;
}

struct worker_arg {
	struct listener *l;
	struct store *st;
};

static void *worker_main(void *arg)
{
	struct worker_arg wa = *(struct worker_arg *)arg;
	struct listener *l = wa.l;
	nng_ctx ctx;
	nng_aio *aio;

	free(arg);
	worker_store = wa.st;

	if (nng_ctx_open(&ctx, l->sock) != 0 || nng_aio_alloc(&aio, NULL, NULL) != 0) {
		log_error("listener worker cannot start: out of memory");
		return NULL;
	}
	for (;;) {
		nng_msg *req, *rep;
		int rv;

		nng_ctx_recv(ctx, aio);
		nng_aio_wait(aio);
		if ((rv = nng_aio_result(aio)) != 0) {
			if (rv == NNG_ECLOSED)
				break;
			continue;
		}
		req = nng_aio_get_msg(aio);
		rep = handle(l, req);
		nng_msg_free(req);
		if (rep == NULL)
			continue;
		nng_aio_set_msg(aio, rep);
		nng_ctx_send(ctx, aio);
		nng_aio_wait(aio);
		if ((rv = nng_aio_result(aio)) != 0) {
			nng_msg_free(rep);
			if (rv == NNG_ECLOSED)
				break;
		}
	}
	nng_aio_free(aio);
	nng_ctx_close(ctx);
	return NULL;
}

int listener_serve(struct listener *l, struct store **stores, int nstores,
		   int heartbeat_interval_ms, vigil_err *err)
{
	l->stores = stores;
	l->heartbeat_interval_ms = heartbeat_interval_ms;
	for (int i = 0; i < LISTENER_WORKERS; i++) {
		struct worker_arg *wa = malloc(sizeof(*wa));
		int rc;

		if (wa == NULL)
			return verr_set(err, -ENOMEM, "out of memory");
		*wa = (struct worker_arg){.l = l, .st = stores[i % nstores]};
		rc = pthread_create(&l->workers[i], NULL, worker_main, wa);
		if (rc != 0) {
			free(wa);
			return verr_set(err, -rc, "cannot start listener thread: %s", strerror(rc));
		}
		l->nworkers++;
	}
	return 0;
}

void listener_stop(struct listener *l)
{
	if (l == NULL)
		return;
	nng_close(l->sock);
	for (int i = 0; i < l->nworkers; i++)
		pthread_join(l->workers[i], NULL);
	free(l);
}
