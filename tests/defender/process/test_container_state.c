/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The container runtimes' state files, parsed: what each runtime really
 * writes (shapes taken from podman 4.3 on this machine, and Docker,
 * containerd and CRI-O), then hostile input: huge, truncated, wrong types,
 * missing fields, bytes that are not names.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "process/container_state.h"

#define ID  "12348d3be11fff576e23e445b2c5cb42b9c6e23e16be9f5166dcb50018f94445"
#define ID2 "f5fd788804bb329c607a0eb18b9fe2bccc9795046a8fe94cff42cc4436c8d346"
#define IMG "2634338ab97517b18029a2117c0ca29cf89c2508ccb86c4e0976b65eba7eda0b"

static int docker(const char *text, struct container_meta *m)
{
	return container_parse_docker(text, strlen(text), ID, m);
}

static int oci(const char *text, struct container_meta *m)
{
	return container_parse_oci(text, strlen(text), ID, m);
}

static int storage(const char *text, struct container_meta *m)
{
	return container_parse_storage(text, strlen(text), ID, m);
}

/* ---- normalization ---- */

Test(container_state, image_references_are_normalized_as_docker_does)
{
	static const char *const cases[][2] = {
	    {"nginx", "docker.io/library/nginx:latest"},
	    {"nginx:1.25", "docker.io/library/nginx:1.25"},
	    {"library/nginx", "docker.io/library/nginx:latest"},
	    {"docker.io/nginx", "docker.io/library/nginx:latest"},
	    {"index.docker.io/library/nginx:1", "docker.io/library/nginx:1"},
	    {"bitnami/redis:7", "docker.io/bitnami/redis:7"},
	    {"quay.io/coreos/etcd", "quay.io/coreos/etcd:latest"},
	    {"localhost/vigil-test-a:1", "localhost/vigil-test-a:1"},
	    {"localhost:5000/app", "localhost:5000/app:latest"},
	    {"registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"},
	    {"nginx@sha256:" IMG, "docker.io/library/nginx@sha256:" IMG},
	    {IMG, "sha256:" IMG},
	    {"sha256:" IMG, "sha256:" IMG},
	};
	char out[CONTAINER_IMAGE_MAX + 1], again[CONTAINER_IMAGE_MAX + 1];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_expect(
		    container_image_normalize(cases[i][0], strlen(cases[i][0]), out, sizeof(out)),
		    "%s", cases[i][0]);
		cr_expect_str_eq(out, cases[i][1]);
		/* A normalized reference is its own normal form (what models are named by). */
		cr_expect(container_image_normalize(out, strlen(out), again, sizeof(again)));
		cr_expect_str_eq(again, out);
	}
	/* Found by the fuzzer: a registry named like a digest, 71 bytes once tagged. */
	const char *odd = "sha256:26sF338az9751Eb1862yac11207ca/9cf89c2508ccb86c4e0ba7eda0b";
	cr_assert(container_image_normalize(odd, strlen(odd), out, sizeof(out)));
	cr_expect(container_image_normalize(out, strlen(out), again, sizeof(again)), "%s", out);
	cr_expect_str_eq(again, out);
}

Test(container_state, what_is_not_a_reference_is_refused)
{
	static const char *const bad[] = {
	    "",		 "nginx latest", "ngi\nnx", "/nginx",	  "nginx/", "a//b", "ngïnx",
	    "$(reboot)", "a\"b",	 ":tag",    "quay.io/:x", "x\\y",   "x;y",  "x'y",
	};
	char out[CONTAINER_IMAGE_MAX + 1], big[600];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_expect_not(container_image_normalize(bad[i], strlen(bad[i]), out, sizeof(out)),
			      "%s", bad[i]);
		cr_expect_str_eq(out, "");
	}
	/* Over the bound, as given and once normalized. */
	memset(big, 'a', sizeof(big));
	cr_expect_not(container_image_normalize(big, sizeof(big), out, sizeof(out)));
	cr_expect_not(container_image_normalize(big, CONTAINER_IMAGE_MAX - 5, out, sizeof(out)),
		      "docker.io/library/ and :latest take it over the bound");
	/* A NUL inside the given length is not part of a name. */
	cr_expect_not(container_image_normalize("ab\0cd", 5, out, sizeof(out)));
	/* A small output buffer is never overrun. */
	cr_expect_not(container_image_normalize("nginx", 5, out, 8));
	cr_expect_str_eq(out, "");
}

