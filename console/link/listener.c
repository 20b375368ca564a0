/* SPDX-License-Identifier: Apache-2.0 */
#include "link/listener.h"
#include "link/watch.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include <jansson.h>

#include "store/host_commands.h"
#include "store/host_rules.h"
#include "store/ingest.h"
#include "store/storage_state.h"
#include "log.h"
#include "tls.h"
#include "utf8.h"
#include "vigil.pb-c.h"
#include "link/batch_decode.h"
#include "link/pb_arena.h"
#include "link/conn_limit.h"
#include "link/envelope_peek.h"
#include "link/renew.h"
#include "link/revocation.h"
#include "link/rules_push.h"

#define LABELS_MAX 32

/* When the last line of a kind went out, and how many went unsaid since. */
struct log_rate {
	uint64_t last_ms;
	uint64_t unsaid;
};

struct listener {
	nng_socket sock;
	nng_listener nl;
	struct store **stores;		/* one per worker: batches commit in parallel */
	struct rules_push *rules;	/* NULL: rule sets are not sent */
	struct revocation *revoked;	/* NULL: no revocation checks */
	const struct link_renew *renew; /* NULL: renewals refused */
	struct watchers *watch;		/* held rule-set watches */
	int heartbeat_interval_ms;
	pthread_t workers[LISTENER_WORKERS];
	int nworkers;

	/* Established connections, from nng's pipe callbacks (locks itself). */
	struct listener_opts opts;
	struct conn_limit *conns;
	atomic_uint_fast64_t accepted, oversize;
	atomic_uint_fast64_t refused[LISTENER_REFUSED_NREASONS];
	atomic_uint idle_ms; /* a connection silent this long gives way at its certificate's cap */
	/* Log rates (under log_lock), one for refusals and one for connections given up. */
	pthread_mutex_t log_lock;
	struct log_rate refusals, evictions;
};

/* Each worker thread's own database connection. */
static __thread struct store *worker_store;
/*
 * And one for heartbeats (last seen, counters): soft state, committed
 * without waiting for the WAL to reach the disk (synchronous_commit off),
 * so a thousand defenders' heartbeats do not cost a thousand fsyncs a
 * second.  A server crash may lose the last fraction of a second of them;
 * the next heartbeats say the same again.
 */
static __thread struct store *worker_soft_store;
/*
 * The worker's request memory: what it unpacks, given back once the request
 * is answered (pb_arena.h); NULL (malloc, each piece freed) when it could
 * not be made.  Keeps up to 8 MiB: a batch of 2,000 events unpacks to 2-3.
 */
static __thread struct pb_arena *worker_arena;
#define WORKER_ARENA_KEEP (8u << 20)

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const char *refusal_text(enum listener_refusal why)
{
	switch (why) {
	case LISTENER_REFUSED_PER_CERT:
		return "over the per-certificate cap";
	case LISTENER_REFUSED_TOTAL:
		return "over the total cap";
	case LISTENER_REFUSED_NO_IDENTITY:
		return "no verified certificate identity";
	default:
		return "out of memory";
	}
}

/*
 * Whether a line of the kind r counts may go out now: at most one per
 * LISTENER_REFUSAL_LOG_MS (a flood must not flood the log too; the next
 * line and the stop summary carry the counts).  *ret_unsaid gets how many
 * went unsaid since the last line.
 */
static bool log_due(struct listener *l, struct log_rate *r, uint64_t *ret_unsaid)
{
	uint64_t now = mono_ms();
	bool say;

	pthread_mutex_lock(&l->log_lock);
	say = r->last_ms == 0 || now - r->last_ms >= LISTENER_REFUSAL_LOG_MS;
	*ret_unsaid = r->unsaid;
	if (say) {
		r->last_ms = now;
		r->unsaid = 0;
	} else {
		r->unsaid++;
	}
	pthread_mutex_unlock(&l->log_lock);
	return say;
}

/* cn as it may be logged: it comes from a host's certificate. */
static void cn_escaped(const char *cn, char *buf, size_t len)
{
	if (cn != NULL)
		utf8_escape_controls(cn, strlen(cn), buf, len);
	else
		snprintf(buf, len, "(none)");
}

/*
 * Close connection p as it arrives, count it, and log it if due.  cn is the
 * certificate's CN or NULL; conns what the certificate (per-certificate cap)
 * or the console (total cap) had established.
 */
