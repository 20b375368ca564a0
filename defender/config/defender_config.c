/* SPDX-License-Identifier: Apache-2.0 */
#include "config/defender_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "kvconf.h"
#include "log.h"

#define DEFAULT_STATE_DIR    "/var/lib/vigil/defender"
#define DEFAULT_BPF_PIN_DIR  "/sys/fs/bpf/vigil"
#define DEFAULT_HEARTBEAT_MS 1000

void defender_config_fini(struct defender_config *cfg)
{
	for (size_t i = 0; i < cfg->nconsoles; i++)
		free(cfg->consoles[i]);
	for (size_t i = 0; i < cfg->nlabels; i++) {
		free(cfg->labels[i].key);
		free(cfg->labels[i].value);
	}
	free(cfg->ca);
	free(cfg->cert);
	free(cfg->key);
	free(cfg->server_name);
	free(cfg->state_dir);
	free(cfg->bpf_pin_dir);
	free(cfg->metrics_listen);
	memset(cfg, 0, sizeof(*cfg));
}

static int set_once(char **slot, const struct kvconf *kv, const struct kvconf_entry *e,
		    vigil_err *err)
{
	if (*slot != NULL)
		return verr_set(err, -EINVAL, "%s:%d: '%s' given twice", kv->source, e->line,
				e->key);
	if (e->value[0] == '\0')
		return verr_set(err, -EINVAL, "%s:%d: '%s' is empty", kv->source, e->line, e->key);
	*slot = strdup(e->value);
	return *slot != NULL ? 0 : verr_set(err, -ENOMEM, "out of memory");
}

static int add_console(struct defender_config *cfg, const struct kvconf *kv,
		       const struct kvconf_entry *e, vigil_err *err)
{
	if (strncmp(e->value, "tls+tcp://", 10) != 0 && strncmp(e->value, "tls+tcp4://", 11) != 0 &&
	    strncmp(e->value, "tls+tcp6://", 11) != 0)
		return verr_set(err, -EINVAL,
				"%s:%d: console '%s' must be a tls+tcp:// URL (host:port)",
				kv->source, e->line, e->value);
	if (cfg->nconsoles >= DEFENDER_MAX_CONSOLES)
		return verr_set(err, -EINVAL, "%s:%d: more than %d consoles", kv->source, e->line,
				DEFENDER_MAX_CONSOLES);
	cfg->consoles[cfg->nconsoles] = strdup(e->value);
	if (cfg->consoles[cfg->nconsoles] == NULL)
		return verr_set(err, -ENOMEM, "out of memory");
	cfg->nconsoles++;
	return 0;
}

static int add_label(struct defender_config *cfg, const struct kvconf *kv,
		     const struct kvconf_entry *e, vigil_err *err)
{
	const char *eq = strchr(e->value, '=');
	struct defender_label *l;

	if (eq == NULL || eq == e->value)
		return verr_set(err, -EINVAL, "%s:%d: label '%s' must be key=value", kv->source,
				e->line, e->value);
	if (eq - e->value > 63 || strlen(eq + 1) > 255)
		return verr_set(err, -EINVAL, "%s:%d: label key over 63 or value over 255 bytes",
				kv->source, e->line);
	for (size_t i = 0; i < cfg->nlabels; i++)
		if (strncmp(cfg->labels[i].key, e->value, (size_t)(eq - e->value)) == 0 &&
		    cfg->labels[i].key[eq - e->value] == '\0')
			return verr_set(err, -EINVAL, "%s:%d: label '%.*s' given twice", kv->source,
					e->line, (int)(eq - e->value), e->value);
	if (cfg->nlabels >= DEFENDER_MAX_LABELS)
		return verr_set(err, -EINVAL, "%s:%d: more than %d labels", kv->source, e->line,
				DEFENDER_MAX_LABELS);
	l = &cfg->labels[cfg->nlabels];
	l->key = strndup(e->value, (size_t)(eq - e->value));
	l->value = strdup(eq + 1);
	if (l->key == NULL || l->value == NULL) {
		free(l->key);
		free(l->value);
		return verr_set(err, -ENOMEM, "out of memory");
	}
	cfg->nlabels++;
	return 0;
}

/* An integer setting in [min, max] (milliseconds, kilobytes). */
static int parse_int(int *slot, const struct kvconf *kv, const struct kvconf_entry *e, int min,
		     int max, vigil_err *err)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(e->value, &end, 10);
	if (errno != 0 || end == e->value || *end != '\0' || v < min || v > max)
		return verr_set(err, -EINVAL, "%s:%d: '%s' must be an integer from %d to %d",
				kv->source, e->line, e->key, min, max);
	*slot = (int)v;
	return 0;
}

