// SPDX-License-Identifier: GPL-2.0
/*
 * Capture: what processes do, from the kernel.
 *
 * Process life: raw tracepoints sched_process_{exec,fork,exit}.
 * File and network syscalls: the raw tracepoint sys_exit only (decide,
 * resolve paths, emit with the result).  x86_64 keeps a syscall's number
 * (orig_ax) and arguments (di, si, dx, r10, r8, r9) in pt_regs through its
 * exit, and none of the watched syscalls changes them, so the arguments are
 * read there: no program on sys_enter, which every syscall on the host would
 * pay for, and nothing carried from entry to exit.  Raw tracepoints need no
 * tracefs and cost least per call; kprobes and fentry are not available on
 * the project's kernels.  x86_64 syscall numbers.
 *
 * Decide early and cheaply: the defender's own activity is dropped first;
 * read-only opens are the bulk of all file events, so a failed one is not
 * reported and a successful one only the first time a process opens that
 * inode (LRU); everything else is reported.  Every loss is counted by reason.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "events.h"
#include "lib/maps.h"
#include "lib/path.h"
#include "lib/stash.h"
#include "lib/task.h"
#include "lib/untrusted.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by the defender before load. */
const volatile __u32 self_tgid = 0;
const volatile bool filter_read_repeat = true;
const volatile bool filter_failed_reads = true;

#define AT_FDCWD     -100
#define EPERM	     1
#define EINPROGRESS  115
#define AT_REMOVEDIR 0x200
#define O_ACCMODE    00000003
#define O_RDONLY     00000000
#define O_CREAT	     00000100
#define O_WRONLY     00000001
#define O_TRUNC	     00001000
#define AF_UNIX	     1
#define AF_INET	     2
#define AF_INET6     10

#include "lib/guard.h"

/* x86_64 syscall numbers of what we watch. */
enum {
	NR_open = 2,
	NR_connect = 42,
	NR_accept = 43,
	NR_bind = 49,
	NR_listen = 50,
	NR_truncate = 76,
	NR_ftruncate = 77,
	NR_rename = 82,
	NR_mkdir = 83,
	NR_rmdir = 84,
	NR_creat = 85,
	NR_link = 86,
	NR_unlink = 87,
	NR_symlink = 88,
	NR_chmod = 90,
	NR_fchmod = 91,
	NR_chown = 92,
	NR_fchown = 93,
	NR_lchown = 94,
	NR_openat = 257,
	NR_mkdirat = 258,
	NR_fchownat = 260,
	NR_unlinkat = 263,
	NR_renameat = 264,
	NR_linkat = 265,
	NR_symlinkat = 266,
	NR_fchmodat = 268,
	NR_accept4 = 288,
	NR_renameat2 = 316,
	NR_openat2 = 437,
	NR_fchmodat2 = 452,
};

/*
 * ia32 syscalls (a 32-bit program, or int 0x80 from any program) have their
 * own numbers and argument registers; left undecoded they would be a way to
 * open and write files unseen.  i386 numbers of what we watch.
 */
enum {
	NR32_open = 5,
	NR32_creat = 8,
	NR32_link = 9,
	NR32_unlink = 10,
	NR32_chmod = 15,
	NR32_lchown16 = 16,
	NR32_rename = 38,
	NR32_mkdir = 39,
	NR32_rmdir = 40,
	NR32_symlink = 83,
	NR32_truncate = 92,
	NR32_ftruncate = 93,
	NR32_fchmod = 94,
	NR32_fchown16 = 95,
	NR32_socketcall = 102,
	NR32_chown16 = 182,
	NR32_truncate64 = 193,
	NR32_ftruncate64 = 194,
	NR32_lchown = 198,
	NR32_fchown = 207,
	NR32_chown = 212,
	NR32_openat = 295,
	NR32_mkdirat = 296,
	NR32_fchownat = 298,
	NR32_unlinkat = 301,
	NR32_renameat = 302,
	NR32_linkat = 303,
	NR32_symlinkat = 304,
	NR32_fchmodat = 306,
	NR32_renameat2 = 353,
	NR32_bind = 361,
	NR32_connect = 362,
	NR32_listen = 363,
	NR32_accept4 = 364,
	NR32_openat2 = 437,
	NR32_fchmodat2 = 452,
};

/* socketcall(call, args): the calls we watch. */
enum { SYS_BIND = 2, SYS_CONNECT = 3, SYS_LISTEN = 4, SYS_ACCEPT = 5, SYS_ACCEPT4 = 18 };

#define TS_COMPAT 0x0002 /* x86 thread_info.status: an ia32 syscall is running */

/* A watched syscall as sys_exit finds it: its x86_64 number and arguments. */
struct sysargs {
	__u64 args[6];
	__u32 nr;
	__u32 flags; /* event header flags to add (EVF_COMPAT) */
};

/*
 * Read-only opens already reported: a direct-mapped cache of 64-bit hashes
 * of (process, its exec, inode).  An array lookup is inlined by the verifier
 * and a slot is one 8-byte load and compare, where an LRU hash costs a call,
 * a jhash and a bucket walk on every read-only open on the host.  A slot
 * taken over by another key only means the next open of the evicted one is
 * reported again (an extra event, never a lost one); a false "seen" needs two
 * live keys with the same 64-bit hash in the same slot.  The process start
 * time and exec count are in the key so that a reused pid, or a process that
 * execs another program, starts with nothing seen.
 */
#define READ_SEEN_SLOTS (1 << 17)

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, READ_SEEN_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} read_seen SEC(".maps");

