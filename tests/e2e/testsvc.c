/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vigil-testsvc: a small system service with a steady routine, for the
 * learning tests.  Started detached (double fork, no terminal), it listens
 * on a port and serves whoever connects; each SIGUSR1 runs its routine once
 * (reads its config, writes a numbered log and a randomly named state file
 * and reads it back, writes three temporary files with random names of one
 * shape under cache/, reads them back and removes them, runs a helper
 * program, connects to its peer); SIGUSR2 makes it misbehave in six ways
 * (starts a shell, writes outside its files, reads /etc/shadow, listens on
 * a new port, connects to a new peer, rewrites the path of an open while
 * the open runs), and reads each file named in VIGIL_TESTSVC_READS
 * (colon-separated; none when unset); SIGHUP makes it write a file of
 * another shape among its temporary files (cache/upload.php).
 *
 *   vigil-testsvc WORKDIR LISTEN_PORT PEER_PORT NEW_LISTEN_PORT NEW_PEER_PORT
 *
 * Writes its pid to WORKDIR/pid once it listens.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t routine_due, attack_due, off_shape_due, stop;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		routine_due++;
	else if (sig == SIGUSR2)
		attack_due = 1;
	else if (sig == SIGHUP)
		off_shape_due = 1;
	else
		stop = 1;
}

static int tcp_listen(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 16) < 0) {
		fprintf(stderr, "testsvc: cannot listen on %d: %s\n", port, strerror(errno));
		exit(1);
	}
	return fd;
}

static void tcp_connect(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		fprintf(stderr, "testsvc: connect to %d: %s\n", port, strerror(errno));
	if (fd >= 0)
		close(fd);
}

static void write_file(const char *path, const char *text, int flags)
{
	int fd = open(path, O_WRONLY | O_CREAT | flags, 0600);

	if (fd < 0) {
		fprintf(stderr, "testsvc: %s: %s\n", path, strerror(errno));
		return;
	}
	if (write(fd, text, strlen(text)) < 0)
		fprintf(stderr, "testsvc: write %s: %s\n", path, strerror(errno));
	close(fd);
}

static void read_file(const char *path)
{
	char buf[256];
	int fd = open(path, O_RDONLY);

	if (fd < 0) {
		fprintf(stderr, "testsvc: %s: %s\n", path, strerror(errno));
		return;
	}
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
}

static void run(const char *prog, char *const argv[])
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		execv(prog, argv);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, &st, 0);
}

static void routine(const char *dir, int peer_port, unsigned iteration)
{
	char path[512], prev[512] = "";
	static char last_state[512];

	snprintf(path, sizeof(path), "%s/testsvc.conf", dir);
	read_file(path);
	snprintf(path, sizeof(path), "%s/log/svc-%u.log", dir, 100 + iteration);
	write_file(path, "served\n", O_APPEND);
	/* A state file with a fresh random name each time (like mktemp's); the previous one goes.
	 */
	char name[13];
	for (int i = 0; i < 12; i++)
		name[i] = (char)(i % 2 ? '0' + random() % 10 : 'a' + random() % 26);
	name[12] = '\0';
	snprintf(path, sizeof(path), "%s/state/%s.state", dir, name);
	write_file(path, "state\n", O_TRUNC);
	read_file(path);
	snprintf(prev, sizeof(prev), "%s", last_state);
	if (prev[0] != '\0')
		unlink(prev);
	snprintf(last_state, sizeof(last_state), "%s", path);
	/*
	 * Temporary files named by random lowercase words: unlike the state
	 * files' names these are not <rand>, so each is a new name until the
	 * directory folds into their shape (c-*.tmp).  Removed at once, so that
	 * new ones often get the numbers of removed inodes (the kernel's filter
	 * of repeated reads must tell them apart).
	 */
	for (int t = 0; t < 3; t++) {
		char word[7];

		for (int i = 0; i < 6; i++)
			word[i] = (char)('a' + random() % 26);
		word[6] = '\0';
		snprintf(path, sizeof(path), "%s/cache/c-%s.tmp", dir, word);
		write_file(path, "tmp\n", O_TRUNC);
		read_file(path);
		unlink(path);
	}
	run("/bin/true", (char *[]){"true", NULL});
	tcp_connect(peer_port);
}

struct rewrite {
	char *path;
	pid_t tid;
};

static void on_wake(int sig)
{
	(void)sig;
}

