/* SPDX-License-Identifier: Apache-2.0 */
#include "session.h"

#include "enforce/enforcer.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "vigil.pb-c.h"

#define COMMANDS_DONE_MAX 32

struct session {
	struct session_parts parts;
	struct hostinfo host; /* a copy: protobuf-c wants char * */
	struct uplink_chan *chan;
	uint64_t started_ms;
	uint64_t seq;
	/* Commands carried out and not yet seen acknowledged. */
	uint64_t done[COMMANDS_DONE_MAX];
	size_t ndone;
	/* A new rule set was taken or refused: report it without waiting an interval. */
	atomic_bool report_now;
	/* What the last hello or heartbeat said of the rule set (rules_state_fill). */
	struct rules_report {
		char refused_reason[RULEBOOK_WHY_MAX];
		struct enforcer_report_buf enforce;
	} hb_report, watch_report;
	/*
	 * The rule-set watch (Envelope.watch): a request of its own the console
	 * holds until there is a newer set; the next one is the acknowledgement.
	 */
	struct uplink_chan *watch_chan;
	pthread_t watcher;
	bool watcher_up;
	volatile sig_atomic_t *stop;
	uint64_t watch_seq;
	pthread_mutex_t rules_lock; /* rule sets are taken one at a time, from either thread */
	/*
	 * Naps wait on wake (CLOCK_MONOTONIC) and end early on session_abort or
	 * a rule set to report: an idle defender wakes once a heartbeat, not
	 * every few milliseconds to look at a flag.
	 */
	pthread_mutex_t wake_lock;
	pthread_cond_t wake;
	bool aborted; /* under wake_lock */
};

/* How long a watch may be held, and then some: the console answers within 25 s. */
#define WATCH_WAIT_MS 35000

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Sleep ms, waking early when the session is aborted, a stop is requested
 * or (report set) a rule set waits to be reported.
 */
static void nap(struct session *s, int ms, bool report)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->wake_lock);
	while (!s->aborted && !*s->stop && !(report && atomic_load(&s->report_now)) &&
	       pthread_cond_timedwait(&s->wake, &s->wake_lock, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&s->wake_lock);
}

/* A rule set was taken or refused: the main loop reports it now. */
static void report_soon(struct session *s)
{
	pthread_mutex_lock(&s->wake_lock);
	atomic_store(&s->report_now, true);
	pthread_cond_broadcast(&s->wake);
	pthread_mutex_unlock(&s->wake_lock);
}

/* What the defender holds of the rule set, for a hello or heartbeat (borrows s). */
static void rules_state_fill(struct session *s, Vigil__RulesState *rs, struct rules_report *buf)
{
	vigil__rules_state__init(rs);
	rs->protocol = 1;
	rulebook_state(s->parts.rules, &rs->version, &rs->refused_version, buf->refused_reason,
		       sizeof(buf->refused_reason));
	rs->refused_reason = buf->refused_reason;
	if (s->parts.enf != NULL)
		enforcer_report(s->parts.enf, rs, &buf->enforce);
}

/*
 * A rule set in a reply: hand it to the rulebook and log what happened,
 * once per version (a refused set is not sent again; a set the console
 * sends again before it hears of ours is the one held).
 */
static void take_rules(struct session *s, const Vigil__RuleSet *set)
{
	char why[RULEBOOK_WHY_MAX];
	int rc;

	if (set == NULL || s->parts.rules == NULL)
		return;
	pthread_mutex_lock(&s->rules_lock);
	if (set->version > (uint64_t)INT64_MAX) {
		log_warn("rules: refused a rule set with version %llu: out of range",
			 (unsigned long long)set->version);
		pthread_mutex_unlock(&s->rules_lock);
		return;
	}
	rc = rulebook_offer(s->parts.rules, (int64_t)set->version, set->total,
			    (const char *const *)set->rules, set->n_rules, why, sizeof(why));
	switch (rc) {
	case RULEBOOK_TAKEN:
	case RULEBOOK_TAKEN_UNSAVED:
		log_info("rules: took rule set version %llu (%zu rule(s) for this host, of %u)",
			 (unsigned long long)set->version, set->n_rules, set->total);
		/* In force before it is acknowledged: the next report says it is enforced. */
		if (s->parts.enf != NULL) {
			const struct ruleset *held = rulebook_get(s->parts.rules);

			enforcer_apply(s->parts.enf, held);
			ruleset_put(held);
		}
		if (rc == RULEBOOK_TAKEN_UNSAVED)
			log_warn("rules: rule set version %llu is enforced but not cached (%s): a"
				 " restart before the next version starts from the previous file",
				 (unsigned long long)set->version, why);
		report_soon(s);
		break;
	case RULEBOOK_REFUSED:
		log_warn("rules: refused rule set version %llu: %s",
			 (unsigned long long)set->version, why);
		report_soon(s);
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&s->rules_lock);
}

