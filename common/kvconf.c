/* SPDX-License-Identifier: Apache-2.0 */
#include "kvconf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"

void kvconf_free(struct kvconf *conf)
{
	if (conf == NULL)
		return;
	for (size_t i = 0; i < conf->n; i++) {
		free(conf->entries[i].key);
		free(conf->entries[i].value);
	}
	free(conf->entries);
	free(conf->source);
	free(conf);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* Well-formed UTF-8 (no overlongs, no surrogates) and no control characters. */
static bool value_acceptable(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		unsigned cp;

		if (c < 0x80) {
			if (c < 0x20 && c != '\t')
				return false;
			if (c == 0x7f)
				return false;
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			n = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		/* The continuation bytes s[i+1..i+n] must all be inside the value. */
		if (i + n >= len)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

static int add_entry(struct kvconf *conf, const char *key, size_t klen, const char *val,
		     size_t vlen, int line, vigil_err *err)
{
	struct kvconf_entry *e;

	if (conf->n >= KVCONF_MAX_ENTRIES)
		return verr_set(err, -E2BIG, "%s:%d: more than %d entries", conf->source, line,
				KVCONF_MAX_ENTRIES);
	if (conf->n % 16 == 0) {
		e = realloc(conf->entries, (conf->n + 16) * sizeof(*e));
		if (e == NULL)
			return verr_set(err, -ENOMEM, "out of memory");
		conf->entries = e;
	}
	e = &conf->entries[conf->n];
	e->key = strndup(key, klen);
	e->value = strndup(val, vlen);
	e->line = line;
	if (e->key == NULL || e->value == NULL) {
		free(e->key);
		free(e->value);
		return verr_set(err, -ENOMEM, "out of memory");
	}
	conf->n++;
	return 0;
}

static int parse_line(struct kvconf *conf, const char *s, size_t len, int line, vigil_err *err)
{
	const char *end = s + len, *key, *eq, *val;
	size_t klen, vlen;

	while (s < end && is_space(*s))
		s++;
	while (end > s && is_space(end[-1]))
		end--;
	if (s == end || *s == '#')
		return 0;
	eq = memchr(s, '=', (size_t)(end - s));
	if (eq == NULL)
		return verr_set(err, -EINVAL, "%s:%d: expected 'key = value'", conf->source, line);
	key = s;
	klen = (size_t)(eq - s);
	while (klen > 0 && is_space(key[klen - 1]))
		klen--;
	if (klen == 0 || klen > KVCONF_MAX_KEY)
		return verr_set(err, -EINVAL, "%s:%d: missing or too long key", conf->source, line);
	for (size_t i = 0; i < klen; i++) {
		char c = key[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return verr_set(err, -EINVAL,
					"%s:%d: key '%.*s' may hold only a-z, 0-9 and _",
					conf->source, line, (int)klen, key);
	}
	val = eq + 1;
	while (val < end && is_space(*val))
		val++;
	vlen = (size_t)(end - val);
	if (vlen > 0 && *val == '"') {
		if (vlen < 2 || val[vlen - 1] != '"')
			return verr_set(err, -EINVAL, "%s:%d: unterminated quoted value for '%.*s'",
					conf->source, line, (int)klen, key);
		val++;
		vlen -= 2;
	}
	if (vlen > KVCONF_MAX_VALUE)
		return verr_set(err, -EINVAL, "%s:%d: value of '%.*s' is longer than %d bytes",
				conf->source, line, (int)klen, key, KVCONF_MAX_VALUE);
	if (!value_acceptable((const unsigned char *)val, vlen))
		return verr_set(err, -EINVAL,
				"%s:%d: value of '%.*s' is not UTF-8 text or holds control "
				"characters",
				conf->source, line, (int)klen, key);
	return add_entry(conf, key, klen, val, vlen, line, err);
}

int kvconf_parse(const char *text, size_t len, const char *source, struct kvconf **ret,
		 vigil_err *err)
{
	struct kvconf *conf;
	int line = 0, rc;

	if (len > KVCONF_MAX_BYTES)
		return verr_set(err, -EFBIG, "%s is larger than %d bytes", source,
				KVCONF_MAX_BYTES);
	conf = calloc(1, sizeof(*conf));
	if (conf == NULL || (conf->source = strdup(source)) == NULL) {
		free(conf);
		return verr_set(err, -ENOMEM, "out of memory");
	}
	for (size_t off = 0; off < len;) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t l = nl != NULL ? (size_t)(nl - (text + off)) : len - off;

		line++;
		if (memchr(text + off, '\0', l) != NULL) {
			rc = verr_set(err, -EINVAL, "%s:%d: NUL byte in line", source, line);
			goto fail;
		}
		if ((rc = parse_line(conf, text + off, l, line, err)) < 0)
			goto fail;
		off += l + 1;
	}
	*ret = conf;
	return 0;
fail:
	kvconf_free(conf);
	return rc;
}

int kvconf_load(const char *path, struct kvconf **ret, vigil_err *err)
{
	char *text;
	size_t len;
	int rc;

	if ((rc = fs_read_file(path, KVCONF_MAX_BYTES, &text, &len, err)) < 0)
		return rc;
	rc = kvconf_parse(text, len, path, ret, err);
	free(text);
	return rc;
}
