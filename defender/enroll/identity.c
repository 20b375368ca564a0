/* SPDX-License-Identifier: Apache-2.0 */
/* The host's key, certificate and enrolled labels on disk (identity.h). */
#include "enroll/identity.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "fsutil.h"
#include "utf8.h"

#define LABELS_FILE_MAX (64 * 1024)

static int new_path(char out[PATH_MAX], const char *path, vigil_err *err)
{
	if (snprintf(out, PATH_MAX, "%s.new", path) >= PATH_MAX)
		return verr_set(err, -ENAMETOOLONG, "path too long: %s", path);
	return 0;
}

int identity_recover(const char *cert, const char *key, char *ret_what, size_t len, vigil_err *err)
{
	char cert_new[PATH_MAX], key_new[PATH_MAX];
	int rc;

	if (ret_what != NULL && len > 0)
		ret_what[0] = '\0';
	if ((rc = new_path(cert_new, cert, err)) < 0 || (rc = new_path(key_new, key, err)) < 0)
		return rc;
	if (fs_exists(key_new)) {
		/* Nothing renamed yet: the old pair stands; the new halves go. */
		unlink(key_new);
		unlink(cert_new);
		if (ret_what != NULL)
			snprintf(ret_what, len,
				 "an interrupted renewal left %s: removed, the previous key and"
				 " certificate stay",
				 key_new);
		return 0;
	}
	if (fs_exists(cert_new)) {
		/* The new key is in place: its certificate must follow. */
		if (rename(cert_new, cert) < 0)
			return verr_set(err, -errno, "cannot rename %s to %s: %s", cert_new, cert,
					strerror(errno));
		if (ret_what != NULL)
			snprintf(ret_what, len,
				 "an interrupted renewal had replaced the key: its certificate %s"
				 " is in place now",
				 cert);
	}
	return 0;
}

int identity_write(const char *cert, const char *key, const char *cert_pem, const char *key_pem,
		   bool exclusive, vigil_err *err)
{
	char cert_new[PATH_MAX], key_new[PATH_MAX];
	int rc;

	if (exclusive) {
		/* The key first: a failure removes it again, so no half pair stays. */
		if ((rc = fs_write_file(key, key_pem, strlen(key_pem), 0600, 1, err)) < 0)
			return rc;
		if ((rc = fs_write_file(cert, cert_pem, strlen(cert_pem), 0644, 1, err)) < 0)
			unlink(key);
		return rc;
	}
	if ((rc = new_path(cert_new, cert, err)) < 0 || (rc = new_path(key_new, key, err)) < 0)
		return rc;
	if ((rc = fs_write_file(key_new, key_pem, strlen(key_pem), 0600, 0, err)) < 0)
		return rc;
	if ((rc = fs_write_file(cert_new, cert_pem, strlen(cert_pem), 0644, 0, err)) < 0) {
		unlink(key_new);
		return rc;
	}
	if (rename(key_new, key) < 0) {
		rc = verr_set(err, -errno, "cannot rename %s to %s: %s", key_new, key,
			      strerror(errno));
		unlink(key_new);
		unlink(cert_new);
		return rc;
	}
	if (rename(cert_new, cert) < 0)
		/* identity_recover finishes this at the next start. */
		return verr_set(err, -errno, "cannot rename %s to %s: %s", cert_new, cert,
				strerror(errno));
	return 0;
}

/* As a configuration file takes a label (config/defender_config.c). */
static bool label_ok(const char *k, const char *v)
{
	size_t kn = strlen(k), vn = strlen(v);

	if (kn == 0 || kn > 63 || vn > 255 || strchr(k, '=') != NULL || !utf8_valid(k, kn) ||
	    !utf8_valid(v, vn))
		return false;
	for (const char *p = k; *p != '\0'; p++)
		if ((unsigned char)*p < 0x21 || *p == 0x7f || *p == '#')
			return false;
	for (const char *p = v; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

int identity_labels_save(const char *state_dir, const char *labels_json, vigil_err *err)
{
	char path[PATH_MAX], *text = NULL;
	json_t *o = json_loads(labels_json != NULL ? labels_json : "{}", 0, NULL), *v;
	const char *k;
	size_t len = 0;
	FILE *f;
	int rc;

	if (snprintf(path, sizeof(path), "%s/%s", state_dir, IDENTITY_LABELS_FILE) >=
	    (int)sizeof(path)) {
		json_decref(o);
		return verr_set(err, -ENAMETOOLONG, "path too long: %s", state_dir);
	}
	if ((f = open_memstream(&text, &len)) == NULL) {
		json_decref(o);
		return verr_set(err, -ENOMEM, "out of memory");
	}
	fprintf(f,
		"# labels of the join token this host enrolled with (vigil-defender --enroll)\n");
	json_object_foreach(o, k, v)
	{
		if (json_is_string(v) && label_ok(k, json_string_value(v)) &&
		    strlen(json_string_value(v)) == json_string_length(v))
			fprintf(f, "%s=%s\n", k, json_string_value(v));
	}
	fclose(f);
	json_decref(o);
	rc = fs_write_file(path, text, len, 0644, 0, err);
	free(text);
	return rc;
}

/* Whether cfg sets label key itself. */
static bool cfg_has(const struct defender_config *cfg, const char *key)
{
	for (size_t i = 0; i < cfg->nlabels; i++)
		if (strcmp(cfg->labels[i].key, key) == 0)
			return true;
	return false;
}

int identity_labels_merge(struct defender_config *cfg, int *ret_added, vigil_err *err)
{
	char path[PATH_MAX], *text = NULL, *line, *save = NULL;
	size_t len;
	int rc;

	*ret_added = 0;
	if (snprintf(path, sizeof(path), "%s/%s", cfg->state_dir, IDENTITY_LABELS_FILE) >=
	    (int)sizeof(path))
		return verr_set(err, -ENAMETOOLONG, "path too long: %s", cfg->state_dir);
	rc = fs_read_file(path, LABELS_FILE_MAX, &text, &len, err);
	if (rc == -ENOENT) {
		verr_clear(err);
		return 0;
	}
	if (rc < 0)
		return rc;
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');
		struct defender_label *l;

		if (line[0] == '#' || eq == NULL)
			continue;
		*eq = '\0';
		if (!label_ok(line, eq + 1) || cfg_has(cfg, line))
			continue;
		if (cfg->nlabels >= DEFENDER_MAX_LABELS) {
			free(text);
			return verr_set(err, -E2BIG,
					"%s: more labels than the %d a defender sends; the rest are"
					" left out",
					path, DEFENDER_MAX_LABELS);
		}
		l = &cfg->labels[cfg->nlabels];
		l->key = strdup(line);
		l->value = strdup(eq + 1);
		if (l->key == NULL || l->value == NULL) {
			free(l->key);
			free(l->value);
			free(text);
			return verr_set(err, -ENOMEM, "out of memory");
		}
		cfg->nlabels++;
		(*ret_added)++;
	}
	free(text);
	return 0;
}