static int send_hello(struct session *s, vigil_err *err)
{
	const struct defender_config *cfg = s->parts.cfg;
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Hello hello = VIGIL__HELLO__INIT;
	Vigil__Label labels[DEFENDER_MAX_LABELS];
	Vigil__Label *label_ptrs[DEFENDER_MAX_LABELS];
	Vigil__Reply *reply;
	int rc;

	hello.hostname = s->host.hostname;
	hello.kernel = s->host.kernel;
	hello.os = s->host.os;
	hello.defender_version = VIGIL_VERSION;
	hello.bpf_status = (char *)s->parts.bpf_status;
	for (size_t i = 0; i < cfg->nlabels; i++) {
		vigil__label__init(&labels[i]);
		labels[i].key = cfg->labels[i].key;
		labels[i].value = cfg->labels[i].value;
		label_ptrs[i] = &labels[i];
	}
	hello.n_labels = cfg->nlabels;
	hello.labels = label_ptrs;
	Vigil__RulesState rs;
	if (s->parts.rules != NULL) {
		rules_state_fill(s, &rs, &s->hb_report);
		hello.rules = &rs;
	}
	env.seq = ++s->seq;
	env.body_case = VIGIL__ENVELOPE__BODY_HELLO;
	env.hello = &hello;
	if ((rc = uplink_request(s->chan, &env, NULL, 0, 5000, &reply, err)) < 0)
		return rc;
	if (reply->status != VIGIL__REPLY__STATUS__OK)
		rc = verr_set(err, reply->status == VIGIL__REPLY__STATUS__RETRY ? -EAGAIN : -EPERM,
			      "console did not accept the hello: %s",
			      reply->error[0] ? reply->error : "no reason given");
	else
		take_rules(s, reply->rules);
	vigil__reply__free_unpacked(reply, NULL);
	return rc;
}

static bool command_done(const struct session *s, uint64_t id)
{
	for (size_t i = 0; i < s->ndone; i++)
		if (s->done[i] == id)
			return true;
	return false;
}

/*
 * Carry out the console's commands once each.  The console resends a
 * command until a heartbeat lists it as done; one it no longer sends was
 * acknowledged and is forgotten here.
 */
static void run_commands(struct session *s, const Vigil__Reply *reply)
{
	uint64_t still[COMMANDS_DONE_MAX];
	size_t nstill = 0;

	for (size_t i = 0; i < reply->n_commands && i < COMMANDS_DONE_MAX; i++) {
		const Vigil__Command *c = reply->commands[i];

		if (!command_done(s, c->id)) {
			if (strcmp(c->kind, "relearn") == 0 && c->service[0] != '\0') {
				/* Not queued: not marked done, so the console sends it again. */
				if (s->parts.pipe == NULL ||
				    pipeline_relearn(s->parts.pipe, c->service) < 0)
					continue;
				log_info("console command %llu: relearn %s",
					 (unsigned long long)c->id, c->service);
			} else if (strcmp(c->kind, "accept") == 0 && c->service[0] != '\0') {
				if (s->parts.pipe == NULL ||
				    pipeline_accept(s->parts.pipe, c->service, c->exe,
						    c->entry_kind, c->pattern) < 0)
					continue;
				log_info("console command %llu: accept %s %s of %s into %s",
					 (unsigned long long)c->id, c->entry_kind, c->pattern,
					 c->exe, c->service);
			} else {
				log_warn("console command %llu: unknown kind '%s'; ignored",
					 (unsigned long long)c->id, c->kind);
			}
		}
		still[nstill++] = c->id;
	}
	memcpy(s->done, still, nstill * sizeof(still[0]));
	s->ndone = nstill;
}

/*
 * The heartbeat's counters, one term per group below: capture (delivered,
 * drops, filtered, user), delivery 13, learn 14, process 4 + containers 4,
 * enforce 10.  A counter past the end is not sent, and says so once in the
 * log: keep the terms in step with the calls.
 */
#define COUNTERS_MAX (EV_TYPE_MAX + DROP_REASON_MAX + FILTER_REASON_MAX + 1 + 13 + 14 + 4 + 4 + 10)

