/* SPDX-License-Identifier: Apache-2.0 */
#include "event/event_json.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

int64_t event_json_clock_offset(void)
{
	struct timespec rt, bt;

	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_BOOTTIME, &bt);
	return ((int64_t)rt.tv_sec - bt.tv_sec) * 1000000000LL + (rt.tv_nsec - bt.tv_nsec);
}

int64_t event_wall_ns(uint64_t boot_ns, int64_t offset)
{
	int64_t ns;

	if (boot_ns > (uint64_t)INT64_MAX || __builtin_add_overflow((int64_t)boot_ns, offset, &ns))
		return INT64_MAX;
	return ns;
}

static void put_time(struct json_writer *w, const char *key, uint64_t boot_ns, int64_t offset)
{
	/* Events come in bursts within a second: format its date and time once (per thread). */
	static __thread time_t cached_sec = -1;
	static __thread char cached[40];
	static __thread size_t cached_len;
	int64_t ns = event_wall_ns(boot_ns, offset);
	time_t sec = (time_t)(ns / 1000000000LL);
	long us = (long)((ns % 1000000000LL) / 1000);
	char buf[64];

	if (ns < 0) {
		sec = 0;
		us = 0;
	}
	if (sec != cached_sec) {
		struct tm tm;

		gmtime_r(&sec, &tm);
		snprintf(cached, sizeof(cached), "%04d-%02d-%02dT%02d:%02d:%02d.",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec);
		cached_len = strlen(cached);
		cached_sec = sec;
	}
	memcpy(buf, cached, cached_len);
	for (int i = 5; i >= 0; i--, us /= 10)
		buf[cached_len + (size_t)i] = (char)('0' + us % 10);
	buf[cached_len + 6] = 'Z';
	json_writer_key(w, key);
	json_writer_str(w, buf, cached_len + 7);
}

static void put_str(struct json_writer *w, const char *key, const struct ev_str *s)
{
	json_writer_key(w, key);
	if (s->p != NULL)
		json_writer_str(w, s->p, s->len);
	else
		json_writer_null(w);
}

/* A fixed-size char array from the kernel: up to its first NUL. */
static void put_chars(struct json_writer *w, const char *key, const char *a, size_t cap)
{
	json_writer_key(w, key);
	json_writer_str(w, a, strnlen(a, cap));
}

static void put_flags_list(struct json_writer *w, const struct ev_hdr *h)
{
	static const struct {
		uint32_t bit;
		const char *name;
		bool gap;
	} names[] = {
	    {EVF_TRUNC_PATH, "path", false},
	    {EVF_TRUNC_ARGS, "args", false},
	    {EVF_TRUNC_PATH2, "path2", false},
	    {EVF_NO_CWD, "cwd_unreadable", true},
	    {EVF_NO_BASE, "directory_unresolved", true},
	    {EVF_READ_FAIL, "user_memory_unreadable", true},
	    {EVF_ARG_AT_EXIT, "path_read_after_call", true},
	};
	if (h->flags & EVF_RACED) {
		/* Another thread changed the path, address, fd or cwd while the call ran. */
		json_writer_key(w, "rewritten_during_call");
		json_writer_bool(w, true);
	}
	if (h->flags & EVF_COMPAT) {
		/* An ia32 syscall: a 32-bit program, or int 0x80 from a 64-bit one. */
		json_writer_key(w, "syscall_abi");
		json_writer_cstr(w, "ia32");
	} else if (h->flags & EVF_X32) {
		/* An x32 syscall: a 64-bit process's, with __X32_SYSCALL_BIT in its number. */
		json_writer_key(w, "syscall_abi");
		json_writer_cstr(w, "x32");
	}
	for (int gap = 0; gap < 2; gap++) {
		bool any = false;

		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			if (!(h->flags & names[i].bit) || names[i].gap != gap)
				continue;
			if (!any) {
				json_writer_key(w, gap ? "gaps" : "truncated");
				json_writer_arr_begin(w);
				any = true;
			}
			json_writer_cstr(w, names[i].name);
		}
		if (any)
			json_writer_arr_end(w);
	}
}

