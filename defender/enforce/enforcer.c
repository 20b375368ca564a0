/* SPDX-License-Identifier: Apache-2.0 */
/* Rules made real on this host (enforcer.h). */
#include "enforce/enforcer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "enforce/fanguard.h"
#include "enforce/netplan.h"
#include "enforce/shortfall.h"
#include "enforce/subject.h"
#include "log.h"
#include "rules/rule_match.h"

#define MARKS_MAX	 1024
#define CGROUPS_SCAN_MAX GUARD_NET_CGROUPS
#define RESCAN_MS	 2000
#define MODEL_WAIT_MS	 20

/*
 * One rule-set version compiled for this host, read-only once published.
 * canon[i] is rule i with every path of its processes and files lists
 * resolved through symbolic links in its directories ("/bin/sh" on a host
 * where /bin is a link to usr/bin is "/usr/bin/sh"): the kernel names files
 * by where they are, operators by where they are reached.
 */
struct enforce_state {
	atomic_int refs;
	const struct ruleset *rs;
	struct rule *canon;
	size_t n;
	bool exec_all; /* every exec is held: deviations or globs only whole filesystems cover */
	bool exec_named, open_named;
	struct netplan *net;
	struct shortfalls sf;
	/*
	 * The files that deny lists of executables name literally, by inode: a
	 * rename or a hard link keeps the inode (and our mark), not the name.
	 */
	struct denied_inode {
		dev_t dev;
		ino_t ino;
		uint32_t rule;	/* index in canon */
		uint32_t entry; /* in processes.deny.executables */
	} * inodes;
	size_t ninodes;
	char **pending; /* literal deny paths that did not exist when it was compiled */
	size_t npending;
};

struct enforcer {
	struct enforcer_opts opts;
	pthread_mutex_t learner_lock; /* the listener's use of learner against its going away */
	struct learner *learner;
	struct fanguard *fan;
	bool fan_exec, fan_open;
	char fan_why[160];
	bool net_ok, kill_ok;
	char net_why[160];
	atomic_uint_fast64_t cg_sig; /* the cgroups the network table was placed for */
	/*
	 * Containers' images, for their cgroups' network policies: read from
	 * the runtimes' state by the threads that place them (never the
	 * fanotify listener), one at a time.
	 */
	pthread_mutex_t net_ctrs_lock;
	struct container_cache net_ctrs;
	atomic_uint_fast64_t learn_gen; /* the models' generation it was compiled from */
	uint32_t net_gen;

	pthread_mutex_t state_lock; /* guards cur (the pointer) */
	struct enforce_state *cur;
	pthread_mutex_t apply_lock; /* one apply at a time: session thread, rescan thread */

	pthread_mutex_t audit_lock;
	struct enforce_audit *audits; /* ring of ENFORCE_AUDITS_MAX */
	size_t audit_head, audit_n;
	atomic_uint_fast64_t audits_dropped, model_busy;

	struct subject_reader reader; /* the fanotify listener's */
	/*
	 * One execve raises a held exec for each file it opens: the program,
	 * a script's interpreter, the ELF interpreter (ld.so).  The last exec
	 * the listener allowed, so the ELF interpreter that follows it on the
	 * same thread is not taken for a program of its own.  Listener only.
	 */
	uint32_t chain_tid;
	uint64_t chain_ms;

	pthread_t rescan;
	bool rescan_up;
	int stop_fd;
};

/* ---- states ---- */

static void state_put(struct enforce_state *s)
{
	if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	for (size_t i = 0; i < s->n; i++)
		rule_fini(&s->canon[i]);
	free(s->canon);
	free(s->inodes);
	for (size_t i = 0; i < s->npending; i++)
		free(s->pending[i]);
	free(s->pending);
	free(s->net);
	ruleset_put(s->rs);
	free(s);
}

static struct enforce_state *state_get(struct enforcer *e)
{
	struct enforce_state *s;

	pthread_mutex_lock(&e->state_lock);
	s = e->cur;
	if (s != NULL)
		atomic_fetch_add(&s->refs, 1);
	pthread_mutex_unlock(&e->state_lock);
	return s;
}

/* ---- audits ---- */

static uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void audit_push(struct enforcer *e, const struct enforce_audit *a)
{
	pthread_mutex_lock(&e->audit_lock);
	if (e->audit_n == ENFORCE_AUDITS_MAX) {
		atomic_fetch_add(&e->audits_dropped, 1);
	} else {
		e->audits[(e->audit_head + e->audit_n) % ENFORCE_AUDITS_MAX] = *a;
		e->audit_n++;
	}
	pthread_mutex_unlock(&e->audit_lock);
}

size_t enforcer_take_audits(struct enforcer *e, struct enforce_audit *out, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&e->audit_lock);
	while (n < max && e->audit_n > 0) {
		out[n++] = e->audits[e->audit_head];
		e->audit_head = (e->audit_head + 1) % ENFORCE_AUDITS_MAX;
		e->audit_n--;
	}
	pthread_mutex_unlock(&e->audit_lock);
	return n;
}

static const char *severity_of(const char *kind, enum rule_effect effect)
{
	if (effect >= RULE_EFFECT_PREVENT || strcmp(kind, "denied_read") == 0 ||
	    strcmp(kind, "denied_write") == 0 || strcmp(kind, "denied_program") == 0)
		return "high";
	return "medium";
}

static void audit_fill(struct enforce_audit *a, uint32_t pid, const char *kind, const char *service,
		       const char *exe, const char *object, const char *rule,
		       enum rule_effect effect, enum rule_effect wanted, const char *why)
{
	memset(a, 0, sizeof(*a));
	a->ts_ns = wall_ns();
	a->pid = pid;
	snprintf(a->kind, sizeof(a->kind), "%s", kind);
	snprintf(a->service, sizeof(a->service), "%s", service != NULL ? service : "");
	snprintf(a->exe, sizeof(a->exe), "%s", exe != NULL ? exe : "");
	snprintf(a->object, sizeof(a->object), "%s", object);
	snprintf(a->rule, sizeof(a->rule), "%s", rule != NULL ? rule : "");
	a->effect = effect;
	a->wanted = wanted;
	snprintf(a->why, sizeof(a->why), "%s", why != NULL ? why : "");
	a->severity = severity_of(kind, effect);
}

/* ---- canonical paths ---- */

static bool has_meta(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] == '*' || s[i] == '?' || s[i] == '[' || s[i] == '\\')
			return true;
	return false;
}

/*
 * glob with its directories resolved through symbolic links, into out;
 * false when nothing changes or it cannot be resolved.  realpath reads
 * links and stats; it opens nothing, so no mark of ours can hold it.
 */
