/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_HOSTINFO_H
#define VIGIL_DEFENDER_HOSTINFO_H

/* What the defender tells the console about its host in the hello. */
struct hostinfo {
	char hostname[256];
	char kernel[256]; /* uname release + version */
	char os[256];	  /* PRETTY_NAME from /etc/os-release, or "Linux" */
};

/* Fill hi; never fails (unknown fields become "unknown"). */
void hostinfo_read(struct hostinfo *hi);

#endif