static void put_exec(struct json_writer *w, const struct event *ev, int64_t off)
{
	const struct ev_exec *e = ev->exec;
	const struct ev_str *args = &ev->s[1];

	put_str(w, "filename", &ev->s[0]);
	json_writer_key(w, "argv");
	json_writer_arr_begin(w);
	/* args->len excludes the record NUL; each argument ends with its own. */
	for (size_t i = 0; args->p != NULL && i < args->len;) {
		size_t n = strnlen(args->p + i, args->len - i);
		json_writer_str(w, args->p + i, n);
		i += n + 1;
	}
	json_writer_arr_end(w);
	json_writer_key(w, "argc");
	json_writer_u64(w, e->argc);
	put_str(w, "cwd", &ev->s[2]);
	put_chars(w, "tty", e->tty, sizeof(e->tty));
	json_writer_key(w, "sid");
	json_writer_u64(w, e->sid);
	json_writer_key(w, "loginuid");
	if (e->loginuid == UINT32_MAX)
		json_writer_null(w);
	else
		json_writer_u64(w, e->loginuid);
	put_time(w, "start", e->start_ns, off);
	json_writer_key(w, "exe_deleted");
	json_writer_bool(w, e->exe_flags & EXE_DELETED);
	json_writer_key(w, "exe_memfd");
	json_writer_bool(w, e->exe_flags & EXE_MEMFD);
}

static void put_exit(struct json_writer *w, const struct ev_exit *e)
{
	json_writer_key(w, "exit_status");
	json_writer_u64(w, e->exit_code);
	if ((e->exit_code & 0x7f) == 0) {
		json_writer_key(w, "exit_code");
		json_writer_u64(w, (e->exit_code >> 8) & 0xff);
	} else {
		json_writer_key(w, "signal");
		json_writer_u64(w, e->exit_code & 0x7f);
		json_writer_key(w, "core_dumped");
		json_writer_bool(w, e->exit_code & 0x80);
	}
}

const char *event_file_op_name(unsigned op)
{
	static const char *const n[] = {"?",	"open",	   "unlink", "rename",	 "chmod", "chown",
					"link", "symlink", "mkdir",  "truncate", "rmdir"};
	return op < sizeof(n) / sizeof(n[0]) ? n[op] : "?";
}

static void put_open_flags(struct json_writer *w, uint32_t f)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = {
	    {O_CREAT, "O_CREAT"},	{O_EXCL, "O_EXCL"},	    {O_TRUNC, "O_TRUNC"},
	    {O_APPEND, "O_APPEND"},	{O_NONBLOCK, "O_NONBLOCK"}, {O_DIRECTORY, "O_DIRECTORY"},
	    {O_NOFOLLOW, "O_NOFOLLOW"}, {O_CLOEXEC, "O_CLOEXEC"},   {O_PATH, "O_PATH"},
	};
	json_writer_key(w, "flags");
	json_writer_arr_begin(w);
	switch (f & O_ACCMODE) {
	case O_RDONLY:
		json_writer_cstr(w, "O_RDONLY");
		break;
	case O_WRONLY:
		json_writer_cstr(w, "O_WRONLY");
		break;
	default:
		json_writer_cstr(w, "O_RDWR");
		break;
	}
	if ((f & O_TMPFILE) == O_TMPFILE)
		json_writer_cstr(w, "O_TMPFILE");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if ((f & names[i].bit) &&
		    !(names[i].bit == O_DIRECTORY && (f & O_TMPFILE) == O_TMPFILE))
			json_writer_cstr(w, names[i].name);
	json_writer_arr_end(w);
	json_writer_key(w, "write");
	json_writer_bool(w, (f & O_ACCMODE) != O_RDONLY || (f & (O_CREAT | O_TRUNC)));
}

/* A path made absolute from its base; "path_as_given" keeps the original when it differed. */
static void put_joined(struct json_writer *w, const char *key, const struct ev_str *name,
		       const struct ev_str *base)
{
	char abs[EV_PATH_MAX * 2];
	char given_key[32];

	json_writer_key(w, key);
	if (name->p == NULL) {
		json_writer_null(w);
		return;
	}
	if (name->p[0] == '/' || base->p == NULL) {
		json_writer_str(w, name->p, name->len);
		if (name->p[0] != '/') {
			snprintf(given_key, sizeof(given_key), "%s_relative", key);
			json_writer_key(w, given_key);
			json_writer_bool(w, true);
		}
		return;
	}
	long n = event_path_join(base->p, base->len, name->p, name->len, abs, sizeof(abs));
	json_writer_str(w, abs, n >= 0 ? (size_t)n : strlen(abs));
	snprintf(given_key, sizeof(given_key), "%s_as_given", key);
	json_writer_key(w, given_key);
	json_writer_str(w, name->p, name->len);
}