static bool canon_glob(const char *glob, char *out, size_t len)
{
	char prefix[PATH_MAX], real[PATH_MAX];
	const char *cut = glob, *p = glob;

	if (glob[0] != '/')
		return false;
	/* cut: the '/' before the first component with glob characters (or the last one). */
	while (*p == '/') {
		const char *end = strchr(p + 1, '/');
		size_t n = end != NULL ? (size_t)(end - p - 1) : strlen(p + 1);

		if (has_meta(p + 1, n))
			break;
		cut = p;
		if (end == NULL) {
			/* Literal: the whole path when it exists, else its directory. */
			if (realpath(glob, real) != NULL)
				return strcmp(real, glob) != 0 &&
				       snprintf(out, len, "%s", real) < (int)len;
			break;
		}
		p = end;
	}
	if (cut == glob)
		return false;
	if ((size_t)(cut - glob) >= sizeof(prefix))
		return false;
	memcpy(prefix, glob, (size_t)(cut - glob));
	prefix[cut - glob] = '\0';
	if (realpath(prefix, real) == NULL || strcmp(real, prefix) == 0)
		return false;
	return snprintf(out, len, "%s%s", strcmp(real, "/") == 0 ? "" : real, cut) < (int)len;
}

static void canon_list(struct rule_strings *l)
{
	char c[PATH_MAX];

	for (size_t i = 0; i < l->n; i++) {
		char *dup;

		if (!canon_glob(l->v[i], c, sizeof(c)) || (dup = strdup(c)) == NULL)
			continue;
		free(l->v[i]);
		l->v[i] = dup;
	}
}

/* A copy of r (through its canonical JSON) with canonical paths; -errno. */
static int canon_rule(const struct rule *r, struct rule *out)
{
	struct rule_error rerr;
	char *text;
	size_t len;
	int rc;

	if ((rc = rule_serialize(r, &text, &len)) < 0)
		return rc;
	rc = rule_parse(text, len, out, &rerr);
	free(text);
	if (rc < 0)
		return rc;
	canon_list(&out->processes.deny.executables);
	canon_list(&out->processes.allow.executables);
	canon_list(&out->files.deny.read);
	canon_list(&out->files.deny.write);
	canon_list(&out->files.allow.read);
	canon_list(&out->files.allow.write);
	return 0;
}

/* ---- marks ---- */

struct markset {
	struct fanguard_mark *v;
	size_t n;
	bool exec_all;
	/* Literal paths that do not exist yet: marked once they do (rescan_main). */
	char **pending;
	size_t npending;
};

#define PENDING_MAX 256

/* Remember a literal path to mark once it exists; the reason it is not held now. */
static const char *mark_later(struct markset *ms, const char *path)
{
	for (size_t i = 0; i < ms->npending; i++)
		if (strcmp(ms->pending[i], path) == 0)
			return "does not exist yet: held once it does (checked every 2 s)";
	if (ms->pending != NULL && ms->npending < PENDING_MAX &&
	    (ms->pending[ms->npending] = strdup(path)) != NULL)
		ms->npending++;
	return "does not exist yet: held once it does (checked every 2 s)";
}

static bool pseudo_path(const char *p)
{
	return strncmp(p, "/proc", 5) == 0 || strncmp(p, "/sys", 4) == 0;
}

static void mark_add(struct markset *ms, const char *path, enum fanguard_mark_kind kind, bool exec)
{
	for (size_t i = 0; i < ms->n; i++)
		if (ms->v[i].kind == kind && strcmp(ms->v[i].path, path) == 0) {
			ms->v[i].exec |= exec;
			ms->v[i].open |= !exec;
			return;
		}
	if (ms->n == MARKS_MAX)
		return;
	snprintf(ms->v[ms->n].path, sizeof(ms->v[ms->n].path), "%s", path);
	ms->v[ms->n].kind = kind;
	ms->v[ms->n].exec = exec;
	ms->v[ms->n].open = !exec;
	ms->n++;
}

/*
 * The marks one deny entry (canonical) needs.  Returns NULL when placed, or
 * why it cannot be (then the entry is alerted only).
 */
static const char *mark_entry(struct markset *ms, const char *entry, bool exec)
{
	char dir[PATH_MAX];
	const char *slash;
	struct stat st;

	if (strcmp(entry, "any-shell") == 0 || strcmp(entry, "any-interpreter") == 0) {
		ms->exec_all = true; /* a copied shell is a shell wherever it is */
		return NULL;
	}
	if (pseudo_path(entry))
		return "files under /proc and /sys are not marked";
	slash = strrchr(entry, '/');
	if (!has_meta(entry, strlen(entry))) {
		/*
		 * Its directory is not marked instead: a busy one (/etc) would send
		 * every open in it to the defender.
		 */
		if (stat(entry, &st) != 0)
			return mark_later(ms, entry);
		mark_add(ms, entry, FG_MARK_FILE, exec);
		return NULL;
	} else if (has_meta(entry, (size_t)(slash - entry)) || strcmp(slash + 1, "**") == 0) {
		if (exec) {
			ms->exec_all = true;
			return NULL;
		}
		return "a glob across directories would hold every open on the filesystem";
	}
	/* A name in a directory, existing or not yet: the directory's files. */
	snprintf(dir, sizeof(dir), "%.*s", slash == entry ? 1 : (int)(slash - entry), entry);
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return "neither the file nor its directory exists";
	mark_add(ms, dir, FG_MARK_CHILDREN, exec);
	return NULL;
}

/* Every filesystem mounted here that can hold programs, by one of its mount points. */
static void mark_filesystems(struct markset *ms)
{
	static const char *const pseudo[] = {
	    "proc",	"sysfs",     "cgroup",	"cgroup2",     "bpf",	 "tracefs",
	    "debugfs",	"devpts",    "mqueue",	"securityfs",  "pstore", "configfs",
	    "fusectl",	"hugetlbfs", "autofs",	"binfmt_misc", "nsfs",	 "rpc_pipefs",
	    "efivarfs", "selinuxfs", "devtmpfs"};
	char line[4096], seen[256][16];
	size_t nseen = 0;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		char dev[16], mnt[2048], type[64];
		const char *sep = strstr(line, " - ");
		bool skip = false;

		if (sep == NULL || sscanf(line, "%*s %*s %15s %*s %2047s", dev, mnt) != 2 ||
		    sscanf(sep + 3, "%63s", type) != 1)
			continue;
		for (size_t i = 0; i < sizeof(pseudo) / sizeof(pseudo[0]) && !skip; i++)
			skip = strcmp(type, pseudo[i]) == 0;
		for (size_t i = 0; i < nseen && !skip; i++)
			skip = strcmp(seen[i], dev) == 0;
		if (skip || strchr(mnt, '\\') != NULL || nseen == 256)
			continue;
		snprintf(seen[nseen++], sizeof(seen[0]), "%s", dev);
		mark_add(ms, mnt, FG_MARK_FILESYSTEM, true);
	}
	fclose(f);
}

/* ---- compiling a version ---- */

