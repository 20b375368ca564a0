/* SPDX-License-Identifier: Apache-2.0 */
#include "capture/capture.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const drop_names[DROP_REASON_MAX] = {
    [DROP_RINGBUF_FULL] = "ringbuf_full",      [DROP_SCRATCH] = "scratch",
    [DROP_PATH_TRUNCATED] = "path_truncated",  [DROP_ARGS_TRUNCATED] = "args_truncated",
    [DROP_ARGS_AT_EXIT] = "args_read_at_exit",
};
static const char *const filter_names[FILTER_REASON_MAX] = {
    [FILTER_SELF] = "self",
    [FILTER_READ_REPEAT] = "read_repeat",
    [FILTER_READ_FAILED] = "read_failed",
};
static const char *const type_names[EV_TYPE_MAX] = {
    [0] = "unknown",	[EV_EXEC] = "exec", [EV_FORK] = "fork",
    [EV_EXIT] = "exit", [EV_FILE] = "file", [EV_NET] = "net",
};

const char *capture_drop_name(int r)
{
	return r >= 0 && r < DROP_REASON_MAX ? drop_names[r] : "unknown";
}

const char *capture_filter_name(int r)
{
	return r >= 0 && r < FILTER_REASON_MAX ? filter_names[r] : "unknown";
}

const char *capture_type_name(int t)
{
	return t > 0 && t < EV_TYPE_MAX ? type_names[t] : "unknown";
}

#ifdef VIGIL_HAVE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/vfs.h>

#include "capture.skel.h"
#include "log.h"
#include "capture/ringread.h"

struct capture {
	struct capture_bpf *skel;
	struct ringread *rr;
	size_t ringbuf_bytes;
	int ncpus;
	uint64_t user_malformed;
	char pin_dir[256]; /* empty: not pinned */
	int pin_lock_fd;
	struct ev_control *ctl; /* the control map, mmap'ed */
	uint32_t gen;
	bool took_over;
	/* stash_args on each sys_enter_<name> of entry_syscalls; NULL where not attached. */
	struct bpf_link *entry_links[28];
	int entry_attached;
	/* The network guard's cgroup programs (not pinned: they end with the defender). */
	struct bpf_link *guard_links[4];
	char guard_status[160];
	char cgroup2[256]; /* where the cgroup v2 tree is mounted */
	/* The current poll's callback. */
	capture_record_fn fn;
	void *fn_ctx;
};

static int silent_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	/* libbpf's chatter would bypass our logger; errors come back as return codes. */
	(void)level;
	(void)fmt;
	(void)ap;
	return 0;
}

/* The ring hands us each record; check it before anyone reads it. */
static int on_record(void *ctx, const void *data, size_t len, uint64_t end)
{
	struct capture *cap = ctx;
	const struct ev_hdr *h = data;

	(void)end;
	if (len < sizeof(*h) || h->size != len || h->type == 0 || h->type >= EV_TYPE_MAX) {
		cap->user_malformed++;
		return 0;
	}
	return cap->fn(h, len, cap->fn_ctx);
}

