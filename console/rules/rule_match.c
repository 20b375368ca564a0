/* SPDX-License-Identifier: Apache-2.0 */
/* What a rule set says about one act of one process (rule_match.h). */
#include "rules/rule_match.h"

#include <fnmatch.h>
#include <string.h>
#include <sys/socket.h>

const char *rule_category_name(enum rule_category c)
{
	switch (c) {
	case RULE_CAT_PROCESSES:
		return "processes";
	case RULE_CAT_NETWORK:
		return "network";
	case RULE_CAT_FILES:
		return "files";
	}
	return "?";
}

/* Any glob of list matching s with fnmatch (services, images); an empty list matches. */
static bool any_fnmatch(const struct rule_strings *list, const char *s)
{
	if (list->n == 0)
		return true;
	if (s == NULL || s[0] == '\0')
		return false;
	for (size_t i = 0; i < list->n; i++)
		if (fnmatch(list->v[i], s, 0) == 0)
			return true;
	return false;
}

bool rule_scope_matches_subject(const struct rule *r, const struct rule_subject *s)
{
	const char *service = s->service;

	/* Operators write "nginx.service"; models are named "unit:nginx.service". */
	if (service != NULL && strncmp(service, "unit:", 5) == 0)
		service += 5;
	return any_fnmatch(&r->scope.services, service) && any_fnmatch(&r->scope.images, s->image);
}

static bool has_section(const struct rule *r, enum rule_category c)
{
	switch (c) {
	case RULE_CAT_PROCESSES:
		return r->processes.present;
	case RULE_CAT_NETWORK:
		return r->network.present;
	case RULE_CAT_FILES:
		return r->files.present;
	}
	return false;
}

const struct rule *rule_decider(const struct rule *set, size_t n, enum rule_category c,
				const struct rule_subject *s)
{
	for (size_t i = 0; i < n; i++)
		if (set[i].enabled && has_section(&set[i], c) &&
		    rule_scope_matches_subject(&set[i], s))
			return &set[i];
	return NULL;
}

/* ---- path globs ---- */

/* Bytes in the UTF-8 character starting with lead byte c (1 for a stray byte). */
static size_t utf8_len(unsigned char c)
{
	if (c >= 0xf0 && c < 0xf8)
		return 4;
	if (c >= 0xe0)
		return 3;
	if (c >= 0xc0)
		return 2;
	return 1;
}

/*
 * Whether the bracket expression at g ('[') matches byte c; *ret_len gets
 * the expression's length.  The glob was checked (rule_check_glob): the
 * expression is closed.
 */
static bool bracket_matches(const char *g, size_t glen, unsigned char c, size_t *ret_len)
{
	size_t j = 1, first;
	bool negate = false, hit = false;

	if (j < glen && (g[j] == '!' || g[j] == '^')) {
		negate = true;
		j++;
	}
	first = j;
	for (; j < glen && !(g[j] == ']' && j > first); j++) {
		unsigned char lo = (unsigned char)g[j];

		if (lo == '\\' && j + 1 < glen)
			lo = (unsigned char)g[++j];
		if (j + 2 < glen && g[j + 1] == '-' && g[j + 2] != ']') {
			unsigned char hi = (unsigned char)g[j + 2];

			hit |= c >= lo && c <= hi;
			j += 2;
		} else {
			hit |= c == lo;
		}
	}
	*ret_len = j < glen ? j + 1 : glen;
	return hit != negate;
}

/*
 * One name against one glob component (neither has '/'): '*' any run of
 * bytes, '?' one character, [...] one byte of a set, '\' quotes.  Greedy
 * with backtracking to the last '*' only, which is exact for a '*' that
 * matches any run, and linear in practice.
 */
