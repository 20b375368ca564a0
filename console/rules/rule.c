/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A rule's JSON to struct rule and back (rule.h).  The parser walks the
 * object with a field path ("network.deny.connect[2]") so that every
 * refusal names where it is; it refuses unknown keys at every level.
 */
#include "rules/rule.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules/rule_values.h"
#include "utf8.h"

/* Bytes of a value quoted in a reason. */
#define QUOTE_MAX 64

struct pctx {
	struct rule_error *err;
	char path[sizeof(((struct rule_error *)0)->field)];
	size_t plen;
};

static const char *const effect_names[] = {"disabled", "alert", "prevent", "block"};

const char *rule_effect_name(enum rule_effect e)
{
	return (unsigned)e < 4 ? effect_names[e] : "?";
}

/* s as 'text' for a reason: cut at QUOTE_MAX bytes (between characters), controls written out. */
static const char *quoted(const char *s, char buf[QUOTE_MAX * 4 + 8])
{
	size_t len = strlen(s), cut = len;
	char esc[QUOTE_MAX * 4 + 1];

	if (cut > QUOTE_MAX) {
		cut = QUOTE_MAX;
		while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
			cut--;
	}
	utf8_escape_controls(s, cut, esc, sizeof(esc));
	snprintf(buf, QUOTE_MAX * 4 + 8, "'%s%s'", esc, cut < len ? "..." : "");
	return buf;
}