static bool power_of_two(size_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

/* ---- pinning ---- */

/*
 * The maps a defender hands to the next: the ring, the counters, the dedupe
 * state, and the argument copies of calls in flight.
 */
static const char *const pinned_maps[] = {"events",    "drops",	     "filtered",
					  "delivered", "execs_seen", "read_seen",
					  "control",   "stash",	     "stash_key"};
/* The programs, pinned by their links as link_<name>; in the skeleton's link order. */
static const char *const pinned_progs[] = {"handle_exec", "handle_fork", "handle_exit", "sys_exit"};
/*
 * The syscalls whose user-memory arguments stash_args copies at entry (see
 * bpf/lib/stash.h), each from its own sys_enter_<name> tracepoint: unlike a
 * program on every syscall's entry, these cost only the calls watched.
 * Pinned as link_enter_<name>.
 */
static const char *const entry_syscalls[] = {
    "open",	"creat",    "openat",	 "openat2",   "unlink",	   "unlinkat", "rmdir",
    "rename",	"renameat", "renameat2", "link",      "linkat",	   "symlink",  "symlinkat",
    "chmod",	"fchmod",   "fchmodat",	 "fchmodat2", "chown",	   "fchown",   "lchown",
    "fchownat", "mkdir",    "mkdirat",	 "truncate",  "ftruncate", "connect",  "bind"};
#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))
_Static_assert(NELEMS(entry_syscalls) == NELEMS(((struct capture *)0)->entry_links),
	       "one link slot per entry syscall");

static int pin_path(char *buf, size_t size, const char *dir, const char *kind, const char *name)
{
	int n = snprintf(buf, size, "%s/%s%s", dir, kind, name);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* dir exists on a bpffs (mounting /sys/fs/bpf when it is not). */
static int pin_dir_ready(const char *dir, vigil_err *err)
{
	struct statfs fs;

	if (statfs("/sys/fs/bpf", &fs) == 0 && fs.f_type != BPF_FS_MAGIC &&
	    strncmp(dir, "/sys/fs/bpf/", 12) == 0 &&
	    mount("bpf", "/sys/fs/bpf", "bpf", 0, NULL) < 0)
		return verr_set(err, -errno, "cannot mount bpffs on /sys/fs/bpf: %s",
				strerror(errno));
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return verr_set(err, -errno, "cannot create %s: %s", dir, strerror(errno));
	if (statfs(dir, &fs) < 0 || fs.f_type != BPF_FS_MAGIC)
		return verr_set(err, -EINVAL, "%s is not on a bpf filesystem", dir);
	return 0;
}

/* Remove every pin of ours in dir (links first: their programs stop). */
static void unpin_all(const char *dir)
{
	char path[512];

	for (size_t i = 0; i < NELEMS(pinned_progs); i++)
		if (pin_path(path, sizeof(path), dir, "link_", pinned_progs[i]) == 0)
			unlink(path);
	for (size_t i = 0; i < NELEMS(entry_syscalls); i++)
		if (pin_path(path, sizeof(path), dir, "link_enter_", entry_syscalls[i]) == 0)
			unlink(path);
	for (size_t i = 0; i < NELEMS(pinned_maps); i++)
		if (pin_path(path, sizeof(path), dir, "", pinned_maps[i]) == 0)
			unlink(path);
	rmdir(dir);
}

/*
 * The generation of the programs a previous defender left pinned in dir: 0
 * when none, -1 when what is pinned there is not a control map of ours (a
 * lookup would write its value size into ours).
 */
static int64_t pinned_gen(const char *dir)
{
	struct ev_control c = {0};
	struct bpf_map_info info = {0};
	uint32_t len = sizeof(info), zero = 0;
	char path[512];
	int fd;

	if (pin_path(path, sizeof(path), dir, "", "control") < 0 || (fd = bpf_obj_get(path)) < 0)
		return 0;
	if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0 || info.type != BPF_MAP_TYPE_ARRAY ||
	    info.key_size != sizeof(zero) || info.value_size != sizeof(c) ||
	    info.max_entries != 1 || bpf_map_lookup_elem(fd, &zero, &c) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	return c.gen;
}

/*
 * One defender per pin directory: a second one would take the first one's
 * programs over and, failing later (its spool is locked), remove them.  An
 * abstract socket named after the directory is the lock; the kernel drops it
 * with its holder, however that dies.
 */
static int pin_lock(const char *dir, vigil_err *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, n;

	n = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "vigil-defender:%s", dir);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path) - 1)
		return verr_set(err, -ENAMETOOLONG, "bpf pin directory name too long");
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return verr_set(err, -errno, "cannot create a socket: %s", strerror(errno));
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);

	if (bind(fd, (struct sockaddr *)&sa, salen) < 0) {
		int e = errno;
		close(fd);
		return e == EADDRINUSE
			   ? verr_set(err, -EBUSY, "another defender captures with bpf_pin_dir %s",
				      dir)
			   : verr_set(err, -e, "cannot lock %s: %s", dir, strerror(e));
	}
	return fd;
}

static int set_pin_paths(struct capture *cap, vigil_err *err)
{
	char path[512];

	for (size_t i = 0; i < NELEMS(pinned_maps); i++) {
		struct bpf_map *map = bpf_object__find_map_by_name(cap->skel->obj, pinned_maps[i]);

		if (map == NULL)
			return verr_set(err, -ENOENT, "no map %s in the capture object",
					pinned_maps[i]);
		if (pin_path(path, sizeof(path), cap->pin_dir, "", pinned_maps[i]) < 0 ||
		    bpf_map__set_pin_path(map, path) < 0)
			return verr_set(err, -ENAMETOOLONG, "pin path under %s too long",
					cap->pin_dir);
	}
	return 0;
}

