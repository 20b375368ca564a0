/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_RULE_H
#define VIGIL_CONSOLE_RULE_H

/*
 * An operator's rule: its JSON parsed into a struct, checked, and written
 * back in one canonical form (docs/rules.md has the format).  Pure: no
 * database, no I/O, no globals, so the API, vigilctl and a fuzzer all call
 * the same parser on untrusted input.
 *
 * A rule has a scope (which hosts, services and images it is about) and up
 * to three sections, processes, network and files.  A section that is
 * absent says nothing: for that category the next rule whose scope matches
 * decides.  A section that is present decides for its category, with its
 * defaults filled in (deviation "alert", deny effect "alert", empty lists).
 *
 * Canonical form: every field of the rule and of each present section
 * written out, keys in a fixed order, lists in the order given, ports and
 * networks normalized ("tcp:22", "10.0.0.0/8:22", "[2001:db8::/32]:443").
 * Parsing the canonical form gives the same struct and the same text again.
 *
 * Errors: -EINVAL with err naming the field ("network.deny.connect[2]") and
 * the reason; -ENOMEM (err says so).  Values quoted in a reason are cut to
 * 64 bytes and have control characters written out (\xNN), so a reason is
 * safe to log and to print.
 *
 * Ownership: a struct rule owns everything it points to; rule_fini frees
 * it.  Nothing here locks: use a struct rule from one thread at a time.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Limits (docs/rules.md lists them). */
#define RULE_NAME_MAX	     128	 /* bytes */
#define RULE_COMMENT_MAX     4096	 /* bytes */
#define RULE_LIST_MAX	     256	 /* entries in any one list */
#define RULE_GLOB_MAX	     4096	 /* bytes in one glob or path */
#define RULE_LABEL_KEY_MAX   63		 /* bytes, as the defender's configuration */
#define RULE_LABEL_VALUE_MAX 255	 /* bytes */
#define RULE_INPUT_MAX	     (64 * 1024) /* JSON text handed to rule_parse, as the API's body cap */
#define RULE_JSON_MAX	     (48 * 1024) /* one rule's canonical JSON */
#define RULES_MAX	     1024	 /* rules in a rule set */
#define RULES_SET_JSON_MAX   (8 * 1024 * 1024) /* a rule set's canonical JSON */

/* What happens to an act a rule section matches. */
enum rule_effect {
	RULE_EFFECT_DISABLED = 0, /* deviations only: not even an audit */
	RULE_EFFECT_ALERT,	  /* the act happens, an audit says so */
	RULE_EFFECT_PREVENT,	  /* the act is refused (EPERM), the process lives */
	RULE_EFFECT_BLOCK,	  /* the process that tried is killed */
};

/* A list of strings (globs, labels, words), each a NUL-terminated copy. */
struct rule_strings {
	char **v;
	size_t n;
};

enum rule_proto {
	RULE_PROTO_ANY = 0,
	RULE_PROTO_TCP,
	RULE_PROTO_UDP,
};

/* A listening port or range, "tcp:22", "8000-8100". */
struct rule_port {
	enum rule_proto proto;
	uint16_t lo, hi; /* 1..65535, lo <= hi */
};

struct rule_ports {
	struct rule_port *v;
	size_t n;
};

/* A peer network with an optional port or range, "10.0.0.0/8:22". */
struct rule_net {
	int family;		   /* AF_INET or AF_INET6 */
	uint8_t addr[16];	   /* network byte order; no bits set past prefix */
	uint8_t prefix;		   /* 0..32 or 0..128 */
	uint16_t port_lo, port_hi; /* 0, 0: every port */
};

struct rule_nets {
	struct rule_net *v;
	size_t n;
};

struct rule_process_lists {
	struct rule_strings executables; /* absolute path globs, "any-shell", "any-interpreter" */
};

struct rule_network_lists {
	struct rule_ports listen;
	struct rule_nets connect;
};

