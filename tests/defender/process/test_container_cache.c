/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The container metadata cache over a fake root laid out as each runtime
 * lays out its state: found once then answered from memory, a miss retried
 * on a growing backoff (never cached for good), hostile files (too large, a
 * FIFO, a link, garbage) refused without blocking and counted, the least
 * recently used container evicted and counted, and a reader that must not
 * open files answered from what the readers that do found.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "process/container_cache.h"

#define ID  "12348d3be11fff576e23e445b2c5cb42b9c6e23e16be9f5166dcb50018f94445"
#define ID2 "f5fd788804bb329c607a0eb18b9fe2bccc9795046a8fe94cff42cc4436c8d346"
#define ID3 "0000000000000000000000000000000000000000000000000000000000000003"

static char root[64];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void setup(void)
{
	snprintf(root, sizeof(root), "/tmp/vigil-ctr-XXXXXX");
	cr_assert_not_null(mkdtemp(root));
}

static void teardown(void)
{
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(container_cache, .init = setup, .fini = teardown);

/* mkdir -p root/rel's directory, then write text to root/rel. */
static void put(const char *rel, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	for (char *s = path + strlen(root) + 1; (s = strchr(s, '/')) != NULL; s++) {
		*s = '\0';
		mkdir(path, 0755);
		*s = '/';
	}
	cr_assert_not_null(f = fopen(path, "w"), "%s", path);
	fputs(text, f);
	fclose(f);
}

static void put_docker(const char *id, const char *name, const char *image)
{
	char rel[256], text[1024];

	snprintf(rel, sizeof(rel), "var/lib/docker/containers/%s/config.v2.json", id);
	snprintf(text, sizeof(text),
		 "{\"ID\":\"%s\",\"Name\":\"/%s\",\"Config\":{\"Image\":\"%s\"}}", id, name, image);
	put(rel, text);
}

static struct container_cache_stats stats(const struct container_cache *c)
{
	struct container_cache_stats s;

	container_cache_stats(c, &s);
	return s;
}

Test(container_cache, found_once_then_answered_from_memory)
{
	struct container_cache c;
	const struct container_meta *m;

	put_docker(ID, "web", "nginx:1.25");
	cr_assert_eq(container_cache_init(&c, root, 0, 0, NULL), 0);
	m = container_cache_get(&c, ID, "/system.slice/docker-" ID ".scope", 1000);
	cr_assert_not_null(m);
	cr_expect_eq(m->runtime, CONTAINER_RT_DOCKER);
	cr_expect_str_eq(m->name, "web");
	cr_expect_str_eq(m->image, "docker.io/library/nginx:1.25");
	uint64_t reads = stats(&c).files_read, gen = container_cache_generation(&c);
	cr_expect_eq(reads, 1, "the hint led straight to Docker's file");
	for (int i = 0; i < 100; i++)
		cr_assert_not_null(container_cache_get(&c, ID, NULL, 2000 + (uint64_t)i));
	cr_expect_eq(stats(&c).files_read, reads, "hits read nothing");
	cr_expect_eq(container_cache_generation(&c), gen);
	cr_expect_eq(stats(&c).found, 1);
	/* What is not an id is nothing to look up. */
	cr_expect_null(container_cache_get(&c, "12348d3be11f", NULL, 3000));
	cr_expect_null(container_cache_get(&c, NULL, NULL, 3000));
	container_cache_fini(&c);
}

Test(container_cache, a_miss_is_retried_on_a_backoff_and_found_later)
{
	struct container_cache c;
	const struct container_meta *m;

	cr_assert_eq(container_cache_init(&c, root, 0, 0, NULL), 0);
	cr_expect_null(container_cache_get(&c, ID, "/docker/" ID, 10000));
	cr_expect_eq(stats(&c).missed, 1);
	/* Within the backoff: not looked up again. */
	put_docker(ID, "late", "alpine");
	cr_expect_null(container_cache_get(&c, ID, NULL, 10000 + CONTAINER_CACHE_RETRY_MIN_MS - 1));
	cr_expect_eq(stats(&c).missed, 1);
	uint64_t gen = container_cache_generation(&c);
	m = container_cache_get(&c, ID, NULL, 10000 + CONTAINER_CACHE_RETRY_MIN_MS);
	cr_assert_not_null(m, "looked up again once the retry time came");
	cr_expect_str_eq(m->name, "late");
	cr_expect_str_eq(m->image, "docker.io/library/alpine:latest");
	cr_expect_neq(container_cache_generation(&c), gen, "an answer changed");
	container_cache_fini(&c);
}

Test(container_cache, the_backoff_grows_to_a_bound)
{
	struct container_cache c;
	uint64_t t = 0;

	cr_assert_eq(container_cache_init(&c, root, 0, 0, NULL), 0);
	cr_expect_null(container_cache_get(&c, ID, NULL, t));
	for (uint64_t want = CONTAINER_CACHE_RETRY_MIN_MS, i = 0; i < 12; i++) {
		uint64_t misses = stats(&c).missed;

		cr_expect_null(container_cache_get(&c, ID, NULL, t + want - 1));
		cr_expect_eq(stats(&c).missed, misses, "retried before %llu ms",
			     (unsigned long long)want);
		cr_expect_null(container_cache_get(&c, ID, NULL, t + want));
		cr_expect_eq(stats(&c).missed, misses + 1);
		t += want;
		want = want * 2 > CONTAINER_CACHE_RETRY_MAX_MS ? CONTAINER_CACHE_RETRY_MAX_MS
							       : want * 2;
	}
	container_cache_fini(&c);
}

Test(container_cache, podman_is_read_from_containers_json_and_crio_from_its_config)
{
	struct container_cache c;
	const struct container_meta *m;
	char text[1024], rel[256];

	snprintf(text, sizeof(text),
		 "[{\"id\":\"%s\",\"names\":[\"vigil-test-a1\"],\"metadata\":\"{\\\"image-name\\\":"
		 "\\\"localhost/vigil-test-a:1\\\"}\"}]",
		 ID);
	put("var/lib/containers/storage/overlay-containers/containers.json", text);
	snprintf(rel, sizeof(rel),
		 "var/lib/containers/storage/overlay-containers/%s/userdata/config.json", ID);
	put(rel, "{\"annotations\":{\"io.container.manager\":\"libpod\"}}");
	snprintf(rel, sizeof(rel),
		 "run/containers/storage/overlay-containers/%s/userdata/config.json", ID2);
	put(rel, "{\"annotations\":{\"io.kubernetes.cri-o.ImageName\":\"quay.io/app/api:2\","
		 "\"io.kubernetes.container.name\":\"api\",\"io.kubernetes.pod.name\":\"api-0\","
		 "\"io.kubernetes.pod.namespace\":\"prod\"}}");
	cr_assert_eq(container_cache_init(&c, root, 0, 0, NULL), 0);
	m = container_cache_get(&c, ID, "/libpod_parent/libpod-" ID, 0);
	cr_assert_not_null(m);
	cr_expect_eq(m->runtime, CONTAINER_RT_PODMAN);
	cr_expect_str_eq(m->name, "vigil-test-a1");
	cr_expect_str_eq(m->image, "localhost/vigil-test-a:1");
	/* No hint (cgroupfs under kubepods): every source, in the end. */
	m = container_cache_get(&c, ID2, "/kubepods/besteffort/pod1/" ID2, 0);
	cr_assert_not_null(m);
	cr_expect_eq(m->runtime, CONTAINER_RT_CRIO);
	cr_expect_str_eq(m->name, "prod/api-0/api");
	cr_expect_str_eq(m->image, "quay.io/app/api:2");
	container_cache_fini(&c);
}

Test(container_cache, containerd_tasks_are_found_in_any_namespace)
{
	struct container_cache c;
	const struct container_meta *m;
	char rel[256];

	snprintf(rel, sizeof(rel),
		 "run/containerd/io.containerd.runtime.v2.task/default/x/config.json");
	put(rel, "{}");
	snprintf(rel, sizeof(rel),
		 "run/containerd/io.containerd.runtime.v2.task/k8s.io/%s/config.json", ID);
	put(rel, "{\"annotations\":{\"io.kubernetes.cri.container-name\":\"nginx\","
		 "\"io.kubernetes.cri.sandbox-name\":\"web\","
		 "\"io.kubernetes.cri.sandbox-namespace\":\"shop\","
		 "\"io.kubernetes.cri.image-name\":\"docker.io/library/nginx:1.25\"}}");
	/* ctr's containers say nothing of an image: known, by id and runtime. */
	snprintf(rel, sizeof(rel),
		 "run/containerd/io.containerd.runtime.v2.task/default/%s/config.json", ID2);
	put(rel, "{\"annotations\":{}}");
	cr_assert_eq(container_cache_init(&c, root, 0, 0, NULL), 0);
	m = container_cache_get(&c, ID, "/kubepods.slice/x/cri-containerd-" ID ".scope", 0);
	cr_assert_not_null(m);
	cr_expect_eq(m->runtime, CONTAINER_RT_CONTAINERD);
	cr_expect_str_eq(m->name, "shop/web/nginx");
	cr_expect_str_eq(m->image, "docker.io/library/nginx:1.25");
	m = container_cache_get(&c, ID2, NULL, 0);
	cr_assert_not_null(m);
	cr_expect_eq(m->runtime, CONTAINER_RT_CONTAINERD);
	cr_expect_str_eq(m->image, "");
	/* Without an image it is asked again later, in case one appears. */
	uint64_t reads = stats(&c).files_read;
	cr_assert_not_null(container_cache_get(&c, ID2, NULL, CONTAINER_CACHE_RETRY_MIN_MS));
	cr_expect_gt(stats(&c).files_read, reads);
	container_cache_fini(&c);
}

Test(container_cache, hostile_files_are_refused_without_blocking_and_counted)
{
	struct container_cache c;
	char path[512], rel[256];
	int fd;

	cr_assert_eq(container_cache_init(&c, root, 0, 0, NULL), 0);
	/* A FIFO where the file should be: opened without waiting for a writer. */
	snprintf(rel, sizeof(rel), "var/lib/docker/containers/%s/config.v2.json", ID);
	put(rel, "");
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(mkfifo(path, 0600), 0);
	cr_expect_null(container_cache_get(&c, ID, "/docker/" ID, 0));
	cr_expect_eq(stats(&c).malformed, 1);
	cr_expect_eq(stats(&c).files_read, 0);
	/* A link to a real config: not followed. */
	snprintf(rel, sizeof(rel), "var/lib/docker/containers/%s/config.v2.json", ID2);
	put(rel, "");
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	cr_assert_eq(unlink(path), 0);
	put_docker(ID3, "real", "nginx");
	char target[512];
	snprintf(target, sizeof(target), "%s/var/lib/docker/containers/%s/config.v2.json", root,
		 ID3);
	cr_assert_eq(symlink(target, path), 0);
	cr_expect_null(container_cache_get(&c, ID2, "/docker/" ID2, 0));
	cr_expect_eq(stats(&c).malformed, 2);
	/* Over the cap: refused by its size, not read. */
	snprintf(path, sizeof(path), "%s/var/lib/docker/containers/%s/config.v2.json", root, ID3);
	cr_assert((fd = open(path, O_WRONLY)) >= 0);
	cr_assert_eq(ftruncate(fd, CONTAINER_CACHE_FILE_MAX + 1), 0);
	close(fd);
	cr_expect_null(container_cache_get(&c, ID3, "/docker/" ID3, 0));
	cr_expect_eq(stats(&c).malformed, 3);
	cr_expect_eq(stats(&c).files_read, 0);
	/* Garbage: read, refused. */
	cr_assert((fd = open(path, O_WRONLY | O_TRUNC)) >= 0);
	cr_assert_eq(write(fd,
			   "\x7f"
			   "ELF\0\0garbage",
			   13),
		     13);
	close(fd);
	cr_expect_null(container_cache_get(&c, ID3, NULL, CONTAINER_CACHE_RETRY_MIN_MS));
	cr_expect_eq(stats(&c).malformed, 4);
	cr_expect_eq(stats(&c).files_read, 1);
	container_cache_fini(&c);
}

Test(container_cache, a_full_cache_evicts_the_least_recently_used_and_counts_it)
{
	struct container_cache c;

	put_docker(ID, "one", "a");
	put_docker(ID2, "two", "b");
	put_docker(ID3, "three", "c");
	cr_assert_eq(container_cache_init(&c, root, 2, 0, NULL), 0);
	cr_assert_not_null(container_cache_get(&c, ID, NULL, 0));
	cr_assert_not_null(container_cache_get(&c, ID2, NULL, 0));
	cr_assert_not_null(container_cache_get(&c, ID, NULL, 0)); /* ID2 is now the oldest */
	uint64_t gen = container_cache_generation(&c);
	cr_assert_not_null(container_cache_get(&c, ID3, NULL, 0));
	cr_expect_eq(stats(&c).evicted, 1);
	cr_expect_eq(stats(&c).entries, 2);
	cr_expect_neq(container_cache_generation(&c), gen, "a known container was forgotten");
	uint64_t reads = stats(&c).files_read;
	cr_assert_not_null(container_cache_get(&c, ID, NULL, 0));
	cr_expect_eq(stats(&c).files_read, reads, "the recently used one stayed");
	cr_assert_not_null(container_cache_get(&c, ID2, NULL, 0));
	cr_expect_gt(stats(&c).files_read, reads, "the evicted one is read again");
	cr_expect_eq(stats(&c).evicted, 2);
	container_cache_fini(&c);
}

Test(container_cache, a_reader_that_opens_no_file_answers_from_what_others_found)
{
	struct container_cache reader, listener;
	const struct container_meta *m;

	put_docker(ID, "shared", "nginx");
	cr_assert_eq(container_cache_init(&listener, root, 0, CONTAINER_CACHE_NO_IO, NULL), 0);
	cr_expect_null(container_cache_get(&listener, ID2, NULL, 0), "nobody found it: unknown");
	cr_assert_eq(container_cache_init(&reader, root, 0, 0, NULL), 0);
	cr_assert_not_null(container_cache_get(&reader, ID, NULL, 0));
	m = container_cache_get(&listener, ID, NULL, 0);
	cr_assert_not_null(m, "asked the shared table again at once");
	cr_expect_str_eq(m->name, "shared");
	cr_expect_str_eq(m->image, "docker.io/library/nginx:latest");
	cr_expect_eq(stats(&listener).files_read, 0);
	container_cache_fini(&reader);
	container_cache_fini(&listener);
}

Test(container_cache, the_shared_table_is_bounded_and_its_evictions_counted)
{
	struct container_cache reader, listener;
	char id[CONTAINER_ID_LEN + 1], first[CONTAINER_ID_LEN + 1];

	cr_assert_eq(container_cache_init(&reader, root, 1024, 0, NULL), 0);
	cr_assert_eq(container_cache_init(&listener, root, 0, CONTAINER_CACHE_NO_IO, NULL), 0);
	for (int i = 0; i <= CONTAINER_CACHE_SHARED_MAX; i++) {
		snprintf(id, sizeof(id), "%064x", i + 1);
		if (i == 0)
			memcpy(first, id, sizeof(first));
		put_docker(id, "c", "nginx");
		cr_assert_not_null(container_cache_get(&reader, id, NULL, 0));
	}
	cr_expect_eq(stats(&reader).shared_evicted, 1, "one over the table's bound");
	cr_expect_eq(stats(&reader).evicted, 0, "the reader's own cache is larger");
	cr_expect_null(container_cache_get(&listener, first, NULL, 0), "the oldest went");
	cr_expect_not_null(container_cache_get(&listener, id, NULL, 0), "the newest is there");
	container_cache_fini(&reader);
	container_cache_fini(&listener);
}

Test(container_cache, memory_is_counted_and_given_back)
{
	struct container_cache c;
	uint64_t bytes = 0;

	cr_assert_eq(container_cache_init(&c, root, 64, 0, &bytes), 0);
	cr_expect_gt(bytes, 64 * sizeof(struct container_meta));
	container_cache_fini(&c);
	cr_expect_eq(bytes, 0);
}
