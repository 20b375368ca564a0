/* SPDX-License-Identifier: Apache-2.0 */
#include "learn/learn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "learn/generalize.h"
#include "log.h"
#include "utf8.h"

/*
 * New entries and state changes leave within seconds and are saved within
 * half a minute; counts and last-seen times, which change on every event,
 * travel once a minute and are saved every ten.
 */
#define DELTA_EVERY_MS	     2000
#define COUNTS_EVERY_MS	     60000
#define SAVE_EVERY_MS	     30000
#define SAVE_COUNTS_EVERY_MS 600000
#define PROMOTE_EVERY_MS     1000

struct learner {
	/*
	 * Written by the capture thread; read by the exec guard's listener
	 * (learner_program_known), which waits for it a bounded time only.
	 */
	pthread_rwlock_t models_lock;
	struct model_set *models;
	atomic_uint_fast64_t generation; /* bumped when a model becomes active or relearns */
	struct learn_sink sink;
	uint64_t last_promote_ms, last_delta_ms, last_counts_ms, last_save_ms, last_save_counts_ms;
	uint64_t drops_seen;
	bool drops_known;
	bool modelling;	       /* false: learning is off, only activity is logged */
	struct learn_stats st; /* the capture thread's, unlocked */
	/*
	 * Rewritten-argument audits per service (by a hash of its name) in the
	 * current minute: each is an attack sign and is never folded into a
	 * model, so a service doing it in a loop is capped, and counted.
	 */
	struct {
		uint64_t service_hash, minute;
		uint32_t audits;
	} rewrite_budget[32];
	/* A copy of st for other threads (the heartbeat), refreshed at every tick. */
	pthread_mutex_t snap_lock;
	struct learn_stats snap;
};

/* Publish the counters for learner_stats.  Capture thread. */
static void publish_stats(struct learner *l)
{
	pthread_mutex_lock(&l->snap_lock);
	l->snap = l->st;
	model_set_stats(l->models, &l->snap.models);
	pthread_mutex_unlock(&l->snap_lock);
}

/* The wall clock in ms, as the pipeline stamps events (models' times are wall times). */
static uint64_t wall_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct learner *learner_new(const struct model_limits *lim, const char *dir,
			    const struct learn_sink *sink, vigil_err *err)
{
	struct learner *l = calloc(1, sizeof(*l));

	if (l == NULL) {
		verr_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	l->sink = *sink;
	l->modelling = lim->max_models > 0;
	pthread_mutex_init(&l->snap_lock, NULL);
	pthread_rwlock_init(&l->models_lock, NULL);
	generalize_ports_init();
	if ((l->models = model_set_new(lim, dir, err)) == NULL ||
	    model_set_load(l->models, wall_now_ms(), err) < 0) {
		model_set_free(l->models);
		pthread_mutex_destroy(&l->snap_lock);
		pthread_rwlock_destroy(&l->models_lock);
		free(l);
		return NULL;
	}
	publish_stats(l);
	return l;
}

static void send_deltas(struct learner *l, bool counts)
{
	if (l->sink.delta == NULL)
		return;
	pthread_rwlock_wrlock(&l->models_lock);
	model_set_collect(l->models, counts, l->sink.delta, l->sink.ctx);
	pthread_rwlock_unlock(&l->models_lock);
}

void learner_free(struct learner *l)
{
	vigil_err err;

	if (l == NULL)
		return;
	send_deltas(l, true);
	if (model_set_save(l->models, true, &err) < 0)
		log_warn("saving models: %s", err.msg);
	model_set_free(l->models);
	pthread_mutex_destroy(&l->snap_lock);
	pthread_rwlock_destroy(&l->models_lock);
	free(l);
}

/* One observation and what an audit would say about it. */
struct obs {
	struct model_obs m;
	char pattern[GENERALIZE_PATTERN_MAX];
	char fold[GENERALIZE_PATTERN_MAX];
	char raw[1024];
};

/* name made absolute against base (its directory), into out; false when it cannot be placed. */
static bool abs_path(const struct ev_str *name, const struct ev_str *base, char *out, size_t len)
{
	if (name->p == NULL || name->len == 0)
		return false;
	if (name->p[0] == '/') {
		if (name->len >= len)
			return false;
		memcpy(out, name->p, name->len + 1);
		return true;
	}
	if (base->p == NULL || base->p[0] != '/')
		return false;
	return event_path_join(base->p, base->len, name->p, name->len, out, len) >= 0;
}

/* Files whose writes say nothing: terminals and the bit buckets. */
static bool unremarkable(const char *path)
{
	static const char *const exact[] = {"/dev/null", "/dev/zero",	"/dev/full",   "/dev/tty",
					    "/dev/ptmx", "/dev/random", "/dev/urandom"};

	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		if (strcmp(path, exact[i]) == 0)
			return true;
	return strncmp(path, "/dev/pts/", 9) == 0;
}

/* Copy a NUL-terminated string as UTF-8 (see utf8.h). */
static void text_copy(char *out, size_t outlen, const char *in)
{
	utf8_sanitize(in, strlen(in), out, outlen);
}

/*
 * The generalized pattern of a path, as UTF-8: the model stores what the
 * console can store, so both hold the same pattern.
 */
static bool path_pattern(const char *path, char *out, size_t outlen)
{
	char gen[GENERALIZE_PATTERN_MAX];

	if (generalize_path(path, gen, sizeof(gen)) < 0)
		return false;
	text_copy(out, outlen, gen);
	return true;
}

/* A path observation: pattern and fold from the path; false when it is not worth one. */
static bool path_obs(struct obs *o, enum model_kind kind, const char *path)
{
	if (unremarkable(path) || !path_pattern(path, o->pattern, sizeof(o->pattern)))
		return false;
	o->m.kind = kind;
	o->m.pattern = o->pattern;
	o->m.fold =
	    generalize_parent_glob(o->pattern, o->fold, sizeof(o->fold)) >= 0 ? o->fold : NULL;
	text_copy(o->raw, sizeof(o->raw), path);
	return true;
}

static bool open_writes(uint32_t flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC));
}

