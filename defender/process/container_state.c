/* SPDX-License-Identifier: Apache-2.0 */
/* Container runtimes' state files, parsed (container_state.h). */
#include "process/container_state.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

const char *container_runtime_name(enum container_runtime rt)
{
	switch (rt) {
	case CONTAINER_RT_DOCKER:
		return "docker";
	case CONTAINER_RT_PODMAN:
		return "podman";
	case CONTAINER_RT_CONTAINERD:
		return "containerd";
	case CONTAINER_RT_CRIO:
		return "cri-o";
	case CONTAINER_RT_UNKNOWN:
		break;
	}
	return "";
}

static bool is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static bool hex_run(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_lower_hex(s[i]))
			return false;
	return true;
}

bool container_id_valid(const char *s)
{
	return s != NULL && strnlen(s, CONTAINER_ID_LEN + 1) == CONTAINER_ID_LEN &&
	       hex_run(s, CONTAINER_ID_LEN);
}

/* ---- cgroup hint ---- */

static bool starts(const char *c, size_t n, const char *prefix)
{
	size_t pl = strlen(prefix);

	return n >= pl && memcmp(c, prefix, pl) == 0;
}

/* The runtime one cgroup path component names (parent: the component above it). */
static enum container_runtime component_runtime(const char *c, size_t n, const char *parent,
						size_t parent_n)
{
	static const struct {
		const char *prefix;
		enum container_runtime rt;
	} forms[] = {
	    {"docker-", CONTAINER_RT_DOCKER},
	    {"cri-containerd-", CONTAINER_RT_CONTAINERD},
	    {"crio-", CONTAINER_RT_CRIO},
	    {"libpod-", CONTAINER_RT_PODMAN},
	};

	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		size_t pl = strlen(forms[i].prefix);

		/* The monitors (libpod-conmon-<id>, crio-conmon-<id>) fail the hex test. */
		if (starts(c, n, forms[i].prefix) && n >= pl + CONTAINER_ID_LEN &&
		    hex_run(c + pl, CONTAINER_ID_LEN))
			return forms[i].rt;
	}
	if (n == CONTAINER_ID_LEN && hex_run(c, n) && parent_n == 6 &&
	    memcmp(parent, "docker", 6) == 0)
		return CONTAINER_RT_DOCKER;
	return CONTAINER_RT_UNKNOWN;
}

enum container_runtime container_runtime_hint(const char *cgroup)
{
	enum container_runtime found = CONTAINER_RT_UNKNOWN;
	const char *p = cgroup, *parent = "";
	size_t parent_n = 0;

	if (p == NULL)
		return found;
	while (*p != '\0') {
		const char *c;
		enum container_runtime rt;

		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		c = p;
		while (*p != '\0' && *p != '/')
			p++;
		rt = component_runtime(c, (size_t)(p - c), parent, parent_n);
		if (rt != CONTAINER_RT_UNKNOWN)
			found = rt; /* the deepest wins, as for the container id */
		parent = c;
		parent_n = (size_t)(p - c);
	}
	return found;
}

/* ---- names and images ---- */

/* The bytes an image reference, and a container's name, may hold. */
static bool ref_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-' || c == '/' || c == ':' || c == '@' || c == '+';
}

static bool ref_chars(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!ref_char(s[i]))
			return false;
	return true;
}

/* Whether the first component of a reference names a registry, as Docker decides it. */
static bool is_domain(const char *c, size_t n)
{
	if (n == 9 && memcmp(c, "localhost", 9) == 0)
		return true;
	for (size_t i = 0; i < n; i++)
		if (c[i] == '.' || c[i] == ':' || (c[i] >= 'A' && c[i] <= 'Z'))
			return true;
	return false;
}

