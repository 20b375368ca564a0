/* SPDX-License-Identifier: Apache-2.0 */
#include "process/procfs.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "process/memacct.h"
#include "process/proctree_priv.h"

#define STAT_READ_MAX	4096 /* a stat line is ~400 bytes; comm is at most 64 */
#define STATUS_READ_MAX 4096 /* Tgid/Uid/Gid are in the first lines */
#define PF_KTHREAD	0x00200000u

int procfs_init(struct procfs *pf, const char *root, uint32_t args_max, uint64_t *bytes)
{
	size_t rlen = strlen(root) + 1;
	long hz = sysconf(_SC_CLK_TCK);

	memset(pf, 0, sizeof(*pf));
	pf->bytes = bytes;
	pf->args_max = args_max;
	pf->tick_ns = 1000000000ull / (uint64_t)(hz > 0 ? hz : 100);
	pf->root = memacct_alloc(bytes, rlen);
	if (pf->root != NULL)
		memcpy(pf->root, root, rlen);
	pf->live_root = strcmp(root, "/proc") == 0;
	pf->scratch = memacct_alloc(bytes, PROCFS_SCRATCH_LEN);
	pf->pathbuf = memacct_alloc(bytes, PROCFS_PATH_MAX);
	if (pf->root == NULL || pf->scratch == NULL || pf->pathbuf == NULL)
		return -ENOMEM;
	return 0;
}

void procfs_fini(struct procfs *pf)
{
	if (pf->root != NULL)
		memacct_free(pf->bytes, pf->root, strlen(pf->root) + 1);
	memacct_free(pf->bytes, pf->scratch, PROCFS_SCRATCH_LEN);
	memacct_free(pf->bytes, pf->pathbuf, PROCFS_PATH_MAX);
	pf->root = pf->scratch = pf->pathbuf = NULL;
}

/* ---- pure parsers ---------------------------------------------------------- */

/* Parse an unsigned decimal at *p (< end); leading '-' gives 0 and is consumed. */
static bool parse_u64(const char **p, const char *end, uint64_t *ret)
{
	const char *s = *p;
	uint64_t v = 0;
	bool neg = false;

	if (s < end && *s == '-') {
		neg = true;
		s++;
	}
	if (s >= end || *s < '0' || *s > '9')
		return false;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*p = s;
	*ret = neg ? 0 : v;
	return true;
}

bool procfs_parse_pid(const char *name, uint32_t *ret_pid)
{
	const char *p = name;
	uint64_t pid;

	if (!parse_u64(&p, p + strlen(p), &pid) || *p != '\0' || pid == 0 || pid > UINT32_MAX)
		return false;
	*ret_pid = (uint32_t)pid;
	return true;
}

int proctree_parse_stat(const char *line, size_t len, struct proctree_stat *ret_st)
{
	const char *end = line + len, *p = line, *open, *close;
	struct proctree_stat st = {0};
	uint64_t v;
	size_t clen;

	if (!parse_u64(&p, end, &v) || v == 0 || v > UINT32_MAX)
		return -EINVAL;
	st.pid = (uint32_t)v;
	if (end - p < 2 || p[0] != ' ' || p[1] != '(')
		return -EINVAL;
	open = p + 1;
	close = memrchr(open, ')', (size_t)(end - open));
	if (close == NULL)
		return -EINVAL;
	clen = (size_t)(close - open - 1);
	if (clen > PROCTREE_COMM_LEN - 1)
		clen = PROCTREE_COMM_LEN - 1;
	memcpy(st.comm, open + 1, clen);
	st.comm[clen] = '\0';

	/* Fields from 3 (state) on, space separated. */
	p = close + 1;
	for (int field = 3; field <= 22; field++) {
		if (p >= end || *p != ' ')
			return -EINVAL;
		p++;
		if (field == 3) {
			if (p >= end)
				return -EINVAL;
			st.state = *p++;
			continue;
		}
		if (!parse_u64(&p, end, &v))
			return -EINVAL;
		switch (field) {
		case 4:
			st.ppid = (uint32_t)v;
			break;
		case 6:
			st.sid = (uint32_t)v;
			break;
		case 7:
			st.tty_nr = (uint32_t)v;
			break;
		case 9:
			st.kflags = (uint32_t)v;
			break;
		case 22:
			st.start_ticks = v;
			break;
		default:
			break;
		}
	}
	*ret_st = st;
	return 0;
}