static void put_file(struct json_writer *w, const struct event *ev)
{
	const struct ev_file *e = ev->file;
	char mode[16];

	json_writer_key(w, "op");
	json_writer_cstr(w, event_file_op_name(e->op));
	put_joined(w, "path", &ev->s[0], &ev->s[2]);
	if (e->op == FOP_SYMLINK) {
		put_str(w, "target", &ev->s[1]);
	} else if (ev->s[1].p != NULL) {
		put_joined(w, "path2", &ev->s[1], &ev->s[3]);
	}
	if (e->op == FOP_OPEN)
		put_open_flags(w, e->open_flags);
	if (e->op == FOP_OPEN || e->op == FOP_CHMOD || e->op == FOP_MKDIR) {
		snprintf(mode, sizeof(mode), "0%o", e->mode & 07777);
		json_writer_key(w, "mode");
		json_writer_cstr(w, mode);
	}
	if (e->op == FOP_CHMOD) {
		json_writer_key(w, "setuid");
		json_writer_bool(w, e->mode & S_ISUID);
		json_writer_key(w, "setgid");
		json_writer_bool(w, e->mode & S_ISGID);
	}
	if (e->op == FOP_CHOWN) {
		json_writer_key(w, "owner_uid");
		if (e->owner_uid == UINT32_MAX)
			json_writer_null(w);
		else
			json_writer_u64(w, e->owner_uid);
		json_writer_key(w, "owner_gid");
		if (e->owner_gid == UINT32_MAX)
			json_writer_null(w);
		else
			json_writer_u64(w, e->owner_gid);
	}
	if (e->op == FOP_TRUNCATE) {
		json_writer_key(w, "length");
		json_writer_i64(w, e->length);
	}
	json_writer_key(w, "result");
	json_writer_i64(w, e->result);
}

static const char *family_name(unsigned f)
{
	return f == AF_INET ? "inet" : f == AF_INET6 ? "inet6" : f == AF_UNIX ? "unix" : "other";
}

const char *event_net_proto_name(const struct ev_net *e)
{
	if (e->family == AF_UNIX)
		return e->type == SOCK_DGRAM	   ? "dgram"
		       : e->type == SOCK_SEQPACKET ? "seqpacket"
						   : "stream";
	switch (e->protocol) {
	case 6:
		return "tcp";
	case 17:
		return "udp";
	case 136:
		return "udplite";
	case 132:
		return "sctp";
	case 0:
		return e->type == SOCK_DGRAM ? "udp" : e->type == SOCK_STREAM ? "tcp" : "other";
	default:
		return "other";
	}
}

char *event_ipv4_text(const uint8_t a[4], char out[16])
{
	char *p = out;

	for (int i = 0; i < 4; i++) {
		unsigned v = a[i];

		if (v >= 100)
			*p++ = (char)('0' + v / 100);
		if (v >= 10)
			*p++ = (char)('0' + v / 10 % 10);
		*p++ = (char)('0' + v % 10);
		*p++ = i < 3 ? '.' : '\0';
	}
	return out;
}

static void put_endpoint(struct json_writer *w, const char *key, unsigned family,
			 const uint8_t *addr, unsigned port)
{
	char text[INET6_ADDRSTRLEN];

	json_writer_key(w, key);
	json_writer_obj_begin(w);
	json_writer_key(w, "addr");
	if (family != AF_INET6)
		json_writer_cstr(w, event_ipv4_text(addr, text));
	else if (inet_ntop(AF_INET6, addr, text, sizeof(text)) != NULL)
		json_writer_cstr(w, text);
	else
		json_writer_null(w);
	json_writer_key(w, "port");
	json_writer_u64(w, port);
	json_writer_obj_end(w);
}

static void put_net(struct json_writer *w, const struct event *ev)
{
	static const char *const ops[] = {"?", "connect", "accept", "bind", "listen"};
	const struct ev_net *e = ev->net;

	json_writer_key(w, "op");
	json_writer_cstr(w, e->op < 5 ? ops[e->op] : "?");
	json_writer_key(w, "family");
	json_writer_cstr(w, family_name(e->family));
	json_writer_key(w, "proto");
	json_writer_cstr(w, event_net_proto_name(e));
	if (e->family == AF_INET || e->family == AF_INET6) {
		put_endpoint(w, "local", e->family, e->local_addr, e->local_port);
		if (e->op == NOP_CONNECT || e->op == NOP_ACCEPT)
			put_endpoint(w, "remote", e->family, e->remote_addr, e->remote_port);
	} else if (e->family == AF_UNIX) {
		put_str(w, "unix_path", &ev->s[0]);
	}
	if (e->op == NOP_LISTEN) {
		json_writer_key(w, "backlog");
		json_writer_i64(w, e->backlog);
	}
	json_writer_key(w, "result");
	json_writer_i64(w, e->result);
}