bool container_image_normalize(const char *s, size_t len, char *out, size_t cap)
{
	char tmp[CONTAINER_IMAGE_MAX * 2 + 64];
	const char *slash, *rest, *last;
	size_t domain_n = 0, rest_n, n;
	bool docker_hub;
	int w;

	if (cap == 0)
		return false;
	out[0] = '\0';
	if (s == NULL || len == 0 || len > CONTAINER_IMAGE_MAX || !ref_chars(s, len))
		return false;
	/* An image id: kept as one. */
	if (len == CONTAINER_ID_LEN && hex_run(s, len)) {
		w = snprintf(tmp, sizeof(tmp), "sha256:%.*s", (int)len, s);
		goto done;
	}
	if (len == 7 + CONTAINER_ID_LEN && memcmp(s, "sha256:", 7) == 0 &&
	    hex_run(s + 7, CONTAINER_ID_LEN)) {
		w = snprintf(tmp, sizeof(tmp), "%.*s", (int)len, s);
		goto done;
	}
	/* No empty components: "/x", "x//y" and "x/" are not references. */
	if (s[0] == '/' || s[len - 1] == '/' || memmem(s, len, "//", 2) != NULL)
		return false;
	slash = memchr(s, '/', len);
	if (slash != NULL && is_domain(s, (size_t)(slash - s))) {
		domain_n = (size_t)(slash - s);
		rest = slash + 1;
	} else {
		rest = s;
	}
	rest_n = len - (size_t)(rest - s);
	docker_hub = domain_n == 0 || (domain_n == 9 && memcmp(s, "docker.io", 9) == 0) ||
		     (domain_n == 15 && memcmp(s, "index.docker.io", 15) == 0);
	if (rest_n == 0 || rest[0] == ':' || rest[0] == '@')
		return false;
	last = rest + rest_n;
	while (last > rest && last[-1] != '/')
		last--;
	n = rest_n - (size_t)(last - rest);
	/* The repository's own official images live under library/. */
	w = snprintf(tmp, sizeof(tmp), "%.*s/%s%.*s%s", docker_hub ? 9 : (int)domain_n,
		     docker_hub ? "docker.io" : s,
		     docker_hub && memchr(rest, '/', rest_n) == NULL ? "library/" : "", (int)rest_n,
		     rest,
		     memchr(last, ':', n) == NULL && memchr(last, '@', n) == NULL ? ":latest" : "");
done:
	if (w <= 0 || (size_t)w > CONTAINER_IMAGE_MAX || (size_t)w >= cap)
		return false;
	memcpy(out, tmp, (size_t)w + 1);
	return true;
}

/* A name or name part into out (cap bytes) if it is one; false (out untouched) when not. */
static bool name_ok(const char *s)
{
	size_t n = s != NULL ? strnlen(s, CONTAINER_NAME_MAX + 1) : 0;

	return n > 0 && n <= CONTAINER_NAME_MAX && ref_chars(s, n);
}

/* out = parts joined by '/', each a valid name part (NULL and "" ones left out); "" if any is bad.
 */
static void name_join(char out[CONTAINER_NAME_MAX + 1], const char *const *parts, size_t n)
{
	size_t len = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		size_t pl;

		if (parts[i] == NULL || parts[i][0] == '\0')
			continue;
		if (!name_ok(parts[i]))
			goto bad;
		pl = strlen(parts[i]);
		if (len + (len > 0) + pl > CONTAINER_NAME_MAX)
			goto bad;
		if (len > 0)
			out[len++] = '/';
		memcpy(out + len, parts[i], pl);
		len += pl;
		out[len] = '\0';
	}
	return;
bad:
	out[0] = '\0';
}

static void set_name(struct container_meta *m, const char *s)
{
	name_join(m->name, &s, 1);
}

static void set_image(struct container_meta *m, const char *s)
{
	if (s != NULL)
		container_image_normalize(s, strlen(s), m->image, sizeof(m->image));
}