/*
 * A read-only open: a sensitive file is an entry of its own kind; what every
 * process reads (libraries, locale, the loader's files, its own /proc) is
 * left out and counted; the rest is a read.  O_PATH opens read nothing.
 */
static size_t read_obs(struct learner *l, const struct event *ev, const char *path, struct obs *o)
{
	if (generalize_is_sensitive(path))
		return path_obs(o, MK_SENSITIVE_READ, path) ? 1 : 0;
	if ((ev->file->open_flags & O_PATH) || generalize_read_is_common(path, ev->hdr->pid)) {
		l->st.reads_common++;
		return 0;
	}
	return path_obs(o, MK_READ, path) ? 1 : 0;
}

static size_t file_obs(struct learner *l, const struct event *ev, struct obs *o)
{
	const struct ev_file *f = ev->file;
	char path[EV_PATH_MAX * 2];
	size_t n = 0;

	if (f->result < 0 || !abs_path(&ev->s[0], &ev->s[2], path, sizeof(path)))
		return 0;
	if (f->op == FOP_OPEN && !open_writes(f->open_flags))
		return read_obs(l, ev, path, o);
	if (path_obs(&o[n], MK_WRITE, path))
		n++;
	/* rename and link create a second name; a symlink's target is only text. */
	if ((f->op == FOP_RENAME || f->op == FOP_LINK) &&
	    abs_path(&ev->s[1], &ev->s[3], path, sizeof(path)) && path_obs(&o[n], MK_WRITE, path))
		n++;
	return n;
}

static bool inet_family(unsigned family)
{
	return family == AF_INET || family == AF_INET6;
}

