/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_GENERALIZE_H
#define VIGIL_DEFENDER_GENERALIZE_H

/*
 * Generalization for learned models: turn what a service did today into a
 * pattern that still matches what it does tomorrow, in a notation a person
 * can read (documented in docs/learning.md):
 *
 *   <num>    a run of two or more digits      /proc/<num>/stat, app-<num>.log
 *   <rand>   a random-looking token           /tmp/tmp.<rand>, sess_<rand>
 *   dir/\*   anything below dir (a directory whose children keep changing
 *            and whose names have no common shape; the model folds entries
 *            into it, see model.c)
 *   dir/p*s  a name directly in dir that starts with p and ends with s: the
 *            shape of the names a folded directory saw ("c-*.tmp",
 *            "report-*.pdf", "*.db"); the star stands for any run of
 *            characters but '/', markers included
 *   ephemeral  a port from the kernel's ephemeral range
 *   a.b.c.0/24, x:y::/64   an address range
 *
 * (In these comments "/\*" stands for slash-star, which a C comment cannot
 * hold; the patterns themselves have no backslash: "/var/spool/x/" then "*".)
 *
 * Pure functions over strings (the one exception: the ephemeral port range is
 * read from /proc once).  Outputs go to caller-owned buffers and are always
 * NUL-terminated when outlen > 0; a result that does not fit is cut and the
 * function returns -1.  Same input, same output: patterns are compared as
 * strings.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest pattern the model stores (bytes, NUL included). */
#define GENERALIZE_PATTERN_MAX 512

/*
 * Generalize an absolute path component by component (see above).  Repeated
 * slashes fold into one; bytes other than [A-Za-z0-9] (punctuation, non-UTF-8)
 * are kept verbatim.  A whole component of digits becomes <num> even when it
 * is one digit ("/run/user/0"); elsewhere a lone digit stays ("python3").  The
 * exact rules for <rand> are in generalize.c.  Returns the pattern's length,
 * or -ENAMETOOLONG when it did not fit in out (out then holds a cut, still
 * NUL-terminated pattern).
 */
int generalize_path(const char *path, char *out, size_t outlen);

/*
 * The folded form of a path pattern's parent directory: "/var/spool/x/<num>"
 * gives "/var/spool/x/\*", a glob folds one level up ("/a/b/\*" gives
 * "/a/\*"), and a shape stands for its own directory ("/a/b/c-*.tmp"
 * gives "/a/b/\*").  Returns its length; -EINVAL for "/", a pattern with no
 * parent or a parent that is "/" (never fold the whole filesystem: "/a"
 * gives -EINVAL); -ENAMETOOLONG when out is too small.
 */
int generalize_parent_glob(const char *pattern, char *out, size_t outlen);

/*
 * Whether pattern is matched by glob.  A folded directory ("/a/b/\*")
 * matches everything below it ("/a/b/c", "/a/b/c/d", the narrower globs
 * "/a/b/c/\*" and "/a/b/x-*.tmp"; not "/a/b" or "/a/bc").  A shape
 * ("/a/b/c-*.tmp") matches the patterns of names directly in /a/b that
 * start with "c-" and end with ".tmp" ("/a/b/c-<rand>.tmp", "/a/b/c-x.tmp",
 * and the narrower shape "/a/b/c-x*.tmp"; not "/a/b/d.tmp" nor
 * "/a/b/c-x/y.tmp").  Any other glob matches nothing.
 */
bool generalize_glob_matches(const char *glob, const char *pattern);

/* What kind of glob a pattern is (the kinds of generalize_glob_matches). */
enum generalize_glob { GLOB_NONE, GLOB_TREE, GLOB_SHAPE };
enum generalize_glob generalize_glob_kind(const char *pattern);

/*
 * The shape of the names of n sibling patterns (each directly in the
 * directory dirglob stands for: "/a/b/\*" for "/a/b/x.tmp", "/a/b/y.tmp"),
 * as a glob "/a/b/p*s" (see above), into out.  p and s are the longest
 * prefix and suffix all the names share, cut only where a name's token ends
 * or begins (after or before punctuation or a marker, never inside a word
 * or a marker), and together they hold a letter, a digit or a marker.
 * Siblings that are shapes themselves take part with their fixed parts (a
 * new shape is never narrower than one it replaces).  Returns its length,
 * -ENOENT when no shape fits (names with nothing in common, or a sibling
 * that is a whole folded directory), -EINVAL for fewer than 2 names or a
 * pattern not directly in dirglob's directory, -ENAMETOOLONG.
 */
int generalize_shape(const char *dirglob, const char *const *patterns, size_t n, char *out,
		     size_t outlen);

/*
 * Whether reading this absolute path is worth a model entry of its own kind,
 * sensitive_read (shadow, keys, sudoers, ...; the list is in generalize.c).
 * path is compared as the kernel reports it: no "//" or ".." folding.
 */
bool generalize_is_sensitive(const char *path);

/*
 * Whether a read of this absolute path is one that every process makes and
 * that holds nothing a host keeps secret, so that a read model leaves it
 * out: shared libraries and programs (/usr, /lib*), sysfs, the process's own
 * /proc/PID (pid: the reader's process id) and /proc's host-wide files, the
 * dynamic loader's and the C library's configuration (ld.so.cache,
 * localtime, nsswitch.conf, resolv.conf, ...), public CA certificates, and
 * the bit buckets.  The list, and what it leaves in on purpose (/etc/passwd,
 * /usr/local/etc), is in generalize.c.
 */
bool generalize_read_is_common(const char *path, uint32_t pid);

/*
 * The kernel's ephemeral port range, from /proc/sys/net/ipv4/ip_local_port_range;
 * generalize_ports_init reads it once (default 32768-60999 when unreadable or
 * malformed).  Call it at startup, before dropping privileges or chrooting;
 * generalize_port_is_ephemeral otherwise reads the file itself on first use.  Both
 * are thread-safe (pthread_once).  Port 0 is never ephemeral.
 */
void generalize_ports_init(void);
bool generalize_port_is_ephemeral(uint16_t port);

/*
 * An address as text ("10.0.0.7", "2001:db8::1"); family is AF_INET or
 * AF_INET6, addr the 4 or 16 bytes in network order.  An IPv4-mapped IPv6
 * address (::ffff:a.b.c.d) is shown as IPv4 ("a.b.c.d").  Returns the length,
 * -EAFNOSUPPORT for another family or -ENAMETOOLONG when out is too small.
 */
int generalize_addr(int family, const uint8_t *addr, char *out, size_t outlen);

/*
 * The address's range: IPv4 /24 ("10.0.0.0/24"), IPv6 /64 ("2001:db8:1:2::/64");
 * IPv4-mapped addresses give the IPv4 /24.  Returns the length or an error as generalize_addr.
 */
int generalize_addr_range(int family, const uint8_t *addr, char *out, size_t outlen);

#endif
