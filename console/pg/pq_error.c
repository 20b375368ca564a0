/* SPDX-License-Identifier: Apache-2.0 */
#include "pg/pq_error.h"

const char *pq_error_flat(const char *msg, char *buf, size_t size)
{
	size_t o = 0;

	if (msg == NULL)
		msg = "";
	for (const char *c = msg; *c != '\0' && o + 1 < size; c++) {
		if (*c == '\n' || *c == '\t' || *c == '\r') {
			if (o > 0 && buf[o - 1] != ' ')
				buf[o++] = ' ';
		} else {
			buf[o++] = *c;
		}
	}
	while (o > 0 && buf[o - 1] == ' ')
		o--;
	buf[o] = '\0';
	return buf;
}

void pq_error_notice_ignore(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}
