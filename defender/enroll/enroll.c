/* SPDX-License-Identifier: Apache-2.0 */
/* Joining a console with a join token (enroll.h). */
#include "enroll/enroll.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "config/defender_config.h"
#include "enroll/enroll_http.h"
#include "enroll/identity.h"
#include "fsutil.h"
#include "log.h"
#include "pki.h"
#include "pki_enroll.h"
#include "tls.h"

/* Where the console is: its API's URL, the name its certificate must carry, the host for the link.
 */
struct console_addr {
	char base[300];	       /* https://HOST:PORT */
	char server_name[256]; /* HOST without brackets */
	char host[260];	       /* HOST as it goes into a URL (IPv6 in brackets) */
};

/* Where the identity goes, and the rest of what enrolling needs. */
struct enroll_paths {
	char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
	char state_dir[PATH_MAX];
	char config[PATH_MAX];
	bool write_config; /* no configuration given: write one */
};

int enroll_default_name(char out[65], vigil_err *err)
{
	char host[256];
	size_t n;

	if (gethostname(host, sizeof(host)) < 0)
		return verr_set(err, -errno, "cannot read the hostname: %s", strerror(errno));
	host[sizeof(host) - 1] = '\0';
	n = strnlen(host, 64);
	for (size_t i = 0; i < n; i++) {
		char c = host[i];

		out[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
				 (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'
			     ? c
			     : '-';
	}
	out[n] = '\0';
	if (!pki_name_valid(out))
		return verr_set(err, -EINVAL,
				"the hostname gives no usable host name; give one with --name");
	return 0;
}

/* "HOST:PORT", "[V6]:PORT" or "https://..." into *a. */
static int console_parse(const char *text, struct console_addr *a, vigil_err *err)
{
	const char *hp = strncmp(text, "https://", 8) == 0 ? text + 8 : text;
	const char *colon, *host_end;
	size_t hlen;
	char *end;
	long port;

	if (hp[0] == '[') {
		host_end = strchr(hp, ']');
		colon = host_end != NULL && host_end[1] == ':' ? host_end + 1 : NULL;
		hp++;
	} else {
		colon = strrchr(hp, ':');
		host_end = colon;
	}
	if (colon == NULL || host_end == NULL || host_end == hp)
		return verr_set(err, -EINVAL,
				"--console '%s' must be the console's API as HOST:PORT", text);
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno != 0 || end == colon + 1 || (*end != '\0' && strcmp(end, "/") != 0) || port < 1 ||
	    port > 65535)
		return verr_set(err, -EINVAL,
				"--console '%s': the port is not a number from 1 to"
				" 65535",
				text);
	hlen = (size_t)(host_end - hp);
	if (hlen >= sizeof(a->server_name) - 1)
		return verr_set(err, -EINVAL, "--console '%s': the host is too long", text);
	memcpy(a->server_name, hp, hlen);
	a->server_name[hlen] = '\0';
	if (strchr(a->server_name, ':') != NULL)
		snprintf(a->host, sizeof(a->host), "[%s]", a->server_name);
	else
		snprintf(a->host, sizeof(a->host), "%s", a->server_name);
	snprintf(a->base, sizeof(a->base), "https://%s:%ld", a->host, port);
	return 0;
}

/* The token from the options, checked for form only (the console judges the rest). */
static int token_of(const struct enroll_opts *o, char *out, size_t len, vigil_err *err)
{
	char *text = NULL;
	size_t n;
	int rc;

	if ((o->token != NULL) == (o->token_file != NULL))
		return verr_set(err, -EINVAL,
				"give the join token with --enroll or --enroll-token-file");
	if (o->token != NULL) {
		snprintf(out, len, "%s", o->token);
	} else {
		if ((rc = fs_read_file(o->token_file, ENROLL_TOKEN_FILE_MAX, &text, NULL, err)) < 0)
			return rc;
		n = strcspn(text, "\r\n");
		text[n] = '\0';
		snprintf(out, len, "%s", text);
		explicit_bzero(text, strlen(text));
		free(text);
	}
	/* Never echoed: a mistyped token is still mostly someone's secret. */
	n = strlen(out);
	if (n == 0 || n >= len - 1 || strspn(out, "0123456789abcdef.") != n)
		return verr_set(err, -EINVAL,
				"the join token is not one vigilctl enroll token create printed");
	return 0;
}

/* Paths from the configuration (o->config) or the defaults, into *p; *ret_done when enrolled. */
static int paths_of(const struct enroll_opts *o, struct enroll_paths *p, bool *ret_done,
		    vigil_err *err)
{
	struct defender_config cfg;
	const char *state = o->state_dir != NULL ? o->state_dir : ENROLL_DEFAULT_STATE_DIR;
	int rc;

	memset(p, 0, sizeof(*p));
	*ret_done = false;
	if (o->config != NULL)
		snprintf(p->config, sizeof(p->config), "%s", o->config);
	else if (snprintf(p->config, sizeof(p->config), "%s/%s", state, ENROLL_CONFIG_FILE) >=
		 (int)sizeof(p->config))
		return verr_set(err, -ENAMETOOLONG, "path too long: %s", state);
	if (o->config == NULL && !fs_exists(p->config)) {
		/* The identity in STATE/identity/, a configuration written for it. */
		p->write_config = true;
		snprintf(p->state_dir, sizeof(p->state_dir), "%s", state);
		if (snprintf(p->ca, sizeof(p->ca), "%s/identity/ca.crt", state) >= PATH_MAX ||
		    snprintf(p->cert, sizeof(p->cert), "%s/identity/host.crt", state) >= PATH_MAX ||
		    snprintf(p->key, sizeof(p->key), "%s/identity/host.key", state) >= PATH_MAX)
			return verr_set(err, -ENAMETOOLONG, "path too long: %s", state);
		return 0;
	}
	if ((rc = defender_config_load(p->config, &cfg, err)) < 0)
		return rc;
	snprintf(p->ca, sizeof(p->ca), "%s", cfg.ca);
	snprintf(p->cert, sizeof(p->cert), "%s", cfg.cert);
	snprintf(p->key, sizeof(p->key), "%s", cfg.key);
	snprintf(p->state_dir, sizeof(p->state_dir), "%s", cfg.state_dir);
	defender_config_fini(&cfg);
	*ret_done = fs_exists(p->cert) && fs_exists(p->key);
	return 0;
}

/* mkdir -p the directory of path (0700: it may hold the key). */
static int dir_of(const char *path, vigil_err *err)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", path);
	return fs_mkdir_p(dirname(buf), 0700, err);
}

