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
	classify(chain, n, c);
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

	classify(NULL, 0, &c);
	cr_expect_eq(c.cls, CLASS_SERVICE);
	cr_expect_str_eq(c.service, "unknown");
}
