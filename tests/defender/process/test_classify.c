/* SPDX-License-Identifier: Apache-2.0 */
/* Service or interactive, and why: over synthetic ancestry chains. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "process/classify.h"

static struct proc_entry mk(uint32_t pid, const char *exe, const char *tty, uint32_t loginuid,
			    const char *cgroup)
{
	struct proc_entry e;

	memset(&e, 0, sizeof(e));
	e.pid = pid;
	e.sid = pid;
	e.exe = exe;
	e.tty = tty;
	e.loginuid = loginuid;
	e.cgroup = cgroup;
	const char *b = exe ? strrchr(exe, '/') : NULL;
	snprintf(e.comm, sizeof(e.comm), "%s", b ? b + 1 : "?");
	return e;
}

#define UNSET UINT32_MAX

static void run(struct proc_entry *es, size_t n, struct classification *c)
{
	const struct proc_entry *chain[16];

	for (size_t i = 0; i < n; i++)
		chain[i] = &es[i];
	classify(chain, n, NULL, c);
}

Test(classify, a_daemon_under_init_is_a_service_named_by_its_leader)
{
	struct proc_entry es[] = {
	    mk(300, "/usr/sbin/nginx", NULL, UNSET, "/"),
	    mk(200, "/usr/sbin/nginx", NULL, UNSET, "/"),
	    mk(1, "/sbin/init", NULL, UNSET, "/"),
	};
	struct classification c;

	run(es, 3, &c);
	cr_expect_eq(c.cls, CLASS_SERVICE);
	cr_expect_str_eq(c.service, "exe:/usr/sbin/nginx");
	cr_expect_eq(c.leader_pid, 200);
	cr_expect(strstr(c.why, "leader nginx (pid 200) under init") != NULL, "%s", c.why);
}

Test(classify, a_systemd_unit_names_the_service)
{
	struct proc_entry es[] = {
	    mk(300, "/usr/bin/helper", NULL, UNSET, "/system.slice/app.service"),
	    mk(200, "/usr/bin/app", NULL, UNSET, "/system.slice/app.service"),
	    mk(1, "/lib/systemd/systemd", NULL, UNSET, "/init.scope"),
	};
	struct classification c;

	run(es, 3, &c);
	cr_expect_eq(c.cls, CLASS_SERVICE);
	cr_expect_str_eq(c.service, "unit:app.service");
}

Test(classify, a_controlling_terminal_is_interactive)
{
	struct proc_entry es[] = {
	    mk(400, "/usr/bin/vim", "pts3", 1000, "/"),
	    mk(1, "/sbin/init", NULL, UNSET, "/"),
	};
	struct classification c;

	run(es, 2, &c);
	cr_expect_eq(c.cls, CLASS_INTERACTIVE);
	cr_expect_str_eq(c.why, "controlling terminal pts3");
	cr_expect_str_eq(c.service, "");
}

Test(classify, everything_under_an_ssh_session_is_interactive_even_without_a_tty)
{
	struct proc_entry es[] = {
	    mk(500, "/usr/bin/curl", NULL, UNSET, "/"),
	    mk(450, "/usr/bin/bash", NULL, UNSET, "/"),
	    mk(400, "/usr/sbin/sshd", NULL, UNSET, "/"),
	    mk(100, "/usr/sbin/sshd", NULL, UNSET, "/"),
	    mk(1, "/sbin/init", NULL, UNSET, "/"),
	};
	struct classification c;

	run(es, 5, &c);
	cr_expect_eq(c.cls, CLASS_INTERACTIVE);
	cr_expect_eq(c.leader_pid, 400);
	cr_expect(strstr(c.why, "ssh session") != NULL, "%s", c.why);
}

Test(classify, the_listening_sshd_itself_is_a_service)
{
	struct proc_entry es[] = {
	    mk(100, "/usr/sbin/sshd", NULL, UNSET, "/"),
	    mk(1, "/sbin/init", NULL, UNSET, "/"),
	};
	struct classification c;

	run(es, 2, &c);
	cr_expect_eq(c.cls, CLASS_SERVICE);
	cr_expect_str_eq(c.service, "exe:/usr/sbin/sshd");
}

Test(classify, sudo_and_su_open_sessions)
{
	struct proc_entry es[] = {
	    mk(600, "/usr/bin/id", NULL, UNSET, "/"),
	    mk(590, "/usr/bin/sudo", NULL, UNSET, "/"),
	    mk(1, "/sbin/init", NULL, UNSET, "/"),
	};
	struct classification c;

	run(es, 3, &c);
	cr_expect_eq(c.cls, CLASS_INTERACTIVE);
	cr_expect_eq(c.leader_pid, 590);
}

Test(classify, a_login_session_without_a_terminal_is_interactive_but_cron_jobs_are_services)
{
	struct proc_entry login[] = {
	    mk(700, "/usr/bin/rsync", NULL, 1000, "/"),
	    mk(1, "/sbin/init", NULL, UNSET, "/"),
	};
	struct proc_entry cron[] = {
	    mk(810, "/usr/bin/backup", NULL, 0, "/"),
	    mk(800, "/usr/sbin/cron", NULL, UNSET, "/"),
	    mk(1, "/sbin/init", NULL, UNSET, "/"),
	};
	struct classification c;

	run(login, 2, &c);
	cr_expect_eq(c.cls, CLASS_INTERACTIVE);
	cr_expect(strstr(c.why, "loginuid 1000") != NULL, "%s", c.why);
	run(cron, 3, &c);
	cr_expect_eq(c.cls, CLASS_SERVICE, "cron jobs are patterned: services");
	cr_expect_str_eq(c.service, "exe:/usr/sbin/cron/uid:0");
	cr_expect(strstr(c.why, "cron job") != NULL, "%s", c.why);
}

Test(classify, cron_jobs_are_modelled_per_owner_so_no_user_teaches_roots_model)
{
	struct proc_entry alice[] = {
	    mk(912, "/usr/bin/curl", NULL, 1000, "/system.slice/cron.service"),
	    mk(911, "/bin/sh", NULL, 1000, "/system.slice/cron.service"),
	    mk(910, "/usr/sbin/cron", NULL, 1000, "/system.slice/cron.service"),
	    mk(800, "/usr/sbin/cron", NULL, UNSET, "/system.slice/cron.service"),
	    mk(1, "/sbin/init", NULL, UNSET, "/"),
	};
	struct proc_entry root_job[] = {
	    mk(922, "/usr/bin/curl", NULL, 0, "/system.slice/cron.service"),
	    mk(921, "/bin/sh", NULL, 0, "/system.slice/cron.service"),
	    mk(920, "/usr/sbin/cron", NULL, 0, "/system.slice/cron.service"),
	    mk(800, "/usr/sbin/cron", NULL, UNSET, "/system.slice/cron.service"),
	    mk(1, "/sbin/init", NULL, UNSET, "/"),
	};
	struct classification c;

	alice[0].uid = 0; /* a setuid program the job ran: still alice's job */
	alice[1].uid = 1000;
	alice[2].uid = 0; /* cron's child before it set the user: not the key */
	run(alice, 5, &c);
	cr_expect_eq(c.cls, CLASS_SERVICE);
	cr_expect_str_eq(c.service, "unit:cron.service/uid:1000");
	run(root_job, 5, &c);
	cr_expect_str_eq(c.service, "unit:cron.service/uid:0");
	/* The daemon itself is the plain service. */
	run(alice + 3, 2, &c);
	cr_expect_str_eq(c.service, "unit:cron.service");
}