static __always_inline bool watched(long nr)
{
	switch (nr) {
	case NR_open:
	case NR_creat:
	case NR_openat:
	case NR_openat2:
	case NR_unlink:
	case NR_unlinkat:
	case NR_rmdir:
	case NR_rename:
	case NR_renameat:
	case NR_renameat2:
	case NR_chmod:
	case NR_fchmod:
	case NR_fchmodat:
	case NR_fchmodat2:
	case NR_chown:
	case NR_fchown:
	case NR_lchown:
	case NR_fchownat:
	case NR_link:
	case NR_linkat:
	case NR_symlink:
	case NR_symlinkat:
	case NR_mkdir:
	case NR_mkdirat:
	case NR_truncate:
	case NR_ftruncate:
	case NR_connect:
	case NR_accept:
	case NR_accept4:
	case NR_bind:
	case NR_listen:
		return true;
	default:
		return false;
	}
}

/* __X32_SYSCALL_BIT (arch/x86/include/uapi/asm/unistd.h). */
#define X32_SYSCALL_BIT 0x40000000L

/* The x86_64 number of a watched ia32 syscall, or 0. */
static __always_inline long native_nr(long nr32)
{
	switch (nr32) {
	case NR32_open:
		return NR_open;
	case NR32_creat:
		return NR_creat;
	case NR32_link:
		return NR_link;
	case NR32_unlink:
		return NR_unlink;
	case NR32_chmod:
		return NR_chmod;
	case NR32_lchown16:
	case NR32_lchown:
		return NR_lchown;
	case NR32_rename:
		return NR_rename;
	case NR32_mkdir:
		return NR_mkdir;
	case NR32_rmdir:
		return NR_rmdir;
	case NR32_symlink:
		return NR_symlink;
	case NR32_truncate:
	case NR32_truncate64:
		return NR_truncate;
	case NR32_ftruncate:
	case NR32_ftruncate64:
		return NR_ftruncate;
	case NR32_fchmod:
		return NR_fchmod;
	case NR32_fchown16:
	case NR32_fchown:
		return NR_fchown;
	case NR32_chown16:
	case NR32_chown:
		return NR_chown;
	case NR32_openat:
		return NR_openat;
	case NR32_mkdirat:
		return NR_mkdirat;
	case NR32_fchownat:
		return NR_fchownat;
	case NR32_unlinkat:
		return NR_unlinkat;
	case NR32_renameat:
		return NR_renameat;
	case NR32_linkat:
		return NR_linkat;
	case NR32_symlinkat:
		return NR_symlinkat;
	case NR32_fchmodat:
		return NR_fchmodat;
	case NR32_renameat2:
		return NR_renameat2;
	case NR32_bind:
		return NR_bind;
	case NR32_connect:
		return NR_connect;
	case NR32_listen:
		return NR_listen;
	case NR32_accept4:
		return NR_accept4;
	case NR32_openat2:
		return NR_openat2;
	case NR32_fchmodat2:
		return NR_fchmodat2;
	case NR32_socketcall:
		return -1; /* decoded from its argument block */
	default:
		return 0;
	}
}

/*
 * An ia32 syscall as its x86_64 equivalent in a: arguments from ebx, ecx,
 * edx, esi, edi, ebp (32 bits each); socketcall's from the block of 32-bit
 * words ecx points to.  false when it is not one we watch, or when
 * socketcall's block cannot be read (the kernel could not read it either:
 * the call failed with EFAULT).
 */
static __always_inline bool compat_args(struct pt_regs *regs, long nr32, struct sysargs *a)
{
	long nr = native_nr(nr32);

	a->args[0] = (__u32)regs->bx;
	a->args[1] = (__u32)regs->cx;
	a->args[2] = (__u32)regs->dx;
	a->args[3] = (__u32)regs->si;
	a->args[4] = (__u32)regs->di;
	a->args[5] = (__u32)regs->bp;
	if (nr == -1) {
		__u32 w[3] = {};

		switch ((__u32)regs->bx) {
		case SYS_BIND:
			nr = NR_bind;
			break;
		case SYS_CONNECT:
			nr = NR_connect;
			break;
		case SYS_LISTEN:
			nr = NR_listen;
			break;
		case SYS_ACCEPT:
			nr = NR_accept;
			break;
		case SYS_ACCEPT4:
			nr = NR_accept4;
			break;
		default:
			return false;
		}
		if (bpf_probe_read_user(w, sizeof(w), (void *)(unsigned long)(__u32)regs->cx) != 0)
			return false;
		a->args[0] = w[0];
		a->args[1] = w[1];
		a->args[2] = w[2];
	}
	if (nr32 == NR32_truncate64 || nr32 == NR32_ftruncate64)
		a->args[1] |= a->args[2] << 32; /* the length as two halves */
	a->nr = nr;
	return nr > 0;
}

static __always_inline void *scratch_rec(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&rec_scratch, &zero);
}

static __always_inline struct path_buf *scratch_path(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&path_scratch, &zero);
}

/*
 * The file behind fd in task (the current task, from
 * bpf_get_current_task_btf), or NULL.  Through the BTF task pointer the
 * loads are plain (fault-checked) memory loads, not helper calls: this runs
 * for every watched syscall.
 */
static __always_inline struct file *fd_file(struct task_struct *task, long fd)
{
	struct fdtable *fdt;
	struct file *f = NULL;
	unsigned long slot;

	fdt = task->files->fdt;
	if (fd < 0 || fd >= fdt->max_fds)
		return NULL;
	slot = (unsigned long)fdt->fd + fd * sizeof(struct file *);
	/*
	 * The slot is a bare struct file pointer, which BTF cannot type; struct
	 * kiocb starts with one (ki_filp), so reading the slot as a kiocb is a
	 * plain load.  Kernels where it does not start there take the helper.
	 */
	if (bpf_core_field_offset(struct kiocb, ki_filp) == 0)
		return UNTRUSTED(struct kiocb, slot)->ki_filp;
	bpf_probe_read_kernel(&f, sizeof(f), (void *)slot);
	return f;
}

/* Append the absolute path of p to rec at off; returns its length (0 and flag on failure). */
static __always_inline __u32 put_path(char *rec, __u32 off, struct path_buf *pb,
				      const struct path *p, __u32 *flags, __u32 trunc_flag)
{
	struct walked w = path_walk(pb, BPF_CORE_READ(p, mnt), BPF_CORE_READ(p, dentry));

	if (w.truncated)
		*flags |= trunc_flag;
	return path_copy(rec, off, pb, w);
}

