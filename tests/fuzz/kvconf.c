/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The configuration file format (common/kvconf.c): the input is the file.
 * Properties: an accepted file has at most KVCONF_MAX_ENTRIES entries, keys
 * of [a-z0-9_] up to KVCONF_MAX_KEY bytes, values of UTF-8 text without
 * control characters up to KVCONF_MAX_VALUE bytes, lines in order; written
 * out again as `key = "value"` lines it parses to the same entries.  A
 * refusal says why.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "kvconf.h"
#include "utf8.h"

static void check_entry(const struct kvconf_entry *e, int prev_line)
{
	size_t klen = strlen(e->key), vlen = strlen(e->value);

	if (klen == 0 || klen > KVCONF_MAX_KEY ||
	    strspn(e->key, "abcdefghijklmnopqrstuvwxyz0123456789_") != klen)
		fuzz_fail("kvconf: key '%s' accepted", e->key);
	if (vlen > KVCONF_MAX_VALUE || !utf8_valid(e->value, vlen))
		fuzz_fail("kvconf: value of '%s' is too long or not UTF-8", e->key);
	for (size_t i = 0; i < vlen; i++) {
		unsigned char c = (unsigned char)e->value[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			fuzz_fail("kvconf: value of '%s' holds control character %#x", e->key, c);
	}
	if (e->line <= prev_line)
		fuzz_fail("kvconf: line %d after line %d", e->line, prev_line);
}

/* Write conf out again and parse it: the same keys and values must come back. */
static void check_round_trip(const struct kvconf *conf)
{
	size_t cap = 0, len = 0;
	struct kvconf *again = NULL;
	vigil_err err = {0};
	char *text;

	for (size_t i = 0; i < conf->n; i++)
		cap += strlen(conf->entries[i].key) + strlen(conf->entries[i].value) + 8;
	if (cap > KVCONF_MAX_BYTES)
		return; /* the quotes added would pass the file limit */
	text = malloc(cap + 1);
	if (text == NULL)
		return;
	for (size_t i = 0; i < conf->n; i++)
		len += (size_t)snprintf(text + len, cap + 1 - len, "%s = \"%s\"\n",
					conf->entries[i].key, conf->entries[i].value);
	if (kvconf_parse(text, len, "<again>", &again, &err) < 0)
		fuzz_fail("kvconf: written out again, refused: %s", err.msg);
	if (again->n != conf->n)
		fuzz_fail("kvconf: %zu entries, %zu after writing out again", conf->n, again->n);
	for (size_t i = 0; i < conf->n; i++)
		if (strcmp(again->entries[i].key, conf->entries[i].key) != 0 ||
		    strcmp(again->entries[i].value, conf->entries[i].value) != 0)
			fuzz_fail("kvconf: entry %zu differs after writing out again", i);
	kvconf_free(again);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kvconf *conf = NULL;
	vigil_err err = {0};
	int rc;

	rc = kvconf_parse((const char *)data, size, "<fuzz>", &conf, &err);
	if (rc < 0) {
		if (err.msg[0] == '\0')
			fuzz_fail("kvconf_parse: %d without a message", rc);
		return 0;
	}
	if (conf->n > KVCONF_MAX_ENTRIES)
		fuzz_fail("kvconf: %zu entries", conf->n);
	for (size_t i = 0; i < conf->n; i++)
		check_entry(&conf->entries[i], i > 0 ? conf->entries[i - 1].line : 0);
	check_round_trip(conf);
	kvconf_free(conf);
	return 0;
}
