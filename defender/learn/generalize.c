/* SPDX-License-Identifier: Apache-2.0 */
#include "learn/generalize.h"

#include "event/event_json.h"

#include <errno.h>
#include <arpa/inet.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/*
 * ASCII classes on purpose: <ctype.h> follows the locale, and a pattern must
 * not depend on it.  Bytes >= 0x80 (UTF-8 or not) are never token characters,
 * so they pass through verbatim.
 */
static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_upper(char c)
{
	return c >= 'A' && c <= 'Z';
}

static bool is_alnum(char c)
{
	return is_digit(c) || is_upper(c) || (c >= 'a' && c <= 'z');
}

static bool is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A bounded output: writes what fits, always NUL-terminates, remembers a cut. */
struct generalize_out {
	char *buf;
	size_t cap, len;
	bool cut;
};

static void out_put(struct generalize_out *o, const char *s, size_t n)
{
	size_t room = o->cap > o->len + 1 ? o->cap - o->len - 1 : 0;

	if (n > room) {
		n = room;
		o->cut = true;
	}
	if (o->cap == 0) /* no room even for the NUL; buf may be NULL */
		return;
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

static void out_str(struct generalize_out *o, const char *s)
{
	out_put(o, s, strlen(s));
}

static int out_done(const struct generalize_out *o)
{
	if (o->cap == 0 || o->cut || o->len > INT_MAX)
		return -ENAMETOOLONG;
	return (int)o->len;
}

/* Whether s starts with a UUID (8-4-4-4-12 hex) that ends at a token boundary. */
static bool is_uuid(const char *s, size_t n)
{
	if (n < 36 || (n > 36 && is_alnum(s[36])))
		return false;
	for (size_t i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !is_hex(s[i]))
			return false;
	}
	return true;
}

/*
 * Whether a token (a maximal [A-Za-z0-9] run holding at least one letter)
 * looks random: the name changes on every run, so the model must not keep it.
 */
static bool is_random(const char *t, size_t n)
{
	size_t digit_runs = 0, changes = 0, lone = 0;
	char prev = 0, prev2 = 0; /* case of the last two letters: 'U', 'l' or 0 */

	for (size_t i = 0; i < n; i++) {
		if (is_digit(t[i])) {
			digit_runs += i == 0 || !is_digit(t[i - 1]);
			continue;
		}
		/* Case changes between letters; digits in between do not count. */
		char c = is_upper(t[i]) ? 'U' : 'l';
		changes += prev != 0 && prev != c;
		/* A lone lowercase letter between capitals ("XyZ"): words rarely do that. */
		lone += prev2 == 'U' && prev == 'l' && c == 'U';
		prev2 = prev;
		prev = c;
	}
	/*
	 * (a) hex ids (hashes, session and container ids) and (b) other mixes of
	 * letters and digits, 6 or more characters: ids scatter their digits.
	 * Digits in one run make a name with a number ("base64", "aarch64",
	 * "sha256sum", "db20261128"), which the digit rule turns into
	 * "base<num>" instead.  Two runs imply two digits, and hex ids are
	 * (b)'s special case, so one test covers both.
	 */
	if (n >= 6 && digit_runs >= 2)
		return true;
	/*
	 * (c) mktemp-style mixed case ("XyZqWpLm").  Requiring a lone lowercase
	 * letter keeps CamelCase names ("NetworkManager") readable.
	 */
	return n >= 8 && changes >= 3 && lone >= 1;
}

/* One token; whole says it is the whole path component ("/proc/1/stat"). */
static void generalize_token(struct generalize_out *o, const char *t, size_t n, bool whole)
{
	/* t[n] is not a digit: tokens are maximal [A-Za-z0-9] runs. */
	if (strspn(t, "0123456789") == n) {
		/* A lone digit in a name is a version or suffix ("python3", "libc.so.6"). */
		if (n >= 2 || whole)
			out_str(o, "<num>");
		else
			out_put(o, t, n);
		return;
	}
	if (is_random(t, n)) {
		out_str(o, "<rand>");
		return;
	}
	/* Letters with digits: only runs of two or more digits are numbers. */
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i; j < n && is_digit(t[j]); j++)
			;
		if (j - i >= 2) {
			out_str(o, "<num>");
		} else {
			out_put(o, t + i, 1); /* a letter, or a lone digit */
			j = i + 1;
		}
	}
}