/* Append a user-space string; returns its length with NUL, 0 when unreadable. */
static __always_inline __u32 put_user_str(char *rec, __u32 off, const char *uptr, __u32 *flags)
{
	long n = bpf_probe_read_user_str(&rec[off & REC_OFF_MASK], EV_PATH_MAX, uptr);

	if (n <= 0) {
		*flags |= EVF_READ_FAIL;
		return 0;
	}
	return (__u32)n & (EV_PATH_MAX * 2 - 1);
}

/*
 * For a relative name just written at rec[name_off]: append the absolute
 * directory it is relative to (dirfd's path, or the cwd).  Returns its length.
 */
static __always_inline __u32 put_base(char *rec, __u32 off, __u32 name_off, __u32 name_len,
				      long dirfd, struct task_struct *task, struct path_buf *pb,
				      __u32 *flags)
{
	const struct path *p;
	struct file *f;

	if (name_len == 0 || rec[name_off & REC_OFF_MASK] == '/')
		return 0;
	if ((int)dirfd == AT_FDCWD) {
		struct fs_struct *fs = BPF_CORE_READ(task, fs);
		if (!fs) {
			*flags |= EVF_NO_BASE;
			return 0;
		}
		p = __builtin_preserve_access_index(&fs->pwd);
	} else {
		f = fd_file(task, (int)dirfd);
		if (!f) {
			*flags |= EVF_NO_BASE;
			return 0;
		}
		p = __builtin_preserve_access_index(&f->f_path);
	}
	return put_path(rec, off, pb, p, flags, EVF_NO_BASE);
}

/* ---- process life ---- */

SEC("raw_tracepoint/sched_process_exec")
int handle_exec(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *task = (struct task_struct *)ctx->args[0];
	struct linux_binprm *bprm = (struct linux_binprm *)ctx->args[2];
	struct path_buf *pb = scratch_path();
	char *rec = scratch_rec();
	struct ev_exec *e;
	struct file *exe;
	__u32 off, n;

	if (self_tgid && (bpf_get_current_pid_tgid() >> 32) == self_tgid) {
		count_filtered(FILTER_SELF);
		return 0;
	}
	count_in(&execs_seen, 0);
	if (!rec || !pb) {
		count_drop(DROP_SCRATCH);
		return 0;
	}
	e = (struct ev_exec *)rec;
	hdr_fill(&e->hdr, EV_EXEC, task);
	e->sid = BPF_CORE_READ(task, signal, pids[PIDTYPE_SID], numbers[0].nr);
	e->loginuid = BPF_CORE_READ(task, loginuid.val);
	e->start_ns = BPF_CORE_READ(task, start_boottime);
	e->argc = BPF_CORE_READ(bprm, argc);
	e->exe_flags = 0;
	e->pad = 0;
	e->tty[0] = '\0';
	struct tty_struct *tty = BPF_CORE_READ(task, signal, tty);
	if (tty)
		bpf_probe_read_kernel_str(e->tty, sizeof(e->tty), &tty->name);

	off = sizeof(*e);
	/* The executable, resolved: what actually runs, whatever name was used. */
	exe = BPF_CORE_READ(bprm, file);
	n = put_path(rec, off, pb, __builtin_preserve_access_index(&exe->f_path), &e->hdr.flags,
		     EVF_TRUNC_PATH);
	e->filename_len = n;
	off += n;
	if (BPF_CORE_READ(exe, f_inode, __i_nlink) == 0)
		e->exe_flags |= EXE_DELETED;
	char prefix[6];
	const unsigned char *dname = BPF_CORE_READ(exe, f_path.dentry, d_name.name);
	if (bpf_probe_read_kernel(prefix, sizeof(prefix), dname) == 0 && prefix[0] == 'm' &&
	    prefix[1] == 'e' && prefix[2] == 'm' && prefix[3] == 'f' && prefix[4] == 'd' &&
	    prefix[5] == ':')
		e->exe_flags |= EXE_MEMFD;

	/* argv as the new program sees it: NUL-separated in its memory. */
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	unsigned long a0 = BPF_CORE_READ(mm, arg_start), a1 = BPF_CORE_READ(mm, arg_end);
	__u32 alen = a1 > a0 ? a1 - a0 : 0;
	if (alen > EV_ARGS_MAX - 1) {
		alen = EV_ARGS_MAX - 1;
		e->hdr.flags |= EVF_TRUNC_ARGS;
		count_drop(DROP_ARGS_TRUNCATED);
	}
	if (alen > 0 &&
	    bpf_probe_read_user(&rec[off & REC_OFF_MASK], alen & STR_MASK, (void *)a0) == 0) {
		rec[(off + alen) & REC_OFF_MASK] = '\0';
		e->args_len = alen + 1;
	} else {
		e->args_len = 0;
		if (alen > 0)
			e->hdr.flags |= EVF_READ_FAIL;
	}
	off += e->args_len;

	struct fs_struct *fs = BPF_CORE_READ(task, fs);
	if (fs) {
		n = put_path(rec, off, pb, __builtin_preserve_access_index(&fs->pwd), &e->hdr.flags,
			     EVF_NO_CWD);
	} else {
		n = 0;
		e->hdr.flags |= EVF_NO_CWD;
	}
	e->cwd_len = n;
	off += n;
	if (e->hdr.flags & EVF_TRUNC_PATH)
		count_drop(DROP_PATH_TRUNCATED);
	e->hdr.size = off;
	emit(rec, off, EV_EXEC);
	return 0;
}