static void plan_marks(struct enforcer *e, struct enforce_state *s, struct markset *ms)
{
	for (size_t i = 0; i < s->n; i++) {
		const struct rule *r = &s->canon[i];
		const char *why;

		if (!r->enabled)
			continue;
		if (r->processes.present && r->processes.deviation >= RULE_EFFECT_PREVENT) {
			if (!e->fan_exec)
				shortfall_add(&s->sf, r->name, "processes", r->processes.deviation,
					      RULE_EFFECT_ALERT, "no exec permission events: %s",
					      e->fan_why);
			ms->exec_all = true;
		}
		if (r->processes.present && r->processes.deny_effect >= RULE_EFFECT_PREVENT) {
			const struct rule_strings *l = &r->processes.deny.executables;

			if (!e->fan_exec && l->n > 0)
				shortfall_add(&s->sf, r->name, "processes",
					      r->processes.deny_effect, RULE_EFFECT_ALERT,
					      "no exec permission events: %s", e->fan_why);
			for (size_t j = 0; j < l->n; j++) {
				struct stat st;

				if (!has_meta(l->v[j], strlen(l->v[j])) && l->v[j][0] == '/' &&
				    stat(l->v[j], &st) == 0 && s->ninodes < MARKS_MAX &&
				    s->inodes != NULL)
					s->inodes[s->ninodes++] = (struct denied_inode){
					    st.st_dev, st.st_ino, (uint32_t)i, (uint32_t)j};
				/* Opens too: a dynamic loader runs what it opens. */
				if (!has_meta(l->v[j], strlen(l->v[j])) && l->v[j][0] == '/' &&
				    e->fan_open)
					mark_entry(ms, l->v[j], false);
				if ((why = mark_entry(ms, l->v[j], true)) != NULL)
					shortfall_add(&s->sf, r->name, "processes",
						      r->processes.deny_effect, RULE_EFFECT_ALERT,
						      "%.100s: %s", l->v[j], why);
				s->exec_named = true;
			}
		}
		if (r->files.present && r->files.deny_effect >= RULE_EFFECT_PREVENT) {
			const struct rule_strings *lists[2] = {&r->files.deny.read,
							       &r->files.deny.write};

			for (size_t k = 0; k < 2; k++)
				for (size_t j = 0; j < lists[k]->n; j++) {
					if (!e->fan_open) {
						shortfall_add(
						    &s->sf, r->name, "files", r->files.deny_effect,
						    RULE_EFFECT_ALERT,
						    "no open permission events: %s", e->fan_why);
						continue;
					}
					if ((why = mark_entry(ms, lists[k]->v[j], false)) != NULL)
						shortfall_add(&s->sf, r->name, "files",
							      r->files.deny_effect,
							      RULE_EFFECT_ALERT, "%.100s: %s",
							      lists[k]->v[j], why);
					s->open_named = true;
				}
		}
		if (r->files.present && r->files.deviation >= RULE_EFFECT_PREVENT)
			shortfall_add(&s->sf, r->name, "files", r->files.deviation,
				      RULE_EFFECT_ALERT,
				      "deviations from file models are alerted: preventing them"
				      " would hold every open on the host (docs/rules.md)");
		if (!e->kill_ok &&
		    ((r->processes.present && (r->processes.deny_effect == RULE_EFFECT_BLOCK ||
					       r->processes.deviation == RULE_EFFECT_BLOCK)) ||
		     (r->network.present && r->network.deny_effect == RULE_EFFECT_BLOCK)))
			shortfall_add(&s->sf, r->name, "network", RULE_EFFECT_BLOCK,
				      RULE_EFFECT_PREVENT, "no bpf_send_signal: %s", e->net_why);
	}
	if (ms->exec_all && e->fan_exec)
		mark_filesystems(ms);
	s->exec_all = ms->exec_all && e->fan_exec;
}

/* netplan's view of the models: the learner's, under the lock that guards its going away. */
static int model_patterns(const char *service, int listen,
			  void (*fn)(const char *pattern, void *arg), void *arg, void *ctx)
{
	struct enforcer *e = ctx;
	int rc;

	pthread_mutex_lock(&e->learner_lock);
	rc = e->learner == NULL
		 ? -1
		 : learner_model_each(e->learner, service, listen ? MK_LISTEN : MK_CONNECT, fn, arg,
				      MODEL_WAIT_MS);
	if (e->learner != NULL)
		atomic_store(&e->learn_gen, learner_generation(e->learner));
	pthread_mutex_unlock(&e->learner_lock);
	if (rc == -EBUSY)
		log_warn("network model of %s not placed: the models stayed busy (next pass)",
			 service);
	return rc;
}

/* FNV-1a over the cgroups' ids and names: whether a new scan would place anything anew. */
static uint64_t cgroups_signature(const struct netplan_cgroup *cgs, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++) {
		const unsigned char *b = (const unsigned char *)&cgs[i].id;

		for (size_t k = 0; k < sizeof(cgs[i].id); k++)
			h = (h ^ b[k]) * 1099511628211ull;
		for (const char *c = cgs[i].service; *c != '\0'; c++)
			h = (h ^ (unsigned char)*c) * 1099511628211ull;
		for (const char *c = cgs[i].image; *c != '\0'; c++)
			h = (h ^ (unsigned char)*c) * 1099511628211ull;
	}
	return h ^ n;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The units' and containers' cgroups under g's cgroup v2 mount, containers named by image. */
static size_t scan_cgroups(struct enforcer *e, const struct capture_guard *g,
			   struct netplan_cgroup *cgs)
{
	size_t n = netplan_scan_cgroups(g->cgroup2, cgs, CGROUPS_SCAN_MAX);

	pthread_mutex_lock(&e->net_ctrs_lock);
	n = netplan_name_containers(cgs, n, &e->net_ctrs, mono_ms());
	pthread_mutex_unlock(&e->net_ctrs_lock);
	return n;
}

static void plan_network(struct enforcer *e, struct enforce_state *s,
			 const struct enforce_state *prev)
{
	static struct netplan_cgroup cgs[CGROUPS_SCAN_MAX];
	struct capture_guard g;
	char why[160];
	vigil_err err;
	size_t ncg;

	if ((s->net = calloc(1, sizeof(*s->net))) == NULL)
		return;
	if (!e->net_ok || !capture_guard(e->opts.cap, &g, why, sizeof(why))) {
		netplan_build(s->canon, s->n, NULL, 0, NULL, NULL, s->net, &s->sf);
		for (size_t i = 0; i < s->n; i++)
			if (s->canon[i].enabled && s->canon[i].network.present &&
			    s->canon[i].network.deny_effect >= RULE_EFFECT_PREVENT)
				shortfall_add(&s->sf, s->canon[i].name, "network",
					      s->canon[i].network.deny_effect, RULE_EFFECT_ALERT,
					      "no cgroup socket programs: %s", e->net_why);
		return;
	}
	ncg = scan_cgroups(e, &g, cgs);
	atomic_store(&e->cg_sig, cgroups_signature(cgs, ncg));
	netplan_build(s->canon, s->n, cgs, ncg, model_patterns, e, s->net, &s->sf);
	if (netplan_load(&g, s->net, prev != NULL ? prev->net : NULL, ++e->net_gen, &err) < 0) {
		log_warn("network rules: %s", err.msg);
		for (size_t i = 0; i < s->n; i++)
			if (s->canon[i].network.present &&
			    s->canon[i].network.deny_effect >= RULE_EFFECT_PREVENT)
				shortfall_add(&s->sf, s->canon[i].name, "network",
					      s->canon[i].network.deny_effect, RULE_EFFECT_ALERT,
					      "%s", err.msg);
	}
}