/* The console's "error" of a refusal, for the operator. */
static const char *answer_error(json_t *ans)
{
	json_t *e = json_object_get(ans, "error");

	return json_is_string(e) ? json_string_value(e) : "no reason given";
}

/*
 * Trust: the CA the console must chain to, as PEM into *ret_pem (caller
 * frees) and at p->ca on disk (what TLS reads from now on).
 */
static int trust_ca(const struct enroll_opts *o, const struct console_addr *a,
		    const struct enroll_paths *p, char **ret_pem, vigil_err *err)
{
	char pin[PKI_SHA256_HEX + 1];
	struct pki_cert_info info;
	json_t *ans = NULL, *ca;
	size_t len;
	int status = 0, rc;

	if ((o->ca_file != NULL) == (o->ca_sha256 != NULL))
		return verr_set(
		    err, -EINVAL,
		    "say how to trust the console: --ca FILE or --ca-sha256 HEX (vigilctl"
		    " enroll token create prints it)");
	if (o->ca_file != NULL) {
		if ((rc = fs_read_file(o->ca_file, TLS_PEM_MAX, ret_pem, &len, err)) < 0)
			return rc;
		if ((rc = pki_cert_info(*ret_pem, len, &info, err)) < 0)
			return verr_set(err, rc, "--ca %s holds no certificate", o->ca_file);
	} else {
		if (pki_sha256_parse(o->ca_sha256, pin) < 0)
			return verr_set(err, -EINVAL,
					"--ca-sha256 must be 64 hex digits (pairs may be separated"
					" by ':')");
		/* Unverified on purpose: what comes back is kept only when its hash is the pin. */
		if ((rc = enroll_http(a->base, "GET", "/api/v1/enroll/ca", NULL, NULL,
				      a->server_name, &status, &ans, err)) < 0)
			return rc;
		ca = json_object_get(ans, "ca");
		if (status != 200 || !json_is_string(ca)) {
			rc =
			    verr_set(err, -EPROTO, "the console at %s did not give its CA (%d): %s",
				     a->base, status, answer_error(ans));
			json_decref(ans);
			return rc;
		}
		rc = pki_cert_info(json_string_value(ca), json_string_length(ca), &info, err);
		if (rc == 0 && strcmp(info.sha256, pin) != 0)
			rc = verr_set(err, -EACCES,
				      "the console at %s has a CA with SHA-256 %s, not the %s given"
				      " (--ca-sha256): not enrolling (the wrong console, or someone"
				      " in between)",
				      a->base, info.sha256, pin);
		if (rc == 0 && (*ret_pem = strdup(json_string_value(ca))) == NULL)
			rc = verr_set(err, -ENOMEM, "out of memory");
		json_decref(ans);
		if (rc < 0)
			return rc;
		len = strlen(*ret_pem);
	}
	/* The configuration's CA file: written when missing, else it must be this CA. */
	if (fs_exists(p->ca)) {
		char *have = NULL;
		struct pki_cert_info hi;
		size_t hlen;

		if ((rc = fs_read_file(p->ca, TLS_PEM_MAX, &have, &hlen, err)) < 0)
			return rc;
		rc = pki_cert_info(have, hlen, &hi, err);
		free(have);
		if (rc < 0 || strcmp(hi.sha256, info.sha256) != 0)
			return verr_set(
			    err, -EINVAL,
			    "%s (the configuration's ca) is not the console's CA (SHA-256"
			    " %s)",
			    p->ca, info.sha256);
		return 0;
	}
	if ((rc = dir_of(p->ca, err)) < 0)
		return rc;
	return fs_write_file(p->ca, *ret_pem, len, 0644, 1, err);
}