static int fail(struct pctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct pctx *c, const char *fmt, ...)
{
	va_list ap;

	snprintf(c->err->field, sizeof(c->err->field), "%s", c->path);
	va_start(ap, fmt);
	vsnprintf(c->err->reason, sizeof(c->err->reason), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int fail_nomem(struct pctx *c)
{
	return fail(c, "out of memory"), -ENOMEM;
}

/* Append ".key" (or "key" at the start) to the path; returns the length to pop back to. */
static size_t push_key(struct pctx *c, const char *key)
{
	size_t old = c->plen;
	char esc[128];

	utf8_escape_controls(key, strnlen(key, 64), esc, sizeof(esc));
	if (c->plen < sizeof(c->path))
		c->plen += (size_t)snprintf(c->path + c->plen, sizeof(c->path) - c->plen, "%s%s",
					    c->plen > 0 ? "." : "", esc);
	if (c->plen >= sizeof(c->path))
		c->plen = sizeof(c->path) - 1;
	return old;
}

static size_t push_index(struct pctx *c, size_t i)
{
	size_t old = c->plen;

	if (c->plen < sizeof(c->path))
		c->plen +=
		    (size_t)snprintf(c->path + c->plen, sizeof(c->path) - c->plen, "[%zu]", i);
	if (c->plen >= sizeof(c->path))
		c->plen = sizeof(c->path) - 1;
	return old;
}

static void pop(struct pctx *c, size_t old)
{
	c->plen = old;
	c->path[old] = '\0';
}

/* o must be an object whose keys are all in known; what names it in the reason. */
static int only_known(struct pctx *c, const json_t *o, const char *const *known, const char *what)
{
	char name[sizeof(c->path)];
	const char *k;
	json_t *v;

	/* what may be c->path itself, which naming the unknown key changes. */
	snprintf(name, sizeof(name), "%s", what);
	if (!json_is_object(o))
		return fail(c, "must be an object");
	json_object_foreach((json_t *)o, k, v)
	{
		char list[256];
		size_t n = 0;
		bool ok = false;

		for (size_t i = 0; known[i] != NULL; i++) {
			ok |= strcmp(known[i], k) == 0;
			if (n < sizeof(list))
				n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s",
						      i == 0 ? "" : ", ", known[i]);
		}
		if (!ok) {
			push_key(c, k);
			return fail(c, "unknown field (%s takes %s)", name, list);
		}
	}
	return 0;
}

static int parse_effect(struct pctx *c, const json_t *o, const char *key, bool deviation,
			enum rule_effect *out)
{
	json_t *v = json_object_get(o, key);
	char q[QUOTE_MAX * 4 + 8];
	size_t old;
	int rc = 0;

	*out = RULE_EFFECT_ALERT;
	if (v == NULL)
		return 0;
	old = push_key(c, key);
	if (!json_is_string(v)) {
		rc = fail(c, "must be a string: %s",
			  deviation ? "disabled, alert, prevent or block"
				    : "alert, prevent or block");
		goto out;
	}
	for (int e = deviation ? RULE_EFFECT_DISABLED : RULE_EFFECT_ALERT; e <= RULE_EFFECT_BLOCK;
	     e++) {
		if (strcmp(json_string_value(v), effect_names[e]) == 0) {
			*out = (enum rule_effect)e;
			goto out;
		}
	}
	rc = fail(c, "%s is not an effect: use %s", quoted(json_string_value(v), q),
		  deviation ? "disabled, alert, prevent or block" : "alert, prevent or block");
out:
	pop(c, old);
	return rc;
}

/* o[key] as an array of at most RULE_LIST_MAX (NULL and 0 when absent); the path has key. */
static int list_of(struct pctx *c, const json_t *o, const char *key, json_t **ret, size_t *ret_n)
{
	json_t *v = json_object_get(o, key);

	*ret = NULL;
	*ret_n = 0;
	if (v == NULL)
		return 0;
	if (!json_is_array(v))
		return fail(c, "must be a list");
	if (json_array_size(v) > RULE_LIST_MAX)
		return fail(c, "has %zu entries, more than %d", json_array_size(v), RULE_LIST_MAX);
	*ret = v;
	*ret_n = json_array_size(v);
	return 0;
}

enum strings_kind {
	STRINGS_PATH,
	STRINGS_EXECUTABLE,
	STRINGS_HOST,
	STRINGS_LABEL,
	STRINGS_SERVICE,
	STRINGS_IMAGE,
};

/* One entry of a string list; the path has its index. */
static int check_string(struct pctx *c, const char *s, enum strings_kind kind,
			const struct rule_strings *before)
{
	char why[256], q[QUOTE_MAX * 4 + 8];
	size_t klen = 0;
	bool ok = false;

	switch (kind) {
	case STRINGS_EXECUTABLE:
		if (strcmp(s, "any-shell") == 0 || strcmp(s, "any-interpreter") == 0) {
			ok = true;
			break;
		}
		if (s[0] != '/') {
			snprintf(why, sizeof(why),
				 "is not an absolute path, any-shell or any-interpreter");
			break;
		}
		/* fall through */
	case STRINGS_PATH:
		ok = rule_check_glob(s, RULE_GLOB_PATH, why, sizeof(why));
		break;
	case STRINGS_HOST:
		ok = rule_check_glob(s, RULE_GLOB_HOST, why, sizeof(why));
		break;
	case STRINGS_SERVICE:
		ok = rule_check_glob(s, RULE_GLOB_SERVICE, why, sizeof(why));
		break;
	case STRINGS_IMAGE:
		ok = rule_check_glob(s, RULE_GLOB_IMAGE, why, sizeof(why));
		break;
	case STRINGS_LABEL:
		ok = rule_check_label(s, &klen, why, sizeof(why));
		break;
	}
	if (!ok)
		return fail(c, "%s %s", quoted(s, q), why);
	for (size_t j = 0; j < before->n; j++) {
		if (strcmp(before->v[j], s) == 0)
			return fail(c, "%s is also entry [%zu]", quoted(s, q), j);
		/* Two values for one key can never both match. */
		if (kind == STRINGS_LABEL && strncmp(before->v[j], s, klen + 1) == 0)
			return fail(c,
				    "%s: the key '%.*s' is also in entry [%zu] (a host has one"
				    " value per key)",
				    quoted(s, q), (int)klen, s, j);
	}
	return 0;
}

static int parse_strings(struct pctx *c, const json_t *o, const char *key, enum strings_kind kind,
			 struct rule_strings *out)
{
	size_t old = push_key(c, key), n;
	json_t *arr;
	int rc;

	rc = list_of(c, o, key, &arr, &n);
	if (rc == 0 && n > 0 && (out->v = calloc(n, sizeof(*out->v))) == NULL)
		rc = fail_nomem(c);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		json_t *e = json_array_get(arr, i);
		size_t at = push_index(c, i);
		const char *s = json_string_value(e);
		char image[RULE_GLOB_MAX + 32], q[QUOTE_MAX * 4 + 8];

		if (!json_is_string(e))
			rc = fail(c, "must be a string");
		else
			rc = check_string(c, s, kind, out);
		/* Images are matched normalized (nginx:* is docker.io/library/nginx:*): kept so. */
		if (rc == 0 && kind == STRINGS_IMAGE) {
			if (!rule_image_glob_normalize(s, image, sizeof(image)) ||
			    strlen(image) > RULE_GLOB_MAX)
				rc = fail(c, "%s is longer than %d bytes as a full image name",
					  quoted(s, q), RULE_GLOB_MAX);
			for (size_t j = 0; rc == 0 && j < out->n; j++)
				if (strcmp(out->v[j], image) == 0)
					rc = fail(c, "%s is also entry [%zu] (as %s)", quoted(s, q),
						  j, image);
			s = image;
		}
		if (rc == 0 && (out->v[out->n] = strdup(s)) == NULL)
			rc = fail_nomem(c);
		else if (rc == 0)
			out->n++;
		pop(c, at);
	}
	if (rc == 0)
		pop(c, old);
	return rc;
}