/* Compile rs (NULL: the current one again, after a rescan) and put it in force. */
static void apply(struct enforcer *e, const struct ruleset *rs)
{
	struct enforce_state *s = calloc(1, sizeof(*s)), *prev = state_get(e);
	struct markset ms = {.v = calloc(MARKS_MAX, sizeof(*ms.v)),
			     .pending = calloc(PENDING_MAX, sizeof(char *))};
	char why[256];

	if (s == NULL || ms.v == NULL) {
		log_error("out of memory compiling rules: the rules in force stay");
		free(s);
		free(ms.v);
		state_put(prev);
		return;
	}
	atomic_init(&s->refs, 1);
	s->rs = rs;
	s->inodes = calloc(MARKS_MAX, sizeof(*s->inodes));
	s->canon = calloc(rs->set.n + 1, sizeof(*s->canon));
	for (size_t i = 0; s->canon != NULL && i < rs->set.n; i++)
		if (canon_rule(&rs->set.v[i], &s->canon[s->n]) == 0)
			s->n++;
	plan_marks(e, s, &ms);
	if (e->fan != NULL) {
		size_t failed = fanguard_set_marks(e->fan, ms.v, ms.n, why, sizeof(why));

		if (failed > 0) {
			log_warn("%zu fanotify marks could not be set, first: %s", failed, why);
			shortfall_add(&s->sf, "", "processes", RULE_EFFECT_PREVENT,
				      RULE_EFFECT_ALERT, "%zu marks not set: %s", failed, why);
		}
	}
	plan_network(e, s, prev);
	free(ms.v);
	s->pending = ms.pending;
	s->npending = ms.npending;
	bool same_version = prev != NULL && prev->rs->version == rs->version;

	pthread_mutex_lock(&e->state_lock);
	e->cur = s;
	pthread_mutex_unlock(&e->state_lock);
	state_put(prev); /* the reference state_get took */
	state_put(prev); /* e->cur's */
	/* A new version is news; the same one placed again (units, files that appeared) is not. */
	log_msg(same_version ? LOG_LVL_DEBUG : LOG_LVL_INFO,
		"rule set %lld in force: %zu rules, %zu marks%s, %zu network entries for %zu"
		" cgroups, %zu shortfalls",
		(long long)rs->version, s->n, ms.n, s->exec_all ? " (every exec held)" : "",
		s->net != NULL ? s->net->n : 0, s->net != NULL ? s->net->ncgroups : 0, s->sf.n);
}

void enforcer_apply(struct enforcer *e, const struct ruleset *rs)
{
	const struct ruleset *ref = rs;

	/* rs is the caller's reference: take one of our own. */
	atomic_fetch_add(&((struct ruleset *)ref)->refs, 1);
	pthread_mutex_lock(&e->apply_lock);
	apply(e, ref);
	pthread_mutex_unlock(&e->apply_lock);
}

/* New units start and stop: their cgroups are placed again every RESCAN_MS. */
static void *rescan_main(void *arg)
{
	static struct netplan_cgroup cgs[CGROUPS_SCAN_MAX];
	struct enforcer *e = arg;
	struct pollfd p = {.fd = e->stop_fd, .events = POLLIN};

	while (poll(&p, 1, RESCAN_MS) == 0) {
		struct enforce_state *s = state_get(e);
		struct capture_guard g;
		bool service_scoped = false, due = false;
		char why[160];

		for (size_t i = 0; s != NULL && i < s->n && !service_scoped; i++)
			service_scoped =
			    s->canon[i].network.present &&
			    (s->canon[i].scope.services.n > 0 || s->canon[i].scope.images.n > 0);
		/* Units and containers that started or stopped since: place their cgroups again. */
		if (service_scoped && capture_guard(e->opts.cap, &g, why, sizeof(why)))
			due = cgroups_signature(cgs, scan_cgroups(e, &g, cgs)) !=
			      atomic_load(&e->cg_sig);
		/* A model that became active (or relearns) since: compile its network again. */
		for (size_t i = 0; s != NULL && i < s->n && !due; i++)
			if (s->canon[i].network.present &&
			    s->canon[i].network.deviation >= RULE_EFFECT_PREVENT) {
				pthread_mutex_lock(&e->learner_lock);
				due = e->learner != NULL &&
				      learner_generation(e->learner) != atomic_load(&e->learn_gen);
				pthread_mutex_unlock(&e->learner_lock);
				break;
			}
		/* A named file that appeared since: mark it now. */
		for (size_t i = 0; s != NULL && i < s->npending && !due; i++)
			due = access(s->pending[i], F_OK) == 0;
		if (due) {
			atomic_fetch_add(&((struct ruleset *)s->rs)->refs, 1);
			pthread_mutex_lock(&e->apply_lock);
			apply(e, s->rs);
			pthread_mutex_unlock(&e->apply_lock);
		}
		state_put(s);
	}
	return NULL;
}

/* ---- decisions ---- */

static enum rule_list_verdict exec_verdict(const struct rule *canon, const struct rule *orig,
					   const char *path, size_t *idx)
{
	enum rule_list_verdict v = rule_match_exec(&canon->processes, path, idx);

	return v != RULE_LIST_NONE ? v : rule_match_exec(&orig->processes, path, idx);
}

static enum rule_list_verdict file_verdict(const struct rule *canon, const struct rule *orig,
					   const char *path, bool write, size_t *idx)
{
	enum rule_list_verdict v = rule_match_file(&canon->files, path, write, idx);

	return v != RULE_LIST_NONE ? v : rule_match_file(&orig->files, path, write, idx);
}

/* The denied executable rq's file is, whatever it is called now; NULL when none. */
static const struct denied_inode *denied_inode_of(const struct enforce_state *s,
						  const struct fan_request *rq)
{
	struct stat st;

	if (s->ninodes == 0 || rq->fd < 0 || fstat(rq->fd, &st) < 0)
		return NULL;
	for (size_t i = 0; i < s->ninodes; i++)
		if (s->inodes[i].dev == st.st_dev && s->inodes[i].ino == st.st_ino)
			return &s->inodes[i];
	return NULL;
}

/* Whether path is a dynamic loader, which can run a program it only opens. */
static bool is_loader(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base != NULL ? base + 1 : path;
	return strncmp(base, "ld-linux", 8) == 0 || strncmp(base, "ld-musl", 7) == 0 ||
	       strcmp(base, "ld.so") == 0;
}

/*
 * Whether a deviation rule's scope could take in tid's process, from its
 * cgroup alone (one procfs read): a rule for "nginx.service" need not
 * classify every process on the host.  Rules for services known by their
 * executable, or for every service, need the full classification.
 */
