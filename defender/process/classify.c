/* SPDX-License-Identifier: Apache-2.0 */
#include "process/classify.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define LOGINUID_UNSET UINT32_MAX

static const char *base_name(const char *path)
{
	const char *s;

	if (path == NULL)
		return "";
	s = strrchr(path, '/');
	return s != NULL ? s + 1 : path;
}

/* The process's program name: its executable's basename, else its comm. */
static const char *prog(const struct proc_entry *e)
{
	return e->exe != NULL ? base_name(e->exe) : e->comm;
}

static int is(const struct proc_entry *e, const char *name)
{
	return strcmp(prog(e), name) == 0;
}

const char *classify_unit(const char *cgroup, size_t *ret_len)
{
	const char *end, *start;

	if (cgroup == NULL)
		return NULL;
	/* The last path component that names a .service (a unit's own cgroup). */
	for (end = cgroup + strlen(cgroup); end > cgroup;) {
		start = end;
		while (start > cgroup && start[-1] != '/')
			start--;
		size_t len = (size_t)(end - start);
		if (len > 8 && memcmp(end - 8, ".service", 8) == 0) {
			*ret_len = len;
			return start;
		}
		end = start > cgroup ? start - 1 : cgroup;
	}
	return NULL;
}

/* Whether chain[i] opens an interactive session, and how to say so. */
static int session_opener(const struct proc_entry *const *chain, size_t n, size_t i,
			  const char **what)
{
	const struct proc_entry *e = chain[i];

	/* sshd's per-connection child: an sshd whose parent is the listening sshd. */
	if (is(e, "sshd") && i + 1 < n && is(chain[i + 1], "sshd")) {
		*what = "an ssh session";
		return 1;
	}
	if (is(e, "login") || is(e, "agetty") || is(e, "getty") || is(e, "mingetty")) {
		*what = "a console login";
		return 1;
	}
	if (is(e, "su") || is(e, "sudo")) {
		*what = "a su/sudo session";
		return 1;
	}
	if (is(e, "tmux") || is(e, "tmux: server") || is(e, "screen") || is(e, "SCREEN")) {
		*what = "a terminal multiplexer";
		return 1;
	}
	return 0;
}

static int is_cron(const struct proc_entry *e)
{
	return is(e, "cron") || is(e, "crond") || is(e, "anacron");
}

static bool same_container(const struct proc_entry *a, const struct proc_entry *b)
{
	return a->container_id != NULL && b->container_id != NULL &&
	       (a->container_id == b->container_id ||
		strcmp(a->container_id, b->container_id) == 0);
}

void classify_container_service(const char *image, char out[160])
{
	const size_t room = 160 - sizeof("container:");
	uint64_t h = 1469598103934665603ull;

	if (strlen(image) <= room) {
		snprintf(out, 160, "container:%s", image);
		return;
	}
	/*
	 * A reference too long for a model's name (one pinned by digest under a
	 * deep path): its start, and a hash of all of it, so two long ones that
	 * share a start still get models of their own.
	 */
	for (const char *c = image; *c != '\0'; c++)
		h = (h ^ (unsigned char)*c) * 1099511628211ull;
	snprintf(out, 160, "container:%.*s#%016llx", (int)(room - 17), image,
		 (unsigned long long)h);
}

/* A container's service: named by its image, else its leader's executable. */
static void container_service(const struct proc_entry *self, const struct proc_entry *leader,
			      const struct container_meta *ctr, struct classification *out)
{
	char who[48];

	if (out->image[0] != '\0')
		classify_container_service(out->image, out->service);
	else
		snprintf(out->service, sizeof(out->service), "container:%s",
			 leader->exe != NULL ? leader->exe : leader->comm);
	if (ctr != NULL && ctr->name[0] != '\0')
		snprintf(who, sizeof(who), "%.40s", ctr->name);
	else
		snprintf(who, sizeof(who), "%.12s", self->container_id);
	snprintf(out->why, sizeof(out->why),
		 "container %s (%s%simage %.64s), leader %.24s (pid %u)", who,
		 ctr != NULL ? container_runtime_name(ctr->runtime) : "",
		 ctr != NULL && ctr->runtime != CONTAINER_RT_UNKNOWN ? ", " : "",
		 out->image[0] != '\0' ? out->image : "unknown", prog(leader), leader->pid);
}