Test(classify, unit_parsing_takes_the_innermost_service)
{
	size_t len = 0;
	const char *u = classify_unit("/system.slice/docker.service/x.service", &len);

	cr_assert_not_null(u);
	cr_expect_eq(len, strlen("x.service"));
	cr_expect_null(classify_unit("/user.slice/user-1000.slice/session-3.scope", &len));
	cr_expect_null(classify_unit(".service", &len));
	cr_expect_null(classify_unit(NULL, &len));
}

Test(classify, an_unknown_process_is_an_unknown_service)
{
	struct classification c;

	classify(NULL, 0, NULL, &c);
	cr_expect_eq(c.cls, CLASS_SERVICE);
	cr_expect_str_eq(c.service, "unknown");
}

/* ---- containers ---- */

#define CID_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define CID_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static struct proc_entry in_ctr(struct proc_entry e, const char *cid)
{
	e.container_id = cid;
	return e;
}

static struct container_meta meta(const char *cid, const char *name, const char *image)
{
	struct container_meta m;

	memset(&m, 0, sizeof(m));
	snprintf(m.id, sizeof(m.id), "%s", cid);
	m.runtime = CONTAINER_RT_PODMAN;
	snprintf(m.name, sizeof(m.name), "%s", name);
	snprintf(m.image, sizeof(m.image), "%s", image);
	return m;
}

