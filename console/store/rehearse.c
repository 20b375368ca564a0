/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The rehearsal of a rule over past events and audits (rehearse.h).
 *
 * One read-only, repeatable-read transaction: the rule set, the hosts,
 * then the deviation audits and the events through cursors.  What is
 * decided per act is in C with the rules' own matcher; what is counted
 * lives in bounded tables (a direct-mapped cache of decisions, at most
 * REHEARSE_GROUPS_MAX groups of REHEARSE_SAMPLES samples).
 *
 * rules_scope_matches_host lives in console/link (it decides what goes to
 * a host); it is pure, and vigil-console links store and link together.
 */
#include "store/rehearse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "link/rules_scope.h"
#include "rules/rule_match.h"
#include "store/store_priv.h"

/*
 * Decisions cached per (host, service, image): direct-mapped, a colliding
 * key replaces the slot.
 */
#define DCACHE_SLOTS  4096
#define GROUP_BUCKETS 1024
#define UNDECIDED     (-2) /* not computed yet */
#define NO_DECIDER    (-1)

/* The statements, each a constant; every value is a parameter. */
static const char begin_sql[] = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
static const char rules_sql[] =
    "SELECT s.version, (body || jsonb_build_object('id', id, 'position', position))::text"
    " FROM rule_set s LEFT JOIN rules ON true ORDER BY position";
/* Byte order, as strcmp: the hosts are searched with bsearch. */
static const char hosts_sql[] = "SELECT host_id, labels::text FROM hosts"
				" ORDER BY host_id COLLATE \"C\" LIMIT $1::integer";
#define AUDIT_TS TS_UTC("a.ts")
#define EVENT_TS TS_UTC("e.ts")

/*
 * Deviations of services, and the acts a rule in force refused that left
 * no event (an exec, a read: refused, they never happened; a refused write
 * or connect fails and is reported as an event, so its audit is not read).
 */
static const char audits_sql[] =
    "DECLARE rehearse_audits NO SCROLL CURSOR FOR"
    " SELECT a.id, a.host_id, a.kind, " AUDIT_TS ", a.service, a.exe, a.detail->>'raw',"
    " a.detail->>'object', a.detail->>'pid', a.detail->'chain'->0->>'exe', a.effect,"
    " a.container_image"
    " FROM audits a WHERE a.ts >= $1::timestamptz AND a.ts < $2::timestamptz"
    " AND a.kind IN (SELECT json_array_elements_text($3::json))"
    " AND a.host_id IN (SELECT json_array_elements_text($4::json))"
    " AND CASE WHEN a.kind IN ('denied_program', 'denied_read')"
    " THEN a.effect IN ('prevent', 'block') ELSE a.service IS NOT NULL END"
    " LIMIT $5::bigint";
/*
 * json_to_record parses each body once (events.body is json, which ->>
 * would parse again per field); every field as text, so a hostile body
 * with a field of another type cannot fail the scan.  Events are read
 * from their chunks (migration 13) rather than through the events view,
 * so that the window's bounds reach the chunks: partitions of other days
 * are pruned, and chunks outside the window are never decompressed.  A
 * chunk holds one UTC day, so its first event is on or after the day the
 * window starts.  events_legacy: what was stored before chunks.
 */
static const char events_sql[] =
    "DECLARE rehearse_events NO SCROLL CURSOR FOR"
    " SELECT e.host_id, e.type, " EVENT_TS ", e.pid, x.class, x.service, x.\"user\", x.exe,"
    " x.filename, x.op, x.path, x.write, x.proto, x.family, x.local->>'port',"
    " x.remote->>'addr', x.remote->>'port', x.result, x.container_image"
    " FROM (SELECT c.host_id, u.type, u.ts, u.pid, COALESCE(u.body, u.body_text::json) AS body"
    " FROM event_chunks c CROSS JOIN LATERAL unnest(c.e_type, c.e_ts, c.e_pid, c.e_body,"
    " c.e_text) AS u(type, ts, pid, body, body_text)"
    " WHERE c.ts_first >= date_trunc('day', $1::timestamptz, 'UTC')"
    " AND c.ts_first < $2::timestamptz AND c.ts_last >= $1::timestamptz"
    " AND c.host_id IN (SELECT json_array_elements_text($4::json))"
    " UNION ALL SELECT host_id, type, ts, pid, body FROM events_legacy) e"
    " CROSS JOIN LATERAL json_to_record(CASE WHEN json_typeof(e.body) ="
    " 'object' THEN e.body ELSE '{}'::json END) AS x(class text, service text,"
    " \"user\" text, exe text, filename text, op text, path text, write text, proto text,"
    " family text, local json, remote json, result text, container_image text)"
    " WHERE e.ts >= $1::timestamptz AND e.ts < $2::timestamptz"
    " AND e.type IN (SELECT json_array_elements_text($3::json))"
    " AND e.host_id IN (SELECT json_array_elements_text($4::json)) LIMIT $5::bigint";

struct rh_host {
	char *id;
	json_t *labels_doc; /* owns the label texts */
	struct store_label *labels;
	size_t nlabels;
	uint64_t *earlier; /* bit i: rule i (before the rule rehearsed) goes to this host */
};

struct dslot {
	bool used;
	size_t host;
	char *service; /* NULL: interactive */
	char *image;   /* NULL: not in a container (or its image is not known) */
	int decider[3];
};

struct sample {
	char ts[40];
	const char *act, *kind; /* static texts */
	char *what, *exe, *entry, *op;
	int64_t pid, audit_id; /* audit_id 0: from an event */
};

struct group {
	struct group *next;
	size_t host;
	char *service, *user;
	enum rule_category cat;
	enum rule_effect effect;
	bool deviation;
	uint64_t count;
	char first[40], last[40];
	struct sample samples[REHEARSE_SAMPLES];
	size_t nsamples;
};

/* One act to count, its texts borrowed from the row. */
struct act {
	size_t host;
	const char *service, *user;
	const char *image; /* the process's container's image, for the rules' image scopes */
	enum rule_category cat;
	const char *ts, *exe, *act, *op, *what, *entry, *kind;
	int64_t pid, audit_id;
};

struct rh {
	struct rule *stored; /* the current set, parsed; owned */
	size_t nstored;
	struct rule *set; /* shallow copies, the rule rehearsed at k; n entries */
	size_t n, k;
	int64_t version;
	struct rh_host *hosts; /* in the rule's scope, sorted by id */
	size_t nhosts, words;
	struct dslot cache[DCACHE_SLOTS];
	struct group *buckets[GROUP_BUCKETS];
	size_t ngroups;
	uint64_t totals[4]; /* by enum rule_effect */
	uint64_t *masked;   /* per rule before k: acts it decides that this rule would have */
	uint64_t left_out;  /* acts of groups over REHEARSE_GROUPS_MAX */
	struct timespec deadline;
	int budget_ms;
	json_t *why; /* the truncated_why texts */
};

