/* SPDX-License-Identifier: Apache-2.0 */
/* A realistic event stream for the storage benchmark (event_mix.h). */
#include "event_mix.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "event/event.h"
#include "event/event_json.h"
#include "event/json_writer.h"

/* The host's processes: services under systemd, and one interactive shell. */
struct proc {
	const char *comm, *exe, *unit, *user;
	uint32_t uid, leader;
	bool interactive;
};

static const struct proc procs[] = {
    {"nginx", "/usr/sbin/nginx", "nginx.service", "www-data", 33, 812, false},
    {"php-fpm8.2", "/usr/sbin/php-fpm8.2", "php8.2-fpm.service", "www-data", 33, 901, false},
    {"postgres", "/usr/lib/postgresql/15/bin/postgres", "postgresql@15-main.service", "postgres",
     112, 1033, false},
    {"cron", "/usr/sbin/cron", "cron.service", "root", 0, 640, false},
    {"sshd", "/usr/sbin/sshd", "ssh.service", "root", 0, 702, false},
    {"rsyslogd", "/usr/sbin/rsyslogd", "rsyslog.service", "syslog", 104, 588, false},
    {"node", "/usr/bin/node", "app-api.service", "app", 1001, 1450, false},
    {"bash", "/usr/bin/bash", "session-4.scope", "alice", 1000, 5120, true},
};
#define NPROCS (sizeof(procs) / sizeof(procs[0]))

static const char *const progs[][3] = {
    /* comm, exe, argv (NUL-separated, as the kernel gives it) */
    {"sh", "/usr/bin/dash", "/bin/sh\0-c\0/usr/lib/php/sessionclean\0"},
    {"logrotate", "/usr/sbin/logrotate", "/usr/sbin/logrotate\0/etc/logrotate.conf\0"},
    {"git", "/usr/bin/git", "git\0-C\0/srv/app\0status\0--porcelain\0"},
    {"ls", "/usr/bin/ls", "ls\0-la\0/var/log/nginx\0"},
    {"curl", "/usr/bin/curl", "curl\0-fsS\0http://127.0.0.1:8080/healthz\0"},
    {"find", "/usr/bin/find", "find\0/var/lib/php/sessions\0-mmin\0+24\0-delete\0"},
};
#define NPROGS (sizeof(progs) / sizeof(progs[0]))

static uint32_t rnd(struct event_mix *m, uint32_t n)
{
	/* xorshift64*: deterministic, good enough to vary names and numbers. */
	m->rng ^= m->rng >> 12;
	m->rng ^= m->rng << 25;
	m->rng ^= m->rng >> 27;
	return (uint32_t)((m->rng * 0x2545F4914F6CDD1DULL) >> 33) % n;
}

void event_mix_init(struct event_mix *m, uint64_t seed, uint64_t start_ns, uint64_t step_ns)
{
	memset(m, 0, sizeof(*m));
	m->rng = seed != 0 ? seed : 0x9e3779b97f4a7c15ull;
	m->ts_ns = start_ns;
	m->step_ns = step_ns;
	m->next_pid = 20000;
}

/* The header every record starts with. */
static void hdr_fill(struct event_mix *m, struct ev_hdr *h, uint16_t type, const struct proc *p,
		     uint32_t pid, const char *comm)
{
	h->type = type;
	h->ts_ns = m->ts_ns; /* written with a clock offset of 0: wall clock */
	h->pid = pid;
	h->tid = pid + (rnd(m, 4) == 0 ? rnd(m, 8) : 0);
	h->ppid = pid == p->leader ? 1 : p->leader;
	h->uid = h->euid = p->uid;
	h->gid = p->uid;
	h->cgroup_id = 4000 + (uint64_t)(p - procs);
	snprintf(h->comm, sizeof(h->comm), "%s", comm);
}

/* Append string s (with its NUL) to the record at *off; returns its length with the NUL. */
static uint16_t put_str(char *rec, size_t *off, const char *s, size_t len)
{
	memcpy(rec + *off, s, len);
	rec[*off + len] = '\0';
	*off += len + 1;
	return (uint16_t)(len + 1);
}