struct counters {
	Vigil__Counter c[COUNTERS_MAX];
	Vigil__Counter *ptrs[COUNTERS_MAX];
	char names[COUNTERS_MAX][48];
	size_t n;
};

static void counter_add(struct counters *k, const char *group, const char *name, uint64_t value)
{
	if (k->n == COUNTERS_MAX) {
		static atomic_bool said;
		if (!atomic_exchange(&said, true))
			log_error("heartbeat counter %s.%s left out: COUNTERS_MAX is too small for"
				  " the counters the defender reports (a bug)",
				  group, name);
		return;
	}
	vigil__counter__init(&k->c[k->n]);
	snprintf(k->names[k->n], sizeof(k->names[k->n]), "%s.%s", group, name);
	k->c[k->n].name = k->names[k->n];
	k->c[k->n].value = value;
	k->ptrs[k->n] = &k->c[k->n];
	k->n++;
}

static void counters_fill(const struct session *s, struct counters *k)
{
	struct capture_counters c;
	struct delivery_stats ds;
	struct learn_stats ls;
	struct proctree_stats ps;

	capture_read_counters(s->parts.cap, &c);
	for (int i = 1; i < EV_TYPE_MAX; i++)
		counter_add(k, "delivered", capture_type_name(i), c.delivered[i]);
	for (int i = 0; i < DROP_REASON_MAX; i++)
		counter_add(k, "drops", capture_drop_name(i), c.drops[i]);
	for (int i = 0; i < FILTER_REASON_MAX; i++)
		counter_add(k, "filtered", capture_filter_name(i), c.filtered[i]);
	counter_add(k, "user", "malformed",
		    c.user_malformed + (s->parts.pipe ? pipeline_malformed(s->parts.pipe) : 0));
	if (s->parts.dl != NULL) {
		delivery_stats(s->parts.dl, &ds);
		counter_add(k, "delivery", "batches_spooled", ds.batches_spooled);
		counter_add(k, "delivery", "batches_spooled_lz4", ds.batches_spooled_lz4);
		counter_add(k, "delivery", "batches_acked", ds.batches_acked);
		counter_add(k, "delivery", "batches_refused", ds.batches_refused);
		counter_add(k, "delivery", "resends", ds.resends);
		counter_add(k, "delivery", "spool_bytes", ds.spool_bytes);
		counter_add(k, "delivery", "spool_pending", ds.spool_pending);
		counter_add(k, "delivery", "spool_dropped", ds.spool_dropped);
		counter_add(k, "delivery", "append_errors", ds.append_errors);
		counter_add(k, "delivery", "oversize", ds.oversize);
		counter_add(k, "delivery", "batches_lz4", ds.batches_lz4);
		counter_add(k, "delivery", "batch_bytes", ds.batch_bytes);
		counter_add(k, "delivery", "batch_bytes_sent", ds.batch_bytes_sent);
	}
	if (s->parts.pipe != NULL) {
		pipeline_learn_stats(s->parts.pipe, &ls);
		counter_add(k, "learn", "models", ls.models.models);
		counter_add(k, "learn", "entries", ls.models.entries);
		counter_add(k, "learn", "learned", ls.models.learned);
		counter_add(k, "learn", "deviations", ls.models.deviations);
		counter_add(k, "learn", "deviations_repeated", ls.models.deviations_repeated);
		counter_add(k, "learn", "folds", ls.models.folds);
		counter_add(k, "learn", "folds_shaped", ls.models.folds_shaped);
		counter_add(k, "learn", "reads_common", ls.reads_common);
		counter_add(k, "learn", "over_bounds",
			    ls.models.full_models + ls.models.full_sections +
				ls.models.full_entries);
		counter_add(k, "learn", "activity", ls.activity);
		counter_add(k, "learn", "unplaced", ls.unplaced);
		counter_add(k, "learn", "rewritten", ls.rewritten);
		counter_add(k, "learn", "save_errors", ls.models.save_errors);
		counter_add(k, "learn", "load_errors", ls.models.load_errors);
		/* Processes the tree could not keep: events of theirs lose their context. */
		pipeline_process_stats(s->parts.pipe, &ps);
		counter_add(k, "process", "evicted_live", ps.evicted_live);
		counter_add(k, "process", "evicted_exited", ps.evicted_exited);
		counter_add(k, "process", "table_full_drops", ps.table_full_drops);
		counter_add(k, "process", "entries", ps.entries);
		/* Containers whose runtime's state could not name them (their events lack it). */
		counter_add(k, "process", "containers", ps.containers);
		counter_add(k, "process", "containers_missed", ps.containers_missed);
		counter_add(k, "process", "containers_malformed", ps.containers_malformed);
		counter_add(k, "process", "containers_evicted", ps.containers_evicted);
	}
	if (s->parts.enf != NULL) {
		struct enforcer_stats es;

		enforcer_stats(s->parts.enf, &es);
		counter_add(k, "enforce", "held", es.fan_requests);
		counter_add(k, "enforce", "denied", es.fan_denied);
		counter_add(k, "enforce", "killed", es.fan_killed);
		counter_add(k, "enforce", "fail_open", es.fan_fail_open);
		counter_add(k, "enforce", "errors", es.fan_errors);
		counter_add(k, "enforce", "marks", es.fan_marks);
		counter_add(k, "enforce", "mark_errors", es.fan_mark_errors);
		counter_add(k, "enforce", "net_entries", es.net_entries);
		counter_add(k, "enforce", "model_busy", es.model_busy);
		counter_add(k, "enforce", "audits_dropped", es.audits_dropped);
	}
}

