/* SPDX-License-Identifier: Apache-2.0 */
/* Rule files: JSON or YAML (libyaml) to JSON values, and JSON values to YAML (rulefile.h). */
#include "cli/rulefile.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "fsutil.h"

static int why_set(char *why, size_t whylen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int why_set(char *why, size_t whylen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

bool rulefile_is_yaml_name(const char *path)
{
	size_t n = strlen(path);

	return (n > 5 && strcmp(path + n - 5, ".yaml") == 0) ||
	       (n > 4 && strcmp(path + n - 4, ".yml") == 0);
}

static bool is_json_name(const char *path)
{
	size_t n = strlen(path);

	return n > 5 && strcmp(path + n - 5, ".json") == 0;
}

/* [-+]?[0-9]+ */
static bool plain_int(const char *s, size_t len)
{
	size_t i = s[0] == '-' || s[0] == '+';

	if (i == len)
		return false;
	for (; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* [-+]?(digits with a '.' or an exponent), YAML 1.2's core float without .inf/.nan. */
static bool plain_real(const char *s, size_t len)
{
	size_t i = s[0] == '-' || s[0] == '+', digits = 0;
	bool dot = false, exp = false;

	for (; i < len; i++) {
		if (s[i] >= '0' && s[i] <= '9') {
			digits++;
		} else if (s[i] == '.' && !dot && !exp) {
			dot = true;
		} else if ((s[i] == 'e' || s[i] == 'E') && !exp && digits > 0) {
			exp = true;
			if (i + 1 < len && (s[i + 1] == '-' || s[i + 1] == '+'))
				i++;
			if (i + 1 >= len)
				return false;
		} else {
			return false;
		}
	}
	return digits > 0 && (dot || exp);
}

static bool word_in(const char *s, size_t len, const char *const *words)
{
	for (size_t i = 0; words[i] != NULL; i++)
		if (strlen(words[i]) == len && memcmp(words[i], s, len) == 0)
			return true;
	return false;
}

static const char *const nulls[] = {"~", "null", "Null", "NULL", NULL};
static const char *const trues[] = {"true", "True", "TRUE", NULL};
static const char *const falses[] = {"false", "False", "FALSE", NULL};

bool rulefile_plain_is_typed(const char *s, size_t len)
{
	return len == 0 || word_in(s, len, nulls) || word_in(s, len, trues) ||
	       word_in(s, len, falses) || plain_int(s, len) || plain_real(s, len);
}

/* A scalar event as a JSON value; NULL with why when refused. */
static json_t *scalar_json(const yaml_event_t *ev, char *why, size_t whylen)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	const char *tag = (const char *)ev->data.scalar.tag;

	if (memchr(s, '\0', len) != NULL) {
		why_set(why, whylen, -EINVAL, "line %zu: a NUL character in a value",
			ev->start_mark.line + 1);
		return NULL;
	}
	if (tag != NULL && strcmp(tag, YAML_STR_TAG) == 0)
		return json_stringn(s, len);
	if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return json_stringn(s, len);
	if (len == 0 || word_in(s, len, nulls))
		return json_null();
	if (word_in(s, len, trues))
		return json_true();
	if (word_in(s, len, falses))
		return json_false();
	if (plain_int(s, len)) {
		char buf[32], *end;
		long long v;

		if (len < sizeof(buf)) {
			memcpy(buf, s, len);
			buf[len] = '\0';
			errno = 0;
			v = strtoll(buf, &end, 10);
			if (errno == 0 && *end == '\0')
				return json_integer(v);
		}
		return json_stringn(s, len); /* too large for an integer: kept as written */
	}
	if (plain_real(s, len)) {
		char buf[64];

		if (len < sizeof(buf)) {
			memcpy(buf, s, len);
			buf[len] = '\0';
			return json_real(strtod(buf, NULL));
		}
	}
	return json_stringn(s, len);
}

struct yctx {
	yaml_parser_t parser;
	char *why;
	size_t whylen;
};

static int next_event(struct yctx *y, yaml_event_t *ev)
{
	if (yaml_parser_parse(&y->parser, ev))
		return 0;
	return why_set(y->why, y->whylen, -EINVAL, "line %zu, column %zu: %s%s%s",
		       y->parser.problem_mark.line + 1, y->parser.problem_mark.column + 1,
		       y->parser.problem != NULL ? y->parser.problem : "not YAML",
		       y->parser.context != NULL ? " " : "",
		       y->parser.context != NULL ? y->parser.context : "");
}

static int node_json(struct yctx *y, yaml_event_t *ev, int depth, json_t **ret);

/* The nodes of a sequence or mapping up to its end event. */
static int collection_json(struct yctx *y, bool mapping, int depth, json_t *out)
{
	for (;;) {
		yaml_event_t ev, kev;
		json_t *key = NULL, *val = NULL;
		int rc;

		if ((rc = next_event(y, &ev)) < 0)
			return rc;
		if (ev.type == (mapping ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT)) {
			yaml_event_delete(&ev);
			return 0;
		}
		if (!mapping) {
			rc = node_json(y, &ev, depth + 1, &val);
			yaml_event_delete(&ev);
			if (rc < 0)
				return rc;
			if (json_array_append_new(out, val) < 0)
				return why_set(y->why, y->whylen, -ENOMEM, "out of memory");
			continue;
		}
		kev = ev;
		if (kev.type != YAML_SCALAR_EVENT) {
			rc = why_set(y->why, y->whylen, -EINVAL,
				     "line %zu: a key must be a plain word or a string",
				     kev.start_mark.line + 1);
			yaml_event_delete(&kev);
			return rc;
		}
		if (kev.data.scalar.anchor != NULL ||
		    memchr(kev.data.scalar.value, '\0', kev.data.scalar.length) != NULL) {
			rc = why_set(y->why, y->whylen, -EINVAL,
				     "line %zu: anchors and NUL characters are not allowed in keys",
				     kev.start_mark.line + 1);
			yaml_event_delete(&kev);
			return rc;
		}
		key = json_stringn((const char *)kev.data.scalar.value, kev.data.scalar.length);
		if (key == NULL) {
			yaml_event_delete(&kev);
			return why_set(y->why, y->whylen, -EINVAL, "line %zu: a key is not UTF-8",
				       kev.start_mark.line + 1);
		}
		if (json_object_get(out, json_string_value(key)) != NULL) {
			rc =
			    why_set(y->why, y->whylen, -EINVAL, "line %zu: key '%.64s' given twice",
				    kev.start_mark.line + 1, json_string_value(key));
			json_decref(key);
			yaml_event_delete(&kev);
			return rc;
		}
		yaml_event_delete(&kev);
		if ((rc = next_event(y, &ev)) < 0) {
			json_decref(key);
			return rc;
		}
		rc = node_json(y, &ev, depth + 1, &val);
		yaml_event_delete(&ev);
		if (rc == 0 && json_object_set_new(out, json_string_value(key), val) < 0)
			rc = why_set(y->why, y->whylen, -ENOMEM, "out of memory");
		json_decref(key);
		if (rc < 0)
			return rc;
	}
}

static int node_json(struct yctx *y, yaml_event_t *ev, int depth, json_t **ret)
{
	const unsigned char *anchor = NULL, *tag = NULL;
	json_t *v;
	int rc;

	if (depth > RULEFILE_DEPTH_MAX)
		return why_set(y->why, y->whylen, -EINVAL, "line %zu: nested deeper than %d",
			       ev->start_mark.line + 1, RULEFILE_DEPTH_MAX);
	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		return why_set(y->why, y->whylen, -EINVAL,
			       "line %zu: aliases (*name) are not supported",
			       ev->start_mark.line + 1);
	case YAML_SCALAR_EVENT:
		anchor = ev->data.scalar.anchor;
		tag = ev->data.scalar.tag;
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = ev->data.sequence_start.anchor;
		tag = ev->data.sequence_start.tag;
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = ev->data.mapping_start.anchor;
		tag = ev->data.mapping_start.tag;
		break;
	default:
		return why_set(y->why, y->whylen, -EINVAL, "line %zu: unexpected YAML",
			       ev->start_mark.line + 1);
	}
	if (anchor != NULL)
		return why_set(y->why, y->whylen, -EINVAL,
			       "line %zu: anchors (&name) are not supported",
			       ev->start_mark.line + 1);
	if (tag != NULL &&
	    !(ev->type == YAML_SCALAR_EVENT && strcmp((const char *)tag, YAML_STR_TAG) == 0))
		return why_set(y->why, y->whylen, -EINVAL,
			       "line %zu: tags (%.64s) are not supported, except !!str",
			       ev->start_mark.line + 1, (const char *)tag);
	if (ev->type == YAML_SCALAR_EVENT) {
		v = scalar_json(ev, y->why, y->whylen);
		if (v == NULL)
			return why_set(y->why, y->whylen, -EINVAL,
				       "line %zu: a value that is not UTF-8 or has NUL",
				       ev->start_mark.line + 1);
		*ret = v;
		return 0;
	}
	v = ev->type == YAML_MAPPING_START_EVENT ? json_object() : json_array();
	if (v == NULL)
		return why_set(y->why, y->whylen, -ENOMEM, "out of memory");
	rc = collection_json(y, ev->type == YAML_MAPPING_START_EVENT, depth, v);
	if (rc < 0) {
		json_decref(v);
		return rc;
	}
	*ret = v;
	return 0;
}

int rulefile_yaml_parse(const char *text, size_t len, json_t **ret, char *why, size_t whylen)
{
	struct yctx y = {.why = why, .whylen = whylen};
	yaml_event_t ev;
	json_t *doc = NULL;
	int rc;

	if (!yaml_parser_initialize(&y.parser))
		return why_set(why, whylen, -ENOMEM, "out of memory");
	yaml_parser_set_input_string(&y.parser, (const unsigned char *)text, len);
	yaml_parser_set_encoding(&y.parser, YAML_UTF8_ENCODING);
	/* Stream start, document start. */
	if ((rc = next_event(&y, &ev)) < 0)
		goto out;
	yaml_event_delete(&ev);
	if ((rc = next_event(&y, &ev)) < 0)
		goto out;
	if (ev.type != YAML_DOCUMENT_START_EVENT) {
		yaml_event_delete(&ev);
		rc = why_set(why, whylen, -EINVAL, "the file is empty");
		goto out;
	}
	yaml_event_delete(&ev);
	if ((rc = next_event(&y, &ev)) < 0)
		goto out;
	rc = node_json(&y, &ev, 0, &doc);
	yaml_event_delete(&ev);
	if (rc < 0)
		goto out;
	/* Document end, then the stream must end: one document only. */
	if ((rc = next_event(&y, &ev)) < 0)
		goto out;
	yaml_event_delete(&ev);
	if ((rc = next_event(&y, &ev)) < 0)
		goto out;
	if (ev.type != YAML_STREAM_END_EVENT)
		rc = why_set(why, whylen, -EINVAL, "line %zu: a second YAML document",
			     ev.start_mark.line + 1);
	yaml_event_delete(&ev);
out:
	yaml_parser_delete(&y.parser);
	if (rc < 0) {
		json_decref(doc);
		return rc;
	}
	*ret = doc;
	return 0;
}

/* The whole of standard input, up to max bytes. */
static int read_stdin(size_t max, char **ret, size_t *ret_len, char *why, size_t whylen)
{
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap + 1), *grown;

	if (buf == NULL)
		return why_set(why, whylen, -ENOMEM, "out of memory");
	for (;;) {
		size_t n = fread(buf + len, 1, cap - len, stdin);

		len += n;
		if (n == 0)
			break;
		if (len == cap) {
			if (cap >= max) {
				free(buf);
				return why_set(why, whylen, -EFBIG,
					       "standard input is larger than %zu bytes", max);
			}
			cap *= 2;
			if ((grown = realloc(buf, cap + 1)) == NULL) {
				free(buf);
				return why_set(why, whylen, -ENOMEM, "out of memory");
			}
			buf = grown;
		}
	}
	if (ferror(stdin)) {
		free(buf);
		return why_set(why, whylen, -EIO, "cannot read standard input");
	}
	buf[len] = '\0';
	*ret = buf;
	*ret_len = len;
	return 0;
}

int rulefile_read(const char *path, json_t **ret, char *why, size_t whylen)
{
	vigil_err err = {0};
	json_error_t jerr;
	char *text = NULL;
	size_t len = 0, lead;
	bool yaml;
	int rc;

	if (strcmp(path, "-") == 0)
		rc = read_stdin(RULEFILE_MAX, &text, &len, why, whylen);
	else if ((rc = fs_read_file(path, RULEFILE_MAX, &text, &len, &err)) < 0)
		why_set(why, whylen, rc, "%s", err.msg);
	if (rc < 0)
		return rc;
	lead = strspn(text, " \t\r\n");
	if (rulefile_is_yaml_name(path))
		yaml = true;
	else if (is_json_name(path))
		yaml = false;
	else
		yaml = text[lead] != '{' && text[lead] != '[';
	if (yaml) {
		rc = rulefile_yaml_parse(text, len, ret, why, whylen);
	} else {
		*ret = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
		rc = *ret != NULL ? 0
				  : why_set(why, whylen, -EINVAL, "line %d, column %d: %s",
					    jerr.line, jerr.column, jerr.text);
	}
	free(text);
	return rc;
}

/* Writing YAML. */

struct ywriter {
	yaml_emitter_t em;
	char *why;
	size_t whylen;
};

static int emit(struct ywriter *w, yaml_event_t *ev)
{
	if (yaml_emitter_emit(&w->em, ev))
		return 0;
	return why_set(w->why, w->whylen, -EIO, "cannot write YAML: %s",
		       w->em.problem != NULL ? w->em.problem : "write failed");
}

static int emit_scalar(struct ywriter *w, const char *s, size_t len, bool text)
{
	yaml_event_t ev;
	/*
	 * A string that would read back as something else must be quoted; one
	 * with a line break or tab is double-quoted too, where they are written
	 * \n and \t (in other styles they fold into lines a reader may misjudge).
	 */
	yaml_scalar_style_t style =
	    text && (rulefile_plain_is_typed(s, len) || memchr(s, '\n', len) != NULL ||
		     memchr(s, '\t', len) != NULL)
		? YAML_DOUBLE_QUOTED_SCALAR_STYLE
		: YAML_ANY_SCALAR_STYLE;

	if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)len, 1, 1, style))
		return why_set(w->why, w->whylen, -ENOMEM, "out of memory");
	return emit(w, &ev);
}