static size_t net_obs(const struct event *ev, struct obs *o)
{
	const struct ev_net *e = ev->net;
	const char *proto = event_net_proto_name(e);
	char addr[64], range[64];
	int family = e->family;

	/* A non-blocking connect reports -EINPROGRESS: the attempt is what matters. */
	if (e->result < 0 && !(e->op == NOP_CONNECT && e->result == -EINPROGRESS))
		return 0;
	if (family == AF_UNIX) {
		char path[EV_PATH_MAX], gen[GENERALIZE_PATTERN_MAX - 8];

		if (ev->s[0].p == NULL || ev->s[0].len == 0 ||
		    ev->s[0].len >= GENERALIZE_PATTERN_MAX ||
		    (e->op != NOP_CONNECT && e->op != NOP_LISTEN))
			return 0;
		memcpy(path, ev->s[0].p, ev->s[0].len + 1);
		if (!path_pattern(path, gen, sizeof(gen)))
			return 0;
		snprintf(o->pattern, sizeof(o->pattern), "unix:%s", gen);
		o->m.kind = e->op == NOP_CONNECT ? MK_CONNECT : MK_LISTEN;
		o->m.pattern = o->pattern;
		o->m.fold = NULL;
		memcpy(o->raw, "unix:", 5);
		text_copy(o->raw + 5, sizeof(o->raw) - 5, path);
		return 1;
	}
	if (!inet_family(e->family))
		return 0;
	switch (e->op) {
	case NOP_LISTEN:
	case NOP_BIND:
		/* Binding a datagram socket to a port is how UDP serves; TCP says so by listening.
		 */
		if (e->op == NOP_BIND && (e->type != SOCK_DGRAM || e->local_port == 0))
			return 0;
		o->m.kind = MK_LISTEN;
		if (generalize_port_is_ephemeral(e->local_port))
			snprintf(o->pattern, sizeof(o->pattern), "%s:ephemeral", proto);
		else
			snprintf(o->pattern, sizeof(o->pattern), "%s:%u", proto, e->local_port);
		o->m.fold = NULL;
		snprintf(o->raw, sizeof(o->raw), "%s port %u", proto, e->local_port);
		break;
	case NOP_CONNECT:
	case NOP_ACCEPT:
		if (generalize_addr(family, e->remote_addr, addr, sizeof(addr)) < 0 ||
		    generalize_addr_range(family, e->remote_addr, range, sizeof(range)) < 0)
			return 0;
		if (e->op == NOP_CONNECT) {
			/* The peer's port is its service; ours is ephemeral and says nothing. */
			o->m.kind = MK_CONNECT;
			snprintf(o->pattern, sizeof(o->pattern), "%s:%s:%u", proto, addr,
				 e->remote_port);
			snprintf(o->fold, sizeof(o->fold), "%s:%s:%u", proto, range,
				 e->remote_port);
			snprintf(o->raw, sizeof(o->raw), "%s %s port %u", proto, addr,
				 e->remote_port);
		} else {
			/* A client's port is ephemeral: only its address is learned. */
			o->m.kind = MK_ACCEPT;
			snprintf(o->pattern, sizeof(o->pattern), "%s:%s", proto, addr);
			snprintf(o->fold, sizeof(o->fold), "%s:%s", proto, range);
			snprintf(o->raw, sizeof(o->raw), "%s %s port %u (local port %u)", proto,
				 addr, e->remote_port, e->local_port);
		}
		o->m.fold = o->fold;
		break;
	default:
		return 0;
	}
	o->m.pattern = o->pattern;
	return 1;
}

/* Args (NUL-separated) as one line of UTF-8 with spaces, cut to fit. */
static void join_args(const struct ev_str *args, char *out, size_t len)
{
	char line[EV_ARGS_MAX];
	size_t n = args->p != NULL ? args->len : 0;

	if (n >= sizeof(line))
		n = sizeof(line) - 1;
	for (size_t i = 0; i < n; i++)
		line[i] = args->p[i] == '\0' ? ' ' : args->p[i];
	utf8_sanitize(line, n, out, len);
}

/*
 * The program a process started: the section is its parent's executable.
 * A service's leader was started from outside the service (init, a
 * supervisor), so its own exec teaches the model nothing.
 */