/* "30s", "90m", "24h", "7d" (a bare number is seconds), from 1 s to 90 days. */
static int parse_duration(unsigned *slot, const struct kvconf *kv, const struct kvconf_entry *e,
			  vigil_err *err)
{
	char *end;
	unsigned long long v, unit = 1;

	errno = 0;
	v = strtoull(e->value, &end, 10);
	if (end[0] != '\0' && end[1] == '\0') {
		unit = end[0] == 's'   ? 1
		       : end[0] == 'm' ? 60
		       : end[0] == 'h' ? 3600
		       : end[0] == 'd' ? 86400
				       : 0;
		end++;
	}
	if (errno != 0 || end == e->value || *end != '\0' || e->value[0] == '-' || unit == 0 ||
	    v == 0 || v > 90ull * 86400 / unit)
		return verr_set(err, -EINVAL,
				"%s:%d: '%s' must be a duration like 30s, 90m, 24h or 7d "
				"(at most 90d), not '%s'",
				kv->source, e->line, e->key, e->value);
	*slot = (unsigned)(v * unit);
	return 0;
}

/*
 * metrics_listen: an address literal and a port, "127.0.0.1:9464" or
 * "[::1]:9464" (no names: what is bound must not depend on a resolver).
 */
static int parse_listen(struct defender_config *cfg, const struct kvconf *kv,
			const struct kvconf_entry *e, vigil_err *err)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *v = e->value, *colon, *hs;
	size_t hlen;
	char *end;
	long port;
	int rc;

	if ((rc = set_once(&cfg->metrics_listen, kv, e, err)) < 0)
		return rc;
	if (v[0] == '[') {
		const char *close = strchr(v, ']');

		colon = close != NULL && close[1] == ':' ? close + 1 : NULL;
		hs = v + 1;
		hlen = close != NULL ? (size_t)(close - hs) : 0;
	} else {
		colon = strrchr(v, ':');
		hs = v;
		hlen = colon != NULL ? (size_t)(colon - v) : 0;
	}
	if (colon == NULL || hlen == 0 || hlen >= sizeof(host))
		goto bad;
	memcpy(host, hs, hlen);
	host[hlen] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno != 0 || end == colon + 1 || *end != '\0' || port < 1 || port > 65535)
		goto bad;
	memset(&cfg->metrics_addr, 0, sizeof(cfg->metrics_addr));
	if (v[0] != '[') {
		struct sockaddr_in *sin = (struct sockaddr_in *)&cfg->metrics_addr;

		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			goto bad;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		cfg->metrics_addr_len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&cfg->metrics_addr;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			goto bad;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		cfg->metrics_addr_len = sizeof(*sin6);
	}
	return 0;
bad:
	return verr_set(err, -EINVAL,
			"%s:%d: metrics_listen must be ADDRESS:PORT with an IPv4 address or"
			" [IPv6] and a port from 1 to 65535 (e.g. 127.0.0.1:9464), not '%s'",
			kv->source, e->line, v);
}

static int parse_bool(bool *slot, const struct kvconf *kv, const struct kvconf_entry *e,
		      vigil_err *err)
{
	if (strcmp(e->value, "true") != 0 && strcmp(e->value, "false") != 0)
		return verr_set(err, -EINVAL, "%s:%d: %s must be true or false", kv->source,
				e->line, e->key);
	*slot = strcmp(e->value, "true") == 0;
	return 0;
}