static const char *col(const PGresult *res, int row, int c)
{
	return PQgetisnull(res, row, c) ? NULL : PQgetvalue(res, row, c);
}

static uint64_t hash_text(uint64_t h, const char *s)
{
	for (; s != NULL && *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

static bool same_text(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* s cut to REHEARSE_TEXT_MAX bytes (between UTF-8 characters, "..." added); NULL stays NULL. */
static char *text_dup(const char *s)
{
	size_t len, cut;
	char *out;

	if (s == NULL)
		return NULL;
	len = strlen(s);
	if (len <= REHEARSE_TEXT_MAX)
		return strdup(s);
	cut = REHEARSE_TEXT_MAX;
	while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
		cut--;
	if ((out = malloc(cut + 4)) == NULL)
		return NULL;
	memcpy(out, s, cut);
	memcpy(out + cut, "...", 4);
	return out;
}

static void why_add(struct rh *rh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void why_add(struct rh *rh, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	json_array_append_new(rh->why, json_string(text));
}

/* ---- which rule decides ---- */

static bool earlier_bit(const struct rh_host *h, size_t i)
{
	return (h->earlier[i / 64] >> (i % 64)) & 1;
}

/*
 * The rule that decides category c for service (in a container of image,
 * NULL for none) on host h: an index below k (an earlier rule), k (the rule
 * rehearsed) or NO_DECIDER.  rule_decider is asked one rule at a time so
 * that only the rules going to h count.
 */
static int decide_now(const struct rh *rh, size_t h, enum rule_category c, const char *service,
		      const char *image)
{
	const struct rule_subject subj = {.service = service, .image = image};

	for (size_t i = 0; i < rh->k; i++)
		if (earlier_bit(&rh->hosts[h], i) && rule_decider(&rh->set[i], 1, c, &subj) != NULL)
			return (int)i;
	return rule_decider(&rh->set[rh->k], 1, c, &subj) != NULL ? (int)rh->k : NO_DECIDER;
}

static int decide(struct rh *rh, size_t h, enum rule_category c, const char *service,
		  const char *image)
{
	uint64_t key = hash_text(
	    hash_text(0xcbf29ce484222325ull ^ (h * 0x9e3779b97f4a7c15ull), service), image);
	struct dslot *s = &rh->cache[key % DCACHE_SLOTS];

	if (image != NULL && image[0] == '\0')
		image = NULL;
	if (!s->used || s->host != h || !same_text(s->service, service) ||
	    !same_text(s->image, image)) {
		char *copy = service != NULL ? strdup(service) : NULL;
		char *icopy = image != NULL ? strdup(image) : NULL;

		if ((service != NULL && copy == NULL) || (image != NULL && icopy == NULL)) {
			free(copy);
			free(icopy);
			return decide_now(rh, h, c, service, image); /* uncached, still right */
		}
		free(s->service);
		free(s->image);
		*s = (struct dslot){.used = true,
				    .host = h,
				    .service = copy,
				    .image = icopy,
				    .decider = {UNDECIDED, UNDECIDED, UNDECIDED}};
	}
	if (s->decider[c] == UNDECIDED)
		s->decider[c] = decide_now(rh, h, c, service, image);
	return s->decider[c];
}

/* ---- counting ---- */

static void sample_fini(struct sample *s)
{
	free(s->what);
	free(s->exe);
	free(s->entry);
	free(s->op);
	memset(s, 0, sizeof(*s));
}

/* Keep the newest REHEARSE_SAMPLES acts of g. */
static void sample_add(struct group *g, const struct act *a)
{
	struct sample *s;

	if (g->nsamples < REHEARSE_SAMPLES) {
		s = &g->samples[g->nsamples++];
	} else {
		s = &g->samples[0];
		for (size_t i = 1; i < g->nsamples; i++)
			if (strcmp(g->samples[i].ts, s->ts) < 0)
				s = &g->samples[i];
		if (strcmp(a->ts, s->ts) <= 0)
			return;
		sample_fini(s);
	}
	snprintf(s->ts, sizeof(s->ts), "%s", a->ts);
	s->act = a->act;
	s->kind = a->kind;
	s->what = text_dup(a->what);
	s->exe = text_dup(a->exe);
	s->entry = text_dup(a->entry);
	s->op = text_dup(a->op);
	s->pid = a->pid;
	s->audit_id = a->audit_id;
}

static struct group *group_of(struct rh *rh, const struct act *a, enum rule_effect effect,
			      bool deviation)
{
	uint64_t key = hash_text(hash_text(0xcbf29ce484222325ull ^ a->host, a->service), a->user) ^
		       ((uint64_t)a->cat * 31 + (uint64_t)effect * 7 + deviation);
	struct group **b = &rh->buckets[key % GROUP_BUCKETS], *g;

	for (g = *b; g != NULL; g = g->next)
		if (g->host == a->host && g->cat == a->cat && g->effect == effect &&
		    g->deviation == deviation && same_text(g->service, a->service) &&
		    same_text(g->user, a->user))
			return g;
	if (rh->ngroups >= REHEARSE_GROUPS_MAX || (g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	g->host = a->host;
	g->service = a->service != NULL ? strdup(a->service) : NULL;
	g->user = a->user != NULL ? strdup(a->user) : NULL;
	if ((a->service != NULL && g->service == NULL) || (a->user != NULL && g->user == NULL)) {
		free(g->service);
		free(g->user);
		free(g);
		return NULL;
	}
	g->cat = a->cat;
	g->effect = effect;
	g->deviation = deviation;
	g->next = *b;
	*b = g;
	rh->ngroups++;
	return g;
}

static void count(struct rh *rh, const struct act *a, enum rule_effect effect, bool deviation)
{
	struct group *g = group_of(rh, a, effect, deviation);

	rh->totals[effect]++;
	if (g == NULL) {
		rh->left_out++;
		return;
	}
	if (g->count == 0 || strcmp(a->ts, g->first) < 0)
		snprintf(g->first, sizeof(g->first), "%s", a->ts);
	if (g->count == 0 || strcmp(a->ts, g->last) > 0)
		snprintf(g->last, sizeof(g->last), "%s", a->ts);
	g->count++;
	sample_add(g, a);
}

/* An act the rule's lists or deviation effect give effect: counted where the rule decides. */
static void decided(struct rh *rh, const struct act *a, enum rule_effect effect, bool deviation)
{
	int d = decide(rh, a->host, a->cat, a->service, a->image);

	if (d == (int)rh->k)
		count(rh, a, effect, deviation);
	else if (d >= 0)
		rh->masked[d]++;
}

/* ---- events ---- */

static int host_cmp(const void *key, const void *h)
{
	return strcmp(key, ((const struct rh_host *)h)->id);
}

static long host_index(const struct rh *rh, const char *id)
{
	const struct rh_host *h = bsearch(id, rh->hosts, rh->nhosts, sizeof(*h), host_cmp);

	return h != NULL ? h - rh->hosts : -1;
}

static bool port_of(const char *s, uint16_t *ret)
{
	char *end;
	long v;

	if (s == NULL || s[0] < '0' || s[0] > '9')
		return false;
	v = strtol(s, &end, 10);
	if (*end != '\0' || v < 0 || v > 65535)
		return false;
	*ret = (uint16_t)v;
	return true;
}

static enum rule_proto proto_of(const char *s)
{
	if (s != NULL && strcmp(s, "tcp") == 0)
		return RULE_PROTO_TCP;
	if (s != NULL && strcmp(s, "udp") == 0)
		return RULE_PROTO_UDP;
	return RULE_PROTO_ANY; /* sctp, udplite...: only entries without a protocol name them */
}

static void event_exec(struct rh *rh, struct act *a, const char *filename)
{
	const struct rule_processes *p = &rh->set[rh->k].processes;
	const char *path = filename != NULL ? filename : a->exe;
	size_t i;

	if (path == NULL || !p->present || rule_match_exec(p, path, &i) != RULE_LIST_DENY)
		return;
	a->cat = RULE_CAT_PROCESSES;
	a->act = "exec";
	a->what = path;
	a->entry = p->deny.executables.v[i];
	decided(rh, a, p->deny_effect, false);
}

/* A call's result; a missing one counts as done (what was seen happened). */
static long result_of(const char *s)
{
	return s != NULL ? strtol(s, NULL, 10) : 0;
}

/*
 * Opens only, as the rules are enforced (fanotify's open permission): a
 * read by its flags' "write", a write otherwise.  A refused read is not an
 * event (failed reads are not reported; its denied_read audit counts it);
 * a refused write is (EPERM) and counts here.
 */
static void event_file(struct rh *rh, struct act *a, const char *op, const char *path,
		       const char *write, long result)
{
	const struct rule_files *f = &rh->set[rh->k].files;
	bool w = write != NULL && strcmp(write, "true") == 0;
	size_t i;

	if (op == NULL || strcmp(op, "open") != 0 || path == NULL || !f->present ||
	    (result < 0 && !(w && result == -EPERM)) ||
	    rule_match_file(f, path, w, &i) != RULE_LIST_DENY)
		return;
	a->cat = RULE_CAT_FILES;
	a->act = w ? "write" : "read";
	a->op = op;
	a->what = path;
	a->entry = (w ? &f->deny.write : &f->deny.read)->v[i];
	decided(rh, a, f->deny_effect, false);
}

/* A protocol name as the defender writes it ("tcp", "udp", "sctp"), else "?". */
static const char *proto_text(const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	return n > 0 && n < 16 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789") == n ? s : "?";
}

/* base: the act's process; its buffers live here, for the act's whole life (decided). */
static void event_net(struct rh *rh, const struct act *base, const PGresult *res, int r)
{
	const struct rule_network *n = &rh->set[rh->k].network;
	const char *family = col(res, r, 13), *op = col(res, r, 9), *proto = col(res, r, 12);
	long result = result_of(col(res, r, 17));
	struct act a = *base;
	char what[128], entry[64];
	uint8_t addr[16];
	uint16_t port;
	size_t i;
	int af;

	/* Attempts: done, in progress (non-blocking connect), or refused (a rule in force). */
	if (family == NULL || op == NULL || !n->present ||
	    (result < 0 && result != -EINPROGRESS && result != -EPERM))
		return;
	af = strcmp(family, "inet") == 0 ? AF_INET : strcmp(family, "inet6") == 0 ? AF_INET6 : 0;
	if (af == 0)
		return;
	if (strcmp(op, "connect") == 0) {
		const char *peer = col(res, r, 15);

		if (peer == NULL || inet_pton(af, peer, addr) != 1 ||
		    !port_of(col(res, r, 16), &port) ||
		    rule_match_connect(n, af, addr, port, &i) != RULE_LIST_DENY)
			return;
		/* peer is an address (inet_pton took it): short, plain text. */
		snprintf(what, sizeof(what), "%s %s port %u", proto_text(proto), peer, port);
		rule_net_text(&n->deny.connect.v[i], entry, sizeof(entry));
		a.act = "connect";
	} else if (strcmp(op, "listen") == 0 ||
		   (strcmp(op, "bind") == 0 &&
		    ((proto != NULL && strcmp(proto, "udp") == 0) || result == -EPERM))) {
		/*
		 * A TCP server says so by listening, a UDP one by binding (as the
		 * models learn and alerts are checked); a TCP bind a rule in force
		 * refused (the cgroup's bind program) never got to listen.
		 */
		if (!port_of(col(res, r, 14), &port) || port == 0 ||
		    rule_match_listen(n, proto_of(proto), port, &i) != RULE_LIST_DENY)
			return;
		snprintf(what, sizeof(what), "%s port %u", proto_text(proto), port);
		rule_port_text(&n->deny.listen.v[i], entry, sizeof(entry));
		a.act = "listen";
	} else {
		return;
	}
	a.cat = RULE_CAT_NETWORK;
	a.op = op;
	a.what = what;
	a.entry = entry;
	decided(rh, &a, n->deny_effect, false);
}

/*
 * Columns: host_id, type, ts, pid, class, service, user, exe, filename,
 * op, path, write, proto, family, local port, remote addr, remote port, result,
 * container image.
 */
static void event_row(struct rh *rh, const PGresult *res, int r)
{
	long h = host_index(rh, PQgetvalue(res, r, 0));
	const char *type = PQgetvalue(res, r, 1), *cls = col(res, r, 4);
	struct act a = {0};

	if (h < 0)
		return;
	a.host = (size_t)h;
	a.ts = PQgetvalue(res, r, 2);
	a.pid = strtoll(PQgetvalue(res, r, 3), NULL, 10);
	/* Not a service (interactive, or never classified): only rules without services match. */
	a.service = cls != NULL && strcmp(cls, "service") == 0 ? col(res, r, 5) : NULL;
	if (a.service != NULL && a.service[0] == '\0')
		a.service = NULL;
	a.user = a.service == NULL ? col(res, r, 6) : NULL;
	a.image = col(res, r, 18);
	a.exe = col(res, r, 7);
	if (strcmp(type, "exec") == 0)
		event_exec(rh, &a, col(res, r, 8));
	else if (strcmp(type, "file") == 0)
		event_file(rh, &a, col(res, r, 9), col(res, r, 10), col(res, r, 11),
			   result_of(col(res, r, 17)));
	else if (strcmp(type, "net") == 0)
		event_net(rh, &a, res, r);
}

/* ---- deviation audits ---- */

/* "tcp port 22" (a listen deviation's raw) into its protocol and port. */
static bool listen_raw(const char *raw, enum rule_proto *ret_proto, uint16_t *ret_port)
{
	char proto[16];
	unsigned port;
	int used = 0;

	if (raw == NULL || sscanf(raw, "%15s port %u%n", proto, &port, &used) != 2 ||
	    raw[used] != '\0' || port > 65535)
		return false;
	*ret_proto = proto_of(proto);
	*ret_port = (uint16_t)port;
	return true;
}

/* "tcp 10.0.0.1 port 443" (a peer deviation's raw) into its address and port. */
static bool peer_raw(const char *raw, int *ret_af, uint8_t addr[16], uint16_t *ret_port)
{
	char proto[16], text[64];
	unsigned port;
	int used = 0;

	if (raw == NULL || sscanf(raw, "%15s %63s port %u%n", proto, text, &port, &used) != 3 ||
	    raw[used] != '\0' || port > 65535)
		return false;
	*ret_port = (uint16_t)port;
	if (inet_pton(AF_INET, text, addr) == 1)
		*ret_af = AF_INET;
	else if (inet_pton(AF_INET6, text, addr) == 1)
		*ret_af = AF_INET6;
	else
		return false;
	return true;
}

/* The audit kinds read, their category, and whether they are a model's deviation. */
static const struct {
	const char *kind;
	enum rule_category cat;
	bool deviation;
} audit_kinds[] = {
    {"new_program", RULE_CAT_PROCESSES, true}, {"new_write", RULE_CAT_FILES, true},
    {"sensitive_read", RULE_CAT_FILES, true},  {"new_listen", RULE_CAT_NETWORK, true},
    {"new_peer", RULE_CAT_NETWORK, true},      {"new_client", RULE_CAT_NETWORK, true},
    {"new_read", RULE_CAT_FILES, true},	       {"denied_program", RULE_CAT_PROCESSES, false},
    {"denied_read", RULE_CAT_FILES, false},
};

/*
 * What the rule's lists say about the act of an audit of kind (path: a
 * program or file; raw: a deviation's text for sockets), and in *ret_entry
 * the deny entry that names it.
 */
static enum rule_list_verdict audit_lists(const struct rule *r, const char *kind, const char *path,
					  const char *raw, char *ret_entry, size_t len)
{
	enum rule_list_verdict v = RULE_LIST_NONE;
	enum rule_proto proto;
	uint8_t addr[16];
	uint16_t port;
	size_t i = 0;
	int af;

	if (strstr(kind, "program") != NULL && path != NULL) {
		if ((v = rule_match_exec(&r->processes, path, &i)) == RULE_LIST_DENY)
			snprintf(ret_entry, len, "%s", r->processes.deny.executables.v[i]);
	} else if (strcmp(kind, "new_write") == 0 && path != NULL) {
		if ((v = rule_match_file(&r->files, path, true, &i)) == RULE_LIST_DENY)
			snprintf(ret_entry, len, "%s", r->files.deny.write.v[i]);
	} else if (strstr(kind, "read") != NULL && path != NULL) {
		if ((v = rule_match_file(&r->files, path, false, &i)) == RULE_LIST_DENY)
			snprintf(ret_entry, len, "%s", r->files.deny.read.v[i]);
	} else if (strcmp(kind, "new_listen") == 0 && listen_raw(raw, &proto, &port)) {
		if ((v = rule_match_listen(&r->network, proto, port, &i)) == RULE_LIST_DENY)
			rule_port_text(&r->network.deny.listen.v[i], ret_entry, len);
	} else if (strcmp(kind, "new_peer") == 0 && peer_raw(raw, &af, addr, &port)) {
		if ((v = rule_match_connect(&r->network, af, addr, port, &i)) == RULE_LIST_DENY)
			rule_net_text(&r->network.deny.connect.v[i], ret_entry, len);
	}
	return v; /* new_client, Unix sockets: no list names them */
}

static enum rule_effect deny_effect(const struct rule *r, enum rule_category c)
{
	return c == RULE_CAT_PROCESSES ? r->processes.deny_effect
	       : c == RULE_CAT_NETWORK ? r->network.deny_effect
				       : r->files.deny_effect;
}

static enum rule_effect deviation_effect(const struct rule *r, enum rule_category c)
{
	return c == RULE_CAT_PROCESSES ? r->processes.deviation
	       : c == RULE_CAT_NETWORK ? r->network.deviation
				       : r->files.deviation;
}

/*
 * Columns: id, host_id, kind, ts, service, exe, raw, object, pid, the
 * chain's first exe, effect, container image.
 *
 * An exec or read that a rule in force refused left no event: its audit
 * stands for it, with what this rule's lists say.  Any other act named by
 * this rule's deny lists is counted from its event.  A deviation nothing
 * names gets this rule's deviation effect.
 */
static void audit_row(struct rh *rh, const PGresult *res, int r)
{
	const struct rule *cand = &rh->set[rh->k];
	long h = host_index(rh, PQgetvalue(res, r, 1));
	const char *raw = col(res, r, 6), *object = col(res, r, 7), *chain = col(res, r, 9);
	const char *effect = col(res, r, 10);
	bool refused =
	    effect != NULL && (strcmp(effect, "prevent") == 0 || strcmp(effect, "block") == 0);
	enum rule_list_verdict v;
	struct act a = {0};
	char entry[RULE_GLOB_MAX + 1] = "";
	size_t k;

	for (k = 0; k < sizeof(audit_kinds) / sizeof(audit_kinds[0]); k++)
		if (strcmp(PQgetvalue(res, r, 2), audit_kinds[k].kind) == 0)
			break;
	if (h < 0 || k == sizeof(audit_kinds) / sizeof(audit_kinds[0]))
		return;
	a.host = (size_t)h;
	a.service = col(res, r, 4); /* NULL: a refused act of an interactive process */
	a.image = col(res, r, 11);
	a.ts = PQgetvalue(res, r, 3);
	a.exe = col(res, r, 5);
	a.kind = audit_kinds[k].kind;
	a.cat = audit_kinds[k].cat;
	a.audit_id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
	a.pid = col(res, r, 8) != NULL ? strtoll(col(res, r, 8), NULL, 10) : 0;
	/* A program: the started process's executable (the chain's first), not a pattern. */
	if (strcmp(a.kind, "new_program") == 0 && chain != NULL && chain[0] == '/')
		a.what = chain;
	else if (audit_kinds[k].deviation && raw != NULL && raw[0] != '\0')
		a.what = raw;
	else
		a.what = object;
	v = audit_lists(cand, a.kind, a.what, raw, entry, sizeof(entry));
	if (v == RULE_LIST_DENY && refused &&
	    (a.cat == RULE_CAT_PROCESSES || strstr(a.kind, "read") != NULL)) {
		a.act = a.cat == RULE_CAT_PROCESSES ? "exec" : "read";
		a.entry = entry;
		decided(rh, &a, deny_effect(cand, a.cat), false);
	} else if (v == RULE_LIST_NONE && audit_kinds[k].deviation) {
		a.act = "deviation";
		decided(rh, &a, deviation_effect(cand, a.cat), true);
	}
}

/* ---- the scan ---- */

static bool past_deadline(const struct rh *rh)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > rh->deadline.tv_sec ||
	       (now.tv_sec == rh->deadline.tv_sec && now.tv_nsec >= rh->deadline.tv_nsec);
}

/*
 * One FETCH, cancelled by the server at the scan's deadline (the statement
 * timeout set to what is left of the budget, for this FETCH only): 0 with
 * *ret the rows, or 0 with *ret NULL when the deadline cancelled it (the
 * transaction goes on: the FETCH ran in a savepoint, rolled back).
 */
static int fetch_bounded(struct store *st, const struct rh *rh, const char *what, const char *fetch,
			 PGresult **ret, vigil_err *err)
{
	struct timespec now;
	long long left_ms;
	char left[24];
	const char *params[1] = {left};
	int rc;

	*ret = NULL;
	clock_gettime(CLOCK_MONOTONIC, &now);
	left_ms = (long long)(rh->deadline.tv_sec - now.tv_sec) * 1000 +
		  (rh->deadline.tv_nsec - now.tv_nsec) / 1000000;
	if (left_ms < 1)
		left_ms = 1;
	snprintf(left, sizeof(left), "%lld", left_ms);
	if ((rc = store_cmd(st, what, "SAVEPOINT rehearse_fetch", 0, NULL, false, err)) < 0 ||
	    (rc = store_exec(st, what, "SELECT set_config('statement_timeout', $1, true)", 1,
			     params, PGRES_TUPLES_OK, false, ret, err)) < 0)
		return rc;
	PQclear(*ret);
	*ret = NULL;
	rc = store_exec(st, what, fetch, 0, NULL, PGRES_TUPLES_OK, false, ret, err);
	if (rc < 0 && strstr(err->msg, "SQLSTATE 57014") != NULL) {
		*ret = NULL;
		verr_clear(err);
		return store_cmd(st, what, "ROLLBACK TO SAVEPOINT rehearse_fetch", 0, NULL, false,
				 err);
	}
	if (rc < 0 ||
	    (rc = store_cmd(st, what, "RELEASE SAVEPOINT rehearse_fetch", 0, NULL, false, err)) <
		0 ||
	    (rc = store_cmd(st, what, "SET LOCAL statement_timeout TO DEFAULT", 0, NULL, false,
			    err)) < 0) {
		PQclear(*ret);
		*ret = NULL;
		return rc;
	}
	return 0;
}

/*
 * Read the cursor declared by declare (params $1..$5, $5 the row limit,
 * asked one over max to see whether there is more) and hand each row to
 * fn; say in rh->why when max or the deadline cut it short.  Caller holds
 * the lock, inside the transaction.
 */
static int scan(struct store *st, struct rh *rh, const char *what, const char *cursor,
		const char *declare, const char *const *params, size_t max,
		void (*fn)(struct rh *, const PGresult *, int), size_t *ret_rows, vigil_err *err)
{
	char fetch[96], close[64];
	PGresult *res = NULL;
	size_t rows = 0;
	int rc;

	snprintf(fetch, sizeof(fetch), "FETCH FORWARD %d FROM %s", REHEARSE_FETCH, cursor);
	snprintf(close, sizeof(close), "CLOSE %s", cursor);
	if ((rc = store_cmd(st, what, declare, 5, params, false, err)) < 0)
		return rc;
	for (;;) {
		bool more = false;
		int n;

		if (past_deadline(rh)) {
			why_add(rh,
				"time: the scan stopped after %d ms, with %zu %s read; narrow the"
				" window or the hosts",
				rh->budget_ms, rows, what);
			break;
		}
		if ((rc = fetch_bounded(st, rh, what, fetch, &res, err)) < 0)
			return rc;
		if (res == NULL) {
			why_add(rh,
				"time: a read of %s took past the %d ms budget and was cancelled,"
				" with %zu read; narrow the window or the hosts",
				what, rh->budget_ms, rows);
			break;
		}
		n = PQntuples(res);
		for (int r = 0; r < n && !more; r++) {
			if (rows == max)
				more = true; /* row max + 1 of the LIMIT: there is more */
			else
				fn(rh, res, r), rows++;
		}
		PQclear(res);
		if (more) {
			why_add(rh,
				"%s: the window holds more than %zu %s of the kinds this rule is"
				" about on the hosts in its scope; the first %zu in storage order"
				" were read",
				what, max, what, max);
			break;
		}
		if (n < REHEARSE_FETCH)
			break;
	}
	*ret_rows = rows;
	return store_cmd(st, what, close, 0, NULL, false, err);
}

static void rh_fini(struct rh *rh)
{
	for (size_t i = 0; i < rh->nstored; i++)
		rule_fini(&rh->stored[i]);
	free(rh->stored);
	free(rh->set);
	for (size_t i = 0; i < rh->nhosts; i++) {
		free(rh->hosts[i].id);
		json_decref(rh->hosts[i].labels_doc);
		free(rh->hosts[i].labels);
		free(rh->hosts[i].earlier);
	}
	free(rh->hosts);
	for (size_t i = 0; i < DCACHE_SLOTS; i++) {
		free(rh->cache[i].service);
		free(rh->cache[i].image);
	}
	for (size_t b = 0; b < GROUP_BUCKETS; b++) {
		struct group *g = rh->buckets[b], *next;

		for (; g != NULL; g = next) {
			next = g->next;
			for (size_t i = 0; i < g->nsamples; i++)
				sample_fini(&g->samples[i]);
			free(g->service);
			free(g->user);
			free(g);
		}
	}
	free(rh->masked);
	json_decref(rh->why);
}

/* The current rule set (rows: version, rule JSON) into rh->stored. */
static int load_rules(struct rh *rh, const PGresult *res, vigil_err *err)
{
	int n = PQntuples(res);

	if (n == 0)
		return verr_set(err, -EIO, "rehearsing a rule: the database has no rule_set row");
	rh->version = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	if ((rh->stored = calloc((size_t)n, sizeof(*rh->stored))) == NULL)
		return verr_set(err, -ENOMEM, "out of memory rehearsing a rule");
	for (int i = 0; i < n && !PQgetisnull(res, i, 1); i++) {
		json_t *o = json_loads(PQgetvalue(res, i, 1), 0, NULL);
		struct rule_error e;
		int rc = o != NULL ? rule_from_json(o, NULL, &rh->stored[i], &e) : -ENOMEM;

		json_decref(o);
		if (rc < 0)
			return verr_set(err, -EIO,
					"rehearsing a rule: stored rule %d does not parse", i + 1);
		rh->nstored++;
	}
	return 0;
}

/* The set with rq's rule in place (rh->set, rh->k), from rh->stored. */
static int place_rule(struct rh *rh, const struct rehearse_request *rq, vigil_err *err)
{
	size_t edited = rh->nstored, m, pos;
	struct rule cand;

	if (rq->rule_id > 0) {
		for (size_t i = 0; i < rh->nstored; i++)
			if (rh->stored[i].id == rq->rule_id)
				edited = i;
		if (edited == rh->nstored)
			return verr_set(err, -ENOENT, "no rule with id %" PRId64, rq->rule_id);
	}
	cand = rq->rule != NULL ? *rq->rule : rh->stored[edited];
	cand.enabled = true;
	cand.id = rq->rule_id;
	m = rh->nstored - (rq->rule_id > 0 ? 1 : 0);
	pos = rq->position > 0 ? (size_t)rq->position : edited < rh->nstored ? edited + 1 : m + 1;
	if (pos > m + 1)
		return verr_set(err, -ERANGE, "position %zu is past the end: %s 1 to %zu", pos,
				rq->rule_id > 0 ? "the rule may go at" : "a new rule may go at",
				m + 1);
	if ((rh->set = calloc(m + 1, sizeof(*rh->set))) == NULL)
		return verr_set(err, -ENOMEM, "out of memory rehearsing a rule");
	rh->k = pos - 1;
	for (size_t i = 0, j = 0; i <= m; i++) {
		if (i == rh->k) {
			rh->set[i] = cand;
			continue;
		}
		if (j == edited)
			j++;
		rh->set[i] = rh->stored[j++];
	}
	rh->set[rh->k].position = (int)pos;
	rh->n = m + 1;
	return 0;
}

static bool host_wanted(const struct rehearse_request *rq, const char *id)
{
	if (rq->nhosts == 0)
		return true;
	for (size_t i = 0; i < rq->nhosts; i++)
		if (fnmatch(rq->hosts[i], id, 0) == 0)
			return true;
	return false;
}

/* One hosts row into rh->hosts when the rule goes to it; false when out of memory. */
static bool load_host(struct rh *rh, const struct rehearse_request *rq, const char *id,
		      const char *labels_text)
{
	struct rh_host h = {0};
	const char *k;
	json_t *v;

	if (!host_wanted(rq, id))
		return true;
	h.labels_doc = json_loads(labels_text, 0, NULL);
	if (json_is_object(h.labels_doc)) {
		h.labels = calloc(json_object_size(h.labels_doc) + 1, sizeof(*h.labels));
		if (h.labels == NULL)
			goto nomem;
		json_object_foreach(h.labels_doc, k, v)
		{
			if (json_is_string(v))
				h.labels[h.nlabels++] =
				    (struct store_label){.key = k, .value = json_string_value(v)};
		}
	}
	if (!rules_scope_matches_host(&rh->set[rh->k], id, h.labels, h.nlabels)) {
		json_decref(h.labels_doc);
		free(h.labels);
		return true;
	}
	h.id = strdup(id);
	h.earlier = calloc(rh->words > 0 ? rh->words : 1, sizeof(uint64_t));
	if (h.id == NULL || h.earlier == NULL)
		goto nomem;
	for (size_t i = 0; i < rh->k; i++)
		if (rules_scope_matches_host(&rh->set[i], id, h.labels, h.nlabels))
			h.earlier[i / 64] |= 1ull << (i % 64);
	rh->hosts[rh->nhosts++] = h;
	return true;
nomem:
	json_decref(h.labels_doc);
	free(h.labels);
	free(h.id);
	free(h.earlier);
	return false;
}

static int load_hosts(struct store *st, struct rh *rh, const struct rehearse_request *rq,
		      vigil_err *err)
{
	char limit[16];
	const char *params[1] = {limit};
	PGresult *res = NULL;
	int rc, n;

	snprintf(limit, sizeof(limit), "%d", REHEARSE_HOSTS_MAX + 1);
	rc = store_exec(st, "rehearsing a rule: hosts", hosts_sql, 1, params, PGRES_TUPLES_OK,
			false, &res, err);
	if (rc < 0)
		return rc;
	n = PQntuples(res);
	if (n > REHEARSE_HOSTS_MAX) {
		n = REHEARSE_HOSTS_MAX;
		why_add(rh, "hosts: more than %d hosts; the first %d by id were considered",
			REHEARSE_HOSTS_MAX, REHEARSE_HOSTS_MAX);
	}
	rh->words = (rh->k + 63) / 64;
	rh->hosts = calloc(n > 0 ? (size_t)n : 1, sizeof(*rh->hosts));
	rc = rh->hosts != NULL ? 0 : -ENOMEM;
	for (int i = 0; i < n && rc == 0; i++)
		if (!load_host(rh, rq, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1)))
			rc = -ENOMEM;
	PQclear(res);
	return rc < 0 ? verr_set(err, rc, "out of memory rehearsing a rule") : 0;
}

/* The hosts in scope as a JSON array text (a parameter); NULL when out of memory. */
static char *host_ids_text(const struct rh *rh)
{
	json_t *a = json_array();
	char *text;

	for (size_t i = 0; a != NULL && i < rh->nhosts; i++)
		if (json_array_append_new(a, json_string(rh->hosts[i].id)) < 0) {
			json_decref(a);
			a = NULL;
		}
	text = a != NULL ? json_dumps(a, JSON_COMPACT) : NULL;
	json_decref(a);
	return text;
}

/* arr's compact JSON text into buf; "[]" (nothing read) when it does not fit or is NULL. */
static void list_text(json_t *arr, char *buf, size_t len)
{
	size_t n = arr != NULL ? json_dumpb(arr, buf, len - 1, JSON_COMPACT) : 0;

	if (n == 0 || n >= len)
		snprintf(buf, len, "[]");
	else
		buf[n] = '\0';
}

/* What the events and audits scans look for, as JSON array texts ("[]": nothing). */
static void scan_lists(const struct rule *r, char *types, size_t tlen, char *kinds, size_t klen)
{
	json_t *t = json_array(), *k = json_array();
	bool exec = r->processes.present && r->processes.deny.executables.n > 0;
	bool reads = r->files.present && r->files.deny.read.n > 0;
	bool files = r->files.present && (reads || r->files.deny.write.n > 0);
	bool net =
	    r->network.present && (r->network.deny.listen.n > 0 || r->network.deny.connect.n > 0);

	if (exec)
		json_array_append_new(t, json_string("exec"));
	if (files)
		json_array_append_new(t, json_string("file"));
	if (net)
		json_array_append_new(t, json_string("net"));
	for (size_t i = 0; i < sizeof(audit_kinds) / sizeof(audit_kinds[0]); i++) {
		enum rule_category c = audit_kinds[i].cat;
		bool has = c == RULE_CAT_PROCESSES ? r->processes.present
			   : c == RULE_CAT_NETWORK ? r->network.present
						   : r->files.present;

		/* A refused act (denied_*) counts only where this rule's deny lists name it. */
		if (has && (audit_kinds[i].deviation || (c == RULE_CAT_PROCESSES ? exec : reads)))
			json_array_append_new(k, json_string(audit_kinds[i].kind));
	}
	list_text(t, types, tlen);
	list_text(k, kinds, klen);
	json_decref(t);
	json_decref(k);
}

/* Everything read and counted, inside the transaction.  Caller holds the lock. */
static int rehearse_in(struct store *st, struct rh *rh, const struct rehearse_request *rq,
		       size_t *ret_events, size_t *ret_audits, vigil_err *err)
{
	size_t max = rq->rows_max > 0 ? rq->rows_max : REHEARSE_ROWS_MAX;
	char since[40], until[40], limit[24], types[64], kinds[256];
	const char *params[5] = {since, until, NULL, NULL, limit};
	PGresult *res = NULL;
	char *hosts = NULL;
	int rc;

	rc = store_exec(st, "rehearsing a rule: the rule set", rules_sql, 0, NULL, PGRES_TUPLES_OK,
			false, &res, err);
	if (rc < 0)
		return rc;
	rc = load_rules(rh, res, err);
	PQclear(res);
	if (rc < 0 || (rc = place_rule(rh, rq, err)) < 0 || (rc = load_hosts(st, rh, rq, err)) < 0)
		return rc;
	if ((rh->masked = calloc(rh->k + 1, sizeof(*rh->masked))) == NULL ||
	    (hosts = host_ids_text(rh)) == NULL)
		return verr_set(err, -ENOMEM, "out of memory rehearsing a rule");
	rehearse_time_text(rq->since_us, since, sizeof(since));
	rehearse_time_text(rq->until_us, until, sizeof(until));
	snprintf(limit, sizeof(limit), "%zu", max + 1);
	scan_lists(&rh->set[rh->k], types, sizeof(types), kinds, sizeof(kinds));
	params[3] = hosts;
	if (rh->nhosts > 0 && strcmp(kinds, "[]") != 0) {
		params[2] = kinds;
		rc = scan(st, rh, "audits", "rehearse_audits", audits_sql, params, max, audit_row,
			  ret_audits, err);
	}
	if (rc == 0 && rh->nhosts > 0 && strcmp(types, "[]") != 0 && past_deadline(rh)) {
		why_add(rh, "time: no events were read: the audits took the %d ms the scan may",
			rh->budget_ms);
	} else if (rc == 0 && rh->nhosts > 0 && strcmp(types, "[]") != 0) {
		params[2] = types;
		rc = scan(st, rh, "events", "rehearse_events", events_sql, params, max, event_row,
			  ret_events, err);
	}
	free(hosts);
	return rc;
}

/* ---- the answer ---- */

static int group_cmp(const void *a, const void *b)
{
	const struct group *x = *(struct group *const *)a, *y = *(struct group *const *)b;
	int c;

	if (x->host != y->host)
		return x->host < y->host ? -1 : 1;
	if (!same_text(x->service, y->service))
		return x->service == NULL   ? -1
		       : y->service == NULL ? 1
					    : strcmp(x->service, y->service);
	if (!same_text(x->user, y->user))
		return x->user == NULL ? -1 : y->user == NULL ? 1 : strcmp(x->user, y->user);
	if ((c = (int)x->cat - (int)y->cat) != 0 || (c = (int)y->effect - (int)x->effect) != 0)
		return c;
	return (int)x->deviation - (int)y->deviation;
}

static int sample_cmp(const void *a, const void *b)
{
	return -strcmp(((const struct sample *)a)->ts, ((const struct sample *)b)->ts);
}

static json_t *opt_text(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

static json_t *sample_json(const struct sample *s)
{
	json_t *o =
	    json_pack("{s:s,s:s,s:o,s:I,s:o}", "ts", s->ts, "act", s->act, "what",
		      opt_text(s->what), "pid", (json_int_t)s->pid, "exe", opt_text(s->exe));

	if (o == NULL)
		return NULL;
	if (s->op != NULL)
		json_object_set_new(o, "op", json_string(s->op));
	if (s->entry != NULL)
		json_object_set_new(o, "entry", json_string(s->entry));
	if (s->audit_id > 0) {
		json_object_set_new(o, "kind", json_string(s->kind));
		json_object_set_new(o, "audit_id", json_integer(s->audit_id));
	}
	return o;
}

static json_t *group_json(const struct rh *rh, struct group *g)
{
	json_t *samples = json_array();

	qsort(g->samples, g->nsamples, sizeof(g->samples[0]), sample_cmp);
	for (size_t i = 0; samples != NULL && i < g->nsamples; i++)
		json_array_append_new(samples, sample_json(&g->samples[i]));
	return json_pack(
	    "{s:s,s:o,s:o,s:s,s:s,s:s,s:I,s:s,s:s,s:o}", "host", rh->hosts[g->host].id, "service",
	    opt_text(g->service), "user", opt_text(g->user), "category", rule_category_name(g->cat),
	    "effect", rule_effect_name(g->effect), "source", g->deviation ? "deviation" : "deny",
	    "count", (json_int_t)g->count, "first", g->first, "last", g->last, "samples", samples);
}

static json_t *answer(struct rh *rh, const struct rehearse_request *rq, size_t events,
		      size_t audits)
{
	struct group **all = calloc(rh->ngroups > 0 ? rh->ngroups : 1, sizeof(*all));
	json_t *groups = json_array(), *masked = json_array(), *doc, *rule;
	struct rule shown = rh->set[rh->k];
	char since[40], until[40];
	size_t n = 0;

	if (all == NULL || groups == NULL || masked == NULL) {
		free(all);
		json_decref(groups);
		json_decref(masked);
		return NULL;
	}
	for (size_t b = 0; b < GROUP_BUCKETS; b++)
		for (struct group *g = rh->buckets[b]; g != NULL; g = g->next)
			all[n++] = g;
	qsort(all, n, sizeof(*all), group_cmp);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(groups, group_json(rh, all[i]));
	free(all);
	for (size_t i = 0; i < rh->k; i++)
		if (rh->masked[i] > 0)
			json_array_append_new(masked,
					      json_pack("{s:I,s:s,s:i,s:I}", "rule_id",
							(json_int_t)rh->set[i].id, "name",
							rh->set[i].name, "position", (int)i + 1,
							"count", (json_int_t)rh->masked[i]));
	if (rh->left_out > 0)
		why_add(rh,
			"groups: more than %d (host, service, category, effect) groups; %" PRIu64
			" act(s) of the groups left out are in the totals only",
			REHEARSE_GROUPS_MAX, rh->left_out);
	/* As given (enabled or not), at the place rehearsed. */
	shown.enabled = rq->rule != NULL ? rq->rule->enabled : rh->set[rh->k].enabled;
	if (rq->rule == NULL)
		for (size_t i = 0; i < rh->nstored; i++)
			if (rh->stored[i].id == rq->rule_id)
				shown.enabled = rh->stored[i].enabled;
	rule = rule_to_json(&shown);
	rehearse_time_text(rq->since_us, since, sizeof(since));
	rehearse_time_text(rq->until_us, until, sizeof(until));
	doc = json_pack(
	    "{s:I,s:o,s:b,s:s,s:s,s:I,s:{s:I,s:I,s:I,s:I},s:o,s:o,s:I,s:I,s:b,s:O}", "version",
	    (json_int_t)rh->version, "rule", rule ? rule : json_null(), "rehearsed_as_enabled",
	    !shown.enabled, "since", since, "until", until, "hosts_in_scope",
	    (json_int_t)rh->nhosts, "totals", "alert", (json_int_t)rh->totals[RULE_EFFECT_ALERT],
	    "prevent", (json_int_t)rh->totals[RULE_EFFECT_PREVENT], "block",
	    (json_int_t)rh->totals[RULE_EFFECT_BLOCK], "disabled",
	    (json_int_t)rh->totals[RULE_EFFECT_DISABLED], "groups", groups, "masked_by", masked,
	    "events_scanned", (json_int_t)events, "audits_scanned", (json_int_t)audits, "truncated",
	    json_array_size(rh->why) > 0, "truncated_why", rh->why);
	return doc;
}

int store_rehearse(struct store *st, const struct rehearse_request *rq, json_t **ret,
		   vigil_err *err)
{
	int budget = rq->budget_ms > 0 ? rq->budget_ms : REHEARSE_BUDGET_MS;
	struct rh *rh = calloc(1, sizeof(*rh));
	size_t events = 0, audits = 0;
	json_t *doc;
	int rc;

	if (rh == NULL || (rh->why = json_array()) == NULL) {
		free(rh);
		return verr_set(err, -ENOMEM, "out of memory rehearsing a rule");
	}
	rh->budget_ms = budget;
	clock_gettime(CLOCK_MONOTONIC, &rh->deadline);
	rh->deadline.tv_sec += budget / 1000;
	rh->deadline.tv_nsec += (long)(budget % 1000) * 1000000;
	if (rh->deadline.tv_nsec >= 1000000000) {
		rh->deadline.tv_sec++;
		rh->deadline.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&st->lock);
	rc = store_cmd(st, "rehearsing a rule", begin_sql, 0, NULL, true, err);
	if (rc == 0) {
		rc = rehearse_in(st, rh, rq, &events, &audits, err);
		/* Read only: rolled back either way; a failure there changes nothing read. */
		store_cmd(st, "rehearsing a rule", "ROLLBACK", 0, NULL, false, NULL);
	}
	pthread_mutex_unlock(&st->lock);
	if (rc == 0) {
		doc = answer(rh, rq, events, audits);
		rc = doc != NULL ? 0 : verr_set(err, -ENOMEM, "out of memory rehearsing a rule");
		if (doc != NULL)
			*ret = doc;
	}
	rh_fini(rh);
	free(rh);
	return rc;
}

/* ---- the window ---- */

void rehearse_time_text(int64_t us, char *buf, size_t len)
{
	time_t sec = (time_t)(us / 1000000);
	struct tm tm;
	char date[32];

	gmtime_r(&sec, &tm);
	if (strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		date[0] = '\0';
	snprintf(buf, len, "%s.%06dZ", date, (int)(us % 1000000));
}

/* n decimal digits at *p into *ret; advances *p. */
static bool digits(const char **p, int n, int *ret)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return false;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*ret = v;
	return true;
}

/* RFC 3339 ("2026-12-05T07:00:00Z", "...T07:00:00.5+01:00") into µs since the epoch. */
static bool rfc3339(const char *s, int64_t *ret)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	int64_t frac = 0, scale = 100000;
	struct tm tm = {0};
	time_t t;

	if (!digits(&s, 4, &y) || *s++ != '-' || !digits(&s, 2, &mo) || *s++ != '-' ||
	    !digits(&s, 2, &d) || (*s != 'T' && *s != 't' && *s != ' '))
		return false;
	s++;
	if (!digits(&s, 2, &h) || *s++ != ':' || !digits(&s, 2, &mi) || *s++ != ':' ||
	    !digits(&s, 2, &sec))
		return false;
	if (*s == '.') {
		if (s[1] < '0' || s[1] > '9')
			return false;
		for (s++; *s >= '0' && *s <= '9'; s++, scale /= 10)
			frac += (*s - '0') * scale;
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s++ == '+' ? 1 : -1;
		if (!digits(&s, 2, &oh) || *s++ != ':' || !digits(&s, 2, &om) || oh > 23 || om > 59)
			return false;
	} else {
		return false;
	}
	if (*s != '\0' || y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 ||
	    mi > 59 || sec > 60)
		return false;
	if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		return false;
	tm = (struct tm){.tm_year = y - 1900,
			 .tm_mon = mo - 1,
			 .tm_mday = d,
			 .tm_hour = h,
			 .tm_min = mi,
			 .tm_sec = sec};
	t = timegm(&tm);
	*ret = ((int64_t)t - sign * (oh * 3600 + om * 60)) * 1000000 + frac;
	return true;
}

/* "90s", "30m", "24h", "7d" (at most 3660 days) before now, or "now". */
static bool relative(const char *s, int64_t now_us, int64_t *ret)
{
	int64_t n = 0, unit;
	size_t len = strlen(s);

	if (strcmp(s, "now") == 0) {
		*ret = now_us;
		return true;
	}
	if (len < 2 || len > 12)
		return false;
	for (size_t i = 0; i + 1 < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		n = n * 10 + (s[i] - '0');
	}
	switch (s[len - 1]) {
	case 's':
		unit = 1000000;
		break;
	case 'm':
		unit = 60LL * 1000000;
		break;
	case 'h':
		unit = 3600LL * 1000000;
		break;
	case 'd':
		unit = 86400LL * 1000000;
		break;
	default:
		return false;
	}
	if (n > 3660LL * 86400 * 1000000 / unit)
		return false;
	*ret = now_us - n * unit;
	return true;
}

int rehearse_window(const char *since, const char *until, int64_t now_us, int64_t *ret_since,
		    int64_t *ret_until, const char **ret_field, char *why, size_t whylen)
{
	static const char form[] = "must be an RFC 3339 time (2026-12-05T07:00:00Z) or a time"
				   " before now (90s, 30m, 24h, 7d)";
	int64_t s, u = now_us;

	if (until != NULL && until[0] != '\0' && !relative(until, now_us, &u) &&
	    !rfc3339(until, &u)) {
		*ret_field = "until";
		snprintf(why, whylen, "%s, or now", form);
		return -EINVAL;
	}
	s = u - REHEARSE_WINDOW_DEFAULT_US;
	if (since != NULL && since[0] != '\0' && !relative(since, now_us, &s) &&
	    !rfc3339(since, &s)) {
		*ret_field = "since";
		snprintf(why, whylen, "%s", form);
		return -EINVAL;
	}
	if (s >= u) {
		*ret_field = "since";
		snprintf(why, whylen, "is not before until: the window would be empty");
		return -EINVAL;
	}
	if (u - s > REHEARSE_WINDOW_MAX_US) {
		*ret_field = "since";
		snprintf(why, whylen,
			 "the window is longer than %lld days: rehearse a shorter one (or several)",
			 REHEARSE_WINDOW_MAX_US / (86400LL * 1000000));
		return -EINVAL;
	}
	*ret_since = s;
	*ret_until = u;
	return 0;
}
