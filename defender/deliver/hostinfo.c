/* SPDX-License-Identifier: Apache-2.0 */
#include "deliver/hostinfo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "fsutil.h"

/* /etc/os-release is shell syntax (uppercase keys, quotes); take PRETTY_NAME by hand. */
static void read_os_release(char *out, size_t len)
{
	char *text = NULL;
	const char *p;

	snprintf(out, len, "Linux");
	if (fs_read_file("/etc/os-release", 64 * 1024, &text, NULL, NULL) < 0)
		return;
	for (p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, "PRETTY_NAME=", 12) == 0) {
			const char *v = p + 12, *e;
			if (*v == '"')
				v++;
			e = v + strcspn(v, "\"\n");
			snprintf(out, len, "%.*s", (int)(e - v), v);
			break;
		}
	}
	free(text);
}

void hostinfo_read(struct hostinfo *hi)
{
	struct utsname u;

	if (uname(&u) == 0) {
		snprintf(hi->hostname, sizeof(hi->hostname), "%s", u.nodename);
		snprintf(hi->kernel, sizeof(hi->kernel), "%s %s", u.release, u.machine);
	} else {
		snprintf(hi->hostname, sizeof(hi->hostname), "unknown");
		snprintf(hi->kernel, sizeof(hi->kernel), "unknown");
	}
	read_os_release(hi->os, sizeof(hi->os));
}