/* Returns 0, -ENOENT when the console wants a hello first, or another error. */
static int send_heartbeat(struct session *s, vigil_err *err)
{
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Heartbeat hb = VIGIL__HEARTBEAT__INIT;
	Vigil__Reply *reply;
	struct counters k = {.n = 0};
	int rc;

	hb.exec_count = s->parts.cap != NULL ? capture_exec_count(s->parts.cap) : 0;
	hb.uptime_ms = now_ms() - s->started_ms;
	if (s->parts.cap != NULL) {
		counters_fill(s, &k);
		hb.n_counters = k.n;
		hb.counters = k.ptrs;
	}
	hb.n_commands_done = s->ndone;
	hb.commands_done = s->done;
	Vigil__RulesState rs;
	if (s->parts.rules != NULL) {
		rules_state_fill(s, &rs, &s->hb_report);
		hb.rules = &rs;
	}
	env.seq = ++s->seq;
	env.body_case = VIGIL__ENVELOPE__BODY_HEARTBEAT;
	env.heartbeat = &hb;
	if ((rc = uplink_request(s->chan, &env, NULL, 0, 5000, &reply, err)) < 0)
		return rc;
	switch (reply->status) {
	case VIGIL__REPLY__STATUS__OK:
		run_commands(s, reply);
		take_rules(s, reply->rules);
		rc = 0;
		break;
	case VIGIL__REPLY__STATUS__HELLO_REQUIRED:
		rc = -ENOENT;
		break;
	default:
		rc = verr_set(err, -EAGAIN, "console did not take the heartbeat: %s",
			      reply->error[0] ? reply->error : "no reason given");
	}
	vigil__reply__free_unpacked(reply, NULL);
	return rc;
}

/*
 * The watch thread: one watch outstanding at all times while a console
 * answers.  A set in the answer is taken (and put in force) at once, and the
 * next watch, sent right away, says so.
 */
static void *watch_main(void *arg)
{
	struct session *s = arg;
	int interval = s->parts.cfg->heartbeat_interval_ms;

	while (!*s->stop) {
		Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
		Vigil__Watch w = VIGIL__WATCH__INIT;
		Vigil__RulesState rs;
		Vigil__Reply *reply;
		vigil_err err = {0};
		int rc;

		rules_state_fill(s, &rs, &s->watch_report);
		w.rules = &rs;
		env.seq = ++s->watch_seq;
		env.body_case = VIGIL__ENVELOPE__BODY_WATCH;
		env.watch = &w;
		rc = uplink_request(s->watch_chan, &env, NULL, 0, WATCH_WAIT_MS, &reply, &err);
		if (rc == -ECANCELED)
			break;
		if (rc < 0) {
			nap(s, interval < 1000 ? interval : 1000,
			    false); /* the heartbeat says why */
			continue;
		}
		if (reply->status == VIGIL__REPLY__STATUS__OK) {
			take_rules(s, reply->rules);
			vigil__reply__free_unpacked(reply, NULL);
			continue;
		}
		/* A console from before watches refuses them: its heartbeats still carry sets. */
		if (reply->status == VIGIL__REPLY__STATUS__REFUSED)
			log_info("the console does not hold rule-set watches (%s): new rule sets"
				 " arrive with heartbeats",
				 reply->error[0] ? reply->error : "no reason given");
		/* Not registered yet (the hello is under way), or busy: try again soon. */
		nap(s,
		    reply->status == VIGIL__REPLY__STATUS__REFUSED ? 60000
		    : interval < 1000				   ? interval
								   : 1000,
		    false);
		vigil__reply__free_unpacked(reply, NULL);
	}
	return NULL;
}