static void generalize_component(struct generalize_out *o, const char *c, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t j = i;
		if (!is_alnum(c[i])) {
			while (j < n && !is_alnum(c[j]))
				j++;
			out_put(o, c + i, j - i);
		} else if (is_uuid(c + i, n - i)) {
			/* One <rand> for the whole id, not one per dash-separated group. */
			out_str(o, "<rand>");
			j = i + 36;
		} else {
			while (j < n && is_alnum(c[j]))
				j++;
			generalize_token(o, c + i, j - i, i == 0 && j == n);
		}
		i = j;
	}
}

int generalize_path(const char *path, char *out, size_t outlen)
{
	struct generalize_out o = {.buf = out, .cap = outlen};
	const char *p = path;

	if (outlen > 0)
		out[0] = '\0';
	while (*p != '\0') {
		if (*p == '/') {
			/* Repeated slashes are one: "//a" and "/a" are the same file. */
			out_put(&o, "/", 1);
			while (*p == '/')
				p++;
			continue;
		}
		const char *end = strchrnul(p, '/');
		generalize_component(&o, p, (size_t)(end - p));
		p = end;
	}
	return out_done(&o);
}

int generalize_parent_glob(const char *pattern, char *out, size_t outlen)
{
	struct generalize_out o = {.buf = out, .cap = outlen};
	size_t len = strlen(pattern);

	if (outlen > 0)
		out[0] = '\0';
	/* A glob stands for its directory: fold that directory's parent. */
	if (len >= 2 && memcmp(pattern + len - 2, "/*", 2) == 0)
		len -= 2;
	while (len > 0 && pattern[len - 1] == '/')
		len--;
	while (len > 0 && pattern[len - 1] != '/')
		len--;
	while (len > 0 && pattern[len - 1] == '/')
		len--;
	/* No parent, or the parent is "/": folding that would allow the whole filesystem. */
	if (len == 0)
		return -EINVAL;
	out_put(&o, pattern, len);
	out_str(&o, "/*");
	return out_done(&o);
}

enum generalize_glob generalize_glob_kind(const char *pattern)
{
	size_t n = strlen(pattern);
	const char *name;

	if (n >= 2 && strcmp(pattern + n - 2, "/*") == 0)
		return GLOB_TREE;
	name = strrchr(pattern, '/');
	return name != NULL && strchr(name, '*') != NULL ? GLOB_SHAPE : GLOB_NONE;
}

bool generalize_glob_matches(const char *glob, const char *pattern)
{
	size_t n = strlen(glob);

	if (n >= 2 && strcmp(glob + n - 2, "/*") == 0)
		/* The directory with its slash, then at least one more character. */
		return strncmp(pattern, glob, n - 1) == 0 && pattern[n - 1] != '\0';
	/* A shape: one name directly in the directory, with the shape's fixed ends. */
	const char *slash = strrchr(glob, '/'), *star = slash != NULL ? strchr(slash, '*') : NULL;
	if (star == NULL)
		return false;
	size_t dir = (size_t)(slash + 1 - glob);
	const char *name = pattern + dir;
	if (strncmp(pattern, glob, dir) != 0 || *name == '\0' || strchr(name, '/') != NULL)
		return false;
	size_t pl = (size_t)(star - (slash + 1)), sl = strlen(star + 1), nl = strlen(name);
	return nl >= pl + sl && strncmp(name, slash + 1, pl) == 0 &&
	       strcmp(name + nl - sl, star + 1) == 0;
}

/* The length of the marker (<num>, <rand>) that s starts with, or 0. */
static size_t marker_len(const char *s)
{
	if (strncmp(s, "<num>", 5) == 0)
		return 5;
	return strncmp(s, "<rand>", 6) == 0 ? 6 : 0;
}

/* Where the marker of name that position k falls strictly inside begins; k when none does. */
static size_t marker_around(const char *name, size_t k, size_t *ret_end)
{
	for (size_t i = 0; i < k;) {
		size_t m = marker_len(name + i);

		if (m > 0 && i + m > k) {
			*ret_end = i + m;
			return i;
		}
		i += m > 0 ? m : 1;
	}
	*ret_end = k;
	return k;
}

/* A name's fixed part before and after its star ("c-" and ".tmp" of "c-*.tmp"). */
struct shape_name {
	const char *s;
	size_t len;  /* whole name */
	size_t head; /* characters before the star (len without one) */
	size_t tail; /* characters after it (len without one) */
};