struct rule_file_lists {
	struct rule_strings read, write; /* absolute path globs */
};

struct rule_processes {
	bool present;
	enum rule_effect deviation; /* for deviations from the learned model */
	enum rule_effect deny_effect;
	struct rule_process_lists deny, allow;
};

struct rule_network {
	bool present;
	enum rule_effect deviation;
	enum rule_effect deny_effect;
	struct rule_network_lists deny, allow;
};

struct rule_files {
	bool present;
	enum rule_effect deviation;
	enum rule_effect deny_effect;
	struct rule_file_lists deny, allow;
};

struct rule_scope {
	struct rule_strings hosts;    /* host id globs */
	struct rule_strings labels;   /* "key=value", all must match */
	struct rule_strings services; /* service name globs */
	struct rule_strings images;   /* container image globs */
};

struct rule {
	int64_t id;   /* given by the console; 0 when the input had none */
	int position; /* 1..RULES_MAX; 0 when the input had none */
	char name[RULE_NAME_MAX + 1];
	bool enabled;
	char *comment; /* never NULL after a successful parse */
	struct rule_scope scope;
	struct rule_processes processes;
	struct rule_network network;
	struct rule_files files;
};

/* Where and why a rule was refused; every field NUL-terminated. */
struct rule_error {
	char rule[RULE_NAME_MAX + 1]; /* the rule's name when it had a valid one, else "" */
	char field[256];	      /* "network.deny.connect[2]", "" for the whole text */
	char reason[512];
};

/*
 * Parse and check len bytes of JSON text (one object; at most
 * RULE_INPUT_MAX) into *out, which the caller then rule_fini's.  Unknown
 * fields are refused (a typo must not widen a rule), and so are duplicate
 * keys.  On failure *out holds nothing to free.
 */
int rule_parse(const char *json, size_t len, struct rule *out, struct rule_error *err);

/*
 * As rule_parse, from a parsed JSON object; field names in err start with
 * prefix ("rules[3]"; "" or NULL for none).  o stays the caller's.
 */
int rule_from_json(const json_t *o, const char *prefix, struct rule *out, struct rule_error *err);

/* Free what r holds and zero it.  Accepts NULL and a zeroed rule. */
void rule_fini(struct rule *r);

/*
 * The canonical JSON of r as a new object (caller json_decref's), "id" and
 * "position" first when r has them; NULL when out of memory.
 */
json_t *rule_to_json(const struct rule *r);

/*
 * The canonical JSON text of r without "id" and "position" (what the
 * console stores), compact, UTF-8, NUL-terminated, into *ret (caller
 * frees; set only on success).  -E2BIG when it is over RULE_JSON_MAX,
 * -ENOMEM.
 */
int rule_serialize(const struct rule *r, char **ret, size_t *ret_len);

/* "disabled", "alert", "prevent", "block". */
const char *rule_effect_name(enum rule_effect e);

/*
 * The checks of single values, for callers that take them elsewhere (a
 * rehearsal's filter, the defender's compiler).  Each returns true when s
 * is acceptable; otherwise false with why (whylen > 0) saying what is
 * wrong, without quoting s.
 */
bool rule_check_path_glob(const char *s, char *why, size_t whylen);
bool rule_check_name(const char *s, char *why, size_t whylen);

/*
 * A listening port entry ("22", "tcp:22", "8000-8100") or a peer
 * ("10.0.0.0/8", "[2001:db8::/32]:443") into *ret; false with why.
 */
bool rule_parse_port(const char *s, struct rule_port *ret, char *why, size_t whylen);
bool rule_parse_net(const char *s, struct rule_net *ret, char *why, size_t whylen);

/* The canonical text of a port entry / a peer into buf (64 bytes is always enough). */
void rule_port_text(const struct rule_port *p, char *buf, size_t len);
void rule_net_text(const struct rule_net *n, char *buf, size_t len);

#endif