static void refuse(struct listener *l, nng_pipe p, enum listener_refusal why, const char *cn,
		   unsigned conns)
{
	char who[CONN_LIMIT_KEY_MAX * 4 + 16];
	uint64_t unsaid;

	nng_pipe_close(p);
	atomic_fetch_add(&l->refused[why], 1);
	if (!log_due(l, &l->refusals, &unsaid))
		return;
	cn_escaped(cn, who, sizeof(who));
	log_warn("link: refused a connection of certificate %s: %s (%u established);"
		 " %" PRIu64 " more refused since the last such line; since start: %" PRIu64
		 " over the per-certificate cap (%u), %" PRIu64 " over the total cap (%u), %" PRIu64
		 " without a verified identity, %" PRIu64 " out of memory",
		 who, refusal_text(why), conns, unsaid,
		 (uint64_t)atomic_load(&l->refused[LISTENER_REFUSED_PER_CERT]),
		 l->opts.conns_per_cert, (uint64_t)atomic_load(&l->refused[LISTENER_REFUSED_TOTAL]),
		 l->opts.conns_max,
		 (uint64_t)atomic_load(&l->refused[LISTENER_REFUSED_NO_IDENTITY]),
		 (uint64_t)atomic_load(&l->refused[LISTENER_REFUSED_NO_MEMORY]));
}

/* Connection id gave way to a newcomer of certificate cn: close it, log it if due. */
static void evict(struct listener *l, uint32_t id, const char *cn)
{
	nng_pipe p = NNG_PIPE_INITIALIZER;
	char who[CONN_LIMIT_KEY_MAX * 4 + 16];
	struct conn_limit_counts c;
	uint64_t unsaid;

	p.id = id;
	nng_pipe_close(p);
	if (!log_due(l, &l->evictions, &unsaid))
		return;
	cn_escaped(cn, who, sizeof(who));
	conn_limit_counts(l->conns, &c);
	log_warn("link: certificate %s is at its cap of %u connections: closed the one silent"
		 " longest (%u s or more) for the new one; %" PRIu64 " more given up since the last"
		 " such line, %" PRIu64 " since start",
		 who, l->opts.conns_per_cert, atomic_load(&l->idle_ms) / 1000, unsaid, c.evicted);
}

/*
 * nng's pipe events: count a connection as it arrives (ADD_PRE, before it
 * can send anything: closing it there is how nng lets a socket refuse a
 * pipe) and uncount it when it goes (REM_POST).  nng 1.5.2 delivers
 * REM_POST for every pipe that saw ADD_PRE, refused ones included, and
 * promises no order between the two when a pipe closes early (socket
 * close): conn_limit handles both (docs/link-analysis.md section 4).
 */
static void on_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct listener *l = arg;
	char cn[CONN_LIMIT_KEY_MAX];
	struct tls_peer peer;
	struct conn_limit_counts c;
	uint32_t evicted = 0;
	unsigned n = 0;
	int rc;

	if (ev == NNG_PIPE_EV_REM_POST) {
		conn_limit_remove(l->conns, (uint32_t)nng_pipe_id(p));
		if (l->revoked != NULL)
			revocation_untrack(l->revoked, (uint32_t)nng_pipe_id(p));
		return;
	}
	rc = tls_pipe_peer(p, &peer);
	if (rc == -ENOTCONN)
		return; /* closed already: its REM_POST finds nothing counted */
	if (rc < 0) {
		refuse(l, p, LISTENER_REFUSED_NO_IDENTITY, NULL, 0);
		return;
	}
	snprintf(cn, sizeof(cn), "%s", peer.cn);
	/* Revoked since its handshake (which checks too): closed before it can send. */
	if (l->revoked != NULL && revocation_refused(l->revoked, peer.cn, peer.serial)) {
		nng_pipe_close(p);
		revocation_count_request(l->revoked);
		return;
	}
	switch (conn_limit_add(l->conns, (uint32_t)nng_pipe_id(p), cn, mono_ms(),
			       atomic_load(&l->idle_ms), &n, &evicted)) {
	case CONN_LIMIT_ADMITTED:
		atomic_fetch_add(&l->accepted, 1);
		if (evicted != 0)
			evict(l, evicted, cn);
		/* Tracked, so that a revocation can close it; untrackable: refused. */
		if (l->revoked != NULL &&
		    revocation_track(l->revoked, (uint32_t)nng_pipe_id(p)) < 0)
			refuse(l, p, LISTENER_REFUSED_NO_MEMORY, cn, n);
		break;
	case CONN_LIMIT_PER_KEY:
		refuse(l, p, LISTENER_REFUSED_PER_CERT, cn, n);
		break;
	case CONN_LIMIT_TOTAL:
		conn_limit_counts(l->conns, &c);
		refuse(l, p, LISTENER_REFUSED_TOTAL, cn, c.conns);
		break;
	case CONN_LIMIT_NOMEM:
		refuse(l, p, LISTENER_REFUSED_NO_MEMORY, cn, n);
		break;
	case CONN_LIMIT_GONE:
		break;
	}
}

static void listener_free(struct listener *l)
{
	conn_limit_free(l->conns);
	pthread_mutex_destroy(&l->log_lock);
	free(l);
}

struct listener *listener_bind(const char *url, nng_tls_config *tls, vigil_err *err)
{
	return listener_bind_opts(url, tls, NULL, err);
}