/* What the console answered an enrollment, checked. */
struct enrolled {
	json_t *ans;
	const char *cert;
	int link_port;
	char *labels; /* JSON text; free */
};

/* Send the request; 0 with *e filled (enrolled_fini it), or why not. */
static int enroll_send(const struct console_addr *a, const char *ca_path, const char *ca_pem,
		       const char *token, const char *name, const char *csr, const char *key,
		       struct enrolled *e, vigil_err *err)
{
	struct pki_cert_info ours, theirs;
	json_t *req, *ca, *cert, *lp;
	char *body;
	int status = 0, rc;

	memset(e, 0, sizeof(*e));
	if ((req = json_pack("{s:s,s:s}", "token", token, "csr", csr)) == NULL ||
	    (body = json_dumps(req, JSON_COMPACT)) == NULL) {
		json_decref(req);
		return verr_set(err, -ENOMEM, "out of memory");
	}
	json_decref(req);
	rc = enroll_http(a->base, "POST", "/api/v1/enroll", body, ca_path, a->server_name, &status,
			 &e->ans, err);
	explicit_bzero(body, strlen(body));
	free(body);
	if (rc < 0)
		return rc;
	if (status != 201)
		return verr_set(err, status == 429 ? -EAGAIN : -EACCES,
				"the console refused the enrollment (%d): %s", status,
				answer_error(e->ans));
	ca = json_object_get(e->ans, "ca");
	cert = json_object_get(e->ans, "certificate");
	lp = json_object_get(e->ans, "link_port");
	if (!json_is_string(ca) || !json_is_string(cert) || !json_is_integer(lp) ||
	    json_integer_value(lp) < 1 || json_integer_value(lp) > 65535)
		return verr_set(err, -EPROTO,
				"the console's answer lacks the certificate, CA or"
				" link port");
	if (pki_cert_info(ca_pem, strlen(ca_pem), &ours, err) < 0 ||
	    pki_cert_info(json_string_value(ca), json_string_length(ca), &theirs, err) < 0 ||
	    strcmp(ours.sha256, theirs.sha256) != 0)
		return verr_set(err, -EPROTO,
				"the console answered with another CA than the one trusted");
	if ((rc = pki_identity_check(ca_pem, json_string_value(cert), key, name, err)) < 0) {
		char why[sizeof(err->msg)];

		snprintf(why, sizeof(why), "%s", err->msg);
		return verr_set(err, rc, "the console's certificate is unusable: %s", why);
	}
	e->cert = json_string_value(cert);
	e->link_port = (int)json_integer_value(lp);
	e->labels = json_dumps(json_is_object(json_object_get(e->ans, "labels"))
				   ? json_object_get(e->ans, "labels")
				   : json_object(),
			       JSON_COMPACT);
	return 0;
}