/* Whether the prefix of length p ends where every name's token ends. */
static bool prefix_cut_ok(const struct shape_name *v, size_t n, size_t p)
{
	size_t end;

	if (p == 0)
		return true;
	for (size_t i = 0; i < n; i++)
		if (marker_around(v[i].s, p, &end) != p)
			return false;
	if (!is_alnum(v[0].s[p - 1]))
		return true; /* after punctuation or a marker's '>' */
	for (size_t i = 0; i < n; i++)
		if (is_alnum(v[i].s[p]))
			return false; /* inside a word */
	return true;
}

/* Whether the suffix of length s begins where every name's token begins. */
static bool suffix_cut_ok(const struct shape_name *v, size_t n, size_t s)
{
	size_t end;

	if (s == 0)
		return true;
	for (size_t i = 0; i < n; i++)
		if (marker_around(v[i].s, v[i].len - s, &end) != v[i].len - s)
			return false;
	if (!is_alnum(v[0].s[v[0].len - s]))
		return true; /* before punctuation or a marker's '<' */
	for (size_t i = 0; i < n; i++)
		if (v[i].len > s && is_alnum(v[i].s[v[i].len - s - 1]))
			return false;
	return true;
}

/* Whether fixed text says something: a letter, a digit or a marker, not punctuation alone. */
static bool says_something(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (is_alnum(s[i]) || (s[i] == '<' && marker_len(s + i) > 0))
			return true;
	return false;
}

#define SHAPE_NAMES_MAX 1024

int generalize_shape(const char *dirglob, const char *const *patterns, size_t n, char *out,
		     size_t outlen)
{
	struct generalize_out o = {.buf = out, .cap = outlen};
	size_t dl = strlen(dirglob), p, s, room = SIZE_MAX;
	struct shape_name *v;
	int rc = 0;

	if (outlen > 0)
		out[0] = '\0';
	if (n < 2 || n > SHAPE_NAMES_MAX || dl < 2 || strcmp(dirglob + dl - 2, "/*") != 0)
		return -EINVAL;
	if ((v = calloc(n, sizeof(*v))) == NULL)
		return -ENOMEM;
	dl--; /* the directory with its slash */
	for (size_t i = 0; i < n && rc == 0; i++) {
		const char *name = patterns[i] + dl, *slash, *star;

		if (strncmp(patterns[i], dirglob, dl) != 0 || *name == '\0') {
			rc = -EINVAL;
			break;
		}
		if ((slash = strchr(name, '/')) != NULL) {
			/* A folded subdirectory ("dir/sub/\*"): a whole tree, no name's shape. */
			rc = strcmp(slash, "/*") == 0 ? -ENOENT : -EINVAL;
			break;
		}
		star = strchr(name, '*');
		v[i].s = name;
		v[i].len = strlen(name);
		v[i].head = star != NULL ? (size_t)(star - name) : v[i].len;
		v[i].tail = star != NULL ? v[i].len - v[i].head - 1 : v[i].len;
	}
	if (rc < 0) {
		free(v);
		return rc;
	}
	/* The longest common prefix, never past a star; then back to a token's end. */
	for (p = 0;; p++) {
		bool same = p < v[0].head;

		for (size_t i = 1; same && i < n; i++)
			same = p < v[i].head && v[i].s[p] == v[0].s[p];
		if (!same)
			break;
	}
	while (!prefix_cut_ok(v, n, p))
		p--;
	/* The longest common suffix that leaves the prefix whole in every name. */
	for (size_t i = 0; i < n; i++)
		room = v[i].len - p < room ? v[i].len - p : room;
	for (s = 0;; s++) {
		bool same = s < room && s < v[0].tail;

		for (size_t i = 1; same && i < n; i++)
			same =
			    s < v[i].tail && v[i].s[v[i].len - 1 - s] == v[0].s[v[0].len - 1 - s];
		if (!same)
			break;
	}
	while (!suffix_cut_ok(v, n, s))
		s--;
	if (!says_something(v[0].s, p) && !says_something(v[0].s + v[0].len - s, s)) {
		free(v);
		return -ENOENT;
	}
	out_put(&o, dirglob, dl);
	out_put(&o, v[0].s, p);
	out_put(&o, "*", 1);
	out_put(&o, v[0].s + v[0].len - s, s);
	free(v);
	return out_done(&o);
}