static size_t exec_obs(const struct event *ev, const struct event_enrich *en,
		       const struct classification *cls, struct obs *o, const char **section)
{
	if (cls->leader_pid == ev->hdr->pid || en->nancestry == 0 || en->ancestry[0].pid <= 1 ||
	    en->ancestry[0].exe == NULL || en->exe == NULL)
		return 0;
	if (!path_obs(o, MK_PROGRAM, en->exe))
		return 0;
	o->m.fold = NULL;
	join_args(&ev->s[1], o->raw, sizeof(o->raw));
	if (o->raw[0] == '\0')
		text_copy(o->raw, sizeof(o->raw), en->exe);
	*section = en->ancestry[0].exe;
	return 1;
}

static const char *deviation_kind(enum model_kind k)
{
	static const char *const names[MK_COUNT] = {[MK_PROGRAM] = "new_program",
						    [MK_WRITE] = "new_write",
						    [MK_SENSITIVE_READ] = "sensitive_read",
						    [MK_LISTEN] = "new_listen",
						    [MK_CONNECT] = "new_peer",
						    [MK_ACCEPT] = "new_client",
						    [MK_READ] = "new_read"};

	return names[k];
}

static bool under(const char *path, const char *dir)
{
	return strncmp(path, dir, strlen(dir)) == 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/*
 * Whether a path names where credentials are kept: client configuration of
 * clouds and clusters, password and token files, private keys, keystores.
 * By name, wherever it is: a home directory, an application's tree, /etc.
 */
static bool credential_path(const char *path)
{
	static const char *const dirs[] = {
	    "/.ssh/",
	    "/.aws/",
	    "/.azure/",
	    "/.kube/",
	    "/.docker/",
	    "/.gnupg/",
	    "/.config/gcloud/",
	    "/.terraform.d/",
	    "/.password-store/",
	    "/run/secrets/",
	    "/var/run/secrets/",
	    "/etc/kubernetes/",
	    "/etc/letsencrypt/",
	    "/etc/ssl/private/",
	    "/etc/pki/tls/private/",
	    "/.vault-token",
	};
	static const char *const names[] = {
	    "/.netrc",	     "/.pgpass",      "/.my.cnf",    "/.git-credentials", "/.npmrc",
	    "/.pypirc",	     "/credentials",  "/.env",	     "/id_rsa",		  "/id_ecdsa",
	    "/id_ed25519",   "/id_dsa",	      "/token",	     "/.htpasswd",	  "/secrets.yml",
	    "/secrets.yaml", "/secrets.json", "/master.key", "/wp-config.php",
	};
	static const char *const suffixes[] = {".key",	".p12",	    ".pfx",	".jks", ".keystore",
					       ".kdbx", "-key.pem", "_key.pem", ".ovpn"};

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		if (strstr(path, dirs[i]) != NULL)
			return true;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (ends_with(path, names[i]))
			return true;
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++)
		if (ends_with(path, suffixes[i]))
			return true;
	return false;
}

/*
 * How loud a read outside the model is: people's files, root's, other
 * services' state and spools, another process's memory or environment, and
 * credentials anywhere are high; configuration and runtime state medium;
 * the rest (an application's own tree, /srv, /tmp) low.
 */
static const char *read_severity(const char *path)
{
	static const char *const high[] = {"/home/",	  "/root/",	   "/var/lib/",
					   "/var/spool/", "/var/backups/", "/var/mail/"};
	static const char *const medium[] = {"/etc/", "/proc/", "/run/",
					     "/var/", "/dev/",	"/boot/"};

	if (credential_path(path))
		return "high";
	for (size_t i = 0; i < sizeof(high) / sizeof(high[0]); i++)
		if (under(path, high[i]))
			return "high";
	if (under(path, "/proc/") && (ends_with(path, "/environ") || ends_with(path, "/mem") ||
				      ends_with(path, "/maps") || ends_with(path, "/cmdline")))
		return "high";
	for (size_t i = 0; i < sizeof(medium) / sizeof(medium[0]); i++)
		if (under(path, medium[i]))
			return "medium";
	return "low";
}