SEC("raw_tracepoint/sched_process_fork")
int handle_fork(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *parent = (struct task_struct *)ctx->args[0];
	struct task_struct *child = (struct task_struct *)ctx->args[1];
	struct ev_fork e = {};

	/* A new thread is not a new process. */
	if (BPF_CORE_READ(child, tgid) == BPF_CORE_READ(parent, tgid))
		return 0;
	if (self_tgid && (bpf_get_current_pid_tgid() >> 32) == self_tgid) {
		count_filtered(FILTER_SELF);
		return 0;
	}
	hdr_fill(&e.hdr, EV_FORK, parent);
	e.hdr.size = sizeof(e);
	e.child_pid = BPF_CORE_READ(child, tgid);
	e.child_start_ns = BPF_CORE_READ(child, start_boottime);
	emit(&e, sizeof(e), EV_FORK);
	return 0;
}

SEC("raw_tracepoint/sched_process_exit")
int handle_exit(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *task = (struct task_struct *)ctx->args[0];
	bool group_dead = (bool)ctx->args[1];
	struct ev_exit e = {};

	/* A thread that dies inside a watched call frees the slot its entry took. */
	stash_release(stash_held(bpf_get_current_pid_tgid()));
	/* Only the last thread's exit ends the process. */
	if (!group_dead)
		return 0;
	if (self_tgid && BPF_CORE_READ(task, tgid) == self_tgid)
		return 0;
	hdr_fill(&e.hdr, EV_EXIT, task);
	e.hdr.size = sizeof(e);
	e.exit_code = BPF_CORE_READ(task, exit_code);
	e.start_ns = BPF_CORE_READ(task, start_boottime);
	emit(&e, sizeof(e), EV_EXIT);
	return 0;
}

/* ---- syscalls ---- */

static __always_inline __u64 mix64(__u64 x)
{
	x ^= x >> 31;
	x *= 0x7fb5d329728ea185ULL;
	x ^= x >> 27;
	x *= 0x81dadef4bc2dd44dULL;
	x ^= x >> 33;
	return x;
}

/*
 * Whether a read-only open of fd should be reported: the first one per
 * (process, exec, inode).  The inode is its number and generation: a file
 * created on a removed file's number (ext4 reuses them at once) is another
 * file, whose first read a read model must see.
 */
static __always_inline bool read_is_new(struct task_struct *task, long fd)
{
	struct file *f = fd_file(task, fd);
	struct task_struct *leader;
	struct inode *ino;
	__u32 idx;
	__u64 h, *slot;

	if (!f)
		return true;
	ino = UNTRUSTED(struct file, f)->f_inode;
	leader = UNTRUSTED(struct task_struct, task->group_leader);
	h = mix64(((__u64)ino->i_sb->s_dev << 32) ^ ino->i_ino);
	h = mix64(h ^ ino->i_generation ^ leader->start_boottime ^ ((__u64)task->tgid << 40));
	h = mix64(h ^ leader->self_exec_id) | 1; /* 0 is an empty slot */
	idx = h >> 40;
	idx &= READ_SEEN_SLOTS - 1;
	slot = bpf_map_lookup_elem(&read_seen, &idx);
	if (!slot)
		return true;
	if (*slot == h) {
		count_filtered(FILTER_READ_REPEAT);
		return false;
	}
	*slot = h;
	return true;
}

/* What a file syscall works on, from its number and arguments (pointers into user memory). */
struct operands {
	const char *name;  /* the path operated on */
	const char *name2; /* rename/link: the new name; symlink: the target text */
	const void *how;   /* openat2: its struct open_how */
	long dirfd;	   /* what a relative name is relative to */
	long dirfd2;	   /* the same for name2; -1: name2 is not a path */
	long fd;	   /* fd-based calls: the file operated on */
	__u32 op;
	__u32 flags; /* open flags (openat2: filled in from how) */
	__u32 mode;
};

static __always_inline bool file_operands(const struct sysargs *a, struct operands *o)
{
	o->name = o->name2 = NULL;
	o->how = NULL;
	o->dirfd = o->dirfd2 = AT_FDCWD;
	o->fd = -1;
	o->flags = o->mode = 0;
	switch (a->nr) {
	case NR_open:
		o->op = FOP_OPEN;
		o->name = (void *)a->args[0];
		o->flags = a->args[1];
		o->mode = a->args[2];
		break;
	case NR_creat:
		o->op = FOP_OPEN;
		o->name = (void *)a->args[0];
		o->flags = O_CREAT | O_WRONLY | O_TRUNC;
		o->mode = a->args[1];
		break;
	case NR_openat:
		o->op = FOP_OPEN;
		o->dirfd = a->args[0];
		o->name = (void *)a->args[1];
		o->flags = a->args[2];
		o->mode = a->args[3];
		break;
	case NR_openat2:
		o->op = FOP_OPEN;
		o->dirfd = a->args[0];
		o->name = (void *)a->args[1];
		o->how = (void *)a->args[2];
		break;
	case NR_unlink:
		o->op = FOP_UNLINK;
		o->name = (void *)a->args[0];
		break;
	case NR_rmdir:
		o->op = FOP_RMDIR;
		o->name = (void *)a->args[0];
		break;
	case NR_unlinkat:
		o->op = (a->args[2] & AT_REMOVEDIR) ? FOP_RMDIR : FOP_UNLINK;
		o->dirfd = a->args[0];
		o->name = (void *)a->args[1];
		break;
	case NR_rename:
		o->op = FOP_RENAME;
		o->name = (void *)a->args[0];
		o->name2 = (void *)a->args[1];
		break;
	case NR_renameat:
	case NR_renameat2:
		o->op = FOP_RENAME;
		o->dirfd = a->args[0];
		o->name = (void *)a->args[1];
		o->dirfd2 = a->args[2];
		o->name2 = (void *)a->args[3];
		break;
	case NR_link:
		o->op = FOP_LINK;
		o->name = (void *)a->args[0];
		o->name2 = (void *)a->args[1];
		break;
	case NR_linkat:
		o->op = FOP_LINK;
		o->dirfd = a->args[0];
		o->name = (void *)a->args[1];
		o->dirfd2 = a->args[2];
		o->name2 = (void *)a->args[3];
		break;
	/* symlink: name is the link created, name2 its target text (not resolved). */
	case NR_symlink:
		o->op = FOP_SYMLINK;
		o->name2 = (void *)a->args[0];
		o->name = (void *)a->args[1];
		o->dirfd2 = -1;
		break;
	case NR_symlinkat:
		o->op = FOP_SYMLINK;
		o->name2 = (void *)a->args[0];
		o->dirfd = a->args[1];
		o->name = (void *)a->args[2];
		o->dirfd2 = -1;
		break;
	case NR_chmod:
		o->op = FOP_CHMOD;
		o->name = (void *)a->args[0];
		o->mode = a->args[1];
		break;
	case NR_fchmod:
		o->op = FOP_CHMOD;
		o->fd = a->args[0];
		o->mode = a->args[1];
		break;
	case NR_fchmodat:
	case NR_fchmodat2:
		o->op = FOP_CHMOD;
		o->dirfd = a->args[0];
		o->name = (void *)a->args[1];
		o->mode = a->args[2];
		break;
	case NR_chown:
	case NR_lchown:
		o->op = FOP_CHOWN;
		o->name = (void *)a->args[0];
		break;
	case NR_fchown:
		o->op = FOP_CHOWN;
		o->fd = a->args[0];
		break;
	case NR_fchownat:
		o->op = FOP_CHOWN;
		o->dirfd = a->args[0];
		o->name = (void *)a->args[1];
		break;
	case NR_mkdir:
		o->op = FOP_MKDIR;
		o->name = (void *)a->args[0];
		o->mode = a->args[1];
		break;
	case NR_mkdirat:
		o->op = FOP_MKDIR;
		o->dirfd = a->args[0];
		o->name = (void *)a->args[1];
		o->mode = a->args[2];
		break;
	case NR_truncate:
		o->op = FOP_TRUNCATE;
		o->name = (void *)a->args[0];
		break;
	case NR_ftruncate:
		o->op = FOP_TRUNCATE;
		o->fd = a->args[0];
		break;
	default:
		return false;
	}
	return true;
}