/* A string member of object o, or NULL (absent, or not a string). */
static const char *str_of(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static json_t *load(const char *buf, size_t len)
{
	json_error_t e;

	/* Strings with NUL bytes are refused (no JSON_ALLOW_NUL). */
	return buf != NULL ? json_loadb(buf, len, 0, &e) : NULL;
}

static void meta_init(struct container_meta *out, const char *id)
{
	memset(out, 0, sizeof(*out));
	if (container_id_valid(id))
		memcpy(out->id, id, CONTAINER_ID_LEN);
}

/* ---- Docker ---- */

int container_parse_docker(const char *buf, size_t len, const char *id, struct container_meta *out)
{
	json_t *root = load(buf, len);
	const char *fid, *name, *image;
	int rc = 0;

	meta_init(out, id);
	out->runtime = CONTAINER_RT_DOCKER;
	if (!json_is_object(root) || (fid = str_of(root, "ID")) == NULL) {
		rc = -EINVAL;
		goto out;
	}
	if (id == NULL || strcmp(fid, id) != 0) {
		rc = -ENOENT;
		goto out;
	}
	/* Docker's names are paths under its root: "/web". */
	name = str_of(root, "Name");
	if (name != NULL && name[0] == '/')
		name++;
	set_name(out, name);
	/*
	 * What the user asked for; when that was an image id (or a prefix of
	 * one), the full id Docker resolved it to says more.
	 */
	image = str_of(json_object_get(root, "Config"), "Image");
	if (image != NULL && strlen(image) >= 12 && strlen(image) <= CONTAINER_ID_LEN &&
	    hex_run(image, strlen(image)))
		image = NULL;
	set_image(out, image);
	if (out->image[0] == '\0')
		set_image(out, str_of(root, "Image"));
out:
	json_decref(root);
	return rc;
}

/* ---- OCI bundles ---- */

int container_parse_oci(const char *buf, size_t len, const char *id, struct container_meta *out)
{
	json_t *root = load(buf, len), *ann;
	const char *v;

	meta_init(out, id);
	if (!json_is_object(root)) {
		json_decref(root);
		return -EINVAL;
	}
	ann = json_object_get(root, "annotations");
	if (!json_is_object(ann))
		goto out;
	/* podman marks its own (it also sets some of CRI-O's keys: this comes first). */
	if ((v = str_of(ann, "io.container.manager")) != NULL && strcmp(v, "libpod") == 0) {
		out->runtime = CONTAINER_RT_PODMAN;
		goto out;
	}
	if (str_of(ann, "io.kubernetes.cri.container-type") != NULL ||
	    str_of(ann, "io.kubernetes.cri.container-name") != NULL ||
	    str_of(ann, "io.kubernetes.cri.image-name") != NULL) {
		const bool sandbox =
		    (v = str_of(ann, "io.kubernetes.cri.container-type")) != NULL &&
		    strcmp(v, "sandbox") == 0;
		const char *parts[3] = {str_of(ann, "io.kubernetes.cri.sandbox-namespace"),
					str_of(ann, "io.kubernetes.cri.sandbox-name"),
					sandbox ? NULL
						: str_of(ann, "io.kubernetes.cri.container-name")};

		out->runtime = CONTAINER_RT_CONTAINERD;
		name_join(out->name, parts, 3);
		set_image(out, str_of(ann, "io.kubernetes.cri.image-name"));
		goto out;
	}
	if (str_of(ann, "io.kubernetes.cri-o.ImageName") != NULL ||
	    str_of(ann, "io.kubernetes.cri-o.ContainerType") != NULL) {
		const bool sandbox =
		    (v = str_of(ann, "io.kubernetes.cri-o.ContainerType")) != NULL &&
		    strcmp(v, "sandbox") == 0;
		const char *parts[3] = {str_of(ann, "io.kubernetes.pod.namespace"),
					str_of(ann, "io.kubernetes.pod.name"),
					sandbox ? NULL
						: str_of(ann, "io.kubernetes.container.name")};

		out->runtime = CONTAINER_RT_CRIO;
		name_join(out->name, parts, 3);
		set_image(out, str_of(ann, "io.kubernetes.cri-o.ImageName"));
		goto out;
	}
	if ((v = str_of(ann, "nerdctl/name")) != NULL) {
		out->runtime = CONTAINER_RT_CONTAINERD;
		set_name(out, v);
	}
out:
	json_decref(root);
	return 0;
}

/* ---- containers/storage ---- */

/* The metadata string of a containers.json entry, parsed into out's empty fields. */
static void storage_metadata(const char *text, struct container_meta *out)
{
	json_t *md = text != NULL ? load(text, strlen(text)) : NULL;

	if (!json_is_object(md))
		goto out;
	if (out->image[0] == '\0')
		set_image(out, str_of(md, "image-name"));
	if (out->name[0] == '\0')
		set_name(out, str_of(md, "name"));
	/* CRI-O's metadata names the pod; podman's does not. */
	if (str_of(md, "pod-name") != NULL || str_of(md, "pod-id") != NULL)
		out->runtime = CONTAINER_RT_CRIO;
out:
	json_decref(md);
}

int container_parse_storage(const char *buf, size_t len, const char *id, struct container_meta *out)
{
	json_t *root = load(buf, len), *e;
	int rc = -ENOENT;
	size_t i;

	meta_init(out, id);
	out->runtime = CONTAINER_RT_PODMAN;
	if (!json_is_array(root)) {
		json_decref(root);
		return -EINVAL;
	}
	json_array_foreach(root, i, e)
	{
		const char *eid = str_of(e, "id"), *image;

		if (eid == NULL || id == NULL || strcmp(eid, id) != 0)
			continue;
		set_name(out, json_string_value(json_array_get(json_object_get(e, "names"), 0)));
		storage_metadata(str_of(e, "metadata"), out);
		/* Run by image id: the id is all there is. */
		if (out->image[0] == '\0' && (image = str_of(e, "image")) != NULL &&
		    strlen(image) == CONTAINER_ID_LEN)
			set_image(out, image);
		rc = 0;
		break;
	}
	json_decref(root);
	return rc;
}