static size_t make_exec(struct event_mix *m, const struct proc *p, uint32_t pid, size_t prog)
{
	struct ev_exec *e = (struct ev_exec *)m->rec;
	size_t off = sizeof(*e), alen = 0;
	const char *args = progs[prog][2];

	memset(e, 0, sizeof(*e));
	hdr_fill(m, &e->hdr, EV_EXEC, p, pid, progs[prog][0]);
	e->hdr.ppid = p->leader;
	while (args[alen] != '\0' || args[alen + 1] != '\0')
		alen++;
	alen++; /* the last argument's NUL */
	e->sid = p->interactive ? p->leader : 1;
	e->loginuid = p->interactive ? p->uid : (uint32_t)-1;
	e->start_ns = m->ts_ns - 1000;
	e->argc = 0;
	for (size_t i = 0; i < alen; i++)
		e->argc += args[i] == '\0';
	if (p->interactive)
		snprintf(e->tty, sizeof(e->tty), "pts0");
	e->filename_len = put_str(m->rec, &off, progs[prog][1], strlen(progs[prog][1]));
	memcpy(m->rec + off, args, alen);
	e->args_len = (uint16_t)alen;
	off += alen;
	const char *cwd = p->interactive ? "/home/alice" : "/";
	e->cwd_len = put_str(m->rec, &off, cwd, strlen(cwd));
	e->hdr.size = (uint16_t)off;
	return off;
}

static size_t make_file(struct event_mix *m, const struct proc *p, uint32_t pid)
{
	struct ev_file *e = (struct ev_file *)m->rec;
	size_t off = sizeof(*e);
	char path[256], path2[256] = "";
	uint32_t k = rnd(m, 10);

	memset(e, 0, sizeof(*e));
	hdr_fill(m, &e->hdr, EV_FILE, p, pid, p->comm);
	e->op = FOP_OPEN;
	e->open_flags = O_WRONLY | O_CREAT | O_TRUNC;
	e->mode = 0644;
	e->result = 3 + (int32_t)rnd(m, 40);
	e->owner_uid = e->owner_gid = (uint32_t)-1;
	switch (k) {
	case 0:
	case 1:
		snprintf(path, sizeof(path), "/var/lib/php/sessions/sess_%08x%08x%08x%08x",
			 rnd(m, 0x7fffffff), rnd(m, 0x7fffffff), rnd(m, 0x7fffffff),
			 rnd(m, 0x7fffffff));
		e->mode = 0600;
		break;
	case 2:
	case 3:
		snprintf(path, sizeof(path), "/var/log/%s/access.log", p->comm);
		e->open_flags = O_WRONLY | O_CREAT | O_APPEND;
		break;
	case 4:
		snprintf(path, sizeof(path), "/var/cache/%s/%02x/%02x/%08x.tmp", p->comm,
			 rnd(m, 256), rnd(m, 256), rnd(m, 0x7fffffff));
		break;
	case 5:
		snprintf(path, sizeof(path), "/var/cache/%s/%02x/%02x/%08x.tmp", p->comm,
			 rnd(m, 256), rnd(m, 256), rnd(m, 0x7fffffff));
		snprintf(path2, sizeof(path2), "/var/cache/%s/%02x/%02x/%08x", p->comm, rnd(m, 256),
			 rnd(m, 256), rnd(m, 0x7fffffff));
		e->op = FOP_RENAME;
		e->result = 0;
		break;
	case 6:
		snprintf(path, sizeof(path), "/tmp/%s-%u.lock", p->comm, rnd(m, 100000));
		e->op = FOP_UNLINK;
		e->result = 0;
		break;
	case 7:
		snprintf(path, sizeof(path), "/etc/%s",
			 rnd(m, 2) ? "shadow" : "ssl/private/server.key");
		e->open_flags = O_RDONLY | O_CLOEXEC;
		break;
	default:
		snprintf(path, sizeof(path), "/srv/app/data/upload-%u/part-%u.bin", rnd(m, 1000000),
			 rnd(m, 64));
		break;
	}
	e->path_len = put_str(m->rec, &off, path, strlen(path));
	if (path2[0] != '\0')
		e->path2_len = put_str(m->rec, &off, path2, strlen(path2));
	e->hdr.size = (uint16_t)off;
	return off;
}

static size_t make_net(struct event_mix *m, const struct proc *p, uint32_t pid)
{
	struct ev_net *e = (struct ev_net *)m->rec;
	bool accept = rnd(m, 2) == 0;

	memset(e, 0, sizeof(*e));
	hdr_fill(m, &e->hdr, EV_NET, p, pid, p->comm);
	e->op = accept ? NOP_ACCEPT : NOP_CONNECT;
	e->family = AF_INET;
	e->type = SOCK_STREAM;
	e->protocol = 6;
	e->result = accept ? 5 + (int32_t)rnd(m, 100) : 0;
	e->local_addr[0] = 10;
	e->local_addr[1] = 0;
	e->local_addr[2] = 3;
	e->local_addr[3] = 17;
	e->remote_addr[0] = accept ? 198 : 10;
	e->remote_addr[1] = accept ? 51 : 0;
	e->remote_addr[2] = (uint8_t)rnd(m, 256);
	e->remote_addr[3] = (uint8_t)(1 + rnd(m, 254));
	e->local_port = accept ? 443 : (uint16_t)(32768 + rnd(m, 28000));
	e->remote_port = accept ? (uint16_t)(32768 + rnd(m, 28000)) : 5432;
	e->hdr.size = (uint16_t)sizeof(*e);
	return sizeof(*e);
}