/*
 * Our programs are attached: let them emit (the old ones stop at once, see
 * struct ev_control), drop the old links and pin ours in their place.
 */
static int take_over(struct capture *cap, vigil_err *err)
{
	struct bpf_link *links[NELEMS(pinned_progs)] = {
	    cap->skel->links.handle_exec, cap->skel->links.handle_fork,
	    cap->skel->links.handle_exit, cap->skel->links.sys_exit};
	char path[512];
	int rc;

	__atomic_store_n(&cap->ctl->gen, cap->gen, __ATOMIC_RELEASE);
	for (size_t i = 0; i < NELEMS(pinned_progs); i++) {
		if (pin_path(path, sizeof(path), cap->pin_dir, "link_", pinned_progs[i]) < 0)
			return verr_set(err, -ENAMETOOLONG, "pin path under %s too long",
					cap->pin_dir);
		if (unlink(path) == 0)
			cap->took_over =
			    true; /* the old program detaches with its last reference */
		if ((rc = bpf_link__pin(links[i], path)) < 0)
			return verr_set(err, rc, "cannot pin %s: %s", path, strerror(-rc));
	}
	for (size_t i = 0; i < NELEMS(entry_syscalls); i++) {
		if (pin_path(path, sizeof(path), cap->pin_dir, "link_enter_", entry_syscalls[i]) <
		    0)
			return verr_set(err, -ENAMETOOLONG, "pin path under %s too long",
					cap->pin_dir);
		unlink(path);
		if (cap->entry_links[i] != NULL &&
		    (rc = bpf_link__pin(cap->entry_links[i], path)) < 0)
			return verr_set(err, rc, "cannot pin %s: %s", path, strerror(-rc));
	}
	return 0;
}

/*
 * The syscall tracepoints live in tracefs, which libbpf looks for under
 * /sys/kernel/tracing or /sys/kernel/debug/tracing; mount it where systemd
 * would when neither has it.
 */
static bool tracefs_ready(void)
{
	struct statfs fs;

	if (access("/sys/kernel/tracing/events/syscalls", F_OK) == 0 ||
	    access("/sys/kernel/debug/tracing/events/syscalls", F_OK) == 0)
		return true;
	if (statfs("/sys/kernel/tracing", &fs) == 0 && fs.f_type != TRACEFS_MAGIC &&
	    mount("nodev", "/sys/kernel/tracing", "tracefs", 0, NULL) < 0)
		log_warn("cannot mount tracefs on /sys/kernel/tracing: %s", strerror(errno));
	return access("/sys/kernel/tracing/events/syscalls", F_OK) == 0;
}

/*
 * stash_args on each watched syscall's entry.  Where it cannot be attached,
 * those calls' paths are read at exit and flagged (EVF_ARG_AT_EXIT): capture
 * goes on, and the log and the args_read_at_exit counter say so.
 */
static bool is_open_family(const char *name)
{
	return strcmp(name, "open") == 0 || strcmp(name, "creat") == 0 ||
	       strcmp(name, "openat") == 0 || strcmp(name, "openat2") == 0;
}

static void attach_entries(struct capture *cap, bool copy_open_args)
{
	char tp[64];
	int missing = 0;

	if (!tracefs_ready()) {
		log_warn("no tracefs: paths of file and socket calls are read when the call"
			 " returns, where another thread of the caller can rewrite them first");
		return;
	}
	for (size_t i = 0; i < NELEMS(entry_syscalls); i++) {
		if (!copy_open_args && is_open_family(entry_syscalls[i]))
			continue; /* chosen, and said at start: not a failure */
		snprintf(tp, sizeof(tp), "sys_enter_%s", entry_syscalls[i]);
		cap->entry_links[i] =
		    bpf_program__attach_tracepoint(cap->skel->progs.stash_args, "syscalls", tp);
		if (cap->entry_links[i] == NULL) {
			log_debug("cannot attach to syscalls/%s: %s", tp, strerror(errno));
			missing++;
			continue;
		}
		cap->entry_attached++;
	}
	if (missing > 0)
		log_warn(
		    "%d of %zu syscall entry tracepoints could not be attached; those"
		    " calls' paths are read when the call returns (VIGIL_LOG=debug names them)",
		    missing, NELEMS(entry_syscalls));
}