static bool deviation_may_apply(const struct rule *r, uint32_t tid)
{
	char unit[256];

	if (r->scope.services.n == 0)
		return true;
	/* Containers' services are named by image, not by a unit: classify those too. */
	for (size_t i = 0; i < r->scope.services.n; i++)
		if (strncmp(r->scope.services.v[i], "exe:", 4) == 0 ||
		    strncmp(r->scope.services.v[i], "container:", 10) == 0 ||
		    strchr(r->scope.services.v[i], '/') != NULL)
			return true;
	if (subject_unit(tid, unit, sizeof(unit)) < 0 || unit[0] == '\0')
		return false;
	for (size_t i = 0; i < r->scope.services.n; i++)
		if (fnmatch(r->scope.services.v[i], unit, 0) == 0)
			return true;
	return false;
}

/* Whether any rule could stop an exec of path (cheap: no process facts needed). */
static bool exec_may_matter(const struct enforce_state *s, const struct fan_request *rq)
{
	const char *path = rq->path;

	if (denied_inode_of(s, rq) != NULL)
		return true;
	for (size_t i = 0; i < s->n; i++) {
		const struct rule *r = &s->canon[i];

		if (!r->enabled || !r->processes.present)
			continue;
		if (r->processes.deviation >= RULE_EFFECT_PREVENT &&
		    deviation_may_apply(r, rq->tid))
			return true;
		if (r->processes.deny_effect < RULE_EFFECT_PREVENT)
			continue;
		/* Literal paths were looked up by inode above: only patterns here. */
		for (size_t k = 0; k < r->processes.deny.executables.n; k++) {
			const char *x = r->processes.deny.executables.v[k];
			const char *ox = s->rs->set.v[i].processes.deny.executables.v[k];

			if ((x[0] != '/' || has_meta(x, strlen(x))) &&
			    (rule_exe_entry_matches(x, path) || rule_exe_entry_matches(ox, path)))
				return true;
		}
	}
	return false;
}

/*
 * Whether any rule could stop this open, by either list (how it opens is
 * read only when one could: a procfs read).
 */
static bool open_may_matter(const struct enforce_state *s, const struct fan_request *rq)
{
	const char *path = rq->path;

	if (denied_inode_of(s, rq) != NULL)
		return true; /* a dynamic loader may be about to run it */
	for (size_t i = 0; i < s->n; i++) {
		const struct rule *r = &s->canon[i];

		if (!r->enabled || !r->files.present || r->files.deny_effect < RULE_EFFECT_PREVENT)
			continue;
		if (file_verdict(r, &s->rs->set.v[i], path, false, NULL) == RULE_LIST_DENY ||
		    file_verdict(r, &s->rs->set.v[i], path, true, NULL) == RULE_LIST_DENY)
			return true;
	}
	return false;
}

/* Whether rq's file starts with "#!" (read through fanotify's own fd: it raises no event). */
static bool is_script(const struct fan_request *rq)
{
	char magic[2];

	return rq->fd >= 0 && pread(rq->fd, magic, 2, 0) == 2 && magic[0] == '#' && magic[1] == '!';
}

static enum fan_answer answer_for(enum rule_effect effect, struct fan_request *rq,
				  const struct subject *sub)
{
	if (effect == RULE_EFFECT_BLOCK) {
		rq->tgid = sub->tgid;
		return FAN_ANSWER_KILL;
	}
	return effect == RULE_EFFECT_PREVENT ? FAN_ANSWER_DENY : FAN_ANSWER_ALLOW;
}

static const char *list_entry(const struct rule_strings *l, size_t i)
{
	return i < l->n ? l->v[i] : "?";
}

static enum fan_answer decide_exec(struct enforcer *e, const struct enforce_state *s,
				   struct fan_request *rq, const struct subject *sub)
{
	struct rule_subject rs = {sub->interactive ? NULL : sub->service,
				  sub->image[0] != '\0' ? sub->image : NULL};
	const struct rule *r = rule_decider(s->canon, s->n, RULE_CAT_PROCESSES, &rs);
	const struct rule *orig;
	struct enforce_audit a;
	char why[256];
	size_t idx = 0;
	int known;

	const struct denied_inode *di = denied_inode_of(s, rq);
	enum rule_list_verdict v;

	if (r == NULL)
		return FAN_ANSWER_ALLOW;
	orig = &s->rs->set.v[r - s->canon];
	/* The file a deny list names is that file under any name (a link, a rename). */
	if (di != NULL && &s->canon[di->rule] == r) {
		v = RULE_LIST_DENY;
		idx = di->entry;
	} else {
		v = exec_verdict(r, orig, rq->path, &idx);
	}
	switch (v) {
	case RULE_LIST_ALLOW:
		return FAN_ANSWER_ALLOW;
	case RULE_LIST_DENY:
		if (r->processes.deny_effect < RULE_EFFECT_PREVENT)
			return FAN_ANSWER_ALLOW; /* alert: the pipeline audits the exec */
		snprintf(why, sizeof(why), "processes.deny.executables: %.200s",
			 list_entry(&orig->processes.deny.executables, idx));
		audit_fill(&a, sub->tgid, "denied_program", sub->service, sub->exe, rq->path,
			   r->name, r->processes.deny_effect, RULE_EFFECT_DISABLED, why);
		audit_push(e, &a);
		return answer_for(r->processes.deny_effect, rq, sub);
	case RULE_LIST_NONE:
		break;
	}
	/* Deviations: services only, and not the service's own start. */
	if (r->processes.deviation < RULE_EFFECT_PREVENT || sub->interactive ||
	    sub->tgid == sub->leader_pid || sub->parent_exe[0] == '\0')
		return FAN_ANSWER_ALLOW;
	/* A script: models know it by its interpreter, whose exec is held next. */
	if (is_script(rq))
		return FAN_ANSWER_ALLOW;
	pthread_mutex_lock(&e->learner_lock);
	known = e->learner == NULL
		    ? -1
		    : learner_program_known(e->learner, sub->service, sub->parent_exe, rq->path,
					    MODEL_WAIT_MS);
	pthread_mutex_unlock(&e->learner_lock);
	if (known == -EBUSY) {
		atomic_fetch_add(&e->model_busy, 1);
		audit_fill(&a, sub->tgid, "new_program", sub->service, sub->parent_exe, rq->path,
			   r->name, RULE_EFFECT_ALERT, r->processes.deviation,
			   "allowed undecided: the models stayed busy past the answer's bound");
		audit_push(e, &a);
		return FAN_ANSWER_ALLOW;
	}
	if (known != 0)
		return FAN_ANSWER_ALLOW;
	audit_fill(&a, sub->tgid, "new_program", sub->service, sub->parent_exe, rq->path, r->name,
		   r->processes.deviation, RULE_EFFECT_DISABLED,
		   "not in the service's model (processes.deviation)");
	audit_push(e, &a);
	return answer_for(r->processes.deviation, rq, sub);
}

static enum fan_answer decide_open(struct enforcer *e, const struct enforce_state *s,
				   struct fan_request *rq, const struct subject *sub)
{
	struct rule_subject rs = {sub->interactive ? NULL : sub->service,
				  sub->image[0] != '\0' ? sub->image : NULL};
	const struct rule *r = rule_decider(s->canon, s->n, RULE_CAT_FILES, &rs);
	const struct rule *orig;
	int writes = subject_open_writes(rq->tid);
	enum rule_list_verdict v = RULE_LIST_NONE;
	struct enforce_audit a;
	bool as_write = writes == 1;
	char why[256];
	size_t idx = 0;