/* How loud a deviation is: an interpreter or shell started, secrets read, system files changed. */
static const char *severity(enum model_kind k, const char *raw_path, const char *pattern)
{
	static const char *const loud_programs[] = {
	    "sh", "bash", "dash",  "zsh",    "ksh",	"csh",	"tcsh", "fish", "busybox",
	    "nc", "ncat", "socat", "python", "python3", "perl", "ruby", "curl", "wget"};
	static const char *const system_dirs[] = {"/etc/", "/usr/",  "/bin/",  "/sbin/",
						  "/lib",  "/boot/", "/root/", "/var/spool/cron/"};

	switch (k) {
	case MK_SENSITIVE_READ:
		return "high";
	case MK_READ:
		return read_severity(raw_path);
	case MK_PROGRAM: {
		const char *base = strrchr(pattern, '/');

		base = base != NULL ? base + 1 : pattern;
		for (size_t i = 0; i < sizeof(loud_programs) / sizeof(loud_programs[0]); i++)
			if (strcmp(base, loud_programs[i]) == 0)
				return "high";
		return "medium";
	}
	case MK_WRITE:
		for (size_t i = 0; i < sizeof(system_dirs) / sizeof(system_dirs[0]); i++)
			if (under(raw_path, system_dirs[i]))
				return "high";
		return strstr(raw_path, "/.ssh/") != NULL ? "high" : "low";
	case MK_ACCEPT:
		return "low";
	default:
		return "medium";
	}
}

/*
 * Report o as a deviation.  rewritten: the caller changed the call's path or
 * address while it ran (EVF_RACED), whatever the model holds.
 */
static void report(struct learner *l, const struct event *ev, const struct event_enrich *en,
		   const char *service, const struct obs *o, bool rewritten, uint64_t now_ms)
{
	Vigil__Deviation d = VIGIL__DEVIATION__INIT;
	enum { LINKS = 1 + EVENT_ANCESTRY_MAX };
	Vigil__ChainLink links[LINKS], *lp[LINKS];
	char comm[EV_COMM_LEN + 1], expected[1024];
	static char names[LINKS][2][512]; /* the chain's comm and exe as UTF-8 */
	size_t n = 0;

	if (l->sink.deviation == NULL)
		return;
	memcpy(comm, ev->hdr->comm, EV_COMM_LEN);
	comm[EV_COMM_LEN] = '\0';
	if (rewritten)
		expected[0] = '\0'; /* no model entry could make it ordinary */
	else
		model_expected(l->models, service, o->m.exe, o->m.kind, expected, sizeof(expected));
	for (size_t i = 0; i <= en->nancestry && i < LINKS; i++, n++) {
		const char *c = i == 0 ? comm : en->ancestry[i - 1].comm;
		const char *x = i == 0 ? en->exe : en->ancestry[i - 1].exe;

		vigil__chain_link__init(&links[n]);
		links[n].pid = i == 0 ? ev->hdr->pid : en->ancestry[i - 1].pid;
		text_copy(names[n][0], sizeof(names[n][0]), c != NULL ? c : "");
		text_copy(names[n][1], sizeof(names[n][1]), x != NULL ? x : "");
		links[n].comm = names[n][0];
		links[n].exe = names[n][1];
		lp[n] = &links[n];
	}
	d.ts_ns = now_ms * 1000000ull;
	d.service = (char *)service;
	d.exe = (char *)o->m.exe;
	d.kind = rewritten ? "rewritten_argument" : (char *)deviation_kind(o->m.kind);
	d.object = (char *)o->m.pattern;
	d.raw = (char *)o->raw;
	d.expected = expected;
	d.severity = rewritten ? "high" : (char *)severity(o->m.kind, o->raw, o->m.pattern);
	d.pid = ev->hdr->pid;
	d.n_chain = n;
	d.chain = lp;
	/* The container's (its runtime's names are checked ASCII: no copy needed). */
	d.container_id = (char *)(en->container_id != NULL ? en->container_id : "");
	d.container_name = (char *)(en->container_name != NULL ? en->container_name : "");
	d.container_image = (char *)(en->container_image != NULL ? en->container_image : "");
	d.container_runtime = (char *)(en->container_runtime != NULL ? en->container_runtime : "");
	log_debug("deviation: %s %s %s: %s", service, o->m.exe, d.kind, o->raw);
	l->sink.deviation(&d, l->sink.ctx);
}

