/* SPDX-License-Identifier: Apache-2.0 */
#include "outputs/output_conf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>

#include "fsutil.h"
#include "kvconf.h"

const char *output_kind_name(enum output_kind k)
{
	switch (k) {
	case OUTPUT_SYSLOG:
		return "syslog";
	case OUTPUT_JSONL:
		return "jsonl";
	case OUTPUT_WEBHOOK:
		return "webhook";
	}
	return "?";
}

int output_severity_rank(const char *s)
{
	if (s == NULL)
		return -1;
	if (strcmp(s, "low") == 0)
		return 0;
	if (strcmp(s, "medium") == 0)
		return 1;
	if (strcmp(s, "high") == 0)
		return 2;
	return -1;
}

void output_confs_fini(struct output_confs *c)
{
	free(c->v);
	c->v = NULL;
	c->n = 0;
}

/* The place of a message: "FILE:LINE: output NAME". */
struct where {
	const char *source;
	int line;
	const char *name;
};

#define BAD(w, ...) bad(err, w, __VA_ARGS__)

static int bad(vigil_err *err, const struct where *w, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(vigil_err *err, const struct where *w, const char *fmt, ...)
{
	char what[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (w->name != NULL)
		return verr_set(err, -EINVAL, "%s:%d: output %s: %s", w->source, w->line, w->name,
				what);
	return verr_set(err, -EINVAL, "%s:%d: %s", w->source, w->line, what);
}

static bool name_ok(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= OUTPUT_NAME_MAX &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* A whole decimal number in [min, max]. */
static bool parse_num(const char *s, long long min, long long max, long long *ret)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return false;
	*ret = v;
	return true;
}

/* N with s, m, h or d (a bare number is seconds). */
static bool parse_duration(const char *s, long long *ret_s)
{
	char num[32];
	size_t n = strlen(s);
	long long mul = 1, v;

	if (n == 0 || n >= sizeof(num))
		return false;
	memcpy(num, s, n + 1);
	switch (num[n - 1]) {
	case 's':
		num[--n] = '\0';
		break;
	case 'm':
		mul = 60;
		num[--n] = '\0';
		break;
	case 'h':
		mul = 3600;
		num[--n] = '\0';
		break;
	case 'd':
		mul = 86400;
		num[--n] = '\0';
		break;
	default:
		break;
	}
	if (!parse_num(num, 1, 100000000, &v))
		return false;
	*ret_s = v * mul;
	return true;
}

/* RFC 5424 facilities by name. */
static int facility_of(const char *s)
{
	static const char *const names[] = {
	    "kern",   "user",	"mail",	    "daemon", "auth",	"syslog", "lpr",    "news",
	    "uucp",   "cron",	"authpriv", "ftp",    "ntp",	"audit",  "alert",  "clock",
	    "local0", "local1", "local2",   "local3", "local4", "local5", "local6", "local7"};
	long long v;

	for (int i = 0; i < 24; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	if (parse_num(s, 0, 23, &v))
		return (int)v;
	return -1;
}

/*
 * A syslog target: tcp://HOST:PORT or tls://HOST:PORT, HOST a name, an
 * IPv4 address or [IPv6].
 */
static int parse_syslog_target(struct output_conf *c, const struct where *w, vigil_err *err)
{
	const char *s = c->target, *host, *colon;
	size_t hlen;
	long long port;

	if (strncmp(s, "tcp://", 6) == 0) {
		c->tls = false;
		s += 6;
	} else if (strncmp(s, "tls://", 6) == 0) {
		c->tls = true;
		s += 6;
	} else {
		return BAD(w, "syslog target '%s' must be tcp://HOST:PORT or tls://HOST:PORT",
			   c->target);
	}
	host = s;
	if (*s == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':')
			return BAD(w, "syslog target '%s': an IPv6 address is written [ADDR]:PORT",
				   c->target);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
	}
	if (colon == NULL || colon == host)
		return BAD(w, "syslog target '%s' has no HOST:PORT", c->target);
	hlen = (size_t)(colon - host);
	if (hlen >= 256 || strspn(host, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					"0123456789.-:[]") < hlen)
		return BAD(w, "syslog target '%s': the host is not a name or an address",
			   c->target);
	if (!parse_num(colon + 1, 1, 65535, &port))
		return BAD(w, "syslog target '%s': the port must be from 1 to 65535", c->target);
	snprintf(c->url, sizeof(c->url), "%s://%.*s:%lld", c->tls ? "tls+tcp" : "tcp", (int)hlen,
		 host, port);
	snprintf(c->where, sizeof(c->where), "%.*s:%lld", (int)hlen, host, port);
	return 0;
}

static int parse_webhook_target(struct output_conf *c, const struct where *w, vigil_err *err)
{
	nng_url *u = NULL;
	int rv;

	if ((rv = nng_url_parse(&u, c->target)) != 0)
		return BAD(w, "webhook target is not a URL");
	if (strcmp(u->u_scheme, "https") != 0 && strcmp(u->u_scheme, "http") != 0) {
		nng_url_free(u);
		/* The URL may carry a token: never repeat it. */
		return BAD(w, "webhook target must be an http:// or https:// URL");
	}
	c->tls = strcmp(u->u_scheme, "https") == 0;
	/* Only the host and port are ever logged: the path and the userinfo may be secret. */
	snprintf(c->where, sizeof(c->where), "%s:%s", u->u_hostname, u->u_port);
	nng_url_free(u);
	return 0;
}

/* The options, and the kinds that take each (a bit per enum output_kind). */
#define K_SYSLOG  (1u << OUTPUT_SYSLOG)
#define K_JSONL	  (1u << OUTPUT_JSONL)
#define K_WEBHOOK (1u << OUTPUT_WEBHOOK)
enum opt_key {
	OPT_MIN_SEVERITY,
	OPT_MAX_BACKLOG,
	OPT_MAX_AGE,
	OPT_CA,
	OPT_CERT,
	OPT_KEY,
	OPT_SERVER_NAME,
	OPT_FACILITY,
	OPT_SD_ID,
	OPT_FSYNC,
	OPT_MODE,
	OPT_FORMAT,
	OPT_COUNT,
};
static const struct {
	const char *name;
	unsigned kinds;
} opts[OPT_COUNT] = {
    [OPT_MIN_SEVERITY] = {"min_severity", K_SYSLOG | K_JSONL | K_WEBHOOK},
    [OPT_MAX_BACKLOG] = {"max_backlog", K_SYSLOG | K_JSONL | K_WEBHOOK},
    [OPT_MAX_AGE] = {"max_age", K_SYSLOG | K_JSONL | K_WEBHOOK},
    [OPT_CA] = {"ca", K_SYSLOG | K_WEBHOOK},
    [OPT_CERT] = {"cert", K_SYSLOG},
    [OPT_KEY] = {"key", K_SYSLOG},
    [OPT_SERVER_NAME] = {"server_name", K_SYSLOG | K_WEBHOOK},
    [OPT_FACILITY] = {"facility", K_SYSLOG},
    [OPT_SD_ID] = {"sd_id", K_SYSLOG},
    [OPT_FSYNC] = {"fsync", K_JSONL},
    [OPT_MODE] = {"mode", K_JSONL},
    [OPT_FORMAT] = {"format", K_WEBHOOK},
};

/* One "key=value" option of c. */
static int parse_option(struct output_conf *c, char *opt, const struct where *w, bool *seen_keys,
			vigil_err *err)
{
	char *eq = strchr(opt, '=');
	const char *v;
	long long n;
	int k = -1;

	if (eq == NULL || eq == opt || eq[1] == '\0')
		return BAD(w, "option '%s' must be KEY=VALUE", opt);
	*eq = '\0';
	v = eq + 1;
	for (int i = 0; i < OPT_COUNT; i++)
		if (strcmp(opt, opts[i].name) == 0)
			k = i;
	if (k < 0)
		return BAD(w, "unknown option '%s'", opt);
	if (seen_keys[k])
		return BAD(w, "option '%s' is given twice", opt);
	seen_keys[k] = true;
	if ((opts[k].kinds & (1u << c->kind)) == 0)
		return BAD(w, "option '%s' does not apply to a %s output", opt,
			   output_kind_name(c->kind));
	switch (k) {
	case OPT_MIN_SEVERITY:
		if ((c->min_severity = output_severity_rank(v)) < 0)
			return BAD(w, "min_severity must be low, medium or high, not '%s'", v);
		break;
	case OPT_MAX_BACKLOG:
		if (!parse_num(v, OUTPUT_MAX_BACKLOG_MIN, OUTPUT_MAX_BACKLOG_MAX, &n))
			return BAD(w, "max_backlog must be a number of audits from %d to %d",
				   OUTPUT_MAX_BACKLOG_MIN, OUTPUT_MAX_BACKLOG_MAX);
		c->max_backlog = n;
		break;
	case OPT_MAX_AGE:
		if (!parse_duration(v, &n) || n < 60 || n > 365 * 86400)
			return BAD(w, "max_age must be a duration (s, m, h, d) from 1m to 365d");
		c->max_age_s = n;
		break;
	case OPT_CA:
	case OPT_CERT:
	case OPT_KEY: {
		char *dst = k == OPT_CA ? c->ca : k == OPT_CERT ? c->cert : c->key;

		if (v[0] != '/' || strlen(v) >= PATH_MAX)
			return BAD(w, "%s must be an absolute file path", opt);
		snprintf(dst, PATH_MAX, "%s", v);
		break;
	}
	case OPT_SERVER_NAME:
		if (strlen(v) >= sizeof(c->server_name) ||
		    strspn(v,
			   "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-:") !=
			strlen(v))
			return BAD(w, "server_name must be a DNS name or an address");
		snprintf(c->server_name, sizeof(c->server_name), "%s", v);
		break;
	case OPT_FACILITY:
		if ((c->facility = facility_of(v)) < 0)
			return BAD(w,
				   "facility must be a syslog facility name (authpriv, local0,"
				   " ...) or 0 to 23, not '%s'",
				   v);
		break;
	case OPT_SD_ID: {
		/* SD-NAME "@" enterprise number: printable, no '=', ' ', ']', '"'. */
		const char *at = strchr(v, '@');

		if (strlen(v) > 32 || at == NULL || at == v || at[1] == '\0' ||
		    strspn(at + 1, "0123456789.") != strlen(at + 1) ||
		    strcspn(v, "= ]\"") != strlen(v))
			return BAD(w,
				   "sd_id must be NAME@ENTERPRISE_NUMBER, at most 32 characters");
		snprintf(c->sd_id, sizeof(c->sd_id), "%s", v);
		break;
	}
	case OPT_FSYNC:
		if (strcmp(v, "batch") == 0)
			c->fsync = true;
		else if (strcmp(v, "none") == 0)
			c->fsync = false;
		else
			return BAD(w, "fsync must be batch or none, not '%s'", v);
		break;
	case OPT_MODE: {
		char *end;
		unsigned long m = strtoul(v, &end, 8);

		if (*end != '\0' || end == v || m > 0777 || (m & 0600) != 0600)
			return BAD(w, "mode must be octal, at most 0777, and let the console"
				      " read and write (0600 at least)");
		c->mode = (unsigned)m;
		break;
	}
	case OPT_FORMAT:
		if (strcmp(v, "json") == 0)
			c->format = OUTPUT_FORMAT_JSON;
		else if (strcmp(v, "slack") == 0)
			c->format = OUTPUT_FORMAT_SLACK;
		else
			return BAD(w, "format must be json or slack, not '%s'", v);
		break;
	default:
		break;
	}
	return 0;
}

/* One "output = NAME KIND TARGET OPTION..." value into c. */
static int parse_output(char *value, const struct where *at, struct output_conf *c, vigil_err *err)
{
	bool seen[OPT_COUNT] = {false};
	char *save = NULL, *name, *kind, *target, *opt;
	struct where w = *at;
	int rc;

	name = strtok_r(value, " \t", &save);
	kind = strtok_r(NULL, " \t", &save);
	target = strtok_r(NULL, " \t", &save);
	if (name == NULL || kind == NULL || target == NULL)
		return BAD(&w, "output must be 'NAME KIND TARGET [OPTION=VALUE ...]'");
	if (!name_ok(name))
		return BAD(&w, "output name '%s' must be 1 to %d of A-Z a-z 0-9 . _ -", name,
			   OUTPUT_NAME_MAX);
	w.name = name;
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->line = at->line;
	c->max_backlog = OUTPUT_MAX_BACKLOG_DEFAULT;
	c->max_age_s = OUTPUT_MAX_AGE_DEFAULT_S;
	c->facility = 10; /* authpriv: security messages a host keeps private (auth.log) */
	snprintf(c->sd_id, sizeof(c->sd_id), "%s", OUTPUT_SD_ID_DEFAULT);
	c->fsync = true;
	c->mode = 0640;
	if (strlen(target) >= sizeof(c->target))
		return BAD(&w, "the target is longer than %zu bytes", sizeof(c->target) - 1);
	snprintf(c->target, sizeof(c->target), "%s", target);
	if (strcmp(kind, "syslog") == 0) {
		c->kind = OUTPUT_SYSLOG;
		rc = parse_syslog_target(c, &w, err);
	} else if (strcmp(kind, "jsonl") == 0) {
		c->kind = OUTPUT_JSONL;
		if (target[0] != '/' || strlen(target) >= PATH_MAX ||
		    target[strlen(target) - 1] == '/')
			return BAD(&w, "a jsonl target must be an absolute file path");
		snprintf(c->where, sizeof(c->where), "%s", target);
		rc = 0;
	} else if (strcmp(kind, "webhook") == 0) {
		c->kind = OUTPUT_WEBHOOK;
		rc = parse_webhook_target(c, &w, err);
	} else {
		return BAD(&w, "unknown kind '%s' (syslog, jsonl or webhook)", kind);
	}
	if (rc < 0)
		return rc;
	while ((opt = strtok_r(NULL, " \t", &save)) != NULL)
		if ((rc = parse_option(c, opt, &w, seen, err)) < 0)
			return rc;
	if ((c->cert[0] != '\0') != (c->key[0] != '\0'))
		return BAD(&w, "cert and key go together");
	if (c->tls && c->ca[0] == '\0')
		snprintf(c->ca, sizeof(c->ca), "%s", OUTPUT_SYSTEM_CA);
	if (!c->tls && (c->ca[0] != '\0' || c->cert[0] != '\0' || c->server_name[0] != '\0'))
		return BAD(&w, "ca, cert, key and server_name need a TLS target (tls:// or"
			       " https://)");
	return 0;
}

int output_conf_parse(const char *text, size_t len, const char *source, struct output_confs *ret,
		      vigil_err *err)
{
	struct kvconf *kv = NULL;
	int rc;

	memset(ret, 0, sizeof(*ret));
	if ((rc = kvconf_parse(text, len, source, &kv, err)) < 0)
		return rc;
	ret->v = calloc(OUTPUTS_MAX, sizeof(*ret->v));
	if (ret->v == NULL) {
		kvconf_free(kv);
		return verr_set(err, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < kv->n; i++) {
		const struct where w = {.source = source, .line = kv->entries[i].line};
		struct output_conf *c;

		if (strcmp(kv->entries[i].key, "output") != 0) {
			rc = BAD(&w, "unknown key '%s' (only 'output' lines)", kv->entries[i].key);
			goto fail;
		}
		if (ret->n >= OUTPUTS_MAX) {
			rc = BAD(&w, "more than %d outputs", OUTPUTS_MAX);
			goto fail;
		}
		c = &ret->v[ret->n];
		if ((rc = parse_output(kv->entries[i].value, &w, c, err)) < 0)
			goto fail;
		for (size_t k = 0; k < ret->n; k++) {
			if (strcmp(ret->v[k].name, c->name) == 0) {
				rc = BAD(&w, "output name '%s' is taken (line %d)", c->name,
					 ret->v[k].line);
				goto fail;
			}
		}
		ret->n++;
	}
	kvconf_free(kv);
	return 0;
fail:
	kvconf_free(kv);
	output_confs_fini(ret);
	return rc;
}

int output_conf_load(const char *path, struct output_confs *ret, vigil_err *err)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	memset(ret, 0, sizeof(*ret));
	if ((rc = fs_read_file(path, KVCONF_MAX_BYTES, &text, &len, err)) < 0)
		return rc;
	rc = output_conf_parse(text, len, path, ret, err);
	free(text);
	return rc;
}