	/*
	 * "ld.so /usr/bin/nc" runs nc without exec'ing it: a loader's open of a
	 * denied executable is decided as that exec.
	 */
	if (is_loader(sub->exe) && denied_inode_of(s, rq) != NULL) {
		struct fan_request as_exec = *rq;

		as_exec.act = FAN_ACT_EXEC;
		return decide_exec(e, s, &as_exec, sub);
	}
	if (r == NULL || r->files.deny_effect < RULE_EFFECT_PREVENT)
		return FAN_ANSWER_ALLOW;
	orig = &s->rs->set.v[r - s->canon];
	if (writes != 1)
		v = file_verdict(r, orig, rq->path, false, &idx);
	/* How it opens unknown (openat2, io_uring): as a write too, the stricter reading. */
	if (v != RULE_LIST_DENY && writes != 0) {
		enum rule_list_verdict w = file_verdict(r, orig, rq->path, true, &idx);

		if (w == RULE_LIST_DENY || v == RULE_LIST_NONE) {
			v = w;
			as_write = true;
		}
	}
	if (v != RULE_LIST_DENY)
		return FAN_ANSWER_ALLOW;
	snprintf(why, sizeof(why), "files.deny.%s: %.160s%s", as_write ? "write" : "read",
		 list_entry(as_write ? &orig->files.deny.write : &orig->files.deny.read, idx),
		 writes < 0 ? " (opened by a call whose flags cannot be trusted: taken as a write)"
			    : "");
	audit_fill(&a, sub->tgid, as_write ? "denied_write" : "denied_read", sub->service, sub->exe,
		   rq->path, r->name, r->files.deny_effect, RULE_EFFECT_DISABLED, why);
	audit_push(e, &a);
	return answer_for(r->files.deny_effect, rq, sub);
}

/* fanguard's callback, on the listener thread: procfs reads only. */
static enum fan_answer decide(struct fan_request *rq, void *ctx)
{
	struct enforcer *e = ctx;
	struct enforce_state *s = state_get(e);
	enum fan_answer a = FAN_ANSWER_ALLOW;
	struct subject *sub = NULL;

	if (s == NULL)
		return FAN_ANSWER_ALLOW;
	/* The ELF interpreter of an exec just allowed on this thread is part of that exec. */
	if (rq->act == FAN_ACT_EXEC && is_loader(rq->path) && rq->tid == e->chain_tid &&
	    mono_ms() - e->chain_ms < 1000)
		goto out;
	if (rq->act == FAN_ACT_EXEC ? !exec_may_matter(s, rq) : !open_may_matter(s, rq))
		goto out;
	/* Large (two paths): one per listener, which is one thread. */
	static struct subject one;
	sub = &one;
	if (subject_resolve(&e->reader, rq->tid, sub) < 0)
		goto out; /* gone: nothing left to stop */
	if (sub->tgid == 1)
		goto out;
	a = rq->act == FAN_ACT_EXEC ? decide_exec(e, s, rq, sub) : decide_open(e, s, rq, sub);
out:
	if (rq->act == FAN_ACT_EXEC && a == FAN_ANSWER_ALLOW) {
		e->chain_tid = rq->tid;
		e->chain_ms = mono_ms();
	}
	state_put(s);
	return a;
}

static void fail_open(const struct fan_request *rq, void *ctx)
{
	struct enforcer *e = ctx;
	struct enforce_audit a;
	char why[160], link[64], exe[PATH_MAX];
	ssize_t n;

	/* The watchdog's thread: a link read, no open. */
	snprintf(link, sizeof(link), "/proc/%u/exe", rq->tid);
	n = readlink(link, exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	snprintf(why, sizeof(why), "no decision within %u ms: allowed (fail-open)",
		 e->opts.answer_ms);
	audit_fill(&a, rq->tid, "enforcement_failed_open", "", exe,
		   rq->path != NULL && rq->path[0] != '\0' ? rq->path : "(not read)", "",
		   RULE_EFFECT_ALERT, RULE_EFFECT_PREVENT, why);
	a.severity = "high";
	audit_push(e, &a);
}

/* ---- the pipeline's checks ---- */

static bool open_writes(uint32_t flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC));
}

/* The act happened; the rule wanted it stopped: say so, and why it was not. */
static void missed(struct enforce_audit *a, const struct enforcer *e, bool exec)
{
	if (a->wanted < RULE_EFFECT_PREVENT)
		return;
	snprintf(a->why + strlen(a->why), sizeof(a->why) - strlen(a->why), "; not %s here: %s",
		 a->wanted == RULE_EFFECT_BLOCK ? "blocked" : "prevented",
		 (exec ? e->fan_exec : e->fan_open) ? "no mark covered it (see shortfalls)"
						    : e->fan_why);
	a->effect = RULE_EFFECT_ALERT;
}

static const char *net_unavailable(const struct enforcer *e)
{
	return e->net_ok ? "not in the kernel's table (see shortfalls)" : e->net_why;
}

