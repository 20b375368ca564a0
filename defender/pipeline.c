/* SPDX-License-Identifier: Apache-2.0 */
#include "pipeline.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "enforce/enforcer.h"
#include "event/event.h"
#include "event/event_json.h"
#include "log.h"
#include "process/container_state.h"
#include "process/enrich.h"
#include "process/proctree.h"
#include "utf8.h"

#define RELEARN_QUEUE_MAX 16

struct pipeline {
	struct capture *cap;		/* borrowed */
	struct delivery *dl;		/* borrowed */
	struct proctree *pt;		/* the thread's once it runs */
	struct learner *learn;		/* the thread's; learner_stats from any thread */
	struct enforcer *enf;		/* borrowed; NULL: no rules enforced */
	struct enrich_scratch scratch;	/* the thread's */
	int64_t clock_offset;		/* CLOCK_BOOTTIME → wall clock, ns */
	atomic_uint_fast64_t malformed; /* records that did not decode */
	atomic_bool stop;
	uint64_t swept_ns;		 /* when the last sweep's checks were counted (boottime) */
	uint64_t losses, losses_read_ms; /* kernel_losses: the last read, and when (wall ms) */
	pthread_t thread;
	bool running;
	/* The tree's counters, for other threads: refreshed every poll (under stats_lock). */
	pthread_mutex_t stats_lock;
	struct proctree_stats tree_stats;
	/* The console's model commands, for the thread (which owns the models). */
	pthread_mutex_t relearn_lock;
	struct model_command *relearn[RELEARN_QUEUE_MAX];
	size_t nrelearn;
};

/* A relearn (exe NULL), or an entry accepted into a model (all four set): one allocation. */
struct model_command {
	const char *service, *exe, *kind, *pattern;
	char text[];
};

static void model_command_run(struct pipeline *p, const struct model_command *c, uint64_t now)
{
	int rc;

	if (c->exe == NULL) {
		if (learner_relearn(p->learn, c->service, now) == -ENOENT)
			log_warn("relearn %s: this host has no such model", c->service);
		return;
	}
	rc = learner_accept(p->learn, c->service, c->exe, c->kind, c->pattern, now);
	if (rc == -ENOENT)
		log_warn("accept into %s: this host has no such model", c->service);
	else if (rc < 0)
		log_warn("accept %s %s of %s into %s: %s", c->kind, c->pattern, c->exe, c->service,
			 rc == -ENOSPC ? "the model is full" : "not a model entry kind");
}

static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t boottime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * An enforcement audit as a Deviation: the chain from the process tree
 * (the process may have been killed: the tree keeps it a while).
 */
static void send_enforce_audit(struct pipeline *p, const struct enforce_audit *a)
{
	enum { LINKS = 16 };
	static char names[LINKS][2][512], text[5][1024];
	const struct proc_entry *chain[LINKS];
	Vigil__ChainLink links[LINKS], *lp[LINKS];
	Vigil__Deviation d = VIGIL__DEVIATION__INIT;
	size_t n = proctree_ancestry(p->pt, a->pid, chain, LINKS);
	const char *src[5] = {a->service, a->exe, a->object, a->rule, a->why};

	for (size_t i = 0; i < 5; i++)
		utf8_sanitize(src[i], strlen(src[i]), text[i], sizeof(text[i]));
	for (size_t i = 0; i < n; i++) {
		vigil__chain_link__init(&links[i]);
		links[i].pid = chain[i]->pid;
		utf8_sanitize(chain[i]->comm, strlen(chain[i]->comm), names[i][0],
			      sizeof(names[i][0]));
		utf8_sanitize(chain[i]->exe != NULL ? chain[i]->exe : "",
			      chain[i]->exe != NULL ? strlen(chain[i]->exe) : 0, names[i][1],
			      sizeof(names[i][1]));
		links[i].comm = names[i][0];
		links[i].exe = names[i][1];
		lp[i] = &links[i];
	}
	d.ts_ns = a->ts_ns;
	d.service = text[0];
	d.exe = text[1][0] != '\0' ? text[1] : "(unknown)";
	d.kind = (char *)a->kind;
	d.object = text[2];
	d.raw = text[2];
	d.expected = "";
	d.severity = (char *)a->severity;
	d.pid = a->pid;
	d.n_chain = n;
	d.chain = lp;
	d.rule = text[3];
	d.effect = (char *)rule_effect_name(a->effect);
	d.wanted = a->wanted > a->effect ? (char *)rule_effect_name(a->wanted) : "";
	d.why = text[4];
	/* The container the process runs in, as the pipeline's own events name it. */
	const struct container_meta *ctr = n > 0 ? proctree_container(p->pt, chain[0]) : NULL;
	if (n > 0 && chain[0]->container_id != NULL)
		d.container_id = (char *)chain[0]->container_id;
	if (ctr != NULL) {
		d.container_name = (char *)ctr->name;
		d.container_image = (char *)ctr->image;
		d.container_runtime = (char *)container_runtime_name(ctr->runtime);
	}
	log_info("%s: %s %s %s (rule \"%s\": %s%s%s)", a->kind,
		 text[0][0] ? text[0] : "interactive", text[1], text[2], text[3], d.effect,
		 d.wanted[0] ? ", wanted " : "", d.wanted);
	delivery_add_deviation(p->dl, &d);
}