/* Why a call failed, in words; the kernel's restart codes mean a signal cut it short. */
static const char *failure_text(long result)
{
	return result <= -512 && result >= -516 ? "interrupted by a signal"
						: strerror((int)-result);
}

/* What ev did, as one line of text into line (len bytes): the command, or the file or address. */
static void event_line(const struct event *ev, const struct event_enrich *en, char *line,
		       size_t len)
{
	char path[EV_PATH_MAX * 2], addr[64];

	line[0] = '\0';
	switch (ev->hdr->type) {
	case EV_EXEC:
		join_args(&ev->s[1], line, len);
		if (line[0] == '\0')
			text_copy(line, len, en->exe != NULL ? en->exe : "?");
		break;
	case EV_FILE: {
		const struct ev_file *f = ev->file;

		if (!abs_path(&ev->s[0], &ev->s[2], path, sizeof(path)))
			snprintf(path, sizeof(path), "%.*s", (int)ev->s[0].len,
				 ev->s[0].p != NULL ? ev->s[0].p : "?");
		snprintf(
		    line, len, "%s %.900s%s%s%s%s", event_file_op_name(f->op), path,
		    f->op == FOP_OPEN ? (open_writes(f->open_flags) ? " (write)" : " (read)") : "",
		    f->result < 0 ? " failed: " : "", f->result < 0 ? failure_text(f->result) : "",
		    ev->hdr->flags & EVF_RACED ? " [path rewritten while the call ran]" : "");
		break;
	}
	case EV_NET: {
		static const char *const ops[] = {"?", "connect", "accept", "bind", "listen"};
		const struct ev_net *e = ev->net;

		if (e->family == AF_UNIX)
			snprintf(addr, sizeof(addr), "unix:%.*s",
				 (int)(ev->s[0].len < 48 ? ev->s[0].len : 48),
				 ev->s[0].p != NULL ? ev->s[0].p : "");
		else if (generalize_addr(e->family,
					 e->op == NOP_CONNECT || e->op == NOP_ACCEPT
					     ? e->remote_addr
					     : e->local_addr,
					 addr, sizeof(addr)) < 0)
			snprintf(addr, sizeof(addr), "?");
		snprintf(
		    line, len, "%s %s %s port %u%s%s", e->op < 5 ? ops[e->op] : "?",
		    event_net_proto_name(e), addr,
		    e->op == NOP_CONNECT || e->op == NOP_ACCEPT ? e->remote_port : e->local_port,
		    e->result < 0 && e->result != -EINPROGRESS ? " (failed)" : "",
		    ev->hdr->flags & EVF_RACED ? " [address rewritten while the call ran]" : "");
		break;
	}
	}
}

static void activity_line(const struct event *ev, const struct event_enrich *en,
			  const struct classification *cls, struct learn_activity *act)
{
	char line[sizeof(act->summary)];

	vigil__activity__init(&act->pb);
	text_copy(act->user, sizeof(act->user), en->user != NULL ? en->user : "");
	if (act->user[0] == '\0')
		snprintf(act->user, sizeof(act->user), "%u", ev->hdr->uid);
	text_copy(act->tty, sizeof(act->tty), en->tty != NULL ? en->tty : "");
	event_line(ev, en, line, sizeof(line));
	text_copy(act->summary, sizeof(act->summary), line);
	act->pb.session = cls->leader_pid;
	act->pb.user = act->user;
	act->pb.tty = act->tty;
	act->pb.summary = act->summary;
}

#define REWRITTEN_AUDITS_PER_MINUTE 10

/* Whether another rewritten-argument audit of service fits this minute's budget. */
static bool rewrite_audit_due(struct learner *l, const char *service, uint64_t now_ms)
{
	uint64_t h = 1469598103934665603ull, minute = now_ms / 60000;

	for (const char *c = service; *c != '\0'; c++)
		h = (h ^ (unsigned char)*c) * 1099511628211ull;
	__typeof__(l->rewrite_budget[0]) *b =
	    &l->rewrite_budget[h % (sizeof(l->rewrite_budget) / sizeof(l->rewrite_budget[0]))];
	if (b->service_hash != h || b->minute != minute) {
		b->service_hash = h;
		b->minute = minute;
		b->audits = 0;
	}
	return b->audits++ < REWRITTEN_AUDITS_PER_MINUTE;
}