static bool name_match(const char *g, size_t glen, const char *p, size_t plen)
{
	size_t gi = 0, pi = 0, star = (size_t)-1, mark = 0;

	while (pi < plen) {
		if (gi < glen && g[gi] == '*') {
			star = gi++;
			mark = pi;
			continue;
		}
		if (gi < glen) {
			size_t tlen = 1, clen = 1;
			bool ok;

			if (g[gi] == '?') {
				clen = utf8_len((unsigned char)p[pi]);
				ok = pi + clen <= plen;
			} else if (g[gi] == '[') {
				ok =
				    bracket_matches(g + gi, glen - gi, (unsigned char)p[pi], &tlen);
			} else if (g[gi] == '\\' && gi + 1 < glen) {
				tlen = 2;
				ok = g[gi + 1] == p[pi];
			} else {
				ok = g[gi] == p[pi];
			}
			if (ok) {
				gi += tlen;
				pi += clen;
				continue;
			}
		}
		if (star == (size_t)-1)
			return false;
		gi = star + 1;
		pi = ++mark;
	}
	while (gi < glen && g[gi] == '*')
		gi++;
	return gi == glen;
}

/* A component of a path or glob: where it starts and how long it is. */
struct comp {
	const char *s;
	size_t len;
};

/* The component at or after s (skipping '/'); len 0 at the end. */
static struct comp comp_at(const char *s)
{
	struct comp c;

	while (*s == '/')
		s++;
	c.s = s;
	c.len = strcspn(s, "/");
	return c;
}

static struct comp comp_next(struct comp c)
{
	return comp_at(c.s + c.len);
}

static bool is_globstar(struct comp c)
{
	return c.len == 2 && c.s[0] == '*' && c.s[1] == '*';
}

bool rule_path_glob_match(const char *glob, const char *path)
{
	struct comp g, p, star = {NULL, 0}, mark = {NULL, 0};

	if (glob[0] != '/' || path[0] != '/')
		return false;
	g = comp_at(glob);
	p = comp_at(path);
	/* The same walk as name_match, a component at a time, "**" the star. */
	while (p.len > 0) {
		if (g.len > 0 && is_globstar(g)) {
			star = g;
			g = comp_next(g);
			mark = p;
			continue;
		}
		if (g.len > 0 && name_match(g.s, g.len, p.s, p.len)) {
			g = comp_next(g);
			p = comp_next(p);
			continue;
		}
		if (star.s == NULL)
			return false;
		g = comp_next(star);
		mark = comp_next(mark);
		p = mark;
	}
	while (g.len > 0 && is_globstar(g))
		g = comp_next(g);
	return g.len == 0;
}

/* ---- executables ---- */

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash != NULL ? slash + 1 : path;
}

/* name is word, or word followed by a version: digits and dots ("python3.11", "php8.2"). */
static bool versioned(const char *name, const char *word)
{
	size_t n = strlen(word);

	if (strncmp(name, word, n) != 0)
		return false;
	for (name += n; *name != '\0'; name++)
		if (!((*name >= '0' && *name <= '9') || *name == '.'))
			return false;
	return true;
}

static bool name_in(const char *name, const char *const *words, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (versioned(name, words[i]))
			return true;
	return false;
}

bool rule_is_shell(const char *path)
{
	static const char *const shells[] = {"sh",	"bash",	 "dash",  "zsh",  "ksh",
					     "mksh",	"ash",	 "csh",	  "tcsh", "fish",
					     "busybox", "rbash", "pdksh", "yash"};

	return name_in(base_name(path), shells, sizeof(shells) / sizeof(shells[0]));
}

bool rule_is_interpreter(const char *path)
{
	static const char *const interpreters[] = {"python", "perl",   "ruby", "php",
						   "node",   "nodejs", "lua",  "luajit",
						   "tclsh",  "wish",   "pypy", "pypy3"};

	return name_in(base_name(path), interpreters,
		       sizeof(interpreters) / sizeof(interpreters[0]));
}

bool rule_exe_entry_matches(const char *entry, const char *path)
{
	if (strcmp(entry, "any-shell") == 0)
		return rule_is_shell(path);
	if (strcmp(entry, "any-interpreter") == 0)
		return rule_is_interpreter(path);
	return rule_path_glob_match(entry, path);
}

/* ---- network ---- */

bool rule_port_matches(const struct rule_port *p, enum rule_proto proto, uint16_t port)
{
	return (p->proto == RULE_PROTO_ANY || p->proto == proto) && port >= p->lo && port <= p->hi;
}