static void drain_enforce_audits(struct pipeline *p)
{
	struct enforce_audit a[16];
	size_t n;

	if (p->enf == NULL)
		return;
	while ((n = enforcer_take_audits(p->enf, a, 16)) > 0)
		for (size_t i = 0; i < n; i++)
			send_enforce_audit(p, &a[i]);
}

/* One ring record through every stage. */
static int on_record(const struct ev_hdr *rec, size_t len, void *ctx)
{
	struct pipeline *p = ctx;
	struct event ev;
	struct event_enrich en;
	struct learn_activity act;

	if (event_decode(rec, len, &ev) < 0) {
		atomic_fetch_add_explicit(&p->malformed, 1, memory_order_relaxed);
		return 0;
	}
	enrich_begin(p->pt, &ev);
	enrich_describe(p->pt, &ev, &en, &p->scratch);
	int64_t wall_ns = event_wall_ns(ev.hdr->ts_ns, p->clock_offset);
	uint64_t when_ms = wall_ns > 0 ? (uint64_t)wall_ns / 1000000 : 0;
	bool interactive = learner_event(p->learn, &ev, &en, &p->scratch.cls, when_ms, &act);
	struct enforce_audit audit;

	if (p->enf != NULL && enforcer_check_event(p->enf, &ev, &en, &p->scratch.cls, &audit)) {
		if (wall_ns > 0)
			audit.ts_ns = (uint64_t)wall_ns;
		send_enforce_audit(p, &audit);
	}
	delivery_add(p->dl, &ev, &en, interactive ? &act.pb : NULL, p->clock_offset,
		     capture_read_pos(p->cap));
	enrich_end(p->pt, &ev);
	return 0;
}

/*
 * The kernel's losses, for the learner's promotions (once a second): read
 * once a second, not every poll.  Each read is a bpf() call per counter, and
 * a busy host polls hundreds of times a second.
 */
#define LOSSES_EVERY_MS 1000

static uint64_t kernel_losses(struct pipeline *p, uint64_t now_ms)
{
	if (p->losses_read_ms == 0 || now_ms - p->losses_read_ms >= LOSSES_EVERY_MS) {
		p->losses = capture_losses(p->cap);
		p->losses_read_ms = now_ms;
	}
	return p->losses;
}

/* The models' upkeep: the console's relearns and accepted entries, promotion, deltas. */
static void learn_upkeep(struct pipeline *p)
{
	struct model_command *cmd[RELEARN_QUEUE_MAX];
	size_t n;
	uint64_t now = wall_ms();

	pthread_mutex_lock(&p->relearn_lock);
	n = p->nrelearn;
	memcpy(cmd, p->relearn, n * sizeof(cmd[0]));
	p->nrelearn = 0;
	pthread_mutex_unlock(&p->relearn_lock);
	for (size_t i = 0; i < n; i++) {
		model_command_run(p, cmd[i], now);
		free(cmd[i]);
	}
	learner_tick(p->learn, now, kernel_losses(p, now));
}