/* The path of one "hier:controllers:path" line, or false when malformed. */
static bool cgroup_line(const char *l, size_t n, bool *ret_v2, size_t *ret_off, size_t *ret_len)
{
	const char *c1 = memchr(l, ':', n), *c2;

	if (c1 == NULL)
		return false;
	c2 = memchr(c1 + 1, ':', n - (size_t)(c1 + 1 - l));
	if (c2 == NULL || c2 + 1 >= l + n || c2[1] != '/')
		return false;
	*ret_v2 = c1 - l == 1 && l[0] == '0' && c2 == c1 + 1;
	*ret_off = (size_t)(c2 + 1 - l);
	*ret_len = n - *ret_off;
	return true;
}

int proctree_cgroup_pick(const char *buf, size_t len, size_t *ret_off, size_t *ret_len)
{
	size_t pos = 0, v2_off = 0, v2_len = 0, v1_off = 0, v1_len = 0, root_off = 0;
	bool have_v2 = false, have_v1 = false, have_root = false;

	while (pos < len) {
		const char *l = buf + pos, *nl = memchr(l, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - l) : len - pos, off, plen;
		bool v2;

		if (cgroup_line(l, n, &v2, &off, &plen)) {
			bool root = plen == 1;

			if (v2 && !have_v2) {
				have_v2 = true;
				v2_off = pos + off;
				v2_len = plen;
			} else if (!v2 && !root && !have_v1) {
				have_v1 = true;
				v1_off = pos + off;
				v1_len = plen;
			}
			if (root && !have_root) {
				have_root = true;
				root_off = pos + off;
			}
		}
		pos += n + 1;
	}
	if (have_v2 && (v2_len > 1 || !have_v1)) {
		*ret_off = v2_off;
		*ret_len = v2_len;
		return 2;
	}
	if (have_v1) {
		*ret_off = v1_off;
		*ret_len = v1_len;
		return 1;
	}
	if (have_root) {
		*ret_off = root_off;
		*ret_len = 1;
		return 1;
	}
	return 0;
}

static bool is_hex64(const char *p, size_t n)
{
	if (n != PROCTREE_CONTAINER_ID_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	return true;
}

static bool has_prefix(const char *p, size_t n, const char *pre)
{
	size_t m = strlen(pre);

	return n >= m && memcmp(p, pre, m) == 0;
}

/* The id in one path component c[0..n), given the component before it. */
static const char *component_id(const char *c, size_t n, const char *parent, size_t parent_n,
				bool under_kubepods)
{
	static const struct {
		const char *prefix;
		bool scope_optional;
	} forms[] = {
	    {"docker-", false},
	    {"cri-containerd-", false},
	    {"crio-", true},
	    {"libpod-", true},
	};

	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		size_t pl = strlen(forms[i].prefix), rest;

		if (!has_prefix(c, n, forms[i].prefix))
			continue;
		rest = n - pl;
		if (rest == PROCTREE_CONTAINER_ID_LEN + 6 &&
		    memcmp(c + pl + PROCTREE_CONTAINER_ID_LEN, ".scope", 6) == 0)
			rest = PROCTREE_CONTAINER_ID_LEN;
		else if (!forms[i].scope_optional)
			continue;
		if (is_hex64(c + pl, rest))
			return c + pl;
	}
	if (is_hex64(c, n) && (under_kubepods || (parent != NULL && parent_n == 6 &&
						  memcmp(parent, "docker", 6) == 0)))
		return c;
	return NULL;
}

size_t proctree_container_id(const char *cgroup_path, char out[PROCTREE_CONTAINER_ID_LEN + 1])
{
	const char *p = cgroup_path, *parent = NULL, *found = NULL;
	size_t parent_n = 0;
	bool kube = false;

	out[0] = '\0';
	if (p == NULL)
		return 0;
	while (*p != '\0') {
		const char *c, *id;
		size_t n;

		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		c = p;
		while (*p != '\0' && *p != '/')
			p++;
		n = (size_t)(p - c);
		id = component_id(c, n, parent, parent_n, kube);
		if (id != NULL)
			found = id; /* the deepest wins: the innermost container */
		if (has_prefix(c, n, "kubepods"))
			kube = true;
		parent = c;
		parent_n = n;
	}
	if (found == NULL)
		return 0;
	memcpy(out, found, PROCTREE_CONTAINER_ID_LEN);
	out[PROCTREE_CONTAINER_ID_LEN] = '\0';
	return PROCTREE_CONTAINER_ID_LEN;
}