/*
 * A file or socket call of a service whose caller rewrote the path or
 * address while it ran (EVF_RACED): what it reports may not be what it did,
 * so it is never learned, and it is reported whether it succeeded or not.
 */
static size_t rewritten_obs(const struct event *ev, const struct event_enrich *en, struct obs *o)
{
	if (!(ev->hdr->flags & EVF_RACED) || (ev->hdr->type != EV_FILE && ev->hdr->type != EV_NET))
		return 0;
	o->m.kind = ev->hdr->type == EV_FILE ? MK_WRITE : MK_CONNECT;
	event_line(ev, en, o->raw, sizeof(o->raw));
	/* The audit's kind says it was rewritten; the line's own mark would say it twice. */
	char *mark = strstr(o->raw, " [");
	if (mark != NULL && strstr(mark, "rewritten while the call ran]") != NULL)
		*mark = '\0';
	o->m.pattern = o->raw;
	o->m.fold = NULL;
	return 1;
}

bool learner_event(struct learner *l, const struct event *ev, const struct event_enrich *en,
		   const struct classification *cls, uint64_t now_ms, struct learn_activity *act)
{
	struct obs o[2];
	const char *section = en->exe;
	size_t n = 0;

	if (en->cls == NULL)
		return false; /* not in the process tree: nothing to attribute it to */
	if (cls->cls == CLASS_INTERACTIVE) {
		if (ev->hdr->type != EV_EXEC && ev->hdr->type != EV_FILE && ev->hdr->type != EV_NET)
			return false;
		activity_line(ev, en, cls, act);
		l->st.activity++;
		return true;
	}
	if (!l->modelling)
		return false;
	bool rewritten = (n = rewritten_obs(ev, en, &o[0])) > 0;

	switch (rewritten ? 0 : ev->hdr->type) {
	case 0:
		break;
	case EV_EXEC:
		n = exec_obs(ev, en, cls, &o[0], &section);
		break;
	case EV_FILE:
		n = file_obs(l, ev, o);
		break;
	case EV_NET:
		n = net_obs(ev, o);
		break;
	default:
		return false;
	}
	if (n > 0 && section == NULL) {
		l->st.unplaced++;
		return false;
	}
	if (n == 0)
		return false;
	/* The model's names are the console's: UTF-8, like the patterns. */
	char exe[GENERALIZE_PATTERN_MAX], service[sizeof(cls->service)];
	text_copy(exe, sizeof(exe), section);
	text_copy(service, sizeof(service), cls->service);
	for (size_t i = 0; i < n; i++) {
		o[i].m.exe = exe;
		if (rewritten) {
			l->st.rewritten++;
			if (rewrite_audit_due(l, service, now_ms))
				report(l, ev, en, service, &o[i], true, now_ms);
			continue;
		}
		l->st.observed++;
		pthread_rwlock_wrlock(&l->models_lock);
		enum model_verdict v = model_observe(l->models, service, &o[i].m, now_ms);
		pthread_rwlock_unlock(&l->models_lock);
		if (v == MODEL_DEVIATION)
			report(l, ev, en, service, &o[i], false, now_ms);
	}
	return false;
}

void learner_tick(struct learner *l, uint64_t now_ms, uint64_t drops_total)
{
	vigil_err err;
	int changed = 0;

	if (now_ms - l->last_promote_ms >= PROMOTE_EVERY_MS) {
		uint64_t new_drops =
		    l->drops_known && drops_total > l->drops_seen ? drops_total - l->drops_seen : 0;

		l->drops_seen = drops_total;
		l->drops_known = true;
		pthread_rwlock_wrlock(&l->models_lock);
		changed = model_set_tick(l->models, now_ms, new_drops);
		pthread_rwlock_unlock(&l->models_lock);
		if (changed > 0)
			atomic_fetch_add(&l->generation, 1);
		l->last_promote_ms = now_ms;
	}
	if (changed > 0 || now_ms - l->last_delta_ms >= DELTA_EVERY_MS) {
		bool counts = now_ms - l->last_counts_ms >= COUNTS_EVERY_MS;

		send_deltas(l, counts);
		l->last_delta_ms = now_ms;
		if (counts)
			l->last_counts_ms = now_ms;
	}
	/* A state change is saved at once: a restart must not relearn or forget a relearn. */
	if (changed > 0 || now_ms - l->last_save_ms >= SAVE_EVERY_MS) {
		bool counts = now_ms - l->last_save_counts_ms >= SAVE_COUNTS_EVERY_MS;

		if (model_set_save(l->models, counts, &err) < 0)
			log_warn("saving models: %s", err.msg);
		l->last_save_ms = now_ms;
		if (counts)
			l->last_save_counts_ms = now_ms;
	}
	publish_stats(l);
}