Test(container_state, the_cgroup_path_hints_at_the_runtime)
{
	static const struct {
		const char *path;
		enum container_runtime rt;
	} cases[] = {
	    {"/libpod_parent/libpod-" ID, CONTAINER_RT_PODMAN},
	    {"/machine.slice/libpod-" ID ".scope", CONTAINER_RT_PODMAN},
	    {"/machine.slice/libpod-conmon-" ID ".scope", CONTAINER_RT_UNKNOWN},
	    {"/system.slice/docker-" ID ".scope", CONTAINER_RT_DOCKER},
	    {"/docker/" ID, CONTAINER_RT_DOCKER},
	    {"/kubepods.slice/kubepods-pod1.slice/cri-containerd-" ID ".scope",
	     CONTAINER_RT_CONTAINERD},
	    {"/kubepods.slice/kubepods-pod1.slice/crio-" ID ".scope", CONTAINER_RT_CRIO},
	    {"/kubepods/besteffort/pod1/" ID, CONTAINER_RT_UNKNOWN},
	    {"/system.slice/nginx.service", CONTAINER_RT_UNKNOWN},
	    {"/docker/" ID "/docker/" ID2, CONTAINER_RT_DOCKER},
	    {"/docker/" ID "/libpod-" ID2, CONTAINER_RT_PODMAN},
	    {"/docker-12345.scope", CONTAINER_RT_UNKNOWN},
	    {"", CONTAINER_RT_UNKNOWN},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		cr_expect_eq(container_runtime_hint(cases[i].path), cases[i].rt, "%s",
			     cases[i].path);
	cr_expect_eq(container_runtime_hint(NULL), CONTAINER_RT_UNKNOWN);
	cr_expect_str_eq(container_runtime_name(CONTAINER_RT_CRIO), "cri-o");
	cr_expect_str_eq(container_runtime_name(CONTAINER_RT_UNKNOWN), "");
}

/* ---- Docker ---- */

Test(container_state, docker_config_gives_name_and_image)
{
	struct container_meta m;
	char text[1024];

	snprintf(text, sizeof(text),
		 "{\"StreamConfig\":{},\"State\":{\"Running\":true,\"Pid\":4242},"
		 "\"ID\":\"%s\",\"Created\":\"2026-12-05T15:50:56Z\",\"Path\":\"nginx\","
		 "\"Config\":{\"Hostname\":\"12348d3be11f\",\"Env\":[\"PATH=/usr/bin\"],"
		 "\"Image\":\"nginx:1.25\",\"Labels\":{}},"
		 "\"Image\":\"sha256:%s\",\"Name\":\"/web-1\",\"Driver\":\"overlay2\"}",
		 ID, IMG);
	cr_assert_eq(docker(text, &m), 0);
	cr_expect_str_eq(m.id, ID);
	cr_expect_eq(m.runtime, CONTAINER_RT_DOCKER);
	cr_expect_str_eq(m.name, "web-1");
	cr_expect_str_eq(m.image, "docker.io/library/nginx:1.25");
}

Test(container_state, docker_run_by_image_id_gives_the_full_id)
{
	struct container_meta m;
	char text[512];

	snprintf(text, sizeof(text),
		 "{\"ID\":\"%s\",\"Name\":\"/x\",\"Config\":{\"Image\":\"2634338ab975\"},"
		 "\"Image\":\"sha256:%s\"}",
		 ID, IMG);
	cr_assert_eq(docker(text, &m), 0);
	cr_expect_str_eq(m.image, "sha256:" IMG);
}

Test(container_state, docker_config_of_another_container_or_of_no_shape_is_refused)
{
	struct container_meta m;
	char text[512];

	snprintf(text, sizeof(text), "{\"ID\":\"%s\",\"Name\":\"/x\"}", ID2);
	cr_expect_eq(docker(text, &m), -ENOENT);
	cr_expect_eq(docker("{\"Name\":\"/x\"}", &m), -EINVAL, "no ID");
	cr_expect_eq(docker("{\"ID\": 12, \"Name\":\"/x\"}", &m), -EINVAL, "ID not a string");
	cr_expect_eq(docker("[]", &m), -EINVAL);
	cr_expect_eq(docker("", &m), -EINVAL);
	cr_expect_eq(docker("null", &m), -EINVAL);
	cr_expect_eq(container_parse_docker(NULL, 0, ID, &m), -EINVAL);
}

Test(container_state, docker_fields_of_wrong_types_or_bad_bytes_are_left_unknown)
{
	static const char *const bodies[] = {
	    "\"Name\": 7, \"Config\": {\"Image\": [\"nginx\"]}, \"Image\": {}",
	    "\"Name\": \"/we b\", \"Config\": \"nginx\", \"Image\": 3",
	    "\"Name\": \"/\\u001b[31mred\", \"Config\": {\"Image\": \"nginx;reboot\"}",
	    "\"Name\": \"/\\u00e9t\\u00e9\", \"Config\": {\"Image\": \"n\\u0000x\"}",
	    "\"Name\": null, \"Config\": null",
	};
	struct container_meta m;
	char text[512];

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		snprintf(text, sizeof(text), "{\"ID\":\"%s\", %s}", ID, bodies[i]);
		int rc = docker(text, &m);
		/* A NUL inside a string is not JSON jansson takes: refused whole. */
		cr_expect(rc == 0 || rc == -EINVAL, "%s: %d", bodies[i], rc);
		cr_expect_str_eq(m.name, "", "%s", bodies[i]);
		cr_expect_str_eq(m.image, "", "%s", bodies[i]);
	}
}