static void run_in(struct proc_entry *es, size_t n, const struct container_meta *m,
		   struct classification *c)
{
	const struct proc_entry *chain[16];

	for (size_t i = 0; i < n; i++)
		chain[i] = &es[i];
	classify(chain, n, m, c);
}

/* conmon (under init) -> the container's init -> its worker, in cgroup libpod-<cid>. */
static void container_chain(struct proc_entry es[4], const char *cid, uint32_t base)
{
	es[0] =
	    in_ctr(mk(base + 2, "/usr/sbin/worker", NULL, UNSET, "/libpod_parent/libpod-x"), cid);
	es[1] =
	    in_ctr(mk(base + 1, "/usr/sbin/server", NULL, UNSET, "/libpod_parent/libpod-x"), cid);
	es[2] = mk(base, "/usr/bin/conmon", NULL, UNSET, "/libpod_parent/conmon");
	es[3] = mk(1, "/sbin/init", NULL, UNSET, "/");
}

Test(classify, a_container_is_a_service_named_by_its_image_not_by_its_shim)
{
	struct proc_entry a[4], b[4], outside[2];
	struct container_meta ma = meta(CID_A, "web-1", "localhost/app:1");
	struct container_meta mb = meta(CID_B, "web-2", "localhost/app:1");
	struct classification ca, cb, co;

	container_chain(a, CID_A, 100);
	container_chain(b, CID_B, 200);
	run_in(a, 4, &ma, &ca);
	run_in(b, 4, &mb, &cb);
	cr_expect_eq(ca.cls, CLASS_SERVICE);
	cr_expect_str_eq(ca.service, "container:localhost/app:1");
	cr_expect_str_eq(cb.service, ca.service, "two containers of one image: one model");
	cr_expect_str_eq(ca.image, "localhost/app:1");
	cr_expect_eq(ca.leader_pid, 101, "the leader is the container's topmost process");
	cr_expect_eq(cb.leader_pid, 201);
	cr_expect(strstr(ca.why, "container web-1 (podman, image localhost/app:1)") != NULL, "%s",
		  ca.why);
	/* The shim itself stays what it was: a service of its own, outside every container. */
	outside[0] = a[2];
	outside[1] = a[3];
	run_in(outside, 2, NULL, &co);
	cr_expect_str_eq(co.service, "exe:/usr/bin/conmon");
	cr_expect_str_eq(co.image, "");
}

Test(classify, a_second_image_has_its_own_service)
{
	struct proc_entry a[4], b[4];
	struct container_meta ma = meta(CID_A, "web", "localhost/app:1");
	struct container_meta mb = meta(CID_B, "db", "docker.io/library/postgres:15");
	struct classification ca, cb;

	container_chain(a, CID_A, 100);
	container_chain(b, CID_B, 200);
	run_in(a, 4, &ma, &ca);
	run_in(b, 4, &mb, &cb);
	cr_expect_str_eq(cb.service, "container:docker.io/library/postgres:15");
	cr_expect_str_neq(ca.service, cb.service);
}