int learner_relearn(struct learner *l, const char *service, uint64_t now_ms)
{
	vigil_err err;
	int rc;

	pthread_rwlock_wrlock(&l->models_lock);
	rc = model_set_relearn(l->models, service, now_ms);
	pthread_rwlock_unlock(&l->models_lock);
	atomic_fetch_add(&l->generation, 1);
	if (rc < 0)
		return rc;
	l->st.relearns++;
	send_deltas(l, false);
	if (model_set_save(l->models, false, &err) < 0)
		log_warn("saving models: %s", err.msg);
	return 0;
}

int learner_accept(struct learner *l, const char *service, const char *exe, const char *kind,
		   const char *pattern, uint64_t now_ms)
{
	int k = model_kind_parse(kind);
	vigil_err err;
	int rc;

	if (k < 0 || exe[0] == '\0' || pattern[0] == '\0')
		return -EINVAL;
	struct model_obs obs = {.kind = (enum model_kind)k, .exe = exe, .pattern = pattern};

	pthread_rwlock_wrlock(&l->models_lock);
	rc = model_set_accept(l->models, service, &obs, now_ms);
	pthread_rwlock_unlock(&l->models_lock);
	if (rc < 0)
		return rc;
	/* Enforcement compiled from the model (network fences) must see the entry. */
	atomic_fetch_add(&l->generation, 1);
	send_deltas(l, false);
	if (model_set_save(l->models, false, &err) < 0)
		log_warn("saving models: %s", err.msg);
	return 0;
}

/* The models' read lock, waited for at most wait_ms (other threads' queries): 0 or -EBUSY. */
static int models_read_lock(struct learner *l, unsigned wait_ms)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	until.tv_sec += wait_ms / 1000 + until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	return pthread_rwlock_timedrdlock(&l->models_lock, &until) == 0 ? 0 : -EBUSY;
}

int learner_program_known(struct learner *l, const char *service, const char *section,
			  const char *program, unsigned wait_ms)
{
	char exe[GENERALIZE_PATTERN_MAX];
	struct obs o;
	int rc;

	if (!l->modelling)
		return -1;
	if (!path_obs(&o, MK_PROGRAM, program))
		return 1; /* not something a model records */
	o.m.fold = NULL;  /* as exec_obs: programs are not folded */
	text_copy(exe, sizeof(exe), section);
	o.m.exe = exe;
	if (models_read_lock(l, wait_ms) < 0)
		return -EBUSY;
	rc = model_knows(l->models, service, &o.m);
	pthread_rwlock_unlock(&l->models_lock);
	return rc;
}

int learner_model_each(struct learner *l, const char *service, enum model_kind kind,
		       void (*fn)(const char *pattern, void *ctx), void *ctx, unsigned wait_ms)
{
	int rc;

	if (!l->modelling)
		return -1;
	if (models_read_lock(l, wait_ms) < 0)
		return -EBUSY;
	rc = model_each(l->models, service, kind, fn, ctx);
	pthread_rwlock_unlock(&l->models_lock);
	return rc;
}

uint64_t learner_generation(struct learner *l)
{
	return atomic_load(&l->generation);
}

void learner_stats(struct learner *l, struct learn_stats *out)
{
	pthread_mutex_lock(&l->snap_lock);
	*out = l->snap;
	pthread_mutex_unlock(&l->snap_lock);
}