/*
 * Exits lost to ring drops would leave dead entries filling the table, so
 * the tree is checked against /proc, each entry about once every
 * SWEEP_PASS_S, at most SWEEP_CHECKS_PER_S entries a second (a
 * 10,000-process host in under a minute).  By time, not per poll: a busy
 * host polls thousands of times a second, and each check opens a /proc file.
 * A small host's tree (a few hundred processes) is checked a few times a
 * second, not 200: an idle defender's largest cost was this loop.
 */
#define SWEEP_CHECKS_PER_S 200
#define SWEEP_PASS_S	   30

static void sweep(struct pipeline *p, uint64_t now_ns)
{
	uint64_t rate = p->tree_stats.live / SWEEP_PASS_S, due;

	if (rate < 1)
		rate = 1;
	if (rate > SWEEP_CHECKS_PER_S)
		rate = SWEEP_CHECKS_PER_S;
	due = (now_ns - p->swept_ns) * rate / 1000000000ull;
	if (p->swept_ns == 0 || due > rate)
		due = rate;
	if (due == 0)
		return;
	proctree_sweep(p->pt, now_ns, (size_t)due);
	p->swept_ns = now_ns;
}

static void *pipeline_main(void *arg)
{
	struct pipeline *p = arg;

	while (!atomic_load(&p->stop)) {
		int n = capture_poll(p->cap, 200, on_record, p);
		uint64_t now_ns = boottime_ns();

		drain_enforce_audits(p);

		learn_upkeep(p);
		uint64_t read = capture_read_pos(p->cap);
		delivery_tick(p->dl, read);
		/* Read but not spooled stays in the ring; spool early before it fills. */
		if (read - delivery_ring_safe(p->dl) > capture_ringbuf_bytes(p->cap) / 4)
			delivery_flush(p->dl);
		capture_commit(p->cap, delivery_ring_safe(p->dl));
		proctree_expire(p->pt, now_ns);
		sweep(p, now_ns);
		struct proctree_stats ts;
		proctree_stats(p->pt, &ts);
		pthread_mutex_lock(&p->stats_lock);
		p->tree_stats = ts;
		pthread_mutex_unlock(&p->stats_lock);
		if (n < 0) {
			log_error("capture stopped: ring buffer poll failed: %s", strerror(-n));
			break;
		}
	}
	return NULL;
}

/* A model's deviation, under the rules: named with the rule, or dropped when it disables them. */
static void learn_deviation(const Vigil__Deviation *dv, void *ctx)
{
	struct pipeline *p = ctx;
	Vigil__Deviation d = *dv;
	char rule[RULE_NAME_MAX + 1], why[256];
	enum rule_effect effect, wanted;

	if (p->enf != NULL) {
		if (!enforcer_deviation(p->enf, dv->service, dv->container_image, dv->kind, rule,
					&effect, &wanted, why, sizeof(why)))
			return;
		d.rule = rule;
		d.effect = (char *)rule_effect_name(effect);
		d.wanted = wanted > effect ? (char *)rule_effect_name(wanted) : "";
		d.why = why;
	}
	delivery_add_deviation(p->dl, &d);
}

static void learn_delta(const Vigil__ModelDelta *md, void *ctx)
{
	struct pipeline *p = ctx;

	delivery_add_model_delta(p->dl, md);
}

struct pipeline *pipeline_start(const struct pipeline_opts *opts, struct capture *cap,
				struct delivery *dl, vigil_err *err)
{
	struct pipeline *p = calloc(1, sizeof(*p));
	struct learn_sink sink = {learn_deviation, learn_delta, p};
	int rc;