/* A connect or listen under the network rules: refused by the kernel, or happened. */
static bool check_net(struct enforcer *e, const struct enforce_state *s, const struct event *ev,
		      const struct event_enrich *en, const struct classification *cls,
		      const struct rule_subject *rs, struct enforce_audit *out)
{
	const struct ev_net *n = ev->net;
	bool tcp = n->type == SOCK_STREAM, connect = n->op == NOP_CONNECT;
	char peer[INET6_ADDRSTRLEN + 16], addr[INET6_ADDRSTRLEN], why[256];
	const struct rule *r, *orig;
	size_t idx = 0;
	enum rule_list_verdict v;

	if (n->family != AF_INET && n->family != AF_INET6)
		return false;
	if (!connect && n->op != NOP_BIND && n->op != NOP_LISTEN)
		return false;
	inet_ntop(n->family, connect ? n->remote_addr : n->local_addr, addr, sizeof(addr));
	snprintf(peer, sizeof(peer), n->family == AF_INET6 ? "[%s]:%u" : "%s:%u", addr,
		 connect ? n->remote_port : n->local_port);
	if (ev->hdr->flags & EVF_DENIED) {
		const struct netplan *p = s->net;
		uint32_t entry = n->verdict > 0 ? n->verdict - 1u : 0;
		uint32_t i = entry % NETPLAN_ENTRIES_MAX;
		bool known = p != NULL && p->gen == n->verdict_gen && i < p->n;
		const struct rule *dr = known ? &s->canon[p->origin[i].rule] : NULL;

		if (known && !p->origin[i].model) {
			char text[64];

			if (p->origin[i].listen)
				rule_port_text(&dr->network.deny.listen.v[p->origin[i].index], text,
					       sizeof(text));
			else
				rule_net_text(&dr->network.deny.connect.v[p->origin[i].index], text,
					      sizeof(text));
			snprintf(why, sizeof(why), "network.deny.%s: %s",
				 p->origin[i].listen ? "listen" : "connect", text);
		}
		if (known && p->origin[i].model) {
			snprintf(why, sizeof(why),
				 "not in the service's model (network.deviation)");
		} else if (!known) {
			snprintf(why, sizeof(why),
				 "refused under rule-set table %u, since replaced", n->verdict_gen);
		}
		audit_fill(out, ev->hdr->pid,
			   known && p->origin[i].model ? (connect ? "new_peer" : "new_listen")
			   : connect		       ? "denied_connect"
						       : "denied_listen",
			   cls->service, en->exe, peer, dr != NULL ? dr->name : "",
			   known && p->entries[i].block ? RULE_EFFECT_BLOCK : RULE_EFFECT_PREVENT,
			   RULE_EFFECT_DISABLED, why);
		return true;
	}
	if (n->result < 0 && n->result != -115 /* EINPROGRESS */)
		return false;
	/* TCP is checked when it listens, UDP when it binds, as operators write ports. */
	if (!connect && (tcp ? n->op != NOP_LISTEN : n->op != NOP_BIND))
		return false;
	if ((r = rule_decider(s->canon, s->n, RULE_CAT_NETWORK, rs)) == NULL)
		return false;
	orig = &s->rs->set.v[r - s->canon];
	v = connect
		? rule_match_connect(&r->network, n->family, n->remote_addr, n->remote_port, &idx)
		: rule_match_listen(&r->network, tcp ? RULE_PROTO_TCP : RULE_PROTO_UDP,
				    n->local_port, &idx);
	if (v != RULE_LIST_DENY)
		return false;
	{
		char text[64];

		if (connect)
			rule_net_text(&orig->network.deny.connect.v[idx], text, sizeof(text));
		else
			rule_port_text(&orig->network.deny.listen.v[idx], text, sizeof(text));
		snprintf(why, sizeof(why), "network.deny.%s: %s", connect ? "connect" : "listen",
			 text);
	}
	audit_fill(out, ev->hdr->pid, connect ? "denied_connect" : "denied_listen", cls->service,
		   en->exe, peer, r->name, RULE_EFFECT_ALERT,
		   r->network.deny_effect > RULE_EFFECT_ALERT ? r->network.deny_effect
							      : RULE_EFFECT_DISABLED,
		   why);
	if (out->wanted >= RULE_EFFECT_PREVENT)
		snprintf(out->why + strlen(out->why), sizeof(out->why) - strlen(out->why),
			 "; not %s here: %s",
			 out->wanted == RULE_EFFECT_BLOCK ? "blocked" : "prevented",
			 net_unavailable(e));
	return true;
}

bool enforcer_check_event(struct enforcer *e, const struct event *ev, const struct event_enrich *en,
			  const struct classification *cls, struct enforce_audit *out)
{
	struct enforce_state *s = state_get(e);
	bool interactive = cls->cls == CLASS_INTERACTIVE;
	struct rule_subject rs = {interactive ? NULL : cls->service,
				  cls->image[0] != '\0' ? cls->image : NULL};
	const struct rule *r, *orig;
	char why[256], path[EV_PATH_MAX * 2];
	bool hit = false;
	size_t idx = 0;

	if (s == NULL || s->n == 0)
		goto out;
	switch (ev->hdr->type) {
	case EV_EXEC:
		if (en->exe == NULL ||
		    (r = rule_decider(s->canon, s->n, RULE_CAT_PROCESSES, &rs)) == NULL)
			break;
		orig = &s->rs->set.v[r - s->canon];
		if (exec_verdict(r, orig, en->exe, &idx) != RULE_LIST_DENY)
			break;
		snprintf(why, sizeof(why), "processes.deny.executables: %.200s",
			 list_entry(&orig->processes.deny.executables, idx));
		audit_fill(out, ev->hdr->pid, "denied_program", cls->service,
			   en->nancestry > 0 && en->ancestry[0].exe != NULL ? en->ancestry[0].exe
									    : "",
			   en->exe, r->name, RULE_EFFECT_ALERT, r->processes.deny_effect, why);
		if (out->wanted == RULE_EFFECT_ALERT)
			out->wanted = RULE_EFFECT_DISABLED;
		missed(out, e, true);
		hit = true;
		break;
	case EV_FILE: {
		const struct ev_file *f = ev->file;
		bool w;

		/* A refused open was audited where it was refused. */
		if (f->op != FOP_OPEN || f->result < 0 || ev->s[0].p == NULL ||
		    ev->s[0].p[0] != '/' || ev->s[0].len >= sizeof(path) ||
		    (r = rule_decider(s->canon, s->n, RULE_CAT_FILES, &rs)) == NULL)
			break;
		memcpy(path, ev->s[0].p, ev->s[0].len);
		path[ev->s[0].len] = '\0';
		w = open_writes(f->open_flags);
		orig = &s->rs->set.v[r - s->canon];
		if (file_verdict(r, orig, path, w, &idx) != RULE_LIST_DENY)
			break;
		snprintf(why, sizeof(why), "files.deny.%s: %.200s", w ? "write" : "read",
			 list_entry(w ? &orig->files.deny.write : &orig->files.deny.read, idx));
		audit_fill(out, ev->hdr->pid, w ? "denied_write" : "denied_read", cls->service,
			   en->exe, path, r->name, RULE_EFFECT_ALERT, r->files.deny_effect, why);
		if (out->wanted == RULE_EFFECT_ALERT)
			out->wanted = RULE_EFFECT_DISABLED;
		missed(out, e, false);
		hit = true;
		break;
	}
	case EV_NET:
		hit = check_net(e, s, ev, en, cls, &rs, out);
		break;
	default:
		break;
	}
out:
	state_put(s);
	return hit;
}

bool enforcer_deviation(struct enforcer *e, const char *service, const char *image,
			const char *kind, char *rule, enum rule_effect *ret_effect,
			enum rule_effect *ret_wanted, char *why, size_t whylen)
{
	struct enforce_state *s = state_get(e);
	struct rule_subject rs = {service, image != NULL && image[0] != '\0' ? image : NULL};
	enum rule_category c = RULE_CAT_NETWORK;
	const struct rule *r;
	enum rule_effect want;
	bool audit = true;

	rule[0] = why[0] = '\0';
	*ret_effect = RULE_EFFECT_ALERT;
	*ret_wanted = RULE_EFFECT_DISABLED;
	if (strcmp(kind, "new_program") == 0)
		c = RULE_CAT_PROCESSES;
	else if (strcmp(kind, "new_write") == 0 || strcmp(kind, "sensitive_read") == 0 ||
		 strcmp(kind, "new_read") == 0)
		c = RULE_CAT_FILES;
	else if (strcmp(kind, "rewritten_argument") == 0)
		goto out; /* an attack sign, whatever the rules say */
	if (s == NULL || (r = rule_decider(s->canon, s->n, c, &rs)) == NULL)
		goto out;
	snprintf(rule, RULE_NAME_MAX + 1, "%s", r->name);
	want = c == RULE_CAT_PROCESSES ? r->processes.deviation
	       : c == RULE_CAT_FILES   ? r->files.deviation
				       : r->network.deviation;
	if (want == RULE_EFFECT_DISABLED) {
		audit = false;
		goto out;
	}
	if (want >= RULE_EFFECT_PREVENT) {
		/* Had it been stopped, the act would not be here to report. */
		*ret_wanted = want;
		snprintf(why, whylen, "not %s here: %s",
			 want == RULE_EFFECT_BLOCK ? "blocked" : "prevented",
			 c != RULE_CAT_PROCESSES ? "see the host's shortfalls"
			 : !e->fan_exec		 ? e->fan_why
					: "the exec was not held (see the host's shortfalls)");
	}
out:
	state_put(s);
	return audit;
}