static int apply(struct defender_config *cfg, const struct kvconf *kv, vigil_err *err)
{
	for (size_t i = 0; i < kv->n; i++) {
		const struct kvconf_entry *e = &kv->entries[i];
		int rc;

		if (strcmp(e->key, "console") == 0)
			rc = add_console(cfg, kv, e, err);
		else if (strcmp(e->key, "ca") == 0)
			rc = set_once(&cfg->ca, kv, e, err);
		else if (strcmp(e->key, "cert") == 0)
			rc = set_once(&cfg->cert, kv, e, err);
		else if (strcmp(e->key, "key") == 0)
			rc = set_once(&cfg->key, kv, e, err);
		else if (strcmp(e->key, "server_name") == 0)
			rc = set_once(&cfg->server_name, kv, e, err);
		else if (strcmp(e->key, "state_dir") == 0)
			rc = set_once(&cfg->state_dir, kv, e, err);
		else if (strcmp(e->key, "label") == 0)
			rc = add_label(cfg, kv, e, err);
		else if (strcmp(e->key, "heartbeat_interval_ms") == 0)
			rc = parse_int(&cfg->heartbeat_interval_ms, kv, e, 100, 600000, err);
		else if (strcmp(e->key, "ringbuf_kb") == 0) {
			rc = parse_int(&cfg->ringbuf_kb, kv, e, 64, 1 << 20, err);
			if (rc == 0 && (cfg->ringbuf_kb & (cfg->ringbuf_kb - 1)) != 0)
				rc = verr_set(err, -EINVAL,
					      "%s:%d: ringbuf_kb must be a power of two",
					      kv->source, e->line);
		} else if (strcmp(e->key, "spool_max_mb") == 0) {
			rc = parse_int(&cfg->spool_max_kb, kv, e, 1, 1 << 20, err);
			if (rc == 0)
				cfg->spool_max_kb *= 1024;
		} else if (strcmp(e->key, "spool_max_kb") == 0) {
			/* Small spools are for tests of what a full spool does. */
			rc = parse_int(&cfg->spool_max_kb, kv, e, 128, 1 << 30, err);
		} else if (strcmp(e->key, "bpf_pin_dir") == 0) {
			rc = cfg->bpf_pin_none
				 ? verr_set(err, -EINVAL, "%s:%d: 'bpf_pin_dir' given twice",
					    kv->source, e->line)
				 : set_once(&cfg->bpf_pin_dir, kv, e, err);
			if (rc == 0 && strcmp(cfg->bpf_pin_dir, "none") == 0) {
				free(cfg->bpf_pin_dir);
				cfg->bpf_pin_dir = NULL;
				cfg->bpf_pin_none = true;
			} else if (rc == 0 && cfg->bpf_pin_dir[0] != '/') {
				rc = verr_set(err, -EINVAL,
					      "%s:%d: bpf_pin_dir must be an absolute path or none",
					      kv->source, e->line);
			}
		} else if (strcmp(e->key, "send_window") == 0) {
			rc = parse_int(&cfg->send_window, kv, e, 1, DEFENDER_SEND_WINDOW_MAX, err);
		} else if (strcmp(e->key, "all_reads") == 0) {
			rc = parse_bool(&cfg->all_reads, kv, e, err);
		} else if (strcmp(e->key, "copy_open_args") == 0) {
			rc = parse_bool(&cfg->copy_open_args, kv, e, err);
		} else if (strcmp(e->key, "enforce_fanotify") == 0) {
			rc = parse_bool(&cfg->enforce_fanotify, kv, e, err);
		} else if (strcmp(e->key, "enforce_answer_ms") == 0) {
			rc = parse_int(&cfg->enforce_answer_ms, kv, e, 10, 5000, err);
		} else if (strcmp(e->key, "learning") == 0) {
			rc = parse_bool(&cfg->learning, kv, e, err);
		} else if (strcmp(e->key, "learn_window") == 0) {
			rc = parse_duration(&cfg->learn_window_s, kv, e, err);
		} else if (strcmp(e->key, "renew") == 0) {
			rc = parse_bool(&cfg->renew, kv, e, err);
		} else if (strcmp(e->key, "metrics_listen") == 0) {
			rc = parse_listen(cfg, kv, e, err);
		} else if (strcmp(e->key, "log_level") == 0) {
			cfg->log_level = log_level_parse(e->value);
			rc = cfg->log_level >= 0
				 ? 0
				 : verr_set(err, -EINVAL,
					    "%s:%d: log_level must be debug, info, warn or error",
					    kv->source, e->line);
		} else
			rc = verr_set(err, -EINVAL, "%s:%d: unknown key '%s'", kv->source, e->line,
				      e->key);
		if (rc < 0)
			return rc;
	}
	if (cfg->nconsoles == 0)
		return verr_set(err, -EINVAL, "%s: no 'console' given", kv->source);
	if (cfg->ca == NULL || cfg->cert == NULL || cfg->key == NULL)
		return verr_set(err, -EINVAL, "%s: 'ca', 'cert' and 'key' are all required",
				kv->source);
	if (cfg->bpf_pin_dir == NULL && !cfg->bpf_pin_none &&
	    (cfg->bpf_pin_dir = strdup(DEFAULT_BPF_PIN_DIR)) == NULL)
		return verr_set(err, -ENOMEM, "out of memory");
	if (cfg->state_dir == NULL && (cfg->state_dir = strdup(DEFAULT_STATE_DIR)) == NULL)
		return verr_set(err, -ENOMEM, "out of memory");
	return 0;
}

int defender_config_parse(const char *text, size_t len, const char *source,
			  struct defender_config *cfg, vigil_err *err)
{
	struct kvconf *kv;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	cfg->heartbeat_interval_ms = DEFAULT_HEARTBEAT_MS;
	cfg->log_level = LOG_LVL_INFO;
	cfg->spool_max_kb = 256 * 1024;
	cfg->send_window = DEFENDER_SEND_WINDOW_DEFAULT;
	cfg->learning = true;
	cfg->copy_open_args = true;
	cfg->enforce_fanotify = true;
	cfg->enforce_answer_ms = 250;
	cfg->learn_window_s = 24 * 3600;
	cfg->renew = true;
	if ((rc = kvconf_parse(text, len, source, &kv, err)) < 0)
		return rc;
	rc = apply(cfg, kv, err);
	kvconf_free(kv);
	if (rc < 0)
		defender_config_fini(cfg);
	return rc;
}

int defender_config_load(const char *path, struct defender_config *cfg, vigil_err *err)
{
	char *text;
	size_t len;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	if ((rc = fs_read_file(path, KVCONF_MAX_BYTES, &text, &len, err)) < 0)
		return rc;
	rc = defender_config_parse(text, len, path, cfg, err);
	free(text);
	return rc;
}