Test(container_state, truncated_files_are_refused)
{
	struct container_meta m;
	char text[512];
	size_t len;

	snprintf(text, sizeof(text),
		 "{\"ID\":\"%s\",\"Name\":\"/web\",\"Config\":{\"Image\":\"nginx\"}}", ID);
	len = strlen(text);
	for (size_t cut = 0; cut < len; cut++)
		cr_expect_eq(container_parse_docker(text, cut, ID, &m), -EINVAL, "cut at %zu", cut);
	cr_expect_eq(container_parse_docker(text, len, ID, &m), 0);
}

Test(container_state, huge_and_deep_input_is_parsed_within_bounds)
{
	size_t n = 4 * 1024 * 1024;
	char *text = malloc(n + 256), *p = text;
	struct container_meta m;

	cr_assert_not_null(text);
	/* A name of 4 MiB: parsed, and not kept. */
	p += sprintf(p, "{\"ID\":\"%s\",\"Name\":\"/", ID);
	memset(p, 'a', n);
	p += n;
	p += sprintf(p, "\",\"Config\":{\"Image\":\"nginx\"}}");
	cr_assert_eq(container_parse_docker(text, (size_t)(p - text), ID, &m), 0);
	cr_expect_str_eq(m.name, "");
	cr_expect_str_eq(m.image, "docker.io/library/nginx:latest");
	/* Nesting deeper than the parser goes: refused, not a crash. */
	memset(text, '[', n);
	cr_expect_eq(container_parse_docker(text, n, ID, &m), -EINVAL);
	free(text);
}

/* ---- OCI bundles: containerd, CRI-O, podman ---- */

Test(container_state, podmans_config_says_podman_and_nothing_more)
{
	/* As podman 4.3 writes it here (userdata/config.json). */
	struct container_meta m;

	cr_assert_eq(oci("{\"ociVersion\":\"1.0.2-dev\",\"process\":{\"args\":[\"/bin/sleep\"]},"
			 "\"annotations\":{\"io.container.manager\":\"libpod\","
			 "\"io.kubernetes.cri-o.Created\":\"2026-12-05T15:50:14Z\","
			 "\"io.kubernetes.cri-o.TTY\":\"false\","
			 "\"io.podman.annotations.autoremove\":\"FALSE\","
			 "\"org.opencontainers.image.stopSignal\":\"15\"}}",
			 &m),
		     0);
	cr_expect_eq(m.runtime, CONTAINER_RT_PODMAN);
	cr_expect_str_eq(m.name, "");
	cr_expect_str_eq(m.image, "");
}