/*
 * What a relative name of task resolves against, as an identity to compare
 * (not a path): dirfd's file, or the cwd's dentry.  Another thread can
 * chdir, or dup2 another directory onto dirfd, while the call runs.
 */
static __always_inline __u64 base_id(struct task_struct *task, long dirfd)
{
	if ((int)dirfd == AT_FDCWD)
		return (__u64)UNTRUSTED(struct task_struct, task)->fs->pwd.dentry;
	return (__u64)fd_file(task, (int)dirfd);
}

static __always_inline bool open_is_read(__u32 flags)
{
	return (flags & O_ACCMODE) == O_RDONLY && !(flags & (O_CREAT | O_TRUNC));
}

#define SOCKADDR_STASH 128 /* sockaddr_un and sockaddr_in6 fit */

/*
 * Per-syscall enter tracepoints (attached by the defender to each watched
 * syscall's sys_enter_* event): copy what the call was given, see stash.h.
 * Read-only opens copy nothing when failed ones are filtered: a successful
 * one's path comes from its new file, a failed one is not reported.
 */
SEC("tracepoint")
int stash_args(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct task_struct *task;
	struct pt_regs *regs;
	struct sysargs a = {};
	struct operands o;
	struct open_how how = {};
	struct stash *s;
	long n;

	if (self_tgid && (id >> 32) == self_tgid)
		return 0;
	task = bpf_get_current_task_btf();
	/*
	 * The arguments from the caller's registers: each sys_enter_* record
	 * holds only its own syscall's arguments, and the kernel refuses to
	 * attach a program that reads past them, so one program for all of them
	 * reads no more of the record than the syscall number.
	 */
	regs = UNTRUSTED(struct pt_regs, bpf_task_pt_regs(task));
	a.nr = ctx->id;
	a.args[0] = regs->di;
	a.args[1] = regs->si;
	a.args[2] = regs->dx;
	a.args[3] = regs->r10;
	a.args[4] = regs->r8;
	a.args[5] = regs->r9;
	if (a.nr == NR_connect || a.nr == NR_bind) {
		__u64 len = a.args[2] > SOCKADDR_STASH ? SOCKADDR_STASH : a.args[2];

		if ((s = stash_claim(id)) == NULL)
			return 0;
		s->nr = a.nr;
		s->flags = 0;
		if (len > 0 && bpf_probe_read_user(s->name, len, (void *)a.args[1]) == 0) {
			s->len = len;
			s->flags = STASH_NAME;
		}
		return 0;
	}
	if (!file_operands(&a, &o))
		return 0;
	if (o.how && bpf_probe_read_user(&how, sizeof(how), o.how) == 0)
		o.flags = how.flags;
	if (o.op == FOP_OPEN && filter_failed_reads && open_is_read(o.flags) && !o.how)
		return 0;
	if ((s = stash_claim(id)) == NULL)
		return 0;
	s->nr = a.nr;
	s->flags = 0;
	if (o.how) {
		s->how_flags = how.flags;
		s->how_mode = how.mode;
		s->flags |= STASH_HOW;
	}
	if (o.name && (n = bpf_probe_read_user_str(s->name, EV_PATH_MAX, o.name)) > 0) {
		s->len = n;
		s->flags |= STASH_NAME;
		s->base = base_id(task, o.dirfd);
	}
	if (o.name2 && (n = bpf_probe_read_user_str(s->name2, EV_PATH_MAX, o.name2)) > 0) {
		s->len2 = n;
		s->flags |= STASH_NAME2;
		s->base2 = o.dirfd2 != -1 ? base_id(task, o.dirfd2) : 0;
	}
	s->fdfile = o.fd >= 0 ? (__u64)fd_file(task, o.fd) : 0;
	return 0;
}

/*
 * A name argument into rec at off: the copy made when the call entered, or
 * (none made) the caller's memory now, flagged.  With a copy, the caller's
 * memory is read again: a difference means another thread rewrote it while
 * the call ran (EVF_RACED).  Returns its length with NUL.
 */