void enforcer_set_learner(struct enforcer *e, struct learner *l)
{
	pthread_mutex_lock(&e->learner_lock);
	e->learner = l;
	pthread_mutex_unlock(&e->learner_lock);
}

static void backend(Vigil__EnforceBackend *b, const char *name, bool ok, const char *detail)
{
	vigil__enforce_backend__init(b);
	b->name = (char *)name;
	b->available = ok;
	b->detail = (char *)detail;
}

void enforcer_report(struct enforcer *e, Vigil__RulesState *out, struct enforcer_report_buf *b)
{
	struct enforce_state *s = state_get(e);

	backend(&b->backends[0], "fanotify-exec", e->fan_exec, e->fan_exec ? "" : e->fan_why);
	backend(&b->backends[1], "fanotify-open", e->fan_open, e->fan_open ? "" : e->fan_why);
	backend(&b->backends[2], "cgroup-sock", e->net_ok, e->net_ok ? "" : e->net_why);
	backend(&b->backends[3], "bpf-signal", e->kill_ok, e->kill_ok ? "" : e->net_why);
	for (size_t i = 0; i < 4; i++)
		b->backendp[i] = &b->backends[i];
	out->n_backends = 4;
	out->backends = b->backendp;
	b->sf.n = 0;
	if (s != NULL)
		b->sf = s->sf;
	state_put(s);
	for (size_t i = 0; i < b->sf.n; i++) {
		const struct shortfall *f = &b->sf.v[i];

		vigil__rule_shortfall__init(&b->sfs[i]);
		b->sfs[i].rule = (char *)f->rule;
		b->sfs[i].section = (char *)f->section;
		b->sfs[i].wanted = (char *)rule_effect_name(f->wanted);
		b->sfs[i].applied = (char *)rule_effect_name(f->applied);
		b->sfs[i].why = (char *)f->why;
		b->sfp[i] = &b->sfs[i];
	}
	out->n_shortfalls = b->sf.n;
	out->shortfalls = b->sfp;
}

void enforcer_stats(struct enforcer *e, struct enforcer_stats *out)
{
	struct fanguard_stats fs = {0};
	struct enforce_state *s = state_get(e);

	if (e->fan != NULL)
		fanguard_stats(e->fan, &fs);
	memset(out, 0, sizeof(*out));
	out->audits_dropped = atomic_load(&e->audits_dropped);
	out->model_busy = atomic_load(&e->model_busy);
	out->fan_requests = fs.requests;
	out->fan_denied = fs.denied;
	out->fan_killed = fs.killed;
	out->fan_fail_open = fs.fail_open;
	out->fan_own = fs.own;
	out->fan_errors = fs.errors;
	out->fan_marks = fs.marks;
	out->fan_mark_errors = fs.mark_errors;
	if (s != NULL && s->net != NULL) {
		out->net_entries = s->net->n;
		out->net_cgroups = s->net->ncgroups;
	}
	state_put(s);
}

struct enforcer *enforcer_start(const struct enforcer_opts *opts, vigil_err *err)
{
	struct enforcer *e = calloc(1, sizeof(*e));
	struct capture_guard g;

	if (e == NULL || (e->audits = calloc(ENFORCE_AUDITS_MAX, sizeof(*e->audits))) == NULL ||
	    subject_reader_init(&e->reader) < 0 ||
	    container_cache_init(&e->net_ctrs, NULL, 0, 0, NULL) < 0) {
		if (e != NULL) {
			subject_reader_fini(&e->reader);
			container_cache_fini(&e->net_ctrs);
			free(e->audits);
		}
		free(e);
		verr_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	e->opts = *opts;
	if (e->opts.answer_ms == 0)
		e->opts.answer_ms = 250;
	e->stop_fd = -1;
	pthread_mutex_init(&e->state_lock, NULL);
	pthread_mutex_init(&e->learner_lock, NULL);
	pthread_mutex_init(&e->apply_lock, NULL);
	pthread_mutex_init(&e->audit_lock, NULL);
	pthread_mutex_init(&e->net_ctrs_lock, NULL);
	/* The kernel kills from sys_exit, which is capture's: with capture, it is there. */
	e->net_ok = capture_guard(opts->cap, &g, e->net_why, sizeof(e->net_why));
	e->kill_ok = opts->cap != NULL && e->net_ok;
	if (opts->fanotify) {
		fanguard_probe(&e->fan_exec, &e->fan_open, e->fan_why, sizeof(e->fan_why));
		if (e->fan_exec || e->fan_open) {
			vigil_err ferr;

			e->fan = fanguard_start(decide, fail_open, e, e->opts.answer_ms, &ferr);
			if (e->fan == NULL) {
				snprintf(e->fan_why, sizeof(e->fan_why), "%.150s", ferr.msg);
				e->fan_exec = e->fan_open = false;
			}
		}
	} else {
		snprintf(e->fan_why, sizeof(e->fan_why), "turned off in the configuration");
	}
	if ((e->stop_fd = eventfd(0, EFD_CLOEXEC)) >= 0 &&
	    pthread_create(&e->rescan, NULL, rescan_main, e) == 0)
		e->rescan_up = true;
	log_info("enforcement: exec %s, open %s, network %s, kill %s", e->fan_exec ? "yes" : "no",
		 e->fan_open ? "yes" : "no", e->net_ok ? "yes" : "no", e->kill_ok ? "yes" : "no");
	if (!e->fan_exec || !e->fan_open)
		log_warn("fanotify permission events: %s", e->fan_why);
	if (!e->net_ok)
		log_warn("network guard: %s", e->net_why);
	return e;
}

void enforcer_stop(struct enforcer *e)
{
	uint64_t one = 1;

	if (e == NULL)
		return;
	if (e->rescan_up && write(e->stop_fd, &one, sizeof(one)) == sizeof(one))
		pthread_join(e->rescan, NULL);
	if (e->stop_fd >= 0)
		close(e->stop_fd);
	fanguard_stop(e->fan);
	state_put(e->cur);
	subject_reader_fini(&e->reader);
	pthread_mutex_destroy(&e->state_lock);
	pthread_mutex_destroy(&e->learner_lock);
	pthread_mutex_destroy(&e->apply_lock);
	pthread_mutex_destroy(&e->audit_lock);
	pthread_mutex_destroy(&e->net_ctrs_lock);
	container_cache_fini(&e->net_ctrs);
	free(e->audits);
	free(e);
}