static void put_enrich(struct json_writer *w, const struct event_enrich *en)
{
	if (en == NULL)
		return;
	if (en->cls) {
		json_writer_key(w, "class");
		json_writer_cstr(w, en->cls);
		if (en->service && en->service[0]) {
			json_writer_key(w, "service");
			json_writer_cstr(w, en->service);
		}
		json_writer_key(w, "class_reason");
		json_writer_cstr(w, en->class_reason ? en->class_reason : "");
	}
	if (en->user) {
		json_writer_key(w, "user");
		json_writer_cstr(w, en->user);
	}
	if (en->exe) {
		json_writer_key(w, "exe");
		json_writer_cstr(w, en->exe);
	}
	if (en->cgroup) {
		json_writer_key(w, "cgroup");
		json_writer_cstr(w, en->cgroup);
	}
	if (en->container_id && en->container_id[0]) {
		json_writer_key(w, "container_id");
		json_writer_cstr(w, en->container_id);
	}
	/* What the container's runtime recorded; absent while it is not known. */
	if (en->container_name && en->container_name[0]) {
		json_writer_key(w, "container_name");
		json_writer_cstr(w, en->container_name);
	}
	if (en->container_image && en->container_image[0]) {
		json_writer_key(w, "container_image");
		json_writer_cstr(w, en->container_image);
	}
	if (en->container_runtime && en->container_runtime[0]) {
		json_writer_key(w, "container_runtime");
		json_writer_cstr(w, en->container_runtime);
	}
	if (en->nancestry > 0) {
		json_writer_key(w, "ancestry");
		json_writer_arr_begin(w);
		for (size_t i = 0; i < en->nancestry && i < EVENT_ANCESTRY_MAX; i++) {
			json_writer_obj_begin(w);
			json_writer_key(w, "pid");
			json_writer_u64(w, en->ancestry[i].pid);
			if (en->ancestry[i].comm) {
				json_writer_key(w, "comm");
				json_writer_cstr(w, en->ancestry[i].comm);
			}
			if (en->ancestry[i].exe) {
				json_writer_key(w, "exe");
				json_writer_cstr(w, en->ancestry[i].exe);
			}
			json_writer_obj_end(w);
		}
		json_writer_arr_end(w);
	}
}

size_t event_json_enrich_render(const struct event_enrich *en, char *buf, size_t cap, bool *lossy)
{
	struct json_writer w;

	/* As inside an object that already has members: each key brings its comma. */
	json_writer_init(&w, buf, cap);
	w.depth = 1;
	w.first[1] = false;
	put_enrich(&w, en);
	*lossy = w.lossy;
	return w.overflow ? 0 : w.len;
}

void event_json_write(struct json_writer *w, const struct event *ev, const struct event_enrich *en,
		      int64_t clock_offset_ns)
{
	static const char *const types[] = {"?", "exec", "fork", "exit", "file", "net"};
	const struct ev_hdr *h = ev->hdr;

	json_writer_obj_begin(w);
	json_writer_key(w, "type");
	json_writer_cstr(w, h->type < 6 ? types[h->type] : "?");
	put_time(w, "ts", h->ts_ns, clock_offset_ns);
	json_writer_key(w, "pid");
	json_writer_u64(w, h->pid);
	json_writer_key(w, "tid");
	json_writer_u64(w, h->tid);
	json_writer_key(w, "ppid");
	json_writer_u64(w, h->ppid);
	json_writer_key(w, "uid");
	json_writer_u64(w, h->uid);
	json_writer_key(w, "euid");
	json_writer_u64(w, h->euid);
	json_writer_key(w, "gid");
	json_writer_u64(w, h->gid);
	put_chars(w, "comm", h->comm, sizeof(h->comm));
	json_writer_key(w, "cgroup_id");
	json_writer_u64(w, h->cgroup_id);
	switch (h->type) {
	case EV_EXEC:
		put_exec(w, ev, clock_offset_ns);
		break;
	case EV_FORK:
		json_writer_key(w, "child_pid");
		json_writer_u64(w, ev->fork->child_pid);
		put_time(w, "child_start", ev->fork->child_start_ns, clock_offset_ns);
		break;
	case EV_EXIT:
		put_exit(w, ev->exit);
		break;
	case EV_FILE:
		put_file(w, ev);
		break;
	case EV_NET:
		put_net(w, ev);
		break;
	}
	if (en != NULL && en->json != NULL) {
		json_writer_append(w, en->json, en->json_len);
		w->lossy = w->lossy || en->json_lossy;
	} else {
		put_enrich(w, en);
	}
	put_flags_list(w, h);
	if (w->lossy) {
		/* Names above hold bytes that are not UTF-8, shown as \xNN. */
		json_writer_key(w, "non_utf8");
		json_writer_bool(w, true);
	}
	json_writer_obj_end(w);
}