Test(container_state, containerd_cri_annotations_name_the_pod_and_the_image)
{
	struct container_meta m;

	cr_assert_eq(oci("{\"annotations\":{"
			 "\"io.kubernetes.cri.container-type\":\"container\","
			 "\"io.kubernetes.cri.container-name\":\"nginx\","
			 "\"io.kubernetes.cri.sandbox-name\":\"web-7d9f\","
			 "\"io.kubernetes.cri.sandbox-namespace\":\"shop\","
			 "\"io.kubernetes.cri.image-name\":\"docker.io/library/nginx:1.25\"}}",
			 &m),
		     0);
	cr_expect_eq(m.runtime, CONTAINER_RT_CONTAINERD);
	cr_expect_str_eq(m.name, "shop/web-7d9f/nginx");
	cr_expect_str_eq(m.image, "docker.io/library/nginx:1.25");
	/* The pod's sandbox is named by the pod alone. */
	cr_assert_eq(oci("{\"annotations\":{\"io.kubernetes.cri.container-type\":\"sandbox\","
			 "\"io.kubernetes.cri.sandbox-name\":\"web-7d9f\","
			 "\"io.kubernetes.cri.sandbox-namespace\":\"shop\","
			 "\"io.kubernetes.cri.container-name\":\"ignored\"}}",
			 &m),
		     0);
	cr_expect_str_eq(m.name, "shop/web-7d9f");
	cr_expect_str_eq(m.image, "");
}

Test(container_state, crio_annotations_name_the_pod_and_the_image)
{
	struct container_meta m;

	cr_assert_eq(oci("{\"annotations\":{"
			 "\"io.kubernetes.cri-o.ContainerType\":\"container\","
			 "\"io.kubernetes.cri-o.ImageName\":\"quay.io/app/api:2\","
			 "\"io.kubernetes.container.name\":\"api\","
			 "\"io.kubernetes.pod.name\":\"api-0\","
			 "\"io.kubernetes.pod.namespace\":\"prod\"}}",
			 &m),
		     0);
	cr_expect_eq(m.runtime, CONTAINER_RT_CRIO);
	cr_expect_str_eq(m.name, "prod/api-0/api");
	cr_expect_str_eq(m.image, "quay.io/app/api:2");
}

Test(container_state, nerdctl_names_its_containers)
{
	struct container_meta m;

	cr_assert_eq(oci("{\"annotations\":{\"nerdctl/name\":\"cache\"}}", &m), 0);
	cr_expect_eq(m.runtime, CONTAINER_RT_CONTAINERD);
	cr_expect_str_eq(m.name, "cache");
}

Test(container_state, oci_configs_of_no_shape)
{
	struct container_meta m;

	cr_expect_eq(oci("[1,2]", &m), -EINVAL);
	cr_expect_eq(oci("{\"annotations\":", &m), -EINVAL);
	cr_expect_eq(oci("{}", &m), 0);
	cr_expect_eq(m.runtime, CONTAINER_RT_UNKNOWN);
	cr_expect_eq(oci("{\"annotations\":[\"io.container.manager\"]}", &m), 0);
	cr_expect_eq(m.runtime, CONTAINER_RT_UNKNOWN);
	/* Wrong types inside: what is not a string says nothing. */
	cr_expect_eq(oci("{\"annotations\":{\"io.kubernetes.cri.image-name\":5,"
			 "\"io.kubernetes.cri.container-name\":\"ok\","
			 "\"io.kubernetes.cri.sandbox-name\":{}}}",
			 &m),
		     0);
	cr_expect_eq(m.runtime, CONTAINER_RT_CONTAINERD);
	cr_expect_str_eq(m.name, "ok");
	cr_expect_str_eq(m.image, "");
	/* A bad part spoils the whole name rather than showing a misleading one. */
	cr_expect_eq(oci("{\"annotations\":{\"io.kubernetes.cri.container-name\":\"ok\","
			 "\"io.kubernetes.cri.sandbox-name\":\"p o d\"}}",
			 &m),
		     0);
	cr_expect_str_eq(m.name, "");
}