bool rule_net_matches(const struct rule_net *n, int family, const uint8_t *addr, uint16_t port)
{
	static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	size_t whole, bits;

	/* An IPv4 peer reached through an IPv6 socket is still that IPv4 peer. */
	if (family == AF_INET6 && n->family == AF_INET && memcmp(addr, v4mapped, 12) == 0) {
		family = AF_INET;
		addr += 12;
	}
	if (family != n->family)
		return false;
	if (n->port_lo != 0 && (port < n->port_lo || port > n->port_hi))
		return false;
	whole = n->prefix / 8;
	bits = n->prefix % 8;
	if (memcmp(addr, n->addr, whole) != 0)
		return false;
	return bits == 0 || ((addr[whole] ^ n->addr[whole]) & (0xff00 >> bits) & 0xff) == 0;
}

/* ---- lists ---- */

static bool exe_list(const struct rule_strings *l, const char *path, size_t *ret_index)
{
	for (size_t i = 0; i < l->n; i++)
		if (rule_exe_entry_matches(l->v[i], path)) {
			*ret_index = i;
			return true;
		}
	return false;
}

static bool glob_list(const struct rule_strings *l, const char *path, size_t *ret_index)
{
	for (size_t i = 0; i < l->n; i++)
		if (rule_path_glob_match(l->v[i], path)) {
			*ret_index = i;
			return true;
		}
	return false;
}

static bool net_list(const struct rule_nets *l, int family, const uint8_t *addr, uint16_t port,
		     size_t *ret_index)
{
	for (size_t i = 0; i < l->n; i++)
		if (rule_net_matches(&l->v[i], family, addr, port)) {
			*ret_index = i;
			return true;
		}
	return false;
}

static bool port_list(const struct rule_ports *l, enum rule_proto proto, uint16_t port,
		      size_t *ret_index)
{
	for (size_t i = 0; i < l->n; i++)
		if (rule_port_matches(&l->v[i], proto, port)) {
			*ret_index = i;
			return true;
		}
	return false;
}

/* The verdict of an allow and a deny lookup, allow first. */
#define LIST_VERDICT(allow_hit, deny_hit)                                                          \
	((allow_hit) ? RULE_LIST_ALLOW : (deny_hit) ? RULE_LIST_DENY : RULE_LIST_NONE)

enum rule_list_verdict rule_match_exec(const struct rule_processes *p, const char *path,
				       size_t *ret_index)
{
	size_t i = 0;
	enum rule_list_verdict v = LIST_VERDICT(exe_list(&p->allow.executables, path, &i),
						exe_list(&p->deny.executables, path, &i));

	if (ret_index != NULL)
		*ret_index = i;
	return v;
}

enum rule_list_verdict rule_match_file(const struct rule_files *f, const char *path, bool write,
				       size_t *ret_index)
{
	const struct rule_strings *allow = write ? &f->allow.write : &f->allow.read;
	const struct rule_strings *deny = write ? &f->deny.write : &f->deny.read;
	size_t i = 0;
	enum rule_list_verdict v =
	    LIST_VERDICT(glob_list(allow, path, &i), glob_list(deny, path, &i));

	if (ret_index != NULL)
		*ret_index = i;
	return v;
}

enum rule_list_verdict rule_match_connect(const struct rule_network *n, int family,
					  const uint8_t *addr, uint16_t port, size_t *ret_index)
{
	size_t i = 0;
	enum rule_list_verdict v = LIST_VERDICT(net_list(&n->allow.connect, family, addr, port, &i),
						net_list(&n->deny.connect, family, addr, port, &i));

	if (ret_index != NULL)
		*ret_index = i;
	return v;
}

enum rule_list_verdict rule_match_listen(const struct rule_network *n, enum rule_proto proto,
					 uint16_t port, size_t *ret_index)
{
	size_t i = 0;
	enum rule_list_verdict v = LIST_VERDICT(port_list(&n->allow.listen, proto, port, &i),
						port_list(&n->deny.listen, proto, port, &i));

	if (ret_index != NULL)
		*ret_index = i;
	return v;
}
