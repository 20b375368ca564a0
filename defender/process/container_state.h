/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_CONTAINER_STATE_H
#define VIGIL_DEFENDER_CONTAINER_STATE_H

/*
 * What a container runtime wrote on disk about one container, parsed: its
 * name and its image.  Pure: a file's bytes in, a struct out; no I/O, no
 * globals (container_cache.c does the reading and the caching).
 *
 * The files, and what each holds (checked against podman 4.3, and Docker,
 * containerd and CRI-O sources):
 *
 *   Docker      /var/lib/docker/containers/<id>/config.v2.json:
 *               "ID", "Name" ("/web"), "Config": {"Image": what the user
 *               asked for, "nginx:1.25"}, "Image" (the image id, sha256:...)
 *   containerd  an OCI bundle's config.json
 *               (/run/containerd/io.containerd.runtime.v2.task/<ns>/<id>/):
 *               "annotations" of the CRI plugin: io.kubernetes.cri.image-name,
 *               .container-name, .sandbox-name, .sandbox-namespace,
 *               .container-type; nerdctl's "nerdctl/name"
 *   CRI-O       its config.json in .../overlay-containers/<id>/userdata/:
 *               io.kubernetes.cri-o.ImageName, io.kubernetes.container.name,
 *               io.kubernetes.pod.name, io.kubernetes.pod.namespace
 *   podman      the same config.json says "io.container.manager": "libpod" but
 *               holds no image; containers/storage's containers.json does:
 *               [{"id", "names": [...], "image": <image id>, "metadata":
 *               "<JSON text: image-name, name, ...>"}, ...]
 *
 * Untrusted input: these files are written by whoever controls the runtime
 * (or can write under /var/lib, /run).  Every parser takes a length, refuses
 * what is not JSON of the expected shape, and keeps a name or an image only
 * when it is short printable ASCII of the characters such names are made of
 * (anything else is "unknown", never copied raw into an event or a model).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONTAINER_ID_LEN    64
#define CONTAINER_NAME_MAX  255
#define CONTAINER_IMAGE_MAX 255

enum container_runtime {
	CONTAINER_RT_UNKNOWN = 0,
	CONTAINER_RT_DOCKER,
	CONTAINER_RT_PODMAN,
	CONTAINER_RT_CONTAINERD,
	CONTAINER_RT_CRIO,
};

/* One container's metadata; "" in a field means unknown. */
struct container_meta {
	char id[CONTAINER_ID_LEN + 1]; /* 64 lowercase hex */
	uint8_t runtime;	       /* enum container_runtime */
	/* "web"; for Kubernetes "<namespace>/<pod>/<container>" (a sandbox: "<namespace>/<pod>") */
	char name[CONTAINER_NAME_MAX + 1];
	/* normalized ("docker.io/library/nginx:1.25", "localhost/app:1"), or "sha256:<id>" */
	char image[CONTAINER_IMAGE_MAX + 1];
};

/* "docker", "podman", "containerd", "cri-o"; "" for CONTAINER_RT_UNKNOWN. */
const char *container_runtime_name(enum container_runtime rt);

/*
 * The runtime a cgroup path names for the container in it ("docker-<id>.scope",
 * "/docker/<id>", "libpod-<id>", "crio-<id>", "cri-containerd-<id>"), from its
 * deepest component that names one; CONTAINER_RT_UNKNOWN when it does not say
 * (a bare id under kubepods, with the cgroupfs driver).  A hint of where to
 * look first, not a fact.
 */
enum container_runtime container_runtime_hint(const char *cgroup);

/*
 * Docker's config.v2.json (len bytes) for container id into *out (zeroed
 * first; id and runtime set).  Returns 0 (name and image set when the file
 * has valid ones), -EINVAL when it is not such a file, -ENOENT when it is
 * another container's.
 */
int container_parse_docker(const char *buf, size_t len, const char *id, struct container_meta *out);

/*
 * An OCI runtime config.json (len bytes) of container id into *out (zeroed
 * first; id set): the runtime and what its annotations say (containerd's CRI
 * plugin, nerdctl, CRI-O; podman's says only that it is podman's).  Returns
 * 0, or -EINVAL when it is not a JSON object.  A config without known
 * annotations gives runtime CONTAINER_RT_UNKNOWN and nothing else.
 */
int container_parse_oci(const char *buf, size_t len, const char *id, struct container_meta *out);

/*
 * containers/storage's containers.json (len bytes): the entry of container id
 * into *out (zeroed first; id set, runtime podman, or CRI-O when its
 * metadata names a pod).  Returns 0, -ENOENT when id is not listed, -EINVAL
 * when it is not such a file.
 */
int container_parse_storage(const char *buf, size_t len, const char *id,
			    struct container_meta *out);

/*
 * An image reference (len bytes, need not be NUL-terminated) in the form
 * Docker normalizes it to, into out (cap bytes, NUL-terminated): the
 * registry made explicit ("nginx" -> "docker.io/library/nginx:latest",
 * "quay.io/x/y" -> "quay.io/x/y:latest", "localhost/app:1" unchanged), a
 * bare 64-hex image id as "sha256:<id>".  Returns false, out "", when s is
 * not a plausible reference: empty, over CONTAINER_IMAGE_MAX once normalized,
 * or holding bytes other than A-Z a-z 0-9 . _ - / : @ +.
 */
bool container_image_normalize(const char *s, size_t len, char *out, size_t cap);

/* Whether s is exactly 64 lowercase hex digits. */
bool container_id_valid(const char *s);

#endif