static int parse_ports(struct pctx *c, const json_t *o, const char *key, struct rule_ports *out)
{
	size_t old = push_key(c, key), n;
	char why[256], q[QUOTE_MAX * 4 + 8], text[32];
	json_t *arr;
	int rc;

	rc = list_of(c, o, key, &arr, &n);
	if (rc == 0 && n > 0 && (out->v = calloc(n, sizeof(*out->v))) == NULL)
		rc = fail_nomem(c);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		json_t *e = json_array_get(arr, i);
		size_t at = push_index(c, i);
		struct rule_port p;
		const char *s = text;

		if (json_is_integer(e)) {
			json_int_t v = json_integer_value(e);

			/* Large enough to be refused as out of range, small enough to print. */
			snprintf(text, sizeof(text), "%lld",
				 v > 999999 ? 999999LL
				 : v < 0    ? -1LL
					    : (long long)v);
		} else if (json_is_string(e)) {
			s = json_string_value(e);
		} else {
			rc = fail(c, "must be a port number or a string such as \"tcp:22\" or"
				     " \"8000-8100\"");
			pop(c, at);
			break;
		}
		if (!rule_parse_port(s, &p, why, sizeof(why))) {
			rc = fail(c, "%s %s", quoted(s, q), why);
		} else {
			for (size_t j = 0; j < out->n && rc == 0; j++)
				if (memcmp(&out->v[j], &p, sizeof(p)) == 0)
					rc = fail(c, "%s is also entry [%zu]", quoted(s, q), j);
			if (rc == 0)
				out->v[out->n++] = p;
		}
		pop(c, at);
	}
	if (rc == 0)
		pop(c, old);
	return rc;
}

static int parse_nets(struct pctx *c, const json_t *o, const char *key, struct rule_nets *out)
{
	size_t old = push_key(c, key), n;
	char why[256], q[QUOTE_MAX * 4 + 8];
	json_t *arr;
	int rc;

	rc = list_of(c, o, key, &arr, &n);
	if (rc == 0 && n > 0 && (out->v = calloc(n, sizeof(*out->v))) == NULL)
		rc = fail_nomem(c);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		json_t *e = json_array_get(arr, i);
		size_t at = push_index(c, i);
		struct rule_net net;

		if (!json_is_string(e)) {
			rc = fail(c, "must be a string such as \"10.0.0.0/8:22\"");
		} else if (!rule_parse_net(json_string_value(e), &net, why, sizeof(why))) {
			rc = fail(c, "%s %s", quoted(json_string_value(e), q), why);
		} else {
			for (size_t j = 0; j < out->n && rc == 0; j++)
				if (memcmp(&out->v[j], &net, sizeof(net)) == 0)
					rc = fail(c, "%s is also entry [%zu]",
						  quoted(json_string_value(e), q), j);
			if (rc == 0)
				out->v[out->n++] = net;
		}
		pop(c, at);
	}
	if (rc == 0)
		pop(c, old);
	return rc;
}