/* ---- containers/storage ---- */

Test(container_state, containers_json_gives_podmans_name_and_image)
{
	struct container_meta m;
	char text[2048];

	/* As podman 4.3 writes it here. */
	snprintf(text, sizeof(text),
		 "[{\"id\":\"%s\",\"names\":[\"other\"],\"image\":\"%s\","
		 "\"metadata\":\"{\\\"image-name\\\":\\\"localhost/other:1\\\"}\"},"
		 "{\"id\":\"%s\",\"names\":[\"vigil-test-probe1\"],\"image\":\"%s\","
		 "\"layer\":\"eeab\",\"metadata\":\"{\\\"image-name\\\":\\\"localhost/"
		 "vigil-test-probe:1\\\",\\\"image-id\\\":\\\"%s\\\",\\\"name\\\":\\\"vigil-test-"
		 "probe1\\\",\\\"created-at\\\":1796485856}\",\"created\":\"2026-12-05T15:50:56Z\","
		 "\"flags\":{\"MountLabel\":\"\",\"ProcessLabel\":\"\"}}]",
		 ID2, IMG, ID, IMG, IMG);
	cr_assert_eq(storage(text, &m), 0);
	cr_expect_eq(m.runtime, CONTAINER_RT_PODMAN);
	cr_expect_str_eq(m.name, "vigil-test-probe1");
	cr_expect_str_eq(m.image, "localhost/vigil-test-probe:1");
}

Test(container_state, containers_json_without_an_image_name_gives_the_image_id)
{
	struct container_meta m;
	char text[512];

	snprintf(text, sizeof(text),
		 "[{\"id\":\"%s\",\"names\":[\"x\"],\"image\":\"%s\",\"metadata\":\"{}\"}]", ID,
		 IMG);
	cr_assert_eq(storage(text, &m), 0);
	cr_expect_str_eq(m.image, "sha256:" IMG);
	/* CRI-O's metadata names a pod. */
	snprintf(text, sizeof(text),
		 "[{\"id\":\"%s\",\"names\":[\"k8s_api\"],\"metadata\":\"{\\\"pod-name\\\":"
		 "\\\"api-0\\\",\\\"image-name\\\":\\\"quay.io/app/api:2\\\"}\"}]",
		 ID);
	cr_assert_eq(storage(text, &m), 0);
	cr_expect_eq(m.runtime, CONTAINER_RT_CRIO);
	cr_expect_str_eq(m.image, "quay.io/app/api:2");
}

Test(container_state, containers_json_of_no_shape)
{
	struct container_meta m;
	char text[512];

	cr_expect_eq(storage("{}", &m), -EINVAL);
	cr_expect_eq(storage("[", &m), -EINVAL);
	cr_expect_eq(storage("[]", &m), -ENOENT);
	cr_expect_eq(storage("[1, \"x\", null, {\"id\": 5}]", &m), -ENOENT);
	/* Listed, with every other field wrong: known, nothing more. */
	snprintf(
	    text, sizeof(text),
	    "[{\"id\":\"%s\",\"names\":\"x\",\"image\":7,\"metadata\":{\"image-name\":\"x\"}}]",
	    ID);
	cr_expect_eq(storage(text, &m), 0);
	cr_expect_str_eq(m.name, "");
	cr_expect_str_eq(m.image, "");
	/* Metadata that is not JSON, or JSON of another shape. */
	snprintf(text, sizeof(text),
		 "[{\"id\":\"%s\",\"names\":[\"x\"],\"metadata\":\"{\\\"image-name\\\":\"}]", ID);
	cr_expect_eq(storage(text, &m), 0);
	cr_expect_str_eq(m.name, "x");
	cr_expect_str_eq(m.image, "");
	snprintf(text, sizeof(text), "[{\"id\":\"%s\",\"metadata\":\"[\\\"image-name\\\"]\"}]", ID);
	cr_expect_eq(storage(text, &m), 0);
	cr_expect_str_eq(m.image, "");
	/* An id that is not one. */
	cr_expect_eq(container_parse_storage("[]", 2, NULL, &m), -ENOENT);
	cr_expect_str_eq(m.id, "");
}
