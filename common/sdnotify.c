/* SPDX-License-Identifier: Apache-2.0 */
#include "sdnotify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* The manager's address as $NOTIFY_SOCKET gave it ("" when there is none). */
static char notify_addr[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];

void sdnotify_init(void)
{
	const char *s = getenv("NOTIFY_SOCKET");

	notify_addr[0] = '\0';
	/* An address too long to be real is kept out: sdnotify_send_to would refuse it anyway. */
	if (s != NULL && strlen(s) < sizeof(notify_addr))
		memcpy(notify_addr, s, strlen(s) + 1);
	unsetenv("NOTIFY_SOCKET");
}

int sdnotify_enabled(void)
{
	return notify_addr[0] != '\0';
}

/* addr as a sockaddr_un: a path, or '@' for the abstract namespace (no terminating NUL). */
static int addr_build(const char *addr, struct sockaddr_un *sa, socklen_t *ret_len)
{
	size_t n = strlen(addr);

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (n < 2 || (addr[0] != '/' && addr[0] != '@'))
		return -EINVAL;
	if (addr[0] == '/') {
		if (n >= sizeof(sa->sun_path)) /* a path needs its NUL */
			return -ENAMETOOLONG;
		memcpy(sa->sun_path, addr, n + 1);
		*ret_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
		return 0;
	}
	if (n > sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	/* The name is the bytes after the NUL, exactly: the length says where it ends. */
	memcpy(sa->sun_path + 1, addr + 1, n - 1);
	*ret_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	return 0;
}

int sdnotify_send_to(const char *addr, const char *state)
{
	struct sockaddr_un sa;
	socklen_t salen;
	size_t len = strlen(state);
	ssize_t sent;
	int fd, rc;

	if (addr == NULL || addr[0] == '\0')
		return 0;
	if ((rc = addr_build(addr, &sa, &salen)) < 0)
		return rc;
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	do
		sent = sendto(fd, state, len, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
	while (sent < 0 && errno == EINTR);
	rc = sent < 0 ? -errno : (size_t)sent != len ? -EMSGSIZE : 1;
	close(fd);
	return rc;
}

int sdnotify_send(const char *state)
{
	return sdnotify_send_to(notify_addr, state);
}

/*
 * A newline in a status would start a line of its own ("READY=1" in a URL
 * an operator passed): the text after "STATUS=" is kept on one line.
 */
static void one_line(char *s)
{
	for (; *s != '\0'; s++)
		if (*s == '\n')
			*s = ' ';
}

/* "head" plus, when status is not NULL, "\nSTATUS=status" (cut to fit). */
static int send_with_status(const char *head, const char *status)
{
	char msg[SDNOTIFY_MSG_MAX];
	int n;

	if (status == NULL)
		return sdnotify_send(head);
	n = snprintf(msg, sizeof(msg), "%s\nSTATUS=", head);
	snprintf(msg + n, sizeof(msg) - (size_t)n, "%s", status);
	one_line(msg + n);
	return sdnotify_send(msg);
}

int sdnotify_ready(const char *status)
{
	return send_with_status("READY=1", status);
}

int sdnotify_stopping(const char *status)
{
	return send_with_status("STOPPING=1", status);
}

int sdnotify_status(const char *fmt, ...)
{
	char msg[SDNOTIFY_MSG_MAX];
	va_list ap;

	if (!sdnotify_enabled())
		return 0;
	memcpy(msg, "STATUS=", 7);
	va_start(ap, fmt);
	vsnprintf(msg + 7, sizeof(msg) - 7, fmt, ap);
	va_end(ap);
	one_line(msg + 7);
	return sdnotify_send(msg);
}