/* The stash's key, once: a defender taking over pinned maps keeps its predecessor's. */
static int stash_key_set(struct capture *cap, vigil_err *err)
{
	uint32_t zero = 0;
	uint64_t key = 0;
	int fd = bpf_map__fd(cap->skel->maps.stash_key);

	if (bpf_map_lookup_elem(fd, &zero, &key) == 0 && key != 0)
		return 0;
	while (key == 0)
		if (getrandom(&key, sizeof(key), 0) != sizeof(key))
			return verr_set(err, -errno, "cannot get random bytes: %s",
					strerror(errno));
	if (bpf_map_update_elem(fd, &zero, &key, BPF_ANY) < 0)
		return verr_set(err, -errno, "cannot set the stash key: %s", strerror(errno));
	return 0;
}

/*
 * The network guard's programs at the root of the cgroup v2 tree, so every
 * process's connect and bind pass them (BPF_F_ALLOW_MULTI by way of links:
 * other programs there keep working).  Without them network rules are
 * alerted only, and the defender reports why (capture_guard_status).
 */
/*
 * Where the cgroup v2 tree is mounted: /sys/fs/cgroup on a unified host,
 * /sys/fs/cgroup/unified on a hybrid one, else mounted by us (as systemd
 * would) on /run/vigil/cgroup2.  false when there is none to be had.
 */
