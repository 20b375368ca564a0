/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The readiness protocol against a real AF_UNIX datagram socket standing in
 * for the service manager: a path and an abstract name, the sender's
 * credentials as the manager reads them (NotifyAccess=main checks the pid),
 * and what happens without a manager or with a bad address.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "sdnotify.h"

static char dir[64];
static int mgr = -1;

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/vigil-sdnotify-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	mgr = -1;
	unsetenv("NOTIFY_SOCKET");
	sdnotify_init();
}

static void teardown(void)
{
	char path[128];

	if (mgr >= 0)
		close(mgr);
	snprintf(path, sizeof(path), "%s/notify", dir);
	unlink(path);
	rmdir(dir);
	unsetenv("NOTIFY_SOCKET");
}

TestSuite(sdnotify, .init = setup, .fini = teardown, .timeout = 30);

/* A manager's socket: a datagram socket that reads the sender's credentials. */
static int manager_bind(const struct sockaddr_un *sa, socklen_t len)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), one = 1;

	cr_assert_geq(fd, 0);
	cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)), 0);
	cr_assert_eq(bind(fd, (const struct sockaddr *)sa, len), 0, "bind: %s", strerror(errno));
	return fd;
}

static int manager_at_path(char out[128])
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	snprintf(out, 128, "%s/notify", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", out);
	return manager_bind(&sa, sizeof(sa));
}

/* Bound to exactly the abstract name (the length is part of the name). */
static int manager_abstract(char out[128])
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n;

	snprintf(out, 128, "@vigil-test/sdnotify/%d/%ld", (int)getpid(), (long)random());
	n = strlen(out);
	memcpy(sa.sun_path + 1, out + 1, n - 1);
	return manager_bind(&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
}

/* One datagram (within 2 s) and the pid the kernel says sent it. */
static void manager_recv(int fd, char *buf, size_t len, pid_t *ret_pid)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(struct ucred))];
	} ctl;
	struct iovec iov = {buf, len - 1};
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof(ctl)};
	struct pollfd p = {fd, POLLIN, 0};
	struct cmsghdr *c;
	ssize_t n;

	cr_assert_eq(poll(&p, 1, 2000), 1, "no datagram arrived");
	n = recvmsg(fd, &mh, MSG_DONTWAIT);
	cr_assert_geq(n, 0, "recvmsg: %s", strerror(errno));
	buf[n] = '\0';
	*ret_pid = 0;
	for (c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
			struct ucred u;

			memcpy(&u, CMSG_DATA(c), sizeof(u));
			*ret_pid = u.pid;
		}
}

Test(sdnotify, ready_reaches_a_manager_at_a_path_from_this_process)
{
	char addr[128], buf[256];
	pid_t pid;

	mgr = manager_at_path(addr);
	setenv("NOTIFY_SOCKET", addr, 1);
	sdnotify_init();
	cr_assert(sdnotify_enabled());
	cr_assert_null(getenv("NOTIFY_SOCKET"), "taken out of the environment children inherit");

	cr_assert_eq(sdnotify_ready("capture attached; 1 console"), 1);
	manager_recv(mgr, buf, sizeof(buf), &pid);
	cr_assert_str_eq(buf, "READY=1\nSTATUS=capture attached; 1 console");
	cr_assert_eq(pid, getpid(), "the manager sees the main pid (NotifyAccess=main)");

	cr_assert_eq(sdnotify_stopping(NULL), 1);
	manager_recv(mgr, buf, sizeof(buf), &pid);
	cr_assert_str_eq(buf, "STOPPING=1");
}

Test(sdnotify, abstract_names_are_sent_with_their_exact_length)
{
	char addr[128], buf[256];
	pid_t pid;

	mgr = manager_abstract(addr);
	setenv("NOTIFY_SOCKET", addr, 1);
	sdnotify_init();
	cr_assert_eq(sdnotify_status("%d batch(es) spooled", 3), 1);
	manager_recv(mgr, buf, sizeof(buf), &pid);
	cr_assert_str_eq(buf, "STATUS=3 batch(es) spooled");
	cr_assert_eq(pid, getpid());
}

Test(sdnotify, a_status_cannot_forge_a_line)
{
	char addr[128], buf[256];
	pid_t pid;

	mgr = manager_at_path(addr);
	setenv("NOTIFY_SOCKET", addr, 1);
	sdnotify_init();
	cr_assert_eq(sdnotify_status("api on %s", "https://x\nREADY=1"), 1);
	manager_recv(mgr, buf, sizeof(buf), &pid);
	cr_assert_str_eq(buf, "STATUS=api on https://x READY=1");
	cr_assert_eq(sdnotify_ready("a\nb"), 1);
	manager_recv(mgr, buf, sizeof(buf), &pid);
	cr_assert_str_eq(buf, "READY=1\nSTATUS=a b");
}

Test(sdnotify, without_a_manager_nothing_is_sent)
{
	cr_assert_not(sdnotify_enabled());
	cr_assert_eq(sdnotify_ready("x"), 0);
	cr_assert_eq(sdnotify_stopping(NULL), 0);
	cr_assert_eq(sdnotify_status("x"), 0);
}

Test(sdnotify, bad_addresses_are_refused)
{
	char longpath[200];

	cr_assert_eq(sdnotify_send_to("run/notify", "READY=1"), -EINVAL, "relative path");
	cr_assert_eq(sdnotify_send_to("@", "READY=1"), -EINVAL, "empty abstract name");
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	cr_assert_eq(sdnotify_send_to(longpath, "READY=1"), -ENAMETOOLONG);
	longpath[0] = '@';
	cr_assert_eq(sdnotify_send_to(longpath, "READY=1"), -ENAMETOOLONG);
	/* Nobody at the address: the socket's error comes back. */
	snprintf(longpath, sizeof(longpath), "%s/nobody", dir);
	cr_assert_eq(sdnotify_send_to(longpath, "READY=1"), -ENOENT);
}

Test(sdnotify, a_manager_that_went_away_is_an_error_not_a_hang)
{
	char addr[128];

	mgr = manager_at_path(addr);
	close(mgr);
	mgr = -1;
	/* The path is still there, nobody reads it. */
	cr_assert_eq(sdnotify_send_to(addr, "READY=1"), -ECONNREFUSED);
}