struct listener *listener_bind_opts(const char *url, nng_tls_config *tls,
				    const struct listener_opts *opts, vigil_err *err)
{
	struct listener_opts o = opts != NULL ? *opts : (struct listener_opts){0};
	struct listener *l;
	int rv;

	if (o.conns_per_cert == 0)
		o.conns_per_cert = LISTENER_CONNS_PER_CERT_DEFAULT;
	if (o.conns_max == 0)
		o.conns_max = LISTENER_CONNS_MAX_DEFAULT;
	if (o.conns_per_cert > LISTENER_CONNS_PER_CERT_MAX ||
	    o.conns_max > LISTENER_CONNS_MAX_MAX || o.conns_per_cert > o.conns_max) {
		verr_set(err, -EINVAL,
			 "link connection caps out of range: %u per certificate (1..%d), %u in all"
			 " (1..%d, at least the per-certificate cap)",
			 o.conns_per_cert, LISTENER_CONNS_PER_CERT_MAX, o.conns_max,
			 LISTENER_CONNS_MAX_MAX);
		errno = EINVAL;
		return NULL;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL ||
	    (l->conns = conn_limit_new(o.conns_per_cert, o.conns_max)) == NULL) {
		free(l);
		verr_set(err, -ENOMEM, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	l->opts = o;
	atomic_init(&l->idle_ms, LISTENER_IDLE_MIN_MS);
	pthread_mutex_init(&l->log_lock, NULL);
	if ((rv = nng_rep0_open(&l->sock)) != 0) {
		verr_set(err, -ENOMEM, "cannot open rep socket: %s", nng_strerror(rv));
		listener_free(l);
		errno = ENOMEM;
		return NULL;
	}
	/*
	 * Up to the largest batch any defender can have spooled, so that one
	 * over what we handle gets an answer instead of a cut connection.
	 */
	nng_socket_set_size(l->sock, NNG_OPT_RECVMAXSZ, LISTENER_RECV_MAX);
	/* Before the listener starts: no connection may escape the count. */
	if ((rv = nng_pipe_notify(l->sock, NNG_PIPE_EV_ADD_PRE, on_pipe, l)) != 0 ||
	    (rv = nng_pipe_notify(l->sock, NNG_PIPE_EV_REM_POST, on_pipe, l)) != 0) {
		verr_set(err, -ENOMEM, "cannot watch the link's connections: %s", nng_strerror(rv));
		nng_close(l->sock);
		listener_free(l);
		errno = ENOMEM;
		return NULL;
	}
	/*
	 * Keepalive: the kernel finds out, in about two hours with its default
	 * timers, that a silent peer is gone (a crashed host, a cut that
	 * outlasted its FIN), and frees the descriptor and the slot.
	 */
	if ((rv = nng_listener_create(&l->nl, l->sock, url)) != 0 ||
	    (rv = nng_listener_set_ptr(l->nl, NNG_OPT_TLS_CONFIG, tls)) != 0 ||
	    (rv = nng_listener_set_bool(l->nl, NNG_OPT_TCP_KEEPALIVE, true)) != 0 ||
	    (rv = nng_listener_start(l->nl, 0)) != 0) {
		verr_set(err, rv == NNG_EADDRINUSE ? -EADDRINUSE : -EINVAL,
			 "cannot listen on %s: %s%s", url, nng_strerror(rv),
			 rv == NNG_EADDRINUSE ? " (another process has the port)" : "");
		nng_close(l->sock);
		listener_free(l);
		errno = rv == NNG_EADDRINUSE ? EADDRINUSE : EINVAL;
		return NULL;
	}
	return l;
}

/*
 * A reply carrying cmds (n of them, at most COMMANDS_PER_REPLY; may be NULL)
 * and set (NULL: none), the rule set compiled for the host.
 */
static nng_msg *reply_full(uint64_t seq, Vigil__Reply__Status status, const char *error,
			   int heartbeat_interval_ms, const struct store_command *cmds, size_t n,
			   const struct rules_compiled *set)
{
	Vigil__Reply r = VIGIL__REPLY__INIT;
	Vigil__Command pb[COMMANDS_PER_REPLY], *pp[COMMANDS_PER_REPLY];
	Vigil__RuleSet rs = VIGIL__RULE_SET__INIT;
	nng_msg *m;

	r.seq = seq;
	r.status = status;
	r.error = (char *)(error != NULL ? error : "");
	r.heartbeat_interval_ms = (uint32_t)heartbeat_interval_ms;
	r.batch_lz4 = true;
	for (size_t i = 0; i < n && i < COMMANDS_PER_REPLY; i++) {
		vigil__command__init(&pb[i]);
		pb[i].id = cmds[i].id;
		pb[i].kind = (char *)cmds[i].kind;
		pb[i].service = (char *)cmds[i].service;
		pb[i].exe = (char *)cmds[i].exe;
		pb[i].entry_kind = (char *)cmds[i].entry_kind;
		pb[i].pattern = (char *)cmds[i].pattern;
		pp[i] = &pb[i];
		r.n_commands = i + 1;
	}
	r.commands = pp;
	if (set != NULL) {
		rs.version = (uint64_t)set->version;
		rs.total = (uint32_t)set->total;
		rs.n_rules = set->n;
		rs.rules = (char **)set->texts;
		r.rules = &rs;
	}
	if (nng_msg_alloc(&m, vigil__reply__get_packed_size(&r)) != 0)
		return NULL;
	vigil__reply__pack(&r, nng_msg_body(m));
	return m;
}

static nng_msg *reply_cmds(uint64_t seq, Vigil__Reply__Status status, const char *error,
			   int heartbeat_interval_ms, const struct store_command *cmds, size_t n)
{
	return reply_full(seq, status, error, heartbeat_interval_ms, cmds, n, NULL);
}

static nng_msg *reply_msg(uint64_t seq, Vigil__Reply__Status status, const char *error,
			  int heartbeat_interval_ms)
{
	return reply_cmds(seq, status, error, heartbeat_interval_ms, NULL, 0);
}

/*
 * The host's labels, from the JSON object text the store keeps, into
 * labels (at most LABELS_MAX; strings point into *ret_obj, which the caller
 * json_decref's).  How many; 0 when the text is not an object.
 */
/*
 * A set is refused to its host when its reply would be over what a
 * defender receives (VIGIL_MSG_MAX): the rest of a reply (16 commands,
 * error, fields) stays under this reserve.
 */
#define RULES_REPLY_RESERVE (16 * 1024)

/*
 * The rule-set exchange of a hello or heartbeat whose defender said rs
 * (NULL: a defender that does not take rule sets): record what it holds,
 * and when it holds an older version than the current one, compile the
 * current set for it into *out and return true (rules_compiled_fini it).
 * Nothing is sent when the host (or the console) refused the current
 * version already: the same set would be refused again.  A database error
 * costs only this exchange (the next heartbeat tries again).
 */
/*
 * What rs says the host can enforce, as the store's structs pointing into
 * rs, into *r.  A list over its limit goes with a NULL array (the store
 * refuses it); *ret_shortfalls is what to free.  -ENOMEM.
 */
static int rules_report_lists(const Vigil__RulesState *rs, struct store_rules_report *r,
			      struct store_enforce_backend backends[HOST_RULES_BACKENDS_MAX],
			      struct store_rule_shortfall **ret_shortfalls)
{
	struct store_rule_shortfall *sf = NULL;

	*ret_shortfalls = NULL;
	r->nbackends = rs->n_backends;
	r->nshortfalls = rs->n_shortfalls;
	if (rs->n_backends <= HOST_RULES_BACKENDS_MAX) {
		for (size_t i = 0; i < rs->n_backends; i++)
			backends[i] =
			    (struct store_enforce_backend){.name = rs->backends[i]->name,
							   .available = rs->backends[i]->available,
							   .detail = rs->backends[i]->detail};
		r->backends = backends;
	}
	if (rs->n_shortfalls > 0 && rs->n_shortfalls <= HOST_RULES_SHORTFALLS_MAX) {
		if ((sf = calloc(rs->n_shortfalls, sizeof(*sf))) == NULL)
			return -ENOMEM;
		for (size_t i = 0; i < rs->n_shortfalls; i++)
			sf[i] = (struct store_rule_shortfall){.rule = rs->shortfalls[i]->rule,
							      .section = rs->shortfalls[i]->section,
							      .wanted = rs->shortfalls[i]->wanted,
							      .applied = rs->shortfalls[i]->applied,
							      .why = rs->shortfalls[i]->why};
		r->shortfalls = sf;
	}
	*ret_shortfalls = sf;
	return 0;
}

/*
 * The rule-set exchange of a hello or heartbeat whose defender said rs
 * (NULL: a defender that does not take rule sets): record what it holds
 * and can enforce, and when it holds an older version than the current
 * one, compile the current set for it into *out and return true
 * (rules_compiled_fini it).  Nothing is sent when the host (or the console)
 * refused the current version already: the same set would be refused
 * again.  A database error costs only this exchange (the next heartbeat
 * tries again).
 */
static bool rules_exchange(struct listener *l, const char *host_id, const Vigil__RulesState *rs,
			   struct rules_compiled *out, struct watch_hold *hold)
{
	struct store_rules_report rep;
	struct store_enforce_backend backends[HOST_RULES_BACKENDS_MAX];
	struct store_rule_shortfall *shortfalls = NULL;
	struct store_label labels[LABELS_MAX];
	struct store_host_rules hr = {0};
	Vigil__RuleSet pb = VIGIL__RULE_SET__INIT;
	vigil_err err = {0};
	json_t *lobj = NULL;
	int64_t current;
	size_t nlabels, size;
	bool is_new = false;
	int rc;

	if (l->rules == NULL || rs == NULL || rs->protocol == 0)
		return false;
	rep = (struct store_rules_report){.protocol = rs->protocol,
					  .version = rs->version,
					  .refused_version = rs->refused_version,
					  .refused_reason = rs->refused_reason};
	if (rules_report_lists(rs, &rep, backends, &shortfalls) < 0) {
		log_warn("rule-set state of host %s not recorded: out of memory", host_id);
		return false;
	}
	rc = store_host_rules_report(worker_store, host_id, &rep, &hr, &err);
	free(shortfalls);
	if (rc < 0) {
		if (err.code != -ENOENT)
			log_warn("rule-set state of host %s not recorded: %s", host_id, err.msg);
		if (hold != NULL)
			hold->held = err.code == -ENOENT ? -ENOENT : -EAGAIN;
		return false;
	}
	if (hold != NULL) {
		hold->held = (int64_t)rs->version;
		hold->refused = hr.refused_version;
		hold->labels_json = hr.labels_json != NULL ? strdup(hr.labels_json) : NULL;
	}
	if (hr.new_problem[0] != '\0')
		log_warn("rule-set state of host %s: %s (audited as malformed_input)", host_id,
			 hr.new_problem);
	current = rules_push_version(l->rules);
	if ((int64_t)rs->version >= current || hr.refused_version == current) {
		free(hr.labels_json);
		return false;
	}
	nlabels = link_labels_from_json(hr.labels_json, labels, LABELS_MAX, &lobj);
	free(hr.labels_json);
	if (rules_push_compile(l->rules, host_id, labels, nlabels, out) < 0) {
		json_decref(lobj);
		log_warn("rule set for host %s not compiled: out of memory", host_id);
		return false;
	}
	json_decref(lobj);
	pb.version = (uint64_t)out->version;
	pb.total = (uint32_t)out->total;
	pb.n_rules = out->n;
	pb.rules = (char **)out->texts;
	size = vigil__rule_set__get_packed_size(&pb);
	if (size > VIGIL_MSG_MAX - RULES_REPLY_RESERVE) {
		char why[256];

		snprintf(why, sizeof(why),
			 "the rule set for this host is %zu bytes (%zu rules), over the %d bytes a"
			 " reply may carry",
			 size, out->n, VIGIL_MSG_MAX - RULES_REPLY_RESERVE);
		if (store_host_rules_refuse(worker_store, host_id, out->version, why, &is_new,
					    &err) < 0)
			log_warn("refusal of rule set %" PRId64 " to host %s not recorded: %s",
				 out->version, host_id, err.msg);
		else if (is_new)
			log_warn("rule set version %" PRId64 " not sent to host %s: %s",
				 out->version, host_id, why);
		rules_compiled_fini(out);
		return false;
	}
	log_debug("rule set version %" PRId64 " (%zu of %zu rules) sent to host %s (it holds %llu)",
		  out->version, out->n, out->total, host_id, (unsigned long long)rs->version);
	return true;
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
	log_info("host %s (hostname %s, defender %s, rule set %llu) registered", host_id,
		 h->hostname, h->defender_version,
		 (unsigned long long)(h->rules != NULL ? h->rules->version : 0));
	struct rules_compiled set;
	bool with_set = rules_exchange(l, host_id, h->rules, &set, NULL);
	nng_msg *m = reply_full(env->seq, VIGIL__REPLY__STATUS__OK, NULL, l->heartbeat_interval_ms,
				NULL, 0, with_set ? &set : NULL);
	if (with_set)
		rules_compiled_fini(&set);
	return m;
}

/* A defender sends about 60 today; newer ones may send more, and their heartbeats must pass. */
#define COUNTERS_MAX 128

/* A counter name from a defender: "<group>.<name>", lowercase, digits and '_'. */
static bool counter_name_ok(const char *name, const char **ret_dot)
{
	static const char *const groups[] = {"delivered", "drops", "filtered", "user",
					     "delivery",  "learn", "process",  "enforce"};
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
	rc = store_host_heartbeat(worker_soft_store, host_id, &hb, &err);
	free(counters);

	if (rc == -ENOENT)
		return reply_msg(env->seq, VIGIL__REPLY__STATUS__HELLO_REQUIRED, NULL,
				 l->heartbeat_interval_ms);
	if (rc < 0) {
		log_warn("heartbeat from host %s not stored: %s", host_id, err.msg);
		return reply_msg(env->seq, status_for(rc), err.msg, l->heartbeat_interval_ms);
	}
	ncmds = heartbeat_commands(host_id, env->heartbeat, cmds);
	struct rules_compiled set;
	bool with_set = rules_exchange(l, host_id, env->heartbeat->rules, &set, NULL);
	nng_msg *m = reply_full(env->seq, VIGIL__REPLY__STATUS__OK, NULL, l->heartbeat_interval_ms,
				cmds, ncmds, with_set ? &set : NULL);
	if (with_set)
		rules_compiled_fini(&set);
	return m;
}

/*
 * A rule-set watch: what the defender holds is recorded (its
 * acknowledgement); a newer set goes back at once, else the request is
 * parked (NULL, with *hold filled) until there is one.
 */
static nng_msg *handle_watch(struct listener *l, const char *host_id, const Vigil__Envelope *env,
			     struct watch_hold *hold)
{
	const Vigil__RulesState *rs = env->watch->rules;
	struct rules_compiled set;
	nng_msg *m;

	if (rs == NULL || rs->protocol == 0)
		return reply_msg(env->seq, VIGIL__REPLY__STATUS__REFUSED,
				 "a watch says what the defender holds (rules, protocol 1)",
				 l->heartbeat_interval_ms);
	/* Out of range, it would read as negative and wake the watch at every check. */
	if (rs->version > (uint64_t)INT64_MAX)
		return reply_msg(env->seq, VIGIL__REPLY__STATUS__REFUSED,
				 "the watch names a rule-set version out of range",
				 l->heartbeat_interval_ms);
	memset(hold, 0, sizeof(*hold));
	if (l->rules != NULL && rules_exchange(l, host_id, rs, &set, hold)) {
		free(hold->labels_json);
		hold->labels_json = NULL;
		m = reply_full(env->seq, VIGIL__REPLY__STATUS__OK, NULL, l->heartbeat_interval_ms,
			       NULL, 0, &set);
		rules_compiled_fini(&set);
		return m;
	}
	if (hold->held == -ENOENT)
		return reply_msg(env->seq, VIGIL__REPLY__STATUS__HELLO_REQUIRED, NULL,
				 l->heartbeat_interval_ms);
	if (hold->held < 0)
		return reply_msg(env->seq, VIGIL__REPLY__STATUS__RETRY, "database unavailable",
				 l->heartbeat_interval_ms);
	snprintf(hold->host_id, sizeof(hold->host_id), "%s", host_id);
	hold->seq = env->seq;
	if (l->rules == NULL)
		hold->held = (int64_t)rs->version;
	return NULL;
}

/* The listener's answer to a watch, for the watch thread. */
static nng_msg *watch_reply(uint64_t seq, const struct rules_compiled *set, void *ctx)
{
	struct listener *l = ctx;

	return reply_full(seq, VIGIL__REPLY__STATUS__OK, NULL, l->heartbeat_interval_ms, NULL, 0,
			  set);
}

/* A batch refused for good: the defender drops it, so an operator must hear of it. */
static void audit_refused(const char *host_id, uint64_t incarnation, uint64_t seq, const char *why)
{
	vigil_err err = {0};

	log_warn("batch %llu from host %s refused for good: %s", (unsigned long long)seq, host_id,
		 why);
	if (seq != 0 && store_batch_refused(worker_store, host_id, incarnation, seq, why, &err) < 0)
		log_warn("cannot record the refused batch %llu of host %s: %s",
			 (unsigned long long)seq, host_id, err.msg);
}

static nng_msg *handle_batch(struct listener *l, const char *host_id, const Vigil__Envelope *env,
			     const Vigil__Batch *batch)
{
	struct batch_decode w;
	struct ingest_result res;
	vigil_err err = {0};
	const char *why = NULL;
	int rc;

	rc = batch_decode_pb(batch, &w, &why);
	if (rc < 0) {
		if (rc == -EINVAL)
			audit_refused(host_id, env->incarnation, env->seq, why);
		return reply_msg(env->seq,
				 rc == -EINVAL ? VIGIL__REPLY__STATUS__REFUSED
					       : VIGIL__REPLY__STATUS__RETRY,
				 why, l->heartbeat_interval_ms);
	}
	w.b.incarnation = env->incarnation;
	rc = store_ingest(worker_store, host_id, env->seq, &w.b, &res, &err);
	if (rc < 0) {
		if (rc == -EINVAL) {
			audit_refused(host_id, env->incarnation, env->seq, err.msg);
		} else if (storage_state_is_full()) {
			/* The sweeper says so once; a busy fleet would repeat it per batch. */
			storage_state_refused();
			log_debug("batch %llu from host %s not stored: %s",
				  (unsigned long long)env->seq, host_id, err.msg);
		} else {
			log_warn("batch %llu from host %s not stored: %s",
				 (unsigned long long)env->seq, host_id, err.msg);
		}
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

/* A batch that came compressed (Envelope.batch_lz4): decompressed, then as any other. */
static nng_msg *handle_batch_lz4(struct listener *l, const char *host_id,
				 const Vigil__Envelope *env)
{
	const char *why;
	Vigil__Batch *b = batch_decode_lz4(env, worker_arena, &why);
	nng_msg *rep;

	if (b == NULL) {
		if (why != NULL)
			audit_refused(host_id, env->incarnation, env->seq, why);
		return reply_msg(env->seq,
				 why != NULL ? VIGIL__REPLY__STATUS__REFUSED
					     : VIGIL__REPLY__STATUS__RETRY,
				 why != NULL ? why : "out of memory", l->heartbeat_interval_ms);
	}
	rep = handle_batch(l, host_id, env, b);
	if (worker_arena == NULL)
		vigil__batch__free_unpacked(b, NULL);
	return rep;
}

/*
 * A request over LISTENER_MSG_MAX (a defender of another version, whose
 * limit is larger): refused with both sizes, read from the Envelope's
 * top-level fields only.  A batch is audited: its defender drops it (and
 * reports the gap) instead of resending it for ever.
 */
static nng_msg *handle_oversize(struct listener *l, const char *host_id, nng_msg *req)
{
	size_t len = nng_msg_len(req);
	struct envelope_head h = {0};
	char why[96];

	atomic_fetch_add(&l->oversize, 1);
	if (envelope_peek(nng_msg_body(req), len, &h) < 0)
		h = (struct envelope_head){0}; /* refused all the same, without a seq */
	bool is_batch = h.body_case == VIGIL__ENVELOPE__BODY_BATCH ||
			h.body_case == VIGIL__ENVELOPE__BODY_BATCH_LZ4;
	snprintf(why, sizeof(why), "%s too large (%zu > %d bytes)", is_batch ? "batch" : "message",
		 len, LISTENER_MSG_MAX);
	if (is_batch)
		audit_refused(host_id, h.incarnation, h.seq, why);
	else
		log_warn("message %llu from host %s refused: %s", (unsigned long long)h.seq,
			 host_id, why);
	return reply_msg(h.seq, VIGIL__REPLY__STATUS__REFUSED, why, l->heartbeat_interval_ms);
}

/*
 * Answer one request; returns the reply (NULL when out of memory, and for a
 * revoked certificate's request: its connection is closed instead).
 */
static nng_msg *handle(struct listener *l, nng_msg *req, struct watch_hold *hold)
{
	char host_id[128];
	struct tls_peer peer;
	Vigil__Envelope *env;
	nng_msg *rep;
	int rc;

	rc = tls_pipe_peer(nng_msg_get_pipe(req), &peer);
	if (rc == 0)
		snprintf(host_id, sizeof(host_id), "%s", peer.cn);
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
	/*
	 * Revoked while it was connected: no answer, and the connection goes
	 * (revocation.h closes it too, as soon as it hears of the revocation).
	 */
	if (l->revoked != NULL && revocation_refused(l->revoked, peer.cn, peer.serial)) {
		nng_pipe_close(nng_msg_get_pipe(req));
		revocation_count_request(l->revoked);
		return NULL;
	}
	/* Heard from: a live connection never gives way to a newcomer (conn_limit.h). */
	conn_limit_touch(l->conns, (uint32_t)nng_pipe_id(nng_msg_get_pipe(req)), mono_ms());
	if (nng_msg_len(req) > LISTENER_MSG_MAX)
		return handle_oversize(l, host_id, req);
	env = vigil__envelope__unpack(pb_arena_allocator(worker_arena), nng_msg_len(req),
				      nng_msg_body(req));
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
		rep = handle_batch(l, host_id, env, env->batch);
		break;
	case VIGIL__ENVELOPE__BODY_BATCH_LZ4:
		rep = handle_batch_lz4(l, host_id, env);
		break;
	case VIGIL__ENVELOPE__BODY_RENEW:
		rep =
		    link_renew_handle(l->renew, worker_store, &peer, env, l->heartbeat_interval_ms);
		break;
	case VIGIL__ENVELOPE__BODY_WATCH:
		rep = handle_watch(l, host_id, env, hold);
		if (rep == NULL && hold->host_id[0] == '\0')
			rep = reply_msg(env->seq, VIGIL__REPLY__STATUS__RETRY, "out of memory",
					l->heartbeat_interval_ms);
		break;
	default:
		rep = reply_msg(env->seq, VIGIL__REPLY__STATUS__REFUSED, "unknown message kind",
				l->heartbeat_interval_ms);
	}
	if (worker_arena == NULL)
		vigil__envelope__free_unpacked(env, NULL);
	return rep;
}

struct worker_arg {
	struct listener *l;
	struct store *st, *soft;
};

static void *worker_main(void *arg)
{
	struct worker_arg wa = *(struct worker_arg *)arg;
	struct listener *l = wa.l;
	nng_ctx ctx;
	nng_aio *aio;

	free(arg);
	worker_store = wa.st;
	worker_soft_store = wa.soft;
	if ((worker_arena = pb_arena_new(WORKER_ARENA_KEEP)) == NULL)
		log_warn("listener worker: no memory for its request arena; unpacking with malloc");

	if (nng_ctx_open(&ctx, l->sock) != 0 || nng_aio_alloc(&aio, NULL, NULL) != 0) {
		log_error("listener worker cannot start: out of memory");
		pb_arena_free(worker_arena);
		worker_arena = NULL;
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
		struct watch_hold hold = {.host_id = ""};

		req = nng_aio_get_msg(aio);
		rep = handle(l, req, &hold);
		nng_msg_free(req);
		if (worker_arena != NULL)
			pb_arena_reset(worker_arena); /* nothing of the request is used past here */
		if (rep == NULL && hold.host_id[0] != '\0') {
			/* Parked: the context is the watch's now; this worker takes a new one. */
			if (watchers_park(l->watch, ctx, &hold) == 0) {
				if (nng_ctx_open(&ctx, l->sock) != 0) {
					log_error("listener worker cannot go on: out of memory");
					break;
				}
				continue;
			}
			free(hold.labels_json);
			rep = reply_msg(hold.seq, VIGIL__REPLY__STATUS__RETRY, "too many watches",
					l->heartbeat_interval_ms);
		}
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
	pb_arena_free(worker_arena);
	worker_arena = NULL;
	return NULL;
}

int listener_serve(struct listener *l, struct store **stores, struct store **soft_stores,
		   int nstores, int heartbeat_interval_ms, vigil_err *err)
{
	l->stores = stores;
	l->heartbeat_interval_ms = heartbeat_interval_ms;
	if ((l->watch = watchers_start(l->rules, watch_reply, l, err)) == NULL)
		return -ENOMEM;
	if (heartbeat_interval_ms > 0 &&
	    (unsigned)heartbeat_interval_ms > LISTENER_IDLE_MIN_MS / LISTENER_IDLE_HEARTBEATS)
		atomic_store(&l->idle_ms,
			     (unsigned)heartbeat_interval_ms * LISTENER_IDLE_HEARTBEATS);
	for (int i = 0; i < LISTENER_WORKERS; i++) {
		struct worker_arg *wa = malloc(sizeof(*wa));
		int rc;

		if (wa == NULL)
			return verr_set(err, -ENOMEM, "out of memory");
		*wa = (struct worker_arg){
		    .l = l, .st = stores[i % nstores], .soft = soft_stores[i % nstores]};
		rc = pthread_create(&l->workers[i], NULL, worker_main, wa);
		if (rc != 0) {
			free(wa);
			return verr_set(err, -rc, "cannot start listener thread: %s", strerror(rc));
		}
		l->nworkers++;
	}
	return 0;
}

void listener_set_rules(struct listener *l, struct rules_push *rp)
{
	l->rules = rp;
}

void listener_set_revocation(struct listener *l, struct revocation *r,
			     const struct link_renew *renew)
{
	l->revoked = r;
	l->renew = renew;
}

void listener_stats_get(struct listener *l, struct listener_stats *ret)
{
	struct conn_limit_counts c;

	conn_limit_counts(l->conns, &c);
	*ret = (struct listener_stats){.conns = c.conns,
				       .conns_peak = c.peak,
				       .certs = c.keys,
				       .evicted_idle = c.evicted,
				       .accepted = atomic_load(&l->accepted),
				       .oversize = atomic_load(&l->oversize)};
	for (int i = 0; i < LISTENER_REFUSED_NREASONS; i++)
		ret->refused[i] = atomic_load(&l->refused[i]);
}

void listener_stop(struct listener *l)
{
	struct listener_stats st;
	struct tls_stats ts;

	if (l == NULL)
		return;
	/* Returns once every pipe is gone, its REM_POST delivered: the counts are final. */
	nng_close(l->sock);
	for (int i = 0; i < l->nworkers; i++)
		pthread_join(l->workers[i], NULL);
	watchers_stop(l->watch);
	listener_stats_get(l, &st);
	tls_stats_get(&ts);
	log_info("link stopped: %" PRIu64 " connection(s) admitted, at most %" PRIu64
		 " at once, %" PRIu64 " silent one(s) given up for a newcomer; refused %" PRIu64
		 " over the per-certificate cap (%u), %" PRIu64 " over the total cap (%u), %" PRIu64
		 " without a verified identity, %" PRIu64 " out of memory; %" PRIu64
		 " request(s) over %d bytes refused; TLS (link and"
		 " API): %" PRIu64 " refused at the per-address handshake cap, %" PRIu64
		 " with too many addresses in handshake, %" PRIu64 " handshake timeout(s)",
		 st.accepted, st.conns_peak, st.evicted_idle, st.refused[LISTENER_REFUSED_PER_CERT],
		 l->opts.conns_per_cert, st.refused[LISTENER_REFUSED_TOTAL], l->opts.conns_max,
		 st.refused[LISTENER_REFUSED_NO_IDENTITY], st.refused[LISTENER_REFUSED_NO_MEMORY],
		 st.oversize, LISTENER_MSG_MAX, ts.refused_addr_cap, ts.refused_addrs_full,
		 ts.handshake_timeouts);
	listener_free(l);
}