/* o[key] as an object with known keys, or NULL when absent; the path has key when it fails. */
static int sub_object(struct pctx *c, const json_t *o, const char *key, const char *const *known,
		      json_t **ret)
{
	json_t *v = json_object_get(o, key);
	size_t old;
	int rc;

	*ret = v;
	if (v == NULL)
		return 0;
	old = push_key(c, key);
	rc = only_known(c, v, known, c->path);
	if (rc == 0)
		pop(c, old);
	return rc;
}

/* One section's deny or allow lists from o into lists (the section's own struct). */
typedef int (*section_lists_fn)(struct pctx *c, const json_t *o, void *lists);

/* What differs between the three sections: their name, their lists' keys and parser. */
struct section_shape {
	const char *name;
	const char *const *deny_keys;  /* "effect" and the lists */
	const char *const *allow_keys; /* the lists */
	section_lists_fn lists;
};

/*
 * A section: its deviation effect, a deny object (an effect and lists) and
 * an allow object (lists), each key checked against sh; the results go to
 * the section struct's fields given.
 */
static int parse_section(struct pctx *c, const json_t *sec, const struct section_shape *sh,
			 bool *present, enum rule_effect *deviation, enum rule_effect *deny_effect,
			 void *deny_lists, void *allow_lists)
{
	static const char *const keys[] = {"deviation", "deny", "allow", NULL};
	json_t *deny, *allow;
	int rc;

	*present = true;
	if ((rc = only_known(c, sec, keys, sh->name)) < 0 ||
	    (rc = parse_effect(c, sec, "deviation", true, deviation)) < 0 ||
	    (rc = sub_object(c, sec, "deny", sh->deny_keys, &deny)) < 0 ||
	    (rc = sub_object(c, sec, "allow", sh->allow_keys, &allow)) < 0)
		return rc;
	*deny_effect = RULE_EFFECT_ALERT;
	if (deny != NULL) {
		size_t old = push_key(c, "deny");

		if ((rc = parse_effect(c, deny, "effect", false, deny_effect)) < 0 ||
		    (rc = sh->lists(c, deny, deny_lists)) < 0)
			return rc;
		pop(c, old);
	}
	if (allow != NULL) {
		size_t old = push_key(c, "allow");

		if ((rc = sh->lists(c, allow, allow_lists)) < 0)
			return rc;
		pop(c, old);
	}
	return 0;
}

static int parse_process_lists(struct pctx *c, const json_t *o, void *lists)
{
	struct rule_process_lists *l = lists;

	return parse_strings(c, o, "executables", STRINGS_EXECUTABLE, &l->executables);
}

static int parse_processes(struct pctx *c, const json_t *sec, struct rule_processes *p)
{
	static const char *const deny_keys[] = {"effect", "executables", NULL};
	static const struct section_shape sh = {"processes", deny_keys, deny_keys + 1,
						parse_process_lists};

	return parse_section(c, sec, &sh, &p->present, &p->deviation, &p->deny_effect, &p->deny,
			     &p->allow);
}

static int parse_network_lists(struct pctx *c, const json_t *o, void *lists)
{
	struct rule_network_lists *l = lists;
	int rc;

	if ((rc = parse_ports(c, o, "listen", &l->listen)) < 0 ||
	    (rc = parse_nets(c, o, "connect", &l->connect)) < 0)
		return rc;
	return 0;
}

static int parse_network(struct pctx *c, const json_t *sec, struct rule_network *p)
{
	static const char *const deny_keys[] = {"effect", "listen", "connect", NULL};
	static const struct section_shape sh = {"network", deny_keys, deny_keys + 1,
						parse_network_lists};

	return parse_section(c, sec, &sh, &p->present, &p->deviation, &p->deny_effect, &p->deny,
			     &p->allow);
}

static int parse_file_lists(struct pctx *c, const json_t *o, void *lists)
{
	struct rule_file_lists *l = lists;
	int rc;

	if ((rc = parse_strings(c, o, "read", STRINGS_PATH, &l->read)) < 0 ||
	    (rc = parse_strings(c, o, "write", STRINGS_PATH, &l->write)) < 0)
		return rc;
	return 0;
}