static __always_inline __u32 put_name(char *rec, __u32 off, const char *uptr, const char *copy,
				      struct path_buf *pb, __u32 *flags)
{
	long n, now;

	if (!copy) {
		*flags |= EVF_ARG_AT_EXIT;
		return put_user_str(rec, off, uptr, flags);
	}
	n = bpf_probe_read_kernel_str(&rec[off & REC_OFF_MASK], EV_PATH_MAX, copy);
	if (n <= 0)
		return 0;
	now = bpf_probe_read_user_str(pb->b, EV_PATH_MAX, uptr);
	if (now != n || bytes_differ(copy, pb->b, n))
		*flags |= EVF_RACED;
	return (__u32)n & (EV_PATH_MAX * 2 - 1);
}

/* openat2's flags and mode: from the entry copy, else from the caller's memory now. */
static __always_inline void open_how_now(struct operands *o, const struct stash *st,
					 __u32 *hdr_flags)
{
	struct open_how how = {};

	if (!o->how)
		return;
	if (st && (st->flags & STASH_HOW)) {
		o->flags = st->how_flags;
		o->mode = st->how_mode;
		return;
	}
	bpf_probe_read_user(&how, sizeof(how), o->how);
	o->flags = how.flags;
	o->mode = how.mode;
	if (hdr_flags)
		*hdr_flags |= EVF_ARG_AT_EXIT;
}

/*
 * Whether a is a read-only open the kernel side drops (counted): a failed
 * one, or one of an inode this process opened before.  Decided first thing
 * in sys_exit, in few instructions: these are the bulk of all file syscalls.
 */
static __always_inline bool read_filtered(const struct sysargs *a, long ret,
					  struct task_struct *task, const struct stash *st)
{
	struct operands o;

	if (a->nr != NR_openat && a->nr != NR_open && a->nr != NR_openat2)
		return false;
	file_operands(a, &o);
	open_how_now(&o, st, NULL);
	if (!open_is_read(o.flags))
		return false;
	if (ret < 0) {
		if (!filter_failed_reads)
			return false;
		count_filtered(FILTER_READ_FAILED);
		return true;
	}
	return filter_read_repeat && !read_is_new(task, ret);
}

/*
 * A watched file syscall that returned ret in task (the current task,
 * BTF-typed); st: what its entry copied, or NULL.
 */
static __always_inline int file_event(struct sysargs *a, long ret, struct task_struct *task,
				      const struct stash *st)
{
	struct operands o;
	struct path_buf *pb;
	struct ev_file *e;
	char *rec;

	if (!file_operands(a, &o))
		return 0;
	rec = scratch_rec();
	pb = scratch_path();
	if (!rec || !pb) {
		count_drop(DROP_SCRATCH);
		return 0;
	}
	e = (struct ev_file *)rec;
	hdr_fill(&e->hdr, EV_FILE, task);
	e->hdr.flags |= a->flags;
	open_how_now(&o, st, &e->hdr.flags);
	e->op = o.op;
	e->syscall_nr_lo = a->nr;
	e->open_flags = o.op == FOP_OPEN ? o.flags : 0;
	e->mode = o.mode;
	e->owner_uid = (__u32)-1;
	e->owner_gid = (__u32)-1;
	if (o.op == FOP_CHOWN) {
		int i = a->nr == NR_fchownat ? 2 : 1;
		e->owner_uid = i == 2 ? a->args[2] : a->args[1];
		e->owner_gid = i == 2 ? a->args[3] : a->args[2];
	}
	e->result = ret;
	e->length = o.op == FOP_TRUNCATE ? (__s64)a->args[1] : 0;
	e->path_len = e->path2_len = e->base_len = e->base2_len = 0;

	__u32 off = sizeof(*e), n;
	/* A successful open or an fd-based call: the kernel's own absolute path for the file. */
	struct file *f = NULL;
	if (o.op == FOP_OPEN && ret >= 0) {
		f = fd_file(task, ret);
	} else if (o.fd >= 0) {
		f = fd_file(task, o.fd);
		if (!st)
			e->hdr.flags |= EVF_ARG_AT_EXIT;
		else if (st->fdfile != (__u64)f)
			e->hdr.flags |= EVF_RACED; /* another file was put on the fd meanwhile */
	}
	const char *name = o.name;
	__u32 name_off = off;
	if (f) {
		n = put_path(rec, off, pb, __builtin_preserve_access_index(&f->f_path),
			     &e->hdr.flags, EVF_TRUNC_PATH);
		name = NULL;
	} else if (name) {
		n = put_name(rec, off, name, st && (st->flags & STASH_NAME) ? st->name : NULL, pb,
			     &e->hdr.flags);
	} else {
		n = 0;
	}
	e->path_len = n;
	off += n;

	__u32 name2_off = off;
	if (o.name2) {
		n = put_name(rec, off, o.name2, st && (st->flags & STASH_NAME2) ? st->name2 : NULL,
			     pb, &e->hdr.flags);
		e->path2_len = n;
		off += n;
	}
	/*
	 * A relative name's directory, resolved now: unless another thread
	 * moved the cwd or put another directory on dirfd while the call ran
	 * (then it is left out, not reported wrong, and the event says why).
	 */
	if (name && st && (st->flags & STASH_NAME) && st->base != base_id(task, o.dirfd)) {
		e->hdr.flags |= EVF_RACED | EVF_NO_BASE;
	} else if (name) {
		n = put_base(rec, off, name_off, e->path_len, o.dirfd, task, pb, &e->hdr.flags);
		e->base_len = n;
		off += n;
	}
	if (o.name2 && o.dirfd2 != -1 && st && (st->flags & STASH_NAME2) &&
	    st->base2 != base_id(task, o.dirfd2)) {
		e->hdr.flags |= EVF_RACED | EVF_NO_BASE;
	} else if (o.name2 && o.dirfd2 != -1) {
		n = put_base(rec, off, name2_off, e->path2_len, o.dirfd2, task, pb, &e->hdr.flags);
		e->base2_len = n;
		off += n;
	}
	if (e->hdr.flags & EVF_TRUNC_PATH)
		count_drop(DROP_PATH_TRUNCATED);
	if (e->hdr.flags & EVF_ARG_AT_EXIT)
		count_drop(DROP_ARGS_AT_EXIT);
	e->hdr.size = off;
	emit(rec, off, EV_FILE);
	return 0;
}