	if (p == NULL) {
		verr_set(err, -ENOMEM, "pipeline: out of memory");
		return NULL;
	}
	p->enf = opts->enforcer;
	pthread_mutex_init(&p->relearn_lock, NULL);
	pthread_mutex_init(&p->stats_lock, NULL);
	p->cap = cap;
	p->dl = dl;
	p->clock_offset = event_json_clock_offset();
	p->learn = learner_new(&opts->limits, opts->model_dir, &sink, err);
	if (p->learn == NULL)
		goto fail;
	if (p->enf != NULL)
		enforcer_set_learner(p->enf, p->learn);
	p->pt = proctree_new(NULL);
	if (p->pt == NULL) {
		verr_set(err, -ENOMEM, "process tree: out of memory");
		goto fail;
	}
	if (proctree_seed(p->pt, err) < 0)
		goto fail;
	if ((rc = pthread_create(&p->thread, NULL, pipeline_main, p)) != 0) {
		verr_set(err, -rc, "cannot start the capture thread: %s", strerror(rc));
		goto fail;
	}
	p->running = true;
	return p;
fail:
	pipeline_stop(p);
	return NULL;
}

/* Copy the strings (NULL: none) into one command and queue it; the errors of pipeline_relearn. */
static int model_command_queue(struct pipeline *p, const char *const str[4])
{
	size_t len[4] = {0}, total = 0;
	struct model_command *c;
	const char **field[4];
	char *at;
	int rc = 0;

	for (int i = 0; i < 4; i++) {
		len[i] = str[i] != NULL ? strlen(str[i]) + 1 : 0;
		total += len[i];
	}
	if ((c = calloc(1, sizeof(*c) + total)) == NULL)
		return -ENOMEM;
	field[0] = &c->service;
	field[1] = &c->exe;
	field[2] = &c->kind;
	field[3] = &c->pattern;
	at = c->text;
	for (int i = 0; i < 4; i++)
		if (str[i] != NULL) {
			*field[i] = memcpy(at, str[i], len[i]);
			at += len[i];
		}
	pthread_mutex_lock(&p->relearn_lock);
	if (p->nrelearn < RELEARN_QUEUE_MAX) {
		p->relearn[p->nrelearn++] = c;
		c = NULL;
	} else {
		rc = -EBUSY;
	}
	pthread_mutex_unlock(&p->relearn_lock);
	free(c);
	return rc;
}

int pipeline_relearn(struct pipeline *p, const char *service)
{
	const char *const str[4] = {service, NULL, NULL, NULL};

	return model_command_queue(p, str);
}

int pipeline_accept(struct pipeline *p, const char *service, const char *exe, const char *kind,
		    const char *pattern)
{
	const char *const str[4] = {service, exe, kind, pattern};

	return model_command_queue(p, str);
}

void pipeline_learn_stats(struct pipeline *p, struct learn_stats *ret_stats)
{
	learner_stats(p->learn, ret_stats);
}

void pipeline_process_stats(struct pipeline *p, struct proctree_stats *ret_stats)
{
	pthread_mutex_lock(&p->stats_lock);
	*ret_stats = p->tree_stats;
	pthread_mutex_unlock(&p->stats_lock);
}

uint64_t pipeline_malformed(struct pipeline *p)
{
	return atomic_load_explicit(&p->malformed, memory_order_relaxed);
}

void pipeline_stop(struct pipeline *p)
{
	if (p == NULL)
		return;
	if (p->running) {
		atomic_store(&p->stop, true);
		pthread_join(p->thread, NULL);
	}
	/* The exec guard must stop asking the models before they go. */
	if (p->enf != NULL)
		enforcer_set_learner(p->enf, NULL);
	drain_enforce_audits(p);
	/* Models: what changed goes into the spool, and to disk. */
	learner_free(p->learn);
	proctree_free(p->pt);
	for (size_t i = 0; i < p->nrelearn; i++)
		free(p->relearn[i]);
	pthread_mutex_destroy(&p->relearn_lock);
	pthread_mutex_destroy(&p->stats_lock);
	free(p);
}
