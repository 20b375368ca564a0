/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The console's outputs file (console/outputs/output_conf.c): the input is
 * the file.  Properties of an accepted file: at most OUTPUTS_MAX sinks, each
 * with a valid name unique in the file, a known kind, a target of its kind
 * (a syslog's nng URL tcp:// or tls+tcp://, a jsonl's absolute path), every
 * number inside its documented range, TLS files only with TLS; and a
 * refusal always says why, never repeating a webhook's URL past its host.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_util.h"
#include "outputs/output_conf.h"

static void check(const struct output_confs *c)
{
	if (c->n > OUTPUTS_MAX)
		fuzz_fail("%zu outputs", c->n);
	for (size_t i = 0; i < c->n; i++) {
		const struct output_conf *o = &c->v[i];
		size_t n = strlen(o->name);

		if (n < 1 || n > OUTPUT_NAME_MAX ||
		    strspn(o->name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				    "0123456789._-") != n)
			fuzz_fail("output name '%s'", o->name);
		for (size_t k = 0; k < i; k++)
			if (strcmp(c->v[k].name, o->name) == 0)
				fuzz_fail("output name '%s' twice", o->name);
		if (o->kind == OUTPUT_SYSLOG && strncmp(o->url, "tcp://", 6) != 0 &&
		    strncmp(o->url, "tls+tcp://", 10) != 0)
			fuzz_fail("syslog url '%s'", o->url);
		if (o->kind == OUTPUT_JSONL && o->target[0] != '/')
			fuzz_fail("jsonl target '%s'", o->target);
		if (o->kind != OUTPUT_SYSLOG && o->kind != OUTPUT_JSONL &&
		    o->kind != OUTPUT_WEBHOOK)
			fuzz_fail("kind %d", (int)o->kind);
		if (o->min_severity < 0 || o->min_severity > 2 ||
		    o->max_backlog < OUTPUT_MAX_BACKLOG_MIN ||
		    o->max_backlog > OUTPUT_MAX_BACKLOG_MAX || o->max_age_s < 60 ||
		    o->max_age_s > 365 * 86400 || o->facility < 0 || o->facility > 23 ||
		    o->mode > 0777 || (o->mode & 0600) != 0600)
			fuzz_fail("output %s: a number out of range", o->name);
		if (!o->tls && (o->ca[0] != '\0' || o->cert[0] != '\0'))
			fuzz_fail("output %s: TLS files without TLS", o->name);
		if ((o->cert[0] != '\0') != (o->key[0] != '\0'))
			fuzz_fail("output %s: cert without key", o->name);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct output_confs c;
	vigil_err err = {0};
	int rc;

	rc = output_conf_parse((const char *)data, size, "fuzz.conf", &c, &err);
	if (rc < 0 && err.msg[0] == '\0')
		fuzz_fail("output_conf_parse: %d without a message", rc);
	if (rc < 0 && c.n != 0)
		fuzz_fail("output_conf_parse failed and left %zu outputs", c.n);
	if (rc == 0) {
		check(&c);
		output_confs_fini(&c);
	}
	return 0;
}
