/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Absolute paths in the kernel, without bpf_d_path (not available to raw
 * tracepoints): walk dentry -> d_parent, crossing mounts through struct
 * mount, writing components backwards into a path_buf.
 */
#ifndef VIGIL_BPF_LIB_PATH_H
#define VIGIL_BPF_LIB_PATH_H

#include "maps.h"
#include "untrusted.h"

#define PATH_DEPTH 64

struct walked {
	__u32 off; /* where the path starts in the path_buf */
	__u32 len; /* with its NUL */
	bool truncated;
};

struct walk_ctx {
	struct path_buf *buf;
	struct mount *mnt;
	struct dentry *dentry;
	struct dentry *mnt_root;
	struct walked w;
};

/*
 * One component per call, from bpf_loop: the verifier checks this body once
 * instead of once per unrolled iteration (an inlined 64-step walk, used three
 * times in a program, exceeds its 1M-instruction budget).
 */
static long walk_step(__u32 i, void *data)
{
	struct walk_ctx *c = data;
	/* Locals: CO-RE reads must start from kernel types, not from our context struct. */
	struct dentry *dentry = c->dentry;
	struct mount *mnt = UNTRUSTED(struct mount, c->mnt);
	struct dentry *parent = UNTRUSTED(struct dentry, dentry)->d_parent;

	(void)i;
	/*
	 * A dentry that is its own parent without being the mount's root is a
	 * pseudo file (memfd, pipe, anonymous inode): its name is all there is.
	 */
	bool pseudo = dentry == parent && dentry != c->mnt_root && c->w.len == 1;
	if (!pseudo && (dentry == c->mnt_root || dentry == parent)) {
		struct mount *up = mnt->mnt_parent;

		/* The root of a mount: continue from where it is mounted. */
		if (dentry == c->mnt_root && up != mnt) {
			c->dentry = mnt->mnt_mountpoint;
			c->mnt = up;
			c->mnt_root = up->mnt.mnt_root;
			return 0;
		}
		/* The root of everything: done.  (A detached mount ends here too.) */
		if (c->w.len == 1) {
			c->w.off -= 1;
			c->buf->b[c->w.off & STR_MASK] = '/';
			c->w.len = 2;
		}
		c->w.truncated = false;
		return 1;
	}
	struct dentry *d = UNTRUSTED(struct dentry, dentry);
	const unsigned char *name = d->d_name.name;
	__u32 n = d->d_name.len;

	if (n == 0 || n + 1 >= c->w.off)
		return 1; /* stays truncated */
	c->w.off -= n;
	bpf_probe_read_kernel(&c->buf->b[c->w.off & STR_MASK], n & STR_MASK, name);
	c->w.off -= 1;
	c->buf->b[c->w.off & STR_MASK] = '/';
	c->w.len += n + 1;
	c->dentry = parent;
	if (pseudo) {
		c->w.truncated = false;
		return 1;
	}
	return 0;
}

/*
 * Write the absolute path of (mnt, dentry) to the END of buf->b[0..EV_PATH_MAX),
 * NUL-terminated.  Deeper than PATH_DEPTH or longer than EV_PATH_MAX: the
 * leading part is dropped and truncated set.
 */
static __always_inline struct walked path_walk(struct path_buf *buf, struct vfsmount *vfsmnt,
					       struct dentry *dentry)
{
	struct walk_ctx c = {
	    .buf = buf,
	    .mnt = container_of(vfsmnt, struct mount, mnt),
	    .dentry = dentry,
	    .mnt_root = BPF_CORE_READ(vfsmnt, mnt_root),
	    /* Truncated unless the walk reaches the root. */
	    .w = {.off = EV_PATH_MAX - 1, .len = 1, .truncated = true},
	};

	buf->b[EV_PATH_MAX - 1] = '\0';
	bpf_loop(PATH_DEPTH, walk_step, &c, 0);
	if (c.w.off >= EV_PATH_MAX || c.w.len > EV_PATH_MAX) {
		c.w.off = EV_PATH_MAX - 1;
		c.w.len = 1;
		c.w.truncated = true;
	}
	return c.w;
}

/* Copy a walked path into rec at off; returns bytes written (its length, with NUL). */
static __always_inline __u32 path_copy(char *rec, __u32 off, struct path_buf *buf, struct walked w)
{
	__u32 len = w.len;

	if (len > EV_PATH_MAX)
		len = EV_PATH_MAX;
	bpf_probe_read_kernel(&rec[off & REC_OFF_MASK], len & STR_MASK, &buf->b[w.off & STR_MASK]);
	return len & STR_MASK;
}

#endif