static int parse_files(struct pctx *c, const json_t *sec, struct rule_files *p)
{
	static const char *const deny_keys[] = {"effect", "read", "write", NULL};
	static const struct section_shape sh = {"files", deny_keys, deny_keys + 1,
						parse_file_lists};

	return parse_section(c, sec, &sh, &p->present, &p->deviation, &p->deny_effect, &p->deny,
			     &p->allow);
}

static int parse_scope(struct pctx *c, const json_t *o, struct rule_scope *s)
{
	static const char *const keys[] = {"hosts", "labels", "services", "images", NULL};
	int rc;

	if ((rc = only_known(c, o, keys, "scope")) < 0 ||
	    (rc = parse_strings(c, o, "hosts", STRINGS_HOST, &s->hosts)) < 0 ||
	    (rc = parse_strings(c, o, "labels", STRINGS_LABEL, &s->labels)) < 0 ||
	    (rc = parse_strings(c, o, "services", STRINGS_SERVICE, &s->services)) < 0 ||
	    (rc = parse_strings(c, o, "images", STRINGS_IMAGE, &s->images)) < 0)
		return rc;
	return 0;
}

/* The rule's name first, so that every later refusal can name the rule. */
static int parse_name(struct pctx *c, const json_t *o, struct rule *r)
{
	json_t *v = json_object_get(o, "name");
	char why[256], q[QUOTE_MAX * 4 + 8];
	size_t old = push_key(c, "name");
	int rc = 0;

	if (v == NULL)
		rc = fail(c, "is missing: every rule needs a name");
	else if (!json_is_string(v))
		rc = fail(c, "must be a string");
	else if (!rule_check_name(json_string_value(v), why, sizeof(why)))
		rc = fail(c, "%s %s", quoted(json_string_value(v), q), why);
	if (rc < 0)
		return rc;
	snprintf(r->name, sizeof(r->name), "%s", json_string_value(v));
	snprintf(c->err->rule, sizeof(c->err->rule), "%s", r->name);
	pop(c, old);
	return 0;
}

/* id, position, enabled, comment: the scalar fields after the name. */
static int parse_scalars(struct pctx *c, const json_t *o, struct rule *r)
{
	json_t *v;
	char why[256], q[QUOTE_MAX * 4 + 8];
	size_t old;

	if ((v = json_object_get(o, "id")) != NULL) {
		old = push_key(c, "id");
		if (!json_is_integer(v) || json_integer_value(v) < 1)
			return fail(c, "must be a positive integer");
		r->id = json_integer_value(v);
		pop(c, old);
	}
	if ((v = json_object_get(o, "position")) != NULL) {
		old = push_key(c, "position");
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > RULES_MAX)
			return fail(c, "must be an integer from 1 to %d", RULES_MAX);
		r->position = (int)json_integer_value(v);
		pop(c, old);
	}
	r->enabled = true;
	if ((v = json_object_get(o, "enabled")) != NULL) {
		old = push_key(c, "enabled");
		if (!json_is_boolean(v))
			return fail(c, "must be true or false");
		r->enabled = json_is_true(v);
		pop(c, old);
	}
	v = json_object_get(o, "comment");
	old = push_key(c, "comment");
	if (v != NULL && !json_is_string(v))
		return fail(c, "must be a string");
	if (v != NULL && strlen(json_string_value(v)) > RULE_COMMENT_MAX)
		return fail(c, "is %zu bytes, more than %d", strlen(json_string_value(v)),
			    RULE_COMMENT_MAX);
	if (v != NULL &&
	    !rule_text_check(json_string_value(v), RULE_TEXT_MULTILINE, why, sizeof(why)))
		return fail(c, "%s %s", quoted(json_string_value(v), q), why);
	if ((r->comment = strdup(v != NULL ? json_string_value(v) : "")) == NULL)
		return fail_nomem(c);
	pop(c, old);
	return 0;
}

static json_t *rule_json(const struct rule *r, bool with_id);