void classify(const struct proc_entry *const *chain, size_t n, const struct container_meta *ctr,
	      struct classification *out)
{
	const struct proc_entry *self = n > 0 ? chain[0] : NULL;
	const char *what = NULL, *unit;
	size_t unit_len = 0, leader = 0;
	bool contained = false;

	memset(out, 0, sizeof(*out));
	if (self == NULL) {
		out->cls = CLASS_SERVICE;
		snprintf(out->service, sizeof(out->service), "unknown");
		snprintf(out->why, sizeof(out->why), "process not in the process tree");
		return;
	}
	if (self->container_id != NULL) {
		/* Only the chain inside the container: the shim above it is every container's. */
		size_t m = 1;

		while (m < n && same_container(chain[m], self))
			m++;
		n = m;
		contained = true;
		if (ctr != NULL && strcmp(ctr->id, self->container_id) == 0)
			snprintf(out->image, sizeof(out->image), "%s", ctr->image);
		else
			ctr = NULL;
	}
	if (self->tty != NULL && self->tty[0] != '\0') {
		out->cls = CLASS_INTERACTIVE;
		out->leader_pid = self->sid;
		snprintf(out->why, sizeof(out->why), "controlling terminal %s", self->tty);
		return;
	}
	bool under_cron = false;
	size_t cron_at = 0; /* the cron process nearest to self */
	for (size_t i = n; i-- > 0;)
		if (is_cron(chain[i])) {
			under_cron = true;
			cron_at = i;
		}
	for (size_t i = 0; i < n; i++) {
		if (session_opener(chain, n, i, &what)) {
			out->cls = CLASS_INTERACTIVE;
			out->leader_pid = chain[i]->pid;
			snprintf(out->why, sizeof(out->why), "under %s (%s, pid %u)", what,
				 prog(chain[i]), chain[i]->pid);
			return;
		}
	}
	/* Not in a container: its login uid is whoever started the container's. */
	if (self->loginuid != LOGINUID_UNSET && !under_cron && !contained) {
		out->cls = CLASS_INTERACTIVE;
		out->leader_pid = self->sid;
		snprintf(out->why, sizeof(out->why), "in a login session (loginuid %u)",
			 self->loginuid);
		return;
	}
	out->cls = CLASS_SERVICE;
	unit = classify_unit(self->cgroup, &unit_len);
	/* The leader: the topmost known ancestor below init (pid 1). */
	for (size_t i = 0; i < n; i++) {
		if (chain[i]->pid == 1)
			break;
		leader = i;
	}
	out->leader_pid = chain[leader]->pid;
	if (contained) {
		container_service(self, chain[leader], ctr, out);
	} else if (unit != NULL) {
		snprintf(out->service, sizeof(out->service), "unit:%.*s", (int)unit_len, unit);
		snprintf(out->why, sizeof(out->why), "systemd unit %.*s%s", (int)unit_len, unit,
			 under_cron ? " (cron job)" : "");
	} else {
		snprintf(out->service, sizeof(out->service), "exe:%s",
			 chain[leader]->exe != NULL ? chain[leader]->exe : chain[leader]->comm);
		snprintf(out->why, sizeof(out->why), "%s leader %s (pid %u) under init",
			 under_cron ? "cron job, service" : "service", prog(chain[leader]),
			 chain[leader]->pid);
	}
	/*
	 * Every user's crontab runs under the same cron: a job is modelled per
	 * owner, or any user could teach root's jobs' model what their own jobs
	 * do while it learns.  The owner is the job's first process below cron
	 * (cron sets its user before the exec); its descendants keep the key
	 * whatever they change their ids to.
	 */
	if (under_cron && cron_at > 0) {
		size_t len = strlen(out->service);

		snprintf(out->service + len, sizeof(out->service) - len, "/uid:%u",
			 chain[cron_at - 1]->uid);
	}
}