void event_mix_next(struct event_mix *m, struct event_mix_event *ret_ev)
{
	const struct proc *p = &procs[rnd(m, NPROCS)];
	uint32_t k = rnd(m, 100), pid = p->leader + rnd(m, 3) * 7;
	size_t prog = rnd(m, NPROGS), len;
	struct event_enrich en = {0};
	struct json_writer w;
	struct event ev;
	char service[160], why[200], cgroup[200];

	if (k < 15) {
		pid = m->next_pid++;
		len = make_exec(m, p, pid, prog);
	} else if (k < 30) {
		struct ev_fork *e = (struct ev_fork *)m->rec;

		memset(e, 0, sizeof(*e));
		hdr_fill(m, &e->hdr, EV_FORK, p, pid, p->comm);
		e->child_pid = m->next_pid;
		e->child_start_ns = m->ts_ns;
		e->hdr.size = sizeof(*e);
		len = sizeof(*e);
	} else if (k < 45) {
		struct ev_exit *e = (struct ev_exit *)m->rec;

		pid = m->next_pid > 20000 ? m->next_pid - 1 - rnd(m, 4) : pid;
		memset(e, 0, sizeof(*e));
		hdr_fill(m, &e->hdr, EV_EXIT, p, pid, progs[prog][0]);
		e->exit_code = rnd(m, 8) == 0 ? 1 << 8 : 0;
		e->start_ns = m->ts_ns - 5000000;
		e->hdr.size = sizeof(*e);
		len = sizeof(*e);
	} else if (k < 85) {
		len = make_file(m, p, pid);
	} else {
		len = make_net(m, p, pid);
	}
	if (event_decode(m->rec, len, &ev) < 0)
		abort();

	/* The description the process tree gives (defender/process/enrich.c). */
	en.cls = p->interactive ? "interactive" : "service";
	if (p->interactive) {
		snprintf(why, sizeof(why), "controlling terminal pts0");
		en.tty = "pts0";
	} else {
		snprintf(service, sizeof(service), "unit:%s", p->unit);
		en.service = service;
		snprintf(why, sizeof(why), "systemd unit %s", p->unit);
	}
	en.class_reason = why;
	en.user = p->user;
	en.exe = ev.hdr->type == EV_EXEC || ev.hdr->type == EV_EXIT ? progs[prog][1] : p->exe;
	snprintf(cgroup, sizeof(cgroup), "/%s/%s",
		 p->interactive ? "user.slice/user-1000.slice" : "system.slice", p->unit);
	en.cgroup = cgroup;
	en.nancestry = 0;
	if (pid != p->leader) {
		en.ancestry[en.nancestry].pid = p->leader;
		en.ancestry[en.nancestry].comm = p->comm;
		en.ancestry[en.nancestry++].exe = p->exe;
	}
	if (p->interactive) {
		en.ancestry[en.nancestry].pid = 5101;
		en.ancestry[en.nancestry].comm = "sshd";
		en.ancestry[en.nancestry++].exe = "/usr/sbin/sshd";
		en.ancestry[en.nancestry].pid = 702;
		en.ancestry[en.nancestry].comm = "sshd";
		en.ancestry[en.nancestry++].exe = "/usr/sbin/sshd";
	}
	en.ancestry[en.nancestry].pid = 1;
	en.ancestry[en.nancestry].comm = "systemd";
	en.ancestry[en.nancestry++].exe = "/usr/lib/systemd/systemd";

	json_writer_init(&w, m->line, sizeof(m->line));
	event_json_write(&w, &ev, &en, 0);
	m->line[w.len] = '\0';

	ret_ev->type = ev.hdr->type;
	ret_ev->ts_ns = m->ts_ns;
	ret_ev->pid = ev.hdr->pid;
	ret_ev->ppid = ev.hdr->ppid;
	ret_ev->uid = ev.hdr->uid;
	ret_ev->comm = ev.hdr->comm;
	ret_ev->json = m->line;
	ret_ev->json_len = w.len;
	m->ts_ns += m->step_ns;
}