void proctree_tty_name(uint32_t tty_nr, char out[32])
{
	uint32_t major = (tty_nr >> 8) & 0xfff;
	uint32_t minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);

	if (tty_nr == 0)
		out[0] = '\0';
	else if (major >= 136 && major <= 143)
		snprintf(out, 32, "pts%u", (major - 136) * 256 + minor);
	else if (major == 4 && minor < 64)
		snprintf(out, 32, "tty%u", minor);
	else if (major == 4)
		snprintf(out, 32, "ttyS%u", minor - 64);
	else if (major == 5 && minor == 1)
		snprintf(out, 32, "console");
	else if (major == 188)
		snprintf(out, 32, "ttyUSB%u", minor);
	else if (major == 166)
		snprintf(out, 32, "ttyACM%u", minor);
	else if (major == 229)
		snprintf(out, 32, "hvc%u", minor);
	else
		snprintf(out, 32, "%u:%u", major, minor);
}

/* ---- reading /proc ------------------------------------------------------- */

/* Read at most cap bytes of dfd/name.  Returns the count or a negative errno. */
static ssize_t read_at(int dfd, const char *name, char *buf, size_t cap)
{
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	size_t got = 0;

	if (fd < 0)
		return -errno;
	while (got < cap) {
		ssize_t r = read(fd, buf + got, cap - got);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			close(fd);
			return r;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	return (ssize_t)got;
}

/* "Key:\tA\tB..." → first two numbers, for the first line starting with key. */
static bool status_field(const char *buf, size_t len, const char *key, uint32_t *a, uint32_t *b)
{
	size_t klen = strlen(key), pos = 0;

	while (pos < len) {
		const char *l = buf + pos, *nl = memchr(l, '\n', len - pos);
		const char *end = nl != NULL ? nl : buf + len;

		if ((size_t)(end - l) > klen && memcmp(l, key, klen) == 0) {
			const char *p = l + klen;
			uint64_t v;

			while (p < end && (*p == '\t' || *p == ' '))
				p++;
			if (!parse_u64(&p, end, &v) || v > UINT32_MAX)
				return false;
			*a = (uint32_t)v;
			if (b != NULL) {
				while (p < end && (*p == '\t' || *p == ' '))
					p++;
				if (!parse_u64(&p, end, &v) || v > UINT32_MAX)
					return false;
				*b = (uint32_t)v;
			}
			return true;
		}
		pos = (size_t)(end - buf) + 1;
	}
	return false;
}

int procfs_open_pid(const struct procfs *pf, uint32_t pid)
{
	char path[PROCFS_PATH_MAX];
	int fd;

	/*
	 * Most processes an exec event names are short-lived and gone by the
	 * time it is read: a failed path walk under /proc costs about 0.9 us
	 * here, a signal 0 that finds no such process 0.08 us.  Only ESRCH
	 * counts (EPERM: it exists); a test's stand-in root is read as it is.
	 */
	if (pf->live_root && pid > 0 && pid <= INT32_MAX && kill((pid_t)pid, 0) < 0 &&
	    errno == ESRCH)
		return -ENOENT;

	if ((size_t)snprintf(path, sizeof(path), "%s/%u", pf->root, pid) >= sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int procfs_read_stat(struct procfs *pf, uint32_t pid, struct proctree_stat *ret_st)
{
	char path[PROCFS_PATH_MAX];
	ssize_t n;

	if ((size_t)snprintf(path, sizeof(path), "%s/%u/stat", pf->root, pid) >= sizeof(path))
		return -ENAMETOOLONG;
	n = read_at(AT_FDCWD, path, pf->scratch, STAT_READ_MAX);
	if (n < 0)
		return (int)n;
	return proctree_parse_stat(pf->scratch, (size_t)n, ret_st);
}

/* Intern path and its container id into e->cgroup/e->container_id (which must be empty). */
static int entry_set_cgroup(struct intern *strs, struct proc_entry *e, const char *path, size_t len)
{
	char cid[PROCTREE_CONTAINER_ID_LEN + 1];

	e->cgroup = intern_get(strs, path, len);
	if (e->cgroup == NULL)
		return -ENOMEM;
	if (proctree_container_id(e->cgroup, cid) > 0) {
		e->container_id = intern_get(strs, cid, PROCTREE_CONTAINER_ID_LEN);
		if (e->container_id == NULL)
			return -ENOMEM;
	}
	return 0;
}

int procfs_read_cgroup(struct procfs *pf, struct intern *strs, int dfd, struct proc_entry *e)
{
	ssize_t n = read_at(dfd, "cgroup", pf->scratch, PROCFS_SCRATCH_LEN);
	size_t off, len;
	int kind, r;

	if (n < 0)
		return (int)n;
	if ((size_t)n == PROCFS_SCRATCH_LEN) {
		/* Cut: ignore the partial last line. */
		char *nl = memrchr(pf->scratch, '\n', (size_t)n);

		n = nl != NULL ? nl - pf->scratch : 0;
	}
	if (n > 3 && memcmp(pf->scratch, "0::", 3) != 0)
		pf->cg_hybrid = true; /* pure v2 hosts have the one "0::" line */
	kind = proctree_cgroup_pick(pf->scratch, (size_t)n, &off, &len);
	if (kind == 0)
		return 0;
	r = entry_set_cgroup(strs, e, pf->scratch + off, len);
	return r < 0 ? r : kind;
}

/* A reference to the target of link dfd/name, or NULL when unreadable (or out of memory). */
static const char *read_link(struct procfs *pf, struct intern *strs, int dfd, const char *name,
			     uint32_t *flags)
{
	ssize_t n = readlinkat(dfd, name, pf->pathbuf, PROCFS_PATH_MAX);

	if (n <= 0)
		return NULL;
	if (n == PROCFS_PATH_MAX) {
		*flags |= PROC_F_PATH_TRUNC;
		n = PROCFS_PATH_MAX - 1;
	}
	return intern_get(strs, pf->pathbuf, (size_t)n);
}

int procfs_load(struct procfs *pf, struct intern *strs, uint32_t pid, struct proc_entry *e,
		bool *ret_zombie)
{
	struct proctree_stat st;
	uint32_t tgid = 0, dummy;
	char tty[32];
	ssize_t n;
	uint64_t v;
	int dfd, r = 0;

	memset(e, 0, sizeof(*e));
	dfd = procfs_open_pid(pf, pid);
	if (dfd < 0)
		return dfd;
	n = read_at(dfd, "stat", pf->scratch, STAT_READ_MAX);
	if (n < 0) {
		r = (int)n;
		goto out;
	}
	if (proctree_parse_stat(pf->scratch, (size_t)n, &st) != 0 || st.pid != pid) {
		r = -EINVAL;
		goto out;
	}
	e->pid = pid;
	e->ppid = st.ppid;
	e->sid = st.sid;
	e->start_ns = st.start_ticks * pf->tick_ns;
	e->flags = PROC_F_START_COARSE;
	if (st.kflags & PF_KTHREAD)
		e->flags |= PROC_F_KTHREAD;
	memcpy(e->comm, st.comm, sizeof(e->comm));
	e->uid = e->euid = e->gid = UINT32_MAX;
	e->loginuid = UINT32_MAX;
	*ret_zombie = st.state == 'Z' || st.state == 'X';

	n = read_at(dfd, "status", pf->scratch, STATUS_READ_MAX);
	if (n > 0) {
		status_field(pf->scratch, (size_t)n, "Tgid:", &tgid, NULL);
		status_field(pf->scratch, (size_t)n, "Uid:", &e->uid, &e->euid);
		status_field(pf->scratch, (size_t)n, "Gid:", &e->gid, &dummy);
	}
	if (tgid != 0 && tgid != pid) {
		r = -ESRCH;
		goto out;
	}
	n = read_at(dfd, "loginuid", pf->scratch, 32);
	if (n > 0) {
		const char *p = pf->scratch;

		if (parse_u64(&p, p + n, &v) && v <= UINT32_MAX)
			e->loginuid = (uint32_t)v;
	}
	proctree_tty_name(st.tty_nr, tty);
	if (tty[0] != '\0' && (e->tty = intern_get(strs, tty, strlen(tty))) == NULL)
		goto nomem;

	e->exe = read_link(pf, strs, dfd, "exe", &e->flags);
	e->cwd = read_link(pf, strs, dfd, "cwd", &e->flags);
	n = read_at(dfd, "cmdline", pf->scratch, pf->args_max + 1);
	if (n > 0) {
		if ((size_t)n > pf->args_max) {
			n = pf->args_max;
			e->flags |= PROC_F_ARGS_TRUNC;
		} else if (pf->scratch[n - 1] == '\0') {
			n--;
		}
		e->args = intern_get(strs, pf->scratch, (size_t)n);
		if (e->args == NULL)
			goto nomem;
		e->args_len = (uint16_t)n;
	}
	if (procfs_read_cgroup(pf, strs, dfd, e) == -ENOMEM)
		goto nomem;
out:
	close(dfd);
	if (r != 0)
		proctree_entry_put_strings(strs, e);
	return r;
nomem:
	r = -ENOMEM;
	goto out;
}