int rule_from_json(const json_t *o, const char *prefix, struct rule *out, struct rule_error *err)
{
	static const char *const keys[] = {"id",    "position",	 "name",    "enabled", "comment",
					   "scope", "processes", "network", "files",   NULL};
	struct pctx c = {.err = err};
	json_t *v;
	size_t len;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(err, 0, sizeof(*err));
	snprintf(c.path, sizeof(c.path), "%s", prefix != NULL ? prefix : "");
	c.plen = strlen(c.path);
	if (!json_is_object(o)) {
		rc = fail(&c, "must be an object (a rule)");
		goto fail;
	}
	if ((rc = parse_name(&c, o, out)) < 0 || (rc = only_known(&c, o, keys, "a rule")) < 0 ||
	    (rc = parse_scalars(&c, o, out)) < 0)
		goto fail;
	if ((v = json_object_get(o, "scope")) != NULL) {
		size_t old = push_key(&c, "scope");

		if ((rc = parse_scope(&c, v, &out->scope)) < 0)
			goto fail;
		pop(&c, old);
	}
	if ((v = json_object_get(o, "processes")) != NULL) {
		size_t old = push_key(&c, "processes");

		if ((rc = parse_processes(&c, v, &out->processes)) < 0)
			goto fail;
		pop(&c, old);
	}
	if ((v = json_object_get(o, "network")) != NULL) {
		size_t old = push_key(&c, "network");

		if ((rc = parse_network(&c, v, &out->network)) < 0)
			goto fail;
		pop(&c, old);
	}
	if ((v = json_object_get(o, "files")) != NULL) {
		size_t old = push_key(&c, "files");

		if ((rc = parse_files(&c, v, &out->files)) < 0)
			goto fail;
		pop(&c, old);
	}
	if (!out->processes.present && !out->network.present && !out->files.present) {
		rc = fail(&c, "decides nothing: give at least one of processes, network, files");
		goto fail;
	}
	/* What the console stores must fit its bound: measure the canonical text. */
	if ((v = rule_json(out, false)) == NULL) {
		rc = fail_nomem(&c);
		goto fail;
	}
	len = json_dumpb(v, NULL, 0, JSON_COMPACT);
	json_decref(v);
	if (len > RULE_JSON_MAX) {
		rc = fail(&c, "is %zu bytes as canonical JSON, more than %d", len, RULE_JSON_MAX);
		goto fail;
	}
	return 0;
fail:
	rule_fini(out);
	return rc;
}

int rule_parse(const char *json, size_t len, struct rule *out, struct rule_error *err)
{
	json_error_t jerr;
	json_t *o;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(err, 0, sizeof(*err));
	if (len > RULE_INPUT_MAX) {
		snprintf(err->reason, sizeof(err->reason), "the rule is %zu bytes, more than %d",
			 len, RULE_INPUT_MAX);
		return -EINVAL;
	}
	/* Duplicate keys refused: which of two values wins must not be a guess. */
	o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (o == NULL) {
		char text[160];

		utf8_escape_controls(jerr.text, strlen(jerr.text), text, sizeof(text));
		snprintf(err->reason, sizeof(err->reason), "not JSON: %s (line %d, column %d)",
			 text, jerr.line, jerr.column);
		return -EINVAL;
	}
	rc = rule_from_json(o, NULL, out, err);
	json_decref(o);
	return rc;
}

static void strings_free(struct rule_strings *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
}

void rule_fini(struct rule *r)
{
	if (r == NULL)
		return;
	free(r->comment);
	strings_free(&r->scope.hosts);
	strings_free(&r->scope.labels);
	strings_free(&r->scope.services);
	strings_free(&r->scope.images);
	strings_free(&r->processes.deny.executables);
	strings_free(&r->processes.allow.executables);
	free(r->network.deny.listen.v);
	free(r->network.deny.connect.v);
	free(r->network.allow.listen.v);
	free(r->network.allow.connect.v);
	strings_free(&r->files.deny.read);
	strings_free(&r->files.deny.write);
	strings_free(&r->files.allow.read);
	strings_free(&r->files.allow.write);
	memset(r, 0, sizeof(*r));
}