static void enrolled_fini(struct enrolled *e)
{
	json_decref(e->ans);
	free(e->labels);
	memset(e, 0, sizeof(*e));
}

/* STATE/defender.conf for an enrollment without a configuration file. */
static int config_write(const struct enroll_paths *p, const struct console_addr *a, int link_port,
			vigil_err *err)
{
	char text[4 * PATH_MAX + 1024];
	int n;

	n = snprintf(text, sizeof(text),
		     "# vigil-defender configuration written by vigil-defender --enroll\n"
		     "# (docs/operations.md, \"Enrolling hosts\"); edit as any other.\n"
		     "console = tls+tcp://%s:%d\n"
		     "ca = %s\ncert = %s\nkey = %s\nstate_dir = %s\n",
		     a->host, link_port, p->ca, p->cert, p->key, p->state_dir);
	if (n < 0 || (size_t)n >= sizeof(text))
		return verr_set(err, -ENAMETOOLONG, "paths too long for %s", p->config);
	return fs_write_file(p->config, text, (size_t)n, 0600, 0, err);
}

int enroll_ensure(const struct enroll_opts *o, char *ret_config, size_t len, bool *ret_enrolled,
		  vigil_err *err)
{
	char name[65], token[256];
	struct console_addr a;
	struct enroll_paths p;
	struct enrolled e = {0};
	char *ca_pem = NULL, *key = NULL, *csr = NULL;
	bool done;
	int rc;

	if (ret_enrolled != NULL)
		*ret_enrolled = false;
	if (o->console == NULL)
		return verr_set(err, -EINVAL,
				"--enroll needs --console HOST:PORT (the console's API)");
	if ((rc = console_parse(o->console, &a, err)) < 0 || (rc = paths_of(o, &p, &done, err)) < 0)
		return rc;
	if (snprintf(ret_config, len, "%s", p.config) >= (int)len)
		return verr_set(err, -ENAMETOOLONG, "path too long: %s", p.config);
	if (done) {
		log_info("enroll: already enrolled (%s and %s exist): the join token is not used",
			 p.cert, p.key);
		return 0;
	}
	if (o->name != NULL && !pki_name_valid(o->name))
		return verr_set(err, -EINVAL, "--name '%s' must be 1..64 of [A-Za-z0-9._-]",
				o->name);
	if (o->name != NULL)
		snprintf(name, sizeof(name), "%s", o->name);
	else if ((rc = enroll_default_name(name, err)) < 0)
		return rc;
	if ((rc = token_of(o, token, sizeof(token), err)) < 0)
		goto out;
	if ((rc = fs_mkdir_p(p.state_dir, 0700, err)) < 0 || (rc = dir_of(p.key, err)) < 0 ||
	    (rc = dir_of(p.cert, err)) < 0)
		goto out;
	if ((rc = trust_ca(o, &a, &p, &ca_pem, err)) < 0)
		goto out;
	log_info("enroll: the console at %s is trusted by its CA (%s); enrolling as %s", a.base,
		 p.ca, name);
	/* The key is made here and stays here: only the request goes out. */
	if ((rc = pki_csr_new(name, &key, &csr, err)) < 0 ||
	    (rc = enroll_send(&a, p.ca, ca_pem, token, name, csr, key, &e, err)) < 0)
		goto out;
	/* The configuration first: a crash before the identity is written enrolls again. */
	if (p.write_config && (rc = config_write(&p, &a, e.link_port, err)) < 0)
		goto out;
	if ((rc = identity_write(p.cert, p.key, e.cert, key, true, err)) < 0)
		goto out;
	if ((rc = identity_labels_save(p.state_dir, e.labels, err)) < 0)
		log_warn("enroll: the join token's labels are not kept: %s", err->msg);
	log_info(
	    "enroll: enrolled as %s; key %s (mode 0600, never sent), certificate %s, CA %s%s%s",
	    name, p.key, p.cert, p.ca, p.write_config ? ", configuration " : "",
	    p.write_config ? p.config : "");
	if (ret_enrolled != NULL)
		*ret_enrolled = true;
	rc = 0;
out:
	explicit_bzero(token, sizeof(token));
	enrolled_fini(&e);
	pki_secret_free(key);
	free(csr);
	free(ca_pem);
	return rc;
}