/*
 * Files whose reading is worth a model entry of its own: password hashes,
 * sudo policy, private keys, Kerberos and SSSD credential caches, kernel
 * memory.  "dir/" entries match anything below dir.  Paths are compared as
 * the kernel reports them (absolute, no "//" or "..").  World-readable
 * account data (/etc/passwd, /etc/group) and public keys are not here.
 */
static const char *const sensitive[] = {
    "/etc/shadow",	     "/etc/shadow-",	   "/etc/gshadow",
    "/etc/gshadow-",	     "/etc/sudoers",	   "/etc/sudoers.d/",
    "/etc/security/opasswd", "/etc/master.passwd", "/etc/krb5.keytab",
    "/etc/ssl/private/",     "/root/.ssh/",	   "/var/lib/sss/",
    "/proc/kcore",	     "/dev/mem",	   "/dev/kmem",
};

bool generalize_is_sensitive(const char *path)
{
	for (size_t i = 0; i < sizeof(sensitive) / sizeof(sensitive[0]); i++) {
		const char *s = sensitive[i];
		size_t n = strlen(s);
		if (s[n - 1] == '/' ? strncmp(path, s, n) == 0 && path[n] != '\0'
				    : strcmp(path, s) == 0)
			return true;
	}
	/* Host private keys: ssh_host_*_key (and SSHv1's ssh_host_key), not the .pub. */
	const char *k = "/etc/ssh/ssh_host_";
	if (strncmp(path, k, strlen(k)) == 0) {
		const char *rest = path + strlen(k);
		size_t n = strlen(rest);
		return strchr(rest, '/') == NULL &&
		       (strcmp(rest, "key") == 0 || (n > 4 && strcmp(rest + n - 4, "_key") == 0));
	}
	/* Any user's ~/.ssh: keys and authorized_keys. */
	if (strncmp(path, "/home/", 6) == 0) {
		const char *user = path + 6, *slash = strchr(user, '/');
		return slash != NULL && slash > user && strncmp(slash, "/.ssh/", 6) == 0 &&
		       slash[6] != '\0';
	}
	return false;
}

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool in_list(const char *path, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(list[i]);

		/* "dir/" entries match anything below dir, others the file itself. */
		if (list[i][len - 1] == '/' ? strncmp(path, list[i], len) == 0
					    : strcmp(path, list[i]) == 0)
			return true;
	}
	return false;
}

#define LIST_LEN(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Reads every process makes, that are the same on every host or hold
 * nothing a host keeps secret.  Left in on purpose, though many programs
 * read them: /etc/passwd and /etc/group (a path-traversal hole's first
 * probe), /etc/machine-id, other processes' /proc/PID (their environment
 * holds secrets), devices other than the bit buckets (a disk read is every
 * secret at once), and /usr/local outside lib, share, bin, sbin and
 * include (where locally installed services keep their configuration).
 */
static const char *const common_etc[] = {
    "/etc/ld.so.cache",	     "/etc/ld.so.preload",  "/etc/ld.so.conf",	   "/etc/ld.so.conf.d/",
    "/etc/localtime",	     "/etc/timezone",	    "/etc/locale.alias",   "/etc/locale.conf",
    "/etc/default/locale",   "/etc/nsswitch.conf",  "/etc/host.conf",	   "/etc/gai.conf",
    "/etc/resolv.conf",	     "/etc/hosts",	    "/etc/services",	   "/etc/protocols",
    "/etc/networks",	     "/etc/os-release",	    "/etc/ssl/certs/",	   "/etc/ssl/openssl.cnf",
    "/etc/ca-certificates/", "/etc/pki/ca-trust/",  "/etc/pki/tls/certs/", "/etc/fonts/",
    "/etc/terminfo/",	     "/etc/mime.types",	    "/etc/magic",	   "/etc/gnutls/config",
    "/etc/crypto-policies/", "/etc/selinux/config",
};
static const char *const common_usr_local[] = {"/usr/local/lib/", "/usr/local/share/",
					       "/usr/local/bin/", "/usr/local/sbin/",
					       "/usr/local/include/"};
static const char *const common_dev[] = {"/dev/null",	 "/dev/zero", "/dev/full", "/dev/random",
					 "/dev/urandom", "/dev/tty",  "/dev/ptmx", "/dev/pts/"};