static bool cgroup2_root(char *out, size_t len)
{
	static const char own[] = "/run/vigil/cgroup2";
	char line[4096], mnt[2048], type[64];
	FILE *f = fopen("/proc/self/mountinfo", "re");
	bool found = false;

	while (f != NULL && !found && fgets(line, sizeof(line), f) != NULL) {
		const char *sep = strstr(line, " - ");

		if (sep != NULL && sscanf(line, "%*s %*s %*s %*s %2047s", mnt) == 1 &&
		    sscanf(sep + 3, "%63s", type) == 1 && strcmp(type, "cgroup2") == 0 &&
		    strchr(mnt, '\\') == NULL)
			found = snprintf(out, len, "%s", mnt) < (int)len;
	}
	if (f != NULL)
		fclose(f);
	if (found)
		return true;
	if (mkdir("/run/vigil", 0755) < 0 && errno != EEXIST)
		return false;
	if (mkdir(own, 0755) < 0 && errno != EEXIST)
		return false;
	if (mount("cgroup2", own, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return false;
	return snprintf(out, len, "%s", own) < (int)len;
}

static void attach_guard(struct capture *cap)
{
	struct bpf_program *progs[NELEMS(cap->guard_links)] = {
	    cap->skel->progs.guard_connect4, cap->skel->progs.guard_connect6,
	    cap->skel->progs.guard_bind4, cap->skel->progs.guard_bind6};
	struct statfs fs;
	int fd;

	if (!cgroup2_root(cap->cgroup2, sizeof(cap->cgroup2)) || statfs(cap->cgroup2, &fs) < 0 ||
	    fs.f_type != CGROUP2_SUPER_MAGIC) {
		snprintf(cap->guard_status, sizeof(cap->guard_status),
			 "no cgroup v2 tree mounted, and none could be: %s", strerror(errno));
		cap->cgroup2[0] = '\0';
		return;
	}
	if ((fd = open(cap->cgroup2, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		snprintf(cap->guard_status, sizeof(cap->guard_status), "cannot open %.100s: %s",
			 cap->cgroup2, strerror(errno));
		return;
	}
	for (size_t i = 0; i < NELEMS(progs); i++) {
		cap->guard_links[i] = bpf_program__attach_cgroup(progs[i], fd);
		if (cap->guard_links[i] == NULL) {
			snprintf(cap->guard_status, sizeof(cap->guard_status),
				 "cannot attach %s at the cgroup root: %s",
				 bpf_program__name(progs[i]), strerror(errno));
			break;
		}
	}
	close(fd);
	if (cap->guard_status[0] != '\0')
		for (size_t i = 0; i < NELEMS(progs); i++) {
			bpf_link__destroy(cap->guard_links[i]);
			cap->guard_links[i] = NULL;
		}
}

bool capture_guard(const struct capture *cap, struct capture_guard *ret, char *why, size_t len)
{
	if (cap == NULL || cap->skel == NULL || cap->guard_links[0] == NULL) {
		snprintf(why, len, "%s",
			 cap == NULL || cap->skel == NULL ? "no BPF capture"
			 : cap->guard_status[0] != '\0'	  ? cap->guard_status
							  : "not attached");
		return false;
	}
	ret->entries_fd = bpf_map__fd(cap->skel->maps.net_entries);
	ret->conf_fd = bpf_map__fd(cap->skel->maps.net_conf);
	ret->cgroups_fd = bpf_map__fd(cap->skel->maps.net_cgroups);
	snprintf(ret->cgroup2, sizeof(ret->cgroup2), "%s", cap->cgroup2);
	return true;
}

/* ---- start ---- */

/* Close the ring and the control map and unload the object (pins stay). */
static void unload(struct capture *cap)
{
	for (size_t i = 0; i < NELEMS(cap->guard_links); i++) {
		bpf_link__destroy(cap->guard_links[i]);
		cap->guard_links[i] = NULL;
	}
	for (size_t i = 0; i < NELEMS(entry_syscalls); i++) {
		bpf_link__destroy(cap->entry_links[i]);
		cap->entry_links[i] = NULL;
	}
	cap->entry_attached = 0;
	ringread_close(cap->rr);
	cap->rr = NULL;
	if (cap->ctl != NULL)
		munmap(cap->ctl, (size_t)sysconf(_SC_PAGESIZE));
	cap->ctl = NULL;
	capture_bpf__destroy(cap->skel);
	cap->skel = NULL;
}

static int load_and_attach(struct capture *cap, const struct capture_opts *opts, size_t rb,
			   vigil_err *err)
{
	int rc;

	cap->skel = capture_bpf__open();
	if (cap->skel == NULL)
		return verr_set(err, -errno, "cannot open BPF program capture: %s",
				strerror(errno));
	cap->skel->rodata->self_tgid = (uint32_t)getpid();
	cap->skel->rodata->filter_read_repeat = opts->filter_read_repeat;
	cap->skel->rodata->filter_failed_reads = opts->filter_failed_reads;
	cap->skel->rodata->my_gen = cap->gen;
	/* Attached per syscall by attach_entries, and at the cgroup root by attach_guard. */
	bpf_program__set_autoattach(cap->skel->progs.stash_args, false);
	bpf_program__set_autoattach(cap->skel->progs.guard_connect4, false);
	bpf_program__set_autoattach(cap->skel->progs.guard_connect6, false);
	bpf_program__set_autoattach(cap->skel->progs.guard_bind4, false);
	bpf_program__set_autoattach(cap->skel->progs.guard_bind6, false);
	if ((rc = bpf_map__set_max_entries(cap->skel->maps.events, (uint32_t)rb)) < 0)
		return verr_set(err, rc, "cannot size the ring buffer to %zu bytes: %s", rb,
				strerror(-rc));
	if (cap->pin_dir[0] != '\0' && (rc = set_pin_paths(cap, err)) < 0)
		return rc;
	if ((rc = capture_bpf__load(cap->skel)) < 0)
		return verr_set(err, rc, "cannot load BPF program capture: %s%s", strerror(-rc),
				geteuid() != 0 ? " (the defender must run as root)"
				: cap->gen > 1
				    ? " (libbpf refuses pinned maps that differ from its own)"
				    : " (the kernel's verifier refused it)");
	if ((rc = stash_key_set(cap, err)) < 0)
		return rc;
	/* Entries first: a call whose exit the new sys_exit sees had its arguments copied. */
	attach_entries(cap, opts->copy_open_args);
	if (!opts->copy_open_args)
		log_info("copy_open_args = false: the paths of opens that fail are read when the"
			 " call returns (another thread of the caller can rewrite them first)");
	if ((rc = capture_bpf__attach(cap->skel)) < 0)
		return verr_set(err, rc, "cannot attach the capture programs: %s", strerror(-rc));
	attach_guard(cap);
	void *m = mmap(NULL, (size_t)sysconf(_SC_PAGESIZE), PROT_READ | PROT_WRITE, MAP_SHARED,
		       bpf_map__fd(cap->skel->maps.control), 0);
	if (m == MAP_FAILED)
		return verr_set(err, -errno, "cannot map the control map: %s", strerror(errno));
	cap->ctl = m;
	/* Without pins nothing is handed over: records are given back as they are read. */
	cap->rr =
	    ringread_open(bpf_map__fd(cap->skel->maps.events), rb,
			  (volatile uint64_t *)&cap->ctl->read_pos, cap->pin_dir[0] == '\0', err);
	if (cap->rr == NULL)
		return -errno;
	return cap->pin_dir[0] != '\0' ? take_over(cap, err) : 0;
}

struct capture *capture_start(const struct capture_opts *opts, vigil_err *err)
{
	struct capture *cap;
	size_t rb = opts->ringbuf_bytes ? opts->ringbuf_bytes : 8u << 20;
	int rc;

	if (!power_of_two(rb) || rb < 64 * 1024 || rb > (1u << 30)) {
		verr_set(err, -EINVAL,
			 "ring buffer size %zu must be a power of two from 64 KiB to 1 GiB", rb);
		errno = EINVAL;
		return NULL;
	}
	/* VIGIL_BPF_DEBUG=1 shows libbpf's and the verifier's own words, for bug reports. */
	if (getenv("VIGIL_BPF_DEBUG") == NULL)
		libbpf_set_print(silent_print);
	cap = calloc(1, sizeof(*cap));
	if (cap == NULL) {
		verr_set(err, -ENOMEM, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	cap->ringbuf_bytes = rb;
	cap->pin_lock_fd = -1;
	cap->ncpus = libbpf_num_possible_cpus();
	if (cap->ncpus <= 0) {
		rc = verr_set(err, cap->ncpus < 0 ? cap->ncpus : -EINVAL,
			      "cannot count possible CPUs");
		goto fail;
	}
	if (opts->pin_dir != NULL) {
		if (snprintf(cap->pin_dir, sizeof(cap->pin_dir), "%s", opts->pin_dir) >=
		    (int)sizeof(cap->pin_dir)) {
			rc = verr_set(err, -ENAMETOOLONG, "bpf pin directory name too long");
			goto fail;
		}
		if ((cap->pin_lock_fd = pin_lock(cap->pin_dir, err)) < 0) {
			rc = cap->pin_lock_fd;
			cap->pin_dir[0] = '\0'; /* not ours to unpin */
			goto fail;
		}
		if ((rc = pin_dir_ready(cap->pin_dir, err)) < 0)
			goto fail;
		int64_t old = pinned_gen(cap->pin_dir);
		if (old < 0) {
			log_warn(
			    "%s holds capture state this defender cannot read; starting afresh",
			    cap->pin_dir);
			unpin_all(cap->pin_dir);
			if ((rc = pin_dir_ready(cap->pin_dir, err)) < 0)
				goto fail;
			old = 0;
		}
		cap->gen = (uint32_t)old + 1;
	}
	rc = load_and_attach(cap, opts, rb, err);
	if (rc < 0 && cap->pin_dir[0] != '\0' && cap->gen > 1) {
		/*
		 * What was left there does not fit this defender: another ring size
		 * or version (libbpf refuses to reuse a map that differs).
		 */
		log_warn("capture state left in %s does not fit this defender (another ring size"
			 " or version; loading on it: %s); starting afresh",
			 cap->pin_dir, err->msg);
		unload(cap);
		unpin_all(cap->pin_dir);
		if ((rc = pin_dir_ready(cap->pin_dir, err)) == 0) {
			cap->gen = 1;
			rc = load_and_attach(cap, opts, rb, err);
		}
	}
	if (rc < 0)
		goto fail;
	return cap;
fail:
	capture_stop(cap);
	errno = -rc;
	return NULL;
}

int capture_poll(struct capture *cap, int timeout_ms, capture_record_fn fn, void *ctx)
{
	int n;

	cap->fn = fn;
	cap->fn_ctx = ctx;
	n = ringread_poll(cap->rr, timeout_ms, on_record, cap);
	if (n == -EINTR)
		n = 0;
	return n;
}

uint64_t capture_read_pos(const struct capture *cap)
{
	return ringread_read_pos(cap->rr);
}

void capture_commit(struct capture *cap, uint64_t pos)
{
	ringread_commit(cap->rr, pos);
}

bool capture_took_over(const struct capture *cap)
{
	return cap->took_over;
}

/*
 * The counters are read from several threads at once (the pipeline, the
 * session's heartbeats, the metrics port): each read has its own per-CPU
 * scratch, not one shared buffer.
 */
static void sum_map(const struct capture *cap, struct bpf_map *map, uint64_t *out, int n)
{
	uint64_t *percpu = calloc((size_t)cap->ncpus, sizeof(uint64_t));

	for (int i = 0; i < n; i++) {
		uint32_t key = (uint32_t)i;

		out[i] = 0;
		if (percpu == NULL ||
		    bpf_map__lookup_elem(map, &key, sizeof(key), percpu,
					 sizeof(uint64_t) * (size_t)cap->ncpus, 0) != 0)
			continue;
		for (int c = 0; c < cap->ncpus; c++)
			out[i] += percpu[c];
	}
	free(percpu);
}

void capture_read_counters(struct capture *cap, struct capture_counters *out)
{
	sum_map(cap, cap->skel->maps.delivered, out->delivered, EV_TYPE_MAX);
	sum_map(cap, cap->skel->maps.drops, out->drops, DROP_REASON_MAX);
	sum_map(cap, cap->skel->maps.filtered, out->filtered, FILTER_REASON_MAX);
	out->user_malformed = cap->user_malformed;
}

uint64_t capture_losses(const struct capture *cap)
{
	uint64_t drops[DROP_SCRATCH + 1];

	_Static_assert(DROP_RINGBUF_FULL < DROP_SCRATCH,
		       "losses are the drops map's first entries");
	sum_map(cap, cap->skel->maps.drops, drops, DROP_SCRATCH + 1);
	return drops[DROP_RINGBUF_FULL] + drops[DROP_SCRATCH];
}

uint64_t capture_exec_count(const struct capture *cap)
{
	uint64_t sum = 0;

	sum_map(cap, cap->skel->maps.execs_seen, &sum, 1);
	return sum;
}

size_t capture_ringbuf_bytes(const struct capture *cap)
{
	return cap->ringbuf_bytes;
}

const char *capture_describe(const struct capture *cap)
{
	return cap->entry_attached == (int)NELEMS(entry_syscalls)
		   ? "capture (raw tracepoints sched_process_exec/fork/exit, sys_exit;"
		     " syscall entry tracepoints for arguments)"
		   : "capture (raw tracepoints sched_process_exec/fork/exit, sys_exit;"
		     " some arguments read at exit: see the log)";
}

void capture_stop(struct capture *cap)
{
	if (cap == NULL)
		return;
	unload(cap);
	if (cap->pin_dir[0] != '\0')
		unpin_all(cap->pin_dir);
	if (cap->pin_lock_fd >= 0)
		close(cap->pin_lock_fd);
	free(cap);
}

#else /* !VIGIL_HAVE_BPF */

bool capture_guard(const struct capture *cap, struct capture_guard *ret, char *why, size_t len)
{
	(void)cap;
	(void)ret;
	snprintf(why, len, "built without BPF");
	return false;
}

struct capture *capture_start(const struct capture_opts *opts, vigil_err *err)
{
	(void)opts;
	verr_set(err, -ENOTSUP,
		 "this defender was built without BPF support (meson -Dbpf=disabled)");
	errno = ENOTSUP;
	return NULL;
}

int capture_poll(struct capture *cap, int timeout_ms, capture_record_fn fn, void *ctx)
{
	(void)cap;
	(void)timeout_ms;
	(void)fn;
	(void)ctx;
	return -ENOTSUP;
}

void capture_read_counters(struct capture *cap, struct capture_counters *out)
{
	(void)cap;
	memset(out, 0, sizeof(*out));
}

uint64_t capture_read_pos(const struct capture *cap)
{
	(void)cap;
	return 0;
}

void capture_commit(struct capture *cap, uint64_t pos)
{
	(void)cap;
	(void)pos;
}

bool capture_took_over(const struct capture *cap)
{
	(void)cap;
	return false;
}

uint64_t capture_losses(const struct capture *cap)
{
	(void)cap;
	return 0;
}

uint64_t capture_exec_count(const struct capture *cap)
{
	(void)cap;
	return 0;
}

size_t capture_ringbuf_bytes(const struct capture *cap)
{
	(void)cap;
	return 0;
}

const char *capture_describe(const struct capture *cap)
{
	(void)cap;
	return "none";
}

void capture_stop(struct capture *cap)
{
	(void)cap;
}

#endif