Test(classify, an_unknown_image_names_the_container_by_its_leader)
{
	struct proc_entry a[4];
	struct classification c;

	container_chain(a, CID_A, 100);
	run_in(a, 4, NULL, &c);
	cr_expect_eq(c.cls, CLASS_SERVICE);
	cr_expect_str_eq(c.service, "container:/usr/sbin/server");
	cr_expect_str_eq(c.image, "");
	cr_expect(strstr(c.why, "container aaaaaaaaaaaa (image unknown)") != NULL, "%s", c.why);
	/* Metadata of another container is not this one's. */
	struct container_meta other = meta(CID_B, "x", "localhost/other:1");
	run_in(a, 4, &other, &c);
	cr_expect_str_eq(c.service, "container:/usr/sbin/server");
	cr_expect_str_eq(c.image, "");
}

Test(classify, a_login_uid_does_not_make_a_container_interactive)
{
	struct proc_entry a[4];
	struct container_meta m = meta(CID_A, "web", "localhost/app:1");
	struct classification c;

	/* Started by "podman run" from an ssh session: every process inherits the login uid. */
	container_chain(a, CID_A, 100);
	for (int i = 0; i < 3; i++)
		a[i].loginuid = 1000;
	run_in(a, 4, &m, &c);
	cr_expect_eq(c.cls, CLASS_SERVICE, "%s", c.why);
	cr_expect_str_eq(c.service, "container:localhost/app:1");
}

Test(classify, a_terminal_or_a_session_opener_in_a_container_is_interactive)
{
	struct proc_entry a[4], s[5];
	struct container_meta m = meta(CID_A, "web", "localhost/app:1");
	struct classification c;

	/* podman exec -it web sh */
	container_chain(a, CID_A, 100);
	a[0].exe = "/bin/sh";
	a[0].tty = "pts3";
	run_in(a, 4, &m, &c);
	cr_expect_eq(c.cls, CLASS_INTERACTIVE);
	cr_expect_str_eq(c.image, "localhost/app:1", "rules still see the image");
	/* An sshd inside the container, its per-connection child, a shell without a terminal. */
	s[0] = in_ctr(mk(405, "/bin/sh", NULL, UNSET, "/docker/x"), CID_A);
	s[1] = in_ctr(mk(404, "/usr/sbin/sshd", NULL, UNSET, "/docker/x"), CID_A);
	s[2] = in_ctr(mk(403, "/usr/sbin/sshd", NULL, UNSET, "/docker/x"), CID_A);
	s[3] = mk(402, "/usr/bin/containerd-shim-runc-v2", NULL, UNSET, "/");
	s[4] = mk(1, "/sbin/init", NULL, UNSET, "/");
	run_in(s, 5, &m, &c);
	cr_expect_eq(c.cls, CLASS_INTERACTIVE);
	cr_expect(strstr(c.why, "an ssh session") != NULL, "%s", c.why);
}

Test(classify, a_shell_a_containers_service_starts_is_that_service)
{
	struct proc_entry a[5];
	struct container_meta m = meta(CID_A, "web", "localhost/app:1");
	struct classification c;

	container_chain(a + 1, CID_A, 100);
	a[0] = in_ctr(mk(150, "/bin/sh", NULL, UNSET, "/libpod_parent/libpod-x"), CID_A);
	run_in(a, 5, &m, &c);
	cr_expect_eq(c.cls, CLASS_SERVICE);
	cr_expect_str_eq(c.service, "container:localhost/app:1");
	cr_expect_eq(c.leader_pid, 101);
}

Test(classify, a_long_image_name_is_cut_with_a_hash)
{
	char image[CONTAINER_IMAGE_MAX + 1], other[CONTAINER_IMAGE_MAX + 1];
	char s1[160], s2[160];

	memset(image, 'a', 200);
	memcpy(image, "registry.example.com/", 21);
	snprintf(image + 200, sizeof(image) - 200, ":%s", "1");
	snprintf(other, sizeof(other), "%s", image);
	other[strlen(other) - 1] = '2';
	classify_container_service(image, s1);
	classify_container_service(other, s2);
	cr_expect_lt(strlen(s1), (size_t)160);
	cr_expect_eq(strncmp(s1, "container:registry.example.com/", 31), 0, "%s", s1);
	cr_expect_str_neq(s1, s2, "same start, different images: different models");
	classify_container_service("localhost/app:1", s1);
	cr_expect_str_eq(s1, "container:localhost/app:1");
}