struct session *session_new(const struct session_parts *parts, vigil_err *err)
{
	struct session *s = calloc(1, sizeof(*s));
	pthread_condattr_t ca;

	if (s == NULL) {
		verr_set(err, -ENOMEM, "session: out of memory");
		return NULL;
	}
	s->parts = *parts;
	s->host = *parts->host;
	pthread_mutex_init(&s->rules_lock, NULL);
	pthread_mutex_init(&s->wake_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->wake, &ca);
	pthread_condattr_destroy(&ca);
	if ((s->chan = uplink_chan_open(parts->up, err)) == NULL) {
		session_free(s);
		return NULL;
	}
	if (parts->rules != NULL) {
		if ((s->watch_chan = uplink_chan_open(parts->up, err)) == NULL) {
			session_free(s);
			return NULL;
		}
		/* Held by the console on purpose: not to be sent again meanwhile. */
		uplink_chan_set_resend(s->watch_chan, WATCH_WAIT_MS + 5000);
	}
	s->started_ms = now_ms();
	return s;
}

void session_run(struct session *s, volatile sig_atomic_t *stop)
{
	bool registered = false, reported_down = false;
	uint64_t last_diag = 0;
	vigil_err err;

	s->stop = stop;
	if (s->watch_chan != NULL && pthread_create(&s->watcher, NULL, watch_main, s) == 0)
		s->watcher_up = true;
	else if (s->watch_chan != NULL)
		log_warn("no rule-set watch thread: new rule sets arrive with heartbeats");

	while (!*stop) {
		int rc;

		verr_clear(&err);
		if (!registered) {
			rc = send_hello(s, &err);
			if (rc == 0) {
				registered = true;
				reported_down = false;
				log_info("registered with the console (bpf: %s)",
					 s->parts.bpf_status);
			}
		} else {
			rc = send_heartbeat(s, &err);
			if (rc == -ENOENT) {
				registered = false;
				continue; /* say hello at once */
			}
		}
		if (rc == -ETIMEDOUT || rc == -EIO) {
			/* Say hello again when a console answers: it may be a new one. */
			registered = false;
			/*
			 * A heartbeat costs the console next to nothing: no answer over
			 * an open connection means the connection is dead, whatever
			 * nng believes (seen after network cuts).  Closing it makes
			 * the dialer dial again.
			 */
			if (rc == -ETIMEDOUT && uplink_connections(s->parts.up) > 0) {
				int n = uplink_close_links(s->parts.up);

				log_warn(
				    "no answer over %d open connection(s) to the console in 5 s; "
				    "closing them to dial again",
				    n);
			}
			if (!reported_down || now_ms() - last_diag > 60000) {
				char why[1024];

				uplink_diagnose(s->parts.up, why, sizeof(why));
				log_warn("no console answers (%s); retrying with backoff", why);
				reported_down = true;
				last_diag = now_ms();
			}
		} else if (rc < 0 && rc != -ECANCELED) {
			log_warn("%s", err.msg);
		}
		if (rc == 0 && atomic_exchange(&s->report_now, false))
			continue; /* tell the console what we hold now */
		/*
		 * A rule set to report cuts the nap short only after a heartbeat
		 * that worked: after one that failed, the flag stays set until
		 * one works, and waking on it would retry in a tight loop.
		 */
		nap(s, s->parts.cfg->heartbeat_interval_ms, rc == 0);
	}
	if (s->watcher_up) {
		uplink_chan_abort(s->watch_chan);
		pthread_join(s->watcher, NULL);
		s->watcher_up = false;
	}
}

void session_abort(struct session *s)
{
	pthread_mutex_lock(&s->wake_lock);
	s->aborted = true;
	pthread_cond_broadcast(&s->wake);
	pthread_mutex_unlock(&s->wake_lock);
	uplink_chan_abort(s->chan);
	if (s->watch_chan != NULL)
		uplink_chan_abort(s->watch_chan);
}

void session_free(struct session *s)
{
	if (s == NULL)
		return;
	uplink_chan_close(s->chan);
	if (s->watch_chan != NULL)
		uplink_chan_close(s->watch_chan);
	pthread_mutex_destroy(&s->rules_lock);
	pthread_mutex_destroy(&s->wake_lock);
	pthread_cond_destroy(&s->wake);
	free(s);
}