/* The sock behind a socket fd, or NULL. */
static __always_inline struct sock *fd_sock(struct task_struct *task, long fd)
{
	struct file *f = fd_file(task, fd);
	struct socket *sock;

	if (!f)
		return NULL;
	sock = UNTRUSTED(struct file, f)->private_data;
	return sock ? UNTRUSTED(struct socket, sock)->sk : NULL;
}

/* Fill local (and, when connected, remote) address and port from the kernel socket. */
static __always_inline void sock_addrs(struct ev_net *e, struct sock *sock, bool remote)
{
	struct sock *sk = UNTRUSTED(struct sock, sock);

	e->family = sk->__sk_common.skc_family;
	e->type = sk->sk_type;
	e->protocol = sk->sk_protocol;
	e->local_port = sk->__sk_common.skc_num;
	if (e->family == AF_INET) {
		__u32 a = sk->__sk_common.skc_rcv_saddr;
		__builtin_memcpy(e->local_addr, &a, 4);
	} else if (e->family == AF_INET6) {
		struct in6_addr a6 = sk->__sk_common.skc_v6_rcv_saddr;
		__builtin_memcpy(e->local_addr, &a6, 16);
	}
	if (!remote)
		return;
	e->remote_port = bpf_ntohs(sk->__sk_common.skc_dport);
	if (e->family == AF_INET) {
		__u32 a = sk->__sk_common.skc_daddr;
		__builtin_memcpy(e->remote_addr, &a, 4);
	} else if (e->family == AF_INET6) {
		struct in6_addr a6 = sk->__sk_common.skc_v6_daddr;
		__builtin_memcpy(e->remote_addr, &a6, 16);
	}
}

/*
 * A sockaddr of len bytes from user space into the remote (connect) or local
 * (bind) slot: one read for the family and the address (sun_path's first
 * byte included), a second only for a Unix path.
 */
static __always_inline __u32 user_sockaddr(struct ev_net *e, char *rec, __u32 off,
					   const void *uaddr, __u64 len, bool as_remote,
					   bool is_copy)
{
	union {
		__u16 family;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
		char b[sizeof(struct sockaddr_in6)];
	} sa = {};
	/* What the name may fill: the address's length less the family, at most sun_path. */
	__u32 name_max = len > 2 + 108 ? 108 : len > 2 ? len - 2 : 0;

	if (len > sizeof(sa))
		len = sizeof(sa);
	if (len < sizeof(sa.family) ||
	    (is_copy
		 ? bpf_probe_read_kernel(&sa, len & (sizeof(sa) | (sizeof(sa) - 1)), uaddr)
		 : bpf_probe_read_user(&sa, len & (sizeof(sa) | (sizeof(sa) - 1)), uaddr)) != 0) {
		e->hdr.flags |= EVF_READ_FAIL;
		return 0;
	}
	e->family = sa.family;
	if (sa.family == AF_INET) {
		if (as_remote) {
			e->remote_port = bpf_ntohs(sa.in.sin_port);
			__builtin_memcpy(e->remote_addr, &sa.in.sin_addr, 4);
		} else {
			e->local_port = bpf_ntohs(sa.in.sin_port);
			__builtin_memcpy(e->local_addr, &sa.in.sin_addr, 4);
		}
	} else if (sa.family == AF_INET6) {
		if (as_remote) {
			e->remote_port = bpf_ntohs(sa.in6.sin6_port);
			__builtin_memcpy(e->remote_addr, &sa.in6.sin6_addr, 16);
		} else {
			e->local_port = bpf_ntohs(sa.in6.sin6_port);
			__builtin_memcpy(e->local_addr, &sa.in6.sin6_addr, 16);
		}
	} else if (sa.family == AF_UNIX) {
		/*
		 * sun_path: a path, or (first byte NUL) an abstract name: stored as
		 * '@' + name, the convention of ss(8) and /proc/net/unix.
		 */
		const char *sp = (const char *)uaddr + 2;
		long n;

		/* Reads stop at the address's end: an abstract name is not NUL-terminated. */
		if (name_max == 0)
			return 0;
		/* An abstract name: '@' first, then the bytes after the leading NUL. */
		__u32 skip = sa.b[2] == '\0';
		__u32 size = name_max + 1 - skip;
		char *dst;

		if (skip)
			rec[off & REC_OFF_MASK] = '@';
		dst = &rec[(off + skip) & REC_OFF_MASK];
		barrier_var(size); /* masked as unsigned where the helper takes it */
		size &= 127;
		n = is_copy ? bpf_probe_read_kernel_str(dst, size, sp + skip)
			    : bpf_probe_read_user_str(dst, size, sp + skip);
		return n > 0 ? (__u32)(n + skip) & 255 : 0;
	}
	return 0;
}

/*
 * The address a connect or bind was given, into the remote or local slot:
 * the copy its entry made (checked against the caller's memory now, as
 * put_name does), else the caller's memory now, flagged.
 */
static __always_inline __u32 put_sockaddr(struct ev_net *e, char *rec, __u32 off,
					  const struct sysargs *a, bool as_remote,
					  const struct stash *st)
{
	const void *uaddr = (void *)a->args[1];
	struct path_buf *pb = scratch_path();
	__u32 len;

	if (!st || !(st->flags & STASH_NAME) || !pb) {
		e->hdr.flags |= EVF_ARG_AT_EXIT;
		return user_sockaddr(e, rec, off, uaddr, a->args[2], as_remote, false);
	}
	len = st->len > SOCKADDR_STASH ? SOCKADDR_STASH : st->len;
	if (bpf_probe_read_user(pb->b, len, uaddr) != 0 || bytes_differ(st->name, pb->b, len))
		e->hdr.flags |= EVF_RACED;
	return user_sockaddr(e, rec, off, st->name, len, as_remote, true);
}

