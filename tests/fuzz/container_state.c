/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Container runtimes' state files (defender/process/container_state.c): the
 * input's first byte picks the parser ('d' Docker's config.v2.json, 'o' an
 * OCI config.json, 's' containers/storage's containers.json, 'i' an image
 * reference; anything else: all four), the rest is the file.  Properties:
 * every answer is 0, -EINVAL or -ENOENT; a name and an image are only ever
 * short printable names of the characters such names are made of, the id
 * only the one asked for; normalizing an image again gives it back unchanged.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_util.h"
#include "process/container_state.h"

#define ID "12348d3be11fff576e23e445b2c5cb42b9c6e23e16be9f5166dcb50018f94445"

static bool name_chars(const char *s)
{
	size_t n = strnlen(s, CONTAINER_IMAGE_MAX + 1);

	if (n > CONTAINER_IMAGE_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/:@+",
			   s[i]) == NULL)
			return false;
	return true;
}

static void check_image(const char *image)
{
	char again[CONTAINER_IMAGE_MAX + 1];

	if (!name_chars(image))
		fuzz_fail("container_state: image '%s' kept", image);
	if (image[0] != '\0' &&
	    (!container_image_normalize(image, strlen(image), again, sizeof(again)) ||
	     strcmp(again, image) != 0))
		fuzz_fail("container_state: '%s' is not normalized ('%s')", image, again);
}

static void check(int rc, const struct container_meta *m, const char *what)
{
	if (rc != 0 && rc != -EINVAL && rc != -ENOENT)
		fuzz_fail("container_state: %s returned %d", what, rc);
	if (m->id[0] != '\0' && strcmp(m->id, ID) != 0)
		fuzz_fail("container_state: %s: id '%s' is not the one asked for", what, m->id);
	if (m->runtime > CONTAINER_RT_CRIO)
		fuzz_fail("container_state: %s: runtime %u", what, m->runtime);
	if (!name_chars(m->name))
		fuzz_fail("container_state: %s: name '%s' kept", what, m->name);
	check_image(m->image);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data + (size > 0);
	size_t len = size > 0 ? size - 1 : 0;
	char sel = size > 0 ? (char)data[0] : 0;
	struct container_meta m;
	char image[CONTAINER_IMAGE_MAX + 1];

	if (sel == 'd' || !strchr("dosi", sel))
		check(container_parse_docker(buf, len, ID, &m), &m, "docker");
	if (sel == 'o' || !strchr("dosi", sel))
		check(container_parse_oci(buf, len, ID, &m), &m, "oci");
	if (sel == 's' || !strchr("dosi", sel))
		check(container_parse_storage(buf, len, ID, &m), &m, "storage");
	if (sel == 'i' || !strchr("dosi", sel)) {
		image[0] = 'x';
		if (!container_image_normalize(buf, len, image, sizeof(image)) && image[0] != '\0')
			fuzz_fail("container_state: a refused image left '%s'", image);
		check_image(image);
	}
	(void)container_runtime_hint(sel == 'i' ? NULL : "/docker/" ID);
	return 0;
}