/* Whether the digits at s (up to '/' or the end) are pid; s is after "/proc/". */
static bool is_own_proc(const char *s, uint32_t pid)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; s[i] >= '0' && s[i] <= '9' && i < 10; i++)
		v = v * 10 + (uint64_t)(s[i] - '0');
	return i > 0 && (s[i] == '/' || s[i] == '\0') && v == pid;
}

bool generalize_read_is_common(const char *path, uint32_t pid)
{
	switch (path[0] == '/' ? path[1] : '\0') {
	case 'u':
		if (!starts_with(path, "/usr/"))
			return false;
		return !starts_with(path, "/usr/local/") ||
		       in_list(path, common_usr_local, LIST_LEN(common_usr_local));
	case 'l':
		return starts_with(path, "/lib/") || starts_with(path, "/lib64/") ||
		       starts_with(path, "/lib32/") || starts_with(path, "/libx32/");
	case 'b':
		return starts_with(path, "/bin/");
	case 's':
		return starts_with(path, "/sbin/") || starts_with(path, "/sys/");
	case 'e':
		return in_list(path, common_etc, LIST_LEN(common_etc));
	case 'd':
		return in_list(path, common_dev, LIST_LEN(common_dev));
	case 'p':
		if (!starts_with(path, "/proc/"))
			return false;
		path += 6;
		/* Host-wide files (meminfo, stat, sys/...), the process's own, self. */
		if (*path < '0' || *path > '9')
			return *path != '\0' && !starts_with(path, "kcore");
		return is_own_proc(path, pid);
	default:
		return false;
	}
}

/* Written once under ports_once, read-only afterwards. */
static unsigned ports_lo = 32768, ports_hi = 60999;
static pthread_once_t ports_once = PTHREAD_ONCE_INIT;

static void ports_read(void)
{
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
	unsigned lo, hi;

	if (f == NULL)
		return;
	/* Widths bound the numbers, so no overflow; malformed keeps the default. */
	if (fscanf(f, "%6u %6u", &lo, &hi) == 2 && lo > 0 && lo <= hi && hi <= 65535) {
		ports_lo = lo;
		ports_hi = hi;
	}
	fclose(f);
}

void generalize_ports_init(void)
{
	pthread_once(&ports_once, ports_read);
}

bool generalize_port_is_ephemeral(uint16_t port)
{
	/* Cheap after the first call; lets callers skip generalize_ports_init. */
	pthread_once(&ports_once, ports_read);
	return port != 0 && port >= ports_lo && port <= ports_hi;
}

/* ::ffff:a.b.c.d is an IPv4 peer on a dual-stack socket: show and range it as IPv4. */
static bool is_v4mapped(const uint8_t *a)
{
	static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	return memcmp(a, prefix, sizeof(prefix)) == 0;
}

/* Formats addr (host bits cleared when range) into o; false for an unknown family. */
static bool fmt_addr(struct generalize_out *o, int family, const uint8_t *addr, bool range)
{
	uint8_t a[16];
	char text[INET6_ADDRSTRLEN];

	if (family == AF_INET6 && is_v4mapped(addr)) {
		family = AF_INET;
		addr += 12;
	}
	if (family != AF_INET && family != AF_INET6)
		return false;
	size_t n = family == AF_INET ? 4 : 16;
	memcpy(a, addr, n);
	if (range)
		memset(a + (family == AF_INET ? 3 : 8), 0, family == AF_INET ? 1 : 8);
	if (family == AF_INET)
		event_ipv4_text(a, text);
	else if (inet_ntop(family, a, text, sizeof(text)) == NULL)
		return false;
	out_str(o, text);
	if (range)
		out_str(o, family == AF_INET ? "/24" : "/64");
	return true;
}

static int addr_to(int family, const uint8_t *addr, bool range, char *out, size_t outlen)
{
	struct generalize_out o = {.buf = out, .cap = outlen};

	if (outlen > 0)
		out[0] = '\0';
	return fmt_addr(&o, family, addr, range) ? out_done(&o) : -EAFNOSUPPORT;
}

int generalize_addr(int family, const uint8_t *addr, char *out, size_t outlen)
{
	return addr_to(family, addr, false, out, outlen);
}

int generalize_addr_range(int family, const uint8_t *addr, char *out, size_t outlen)
{
	return addr_to(family, addr, true, out, outlen);
}