/*
 * A watched socket syscall that returned ret in task (the current task,
 * BTF-typed); st: what its entry copied, or NULL.
 */
static __always_inline int net_event(struct sysargs *a, long ret, struct task_struct *task,
				     const struct stash *st)
{
	struct guard_verdict denied = {};
	struct ev_net *e;
	struct sock *sk;
	char *rec;
	__u32 off, n = 0;

	/* First: a block kills even when the event cannot be written. */
	if ((a->nr == NR_connect || a->nr == NR_bind) && ret == -EPERM &&
	    !guard_take_verdict(&denied))
		denied.gen = 0;
	rec = scratch_rec();
	if (!rec) {
		count_drop(DROP_SCRATCH);
		return 0;
	}
	e = (struct ev_net *)rec;
	__builtin_memset(e, 0, sizeof(*e));
	hdr_fill(&e->hdr, EV_NET, task);
	e->hdr.flags |= a->flags;
	e->result = ret;
	if (denied.gen) {
		e->hdr.flags |= EVF_DENIED;
		e->verdict = denied.entry + 1;
		e->verdict_gen = denied.gen;
	}
	off = sizeof(*e);
	switch (a->nr) {
	case NR_connect:
		e->op = NOP_CONNECT;
		sk = fd_sock(task, a->args[0]);
		/*
		 * A connect that succeeded or is under way left the peer in the
		 * socket: read it there, not from user memory, which the process
		 * may rewrite before the call returns.  A failed one has only the
		 * address the process passed.
		 */
		if (sk && (ret == 0 || ret == -EINPROGRESS)) {
			sock_addrs(e, sk, true);
			if (e->family == AF_INET || e->family == AF_INET6)
				break;
		} else if (sk) {
			sock_addrs(e, sk, false);
		}
		n = put_sockaddr(e, rec, off, a, true, st);
		break;
	case NR_bind:
		e->op = NOP_BIND;
		sk = fd_sock(task, a->args[0]);
		if (sk)
			sock_addrs(e, sk, false);
		n = put_sockaddr(e, rec, off, a, false, st);
		break;
	case NR_listen:
		e->op = NOP_LISTEN;
		e->backlog = a->args[1];
		sk = fd_sock(task, a->args[0]);
		if (sk)
			sock_addrs(e, sk, false);
		break;
	case NR_accept:
	case NR_accept4:
		e->op = NOP_ACCEPT;
		/* The new connection's socket holds both ends. */
		sk = ret >= 0 ? fd_sock(task, ret) : fd_sock(task, a->args[0]);
		if (sk)
			sock_addrs(e, sk, ret >= 0);
		break;
	default:
		return 0;
	}
	e->unix_path_len = n;
	off += n;
	if (e->hdr.flags & EVF_ARG_AT_EXIT)
		count_drop(DROP_ARGS_AT_EXIT);
	e->hdr.size = off;
	emit(rec, off, EV_NET);
	return 0;
}

/* A watched syscall's exit, with what its entry copied (st, or NULL). */
static __always_inline int syscall_exit(struct sysargs *a, long ret, struct task_struct *task,
					const struct stash *st)
{
	if (read_filtered(a, ret, task, st))
		return 0;
	switch (a->nr) {
	case NR_connect:
	case NR_accept:
	case NR_accept4:
	case NR_bind:
	case NR_listen:
		return net_event(a, ret, task, st);
	default:
		return file_event(a, ret, task, st);
	}
}

SEC("raw_tracepoint/sys_exit")
int sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
	struct pt_regs *regs = UNTRUSTED(struct pt_regs, ctx->args[0]);
	struct sysargs a = {};
	struct task_struct *task;
	struct stash *st;
	long nr = regs->orig_ax;
	__u32 x32 = 0;
	int rc;

	/*
	 * x32: the x86_64 number with __X32_SYSCALL_BIT.  The watched calls
	 * share the x86_64 table there (x32's own entries are 512 and up), and
	 * their pointers are 32-bit values in 64-bit registers.  Kernels without
	 * the x32 ABI answer such a number with ENOSYS: reported all the same.
	 */
	if (nr & X32_SYSCALL_BIT) {
		nr &= ~X32_SYSCALL_BIT;
		x32 = EVF_X32;
	}
	/*
	 * Every syscall on the host comes through here: rule out by number the
	 * ones that are watched neither as x86_64 nor as ia32 syscalls first.
	 */
	if (!watched(nr) && native_nr(nr) == 0)
		return 0;
	task = bpf_get_current_task_btf();
	if (!x32 && (task->thread_info.status & TS_COMPAT)) {
		/* The per-syscall tracepoints do not fire for ia32 calls: nothing was copied. */
		if (!compat_args(regs, nr, &a))
			return 0;
		a.flags = EVF_COMPAT;
	} else {
		if (!watched(nr))
			return 0;
		/* The per-syscall enter tracepoints skip x32 calls too: nothing was copied. */
		a.flags = x32;
		a.nr = nr;
		a.args[0] = regs->di;
		a.args[1] = regs->si;
		a.args[2] = regs->dx;
		a.args[3] = regs->r10;
		a.args[4] = regs->r8;
		a.args[5] = regs->r9;
	}
	if (self_tgid && task->tgid == self_tgid) {
		count_filtered(FILTER_SELF);
		return 0;
	}
	st = stash_held(bpf_get_current_pid_tgid());
	rc = syscall_exit(&a, ctx->args[1], task, st && st->nr == a.nr && !a.flags ? st : NULL);
	stash_release(st);
	return rc;
}