/* Serialization.  Every builder returns NULL when out of memory. */

static json_t *strings_json(const struct rule_strings *s)
{
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < s->n; i++) {
		if (json_array_append_new(a, json_string(s->v[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static json_t *ports_json(const struct rule_ports *p)
{
	json_t *a = json_array();
	char text[32];

	for (size_t i = 0; a != NULL && i < p->n; i++) {
		rule_port_text(&p->v[i], text, sizeof(text));
		if (json_array_append_new(a, json_string(text)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static json_t *nets_json(const struct rule_nets *n)
{
	json_t *a = json_array();
	char text[80];

	for (size_t i = 0; a != NULL && i < n->n; i++) {
		rule_net_text(&n->v[i], text, sizeof(text));
		if (json_array_append_new(a, json_string(text)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static json_t *processes_json(const struct rule_processes *p)
{
	return json_pack("{s:s,s:{s:s,s:o},s:{s:o}}", "deviation", rule_effect_name(p->deviation),
			 "deny", "effect", rule_effect_name(p->deny_effect), "executables",
			 strings_json(&p->deny.executables), "allow", "executables",
			 strings_json(&p->allow.executables));
}

static json_t *network_json(const struct rule_network *p)
{
	return json_pack("{s:s,s:{s:s,s:o,s:o},s:{s:o,s:o}}", "deviation",
			 rule_effect_name(p->deviation), "deny", "effect",
			 rule_effect_name(p->deny_effect), "listen", ports_json(&p->deny.listen),
			 "connect", nets_json(&p->deny.connect), "allow", "listen",
			 ports_json(&p->allow.listen), "connect", nets_json(&p->allow.connect));
}

static json_t *files_json(const struct rule_files *p)
{
	return json_pack("{s:s,s:{s:s,s:o,s:o},s:{s:o,s:o}}", "deviation",
			 rule_effect_name(p->deviation), "deny", "effect",
			 rule_effect_name(p->deny_effect), "read", strings_json(&p->deny.read),
			 "write", strings_json(&p->deny.write), "allow", "read",
			 strings_json(&p->allow.read), "write", strings_json(&p->allow.write));
}

static json_t *rule_json(const struct rule *r, bool with_id)
{
	json_t *o = json_object(), *scope;
	int rc = 0;

	if (o == NULL)
		return NULL;
	if (with_id && r->id > 0)
		rc |= json_object_set_new(o, "id", json_integer(r->id));
	if (with_id && r->position > 0)
		rc |= json_object_set_new(o, "position", json_integer(r->position));
	rc |= json_object_set_new(o, "name", json_string(r->name));
	rc |= json_object_set_new(o, "enabled", json_boolean(r->enabled));
	rc |= json_object_set_new(o, "comment", json_string(r->comment != NULL ? r->comment : ""));
	scope =
	    json_pack("{s:o,s:o,s:o,s:o}", "hosts", strings_json(&r->scope.hosts), "labels",
		      strings_json(&r->scope.labels), "services", strings_json(&r->scope.services),
		      "images", strings_json(&r->scope.images));
	rc |= scope == NULL || json_object_set_new(o, "scope", scope) < 0;
	if (r->processes.present) {
		json_t *s = processes_json(&r->processes);

		rc |= s == NULL || json_object_set_new(o, "processes", s) < 0;
	}
	if (r->network.present) {
		json_t *s = network_json(&r->network);

		rc |= s == NULL || json_object_set_new(o, "network", s) < 0;
	}
	if (r->files.present) {
		json_t *s = files_json(&r->files);

		rc |= s == NULL || json_object_set_new(o, "files", s) < 0;
	}
	if (rc != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *rule_to_json(const struct rule *r)
{
	return rule_json(r, true);
}

int rule_serialize(const struct rule *r, char **ret, size_t *ret_len)
{
	json_t *o = rule_json(r, false);
	char *text;

	if (o == NULL)
		return -ENOMEM;
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (text == NULL)
		return -ENOMEM;
	if (strlen(text) > RULE_JSON_MAX) {
		free(text);
		return -E2BIG;
	}
	*ret_len = strlen(text);
	*ret = text;
	return 0;
}