static int emit_value(struct ywriter *w, const json_t *v, int depth)
{
	yaml_event_t ev;
	char num[64];
	int rc;

	if (depth > RULEFILE_DEPTH_MAX)
		return why_set(w->why, w->whylen, -EINVAL, "nested deeper than %d",
			       RULEFILE_DEPTH_MAX);
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		const char *k;
		json_t *e;

		yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
		if ((rc = emit(w, &ev)) < 0)
			return rc;
		json_object_foreach((json_t *)v, k, e)
		{
			if ((rc = emit_scalar(w, k, strlen(k), true)) < 0 ||
			    (rc = emit_value(w, e, depth + 1)) < 0)
				return rc;
		}
		yaml_mapping_end_event_initialize(&ev);
		return emit(w, &ev);
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *e;

		yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE);
		if ((rc = emit(w, &ev)) < 0)
			return rc;
		json_array_foreach(v, i, e)
		{
			if ((rc = emit_value(w, e, depth + 1)) < 0)
				return rc;
		}
		yaml_sequence_end_event_initialize(&ev);
		return emit(w, &ev);
	}
	case JSON_STRING:
		return emit_scalar(w, json_string_value(v), json_string_length(v), true);
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return emit_scalar(w, num, strlen(num), false);
	case JSON_REAL:
		/* Enough digits to read back the same double, and always a '.' or 'e'. */
		snprintf(num, sizeof(num), "%.17g", json_real_value(v));
		if (strpbrk(num, ".e") == NULL)
			strcat(num, ".0");
		return emit_scalar(w, num, strlen(num), false);
	case JSON_TRUE:
		return emit_scalar(w, "true", 4, false);
	case JSON_FALSE:
		return emit_scalar(w, "false", 5, false);
	case JSON_NULL:
		return emit_scalar(w, "null", 4, false);
	}
	return why_set(w->why, w->whylen, -EINVAL, "a value YAML cannot hold");
}

int rulefile_yaml_write(FILE *f, const json_t *v, char *why, size_t whylen)
{
	struct ywriter w = {.why = why, .whylen = whylen};
	yaml_event_t ev;
	int rc;

	if (!yaml_emitter_initialize(&w.em))
		return why_set(why, whylen, -ENOMEM, "out of memory");
	yaml_emitter_set_output_file(&w.em, f);
	yaml_emitter_set_unicode(&w.em, 1);
	yaml_emitter_set_width(&w.em, -1); /* no folding: a line per value */
	yaml_emitter_set_indent(&w.em, 2);
	yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
	if ((rc = emit(&w, &ev)) < 0)
		goto out;
	yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
	if ((rc = emit(&w, &ev)) < 0 || (rc = emit_value(&w, v, 0)) < 0)
		goto out;
	yaml_document_end_event_initialize(&ev, 1);
	if ((rc = emit(&w, &ev)) < 0)
		goto out;
	yaml_stream_end_event_initialize(&ev);
	if ((rc = emit(&w, &ev)) < 0)
		goto out;
	if (!yaml_emitter_flush(&w.em))
		rc = why_set(why, whylen, -EIO, "cannot write YAML");
out:
	yaml_emitter_delete(&w.em);
	return rc;
}