/* Wait until the open sleeps in the kernel, its path copied; rewrite it; cut the open short. */
static void *rewrite_path(void *arg)
{
	struct rewrite *r = arg;
	char p[64], buf[64];

	snprintf(p, sizeof(p), "/proc/self/task/%d/syscall", (int)r->tid);
	for (;;) {
		int fd = open(p, O_RDONLY);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

		if (fd >= 0)
			close(fd);
		if (n > 0 && strtol(buf, NULL, 10) == SYS_openat)
			break;
		usleep(1000);
	}
	memcpy(strrchr(r->path, '/') + 1, "decoy", 5);
	syscall(SYS_tgkill, getpid(), r->tid, SIGWINCH);
	return NULL;
}

/*
 * Open a FIFO nobody reads (the open sleeps) while a second thread rewrites
 * the path the open was given, then interrupts it: an exploit's way to make
 * a monitor that reads the path late report another file.
 */
static void rewrite_during_open(const char *dir)
{
	struct sigaction sa = {.sa_handler = on_wake}; /* no SA_RESTART: the open fails */
	struct rewrite r = {.path = malloc(512), .tid = (pid_t)syscall(SYS_gettid)};
	pthread_t t;

	static unsigned n;

	/* A new FIFO each time: an unlink would be a deviation of its own. */
	snprintf(r.path, 512, "%s/fifo%u", dir, n++ % 10);
	if (sigaction(SIGWINCH, &sa, NULL) != 0 || mkfifo(r.path, 0600) != 0 ||
	    pthread_create(&t, NULL, rewrite_path, &r) != 0) {
		fprintf(stderr, "testsvc: cannot set up the rewrite: %s\n", strerror(errno));
		free(r.path);
		return;
	}
	if (syscall(SYS_openat, AT_FDCWD, r.path, O_WRONLY) >= 0 || errno != EINTR)
		fprintf(stderr, "testsvc: the held open did not fail with EINTR\n");
	pthread_join(t, NULL);
	free(r.path);
}

static void misbehave(const char *dir, int new_listen, int new_peer)
{
	char path[512];

	run("/bin/sh", (char *[]){"sh", "-c", "exit 0", NULL});
	snprintf(path, sizeof(path), "%s-outside.txt", dir);
	write_file(path, "not my file\n", O_TRUNC);
	read_file("/etc/shadow");
	close(tcp_listen(new_listen));
	tcp_connect(new_peer);
	rewrite_during_open(dir);
	/* Files it never read: a person's, another service's state, a credential. */
	const char *reads = getenv("VIGIL_TESTSVC_READS");
	if (reads != NULL && strlen(reads) < sizeof(path)) {
		char list[sizeof(path)], *save = NULL;

		snprintf(list, sizeof(list), "%s", reads);
		for (char *p = strtok_r(list, ":", &save); p != NULL;
		     p = strtok_r(NULL, ":", &save))
			read_file(p);
	}
}

/* A file of another shape among the temporary files: a script dropped into the cache. */
static void off_shape(const char *dir)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/cache/upload.php", dir);
	write_file(path, "<?php system($_GET['c']); ?>\n", O_TRUNC);
}

int main(int argc, char **argv)
{
	struct sigaction sa = {.sa_handler = on_signal};
	char path[512], pid[32];
	unsigned iteration = 0;
	int lfd;

	if (argc != 6) {
		fprintf(stderr, "usage: vigil-testsvc WORKDIR LISTEN_PORT PEER_PORT "
				"NEW_LISTEN_PORT NEW_PEER_PORT\n");
		return 2;
	}
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* Its temporary files' directory (an existing one is fine: the failed mkdir is not
	 * learned). */
	snprintf(path, sizeof(path), "%s/cache", argv[1]);
	mkdir(path, 0755);
	lfd = tcp_listen(atoi(argv[2]));
	snprintf(path, sizeof(path), "%s/pid", argv[1]);
	snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	write_file(path, pid, O_TRUNC);
	while (!stop) {
		struct pollfd p = {.fd = lfd, .events = POLLIN};

		if (poll(&p, 1, 50) > 0) {
			int c = accept(lfd, NULL, NULL);

			if (c >= 0)
				close(c);
		}
		while (routine_due > 0) {
			routine_due--;
			routine(argv[1], atoi(argv[3]), iteration++);
		}
		if (attack_due) {
			attack_due = 0;
			misbehave(argv[1], atoi(argv[4]), atoi(argv[5]));
		}
		if (off_shape_due) {
			off_shape_due = 0;
			off_shape(argv[1]);
		}
	}
	return 0;
}
