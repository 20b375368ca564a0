/* SPDX-License-Identifier: Apache-2.0 */
/* Paths, globs, sensitive files, ports and addresses turned into model patterns. */
#include <errno.h>
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "learn/generalize.h"

/* generalize_path into a fresh buffer, checking the returned length against the text. */
static const char *gp(const char *path)
{
	static char out[GENERALIZE_PATTERN_MAX];
	int n = generalize_path(path, out, sizeof(out));

	cr_assert_eq(n, (int)strlen(out), "%s: returned %d for \"%s\"", path, n, out);
	return out;
}

#define expect_gen(in, want) cr_expect_str_eq(gp(in), want, "generalize_path(\"%s\")", in)

Test(generalize, required_examples)
{
	expect_gen("/proc/1234/stat", "/proc/<num>/stat");
	expect_gen("/var/log/app-20261128.log", "/var/log/app-<num>.log");
	expect_gen("/tmp/tmp.aB3xZ9qLmP", "/tmp/tmp.<rand>");
	expect_gen("/var/lib/php/sess_5f2b9c1e8a7d4e3f", "/var/lib/php/sess_<rand>");
	expect_gen("/run/user/0/x", "/run/user/<num>/x");
	expect_gen("/etc/nginx/nginx.conf", "/etc/nginx/nginx.conf");
	expect_gen("/usr/lib/python3.11/x.py", "/usr/lib/python3.<num>/x.py");
	expect_gen("/var/cache/x/550e8400-e29b-41d4-a716-446655440000.json",
		   "/var/cache/x/<rand>.json");
}

Test(generalize, a_whole_component_of_one_digit_is_a_number_but_a_digit_in_a_name_is_not)
{
	expect_gen("/proc/1/stat", "/proc/<num>/stat");
	expect_gen("/dev/pts/3", "/dev/pts/<num>");
	expect_gen("/usr/bin/python3", "/usr/bin/python3");
	expect_gen("/lib/libc.so.6", "/lib/libc.so.6");
	expect_gen("/usr/lib/libssl.so.3", "/usr/lib/libssl.so.3");
}

Test(generalize, runs_of_two_or_more_digits_are_numbers_anywhere)
{
	expect_gen("/var/log/app.log.12", "/var/log/app.log.<num>");
	expect_gen("/sys/devices/system/cpu/cpu12/online",
		   "/sys/devices/system/cpu/cpu<num>/online");
	expect_gen("/var/backups/db20261128.sql", "/var/backups/db<num>.sql");
	/* The rule is literal: "x86" has a two-digit run too. */
	expect_gen("/usr/lib/x86_64-linux-gnu/libc.so.6",
		   "/usr/lib/x<num>_<num>-linux-gnu/libc.so.6");
	/* A long all-digit token is a number (a timestamp), not a random hex id. */
	expect_gen("/var/spool/1732780800123", "/var/spool/<num>");
}

Test(generalize, random_tokens_are_rand)
{
	/* (a) hex with a digit, 8 or more */
	expect_gen("/var/lib/docker/containers/4f3c2b1a9e8d7c6b/config.json",
		   "/var/lib/docker/containers/<rand>/config.json");
	expect_gen("/tmp/deadbeef", "/tmp/deadbeef"); /* hex, but a word: no digit */
	/* (b) letters and digits, digits scattered */
	expect_gen("/var/lib/php/sessions/sess_q2ld7v8mbrm0t1bh3lu5",
		   "/var/lib/php/sessions/sess_<rand>");
	expect_gen("/tmp/k3j9xz", "/tmp/<rand>");
	expect_gen("/tmp/k39", "/tmp/k<num>"); /* too short to call random */
	/* (c) mktemp-style mixed case without digits */
	expect_gen("/tmp/tmp.XyZqWpLmAb", "/tmp/tmp.<rand>");
	expect_gen("/tmp/XyZqWpLm", "/tmp/<rand>");
	expect_gen("/tmp/aB3xZ9qL", "/tmp/<rand>");
}

Test(generalize, names_with_numbers_and_camel_case_stay_readable)
{
	expect_gen("/usr/bin/base64", "/usr/bin/base<num>");
	expect_gen("/usr/bin/sha256sum", "/usr/bin/sha<num>sum");
	expect_gen("/usr/lib/aarch64-linux-gnu", "/usr/lib/aarch<num>-linux-gnu");
	expect_gen("/etc/NetworkManager/NetworkManager.conf",
		   "/etc/NetworkManager/NetworkManager.conf");
	expect_gen("/opt/app/lib/AbstractSingletonProxyFactoryBean.class",
		   "/opt/app/lib/AbstractSingletonProxyFactoryBean.class");
	expect_gen("/usr/share/X11/XKeysymDB", "/usr/share/X<num>/XKeysymDB");
}

Test(generalize, a_uuid_is_one_rand_whole_or_inside_a_component)
{
	expect_gen("/sys/fs/cgroup/550E8400-E29B-41D4-A716-446655440000", "/sys/fs/cgroup/<rand>");
	expect_gen("/run/vm-550e8400-e29b-41d4-a716-446655440000-disk", "/run/vm-<rand>-disk");
	/* Not a UUID when glued to more letters: tokens judged one by one. */
	expect_gen("/x/550e8400-e29b-41d4-a716-446655440000z",
		   "/x/<rand>-e<num>b-<num>d4-a<num>-<num>z");
	/* All-digit first group: still one <rand>, not <num>-... */
	expect_gen("/x/12345678-1234-1234-1234-123456789012", "/x/<rand>");
}

Test(generalize, slashes_fold_and_root_stays)
{
	expect_gen("/", "/");
	expect_gen("//", "/");
	expect_gen("", "");
	expect_gen("/a//b///c", "/a/b/c");
	expect_gen("/a/b/", "/a/b/");
	expect_gen("///proc//42//", "/proc/<num>/");
}

Test(generalize, punctuation_markers_and_non_utf8_pass_through)
{
	expect_gen("/srv/<num>/a b+c~", "/srv/<num>/a b+c~");
	expect_gen("/srv/<num>/12", "/srv/<num>/<num>");
	expect_gen("/srv/caf\xc3\xa9/\xff\xfe.txt", "/srv/caf\xc3\xa9/\xff\xfe.txt");
	/* A high byte separates tokens like any punctuation. */
	expect_gen("/srv/ab\xff"
		   "12",
		   "/srv/ab\xff<num>");
}

Test(generalize, same_input_same_output_and_patterns_are_fixed_points)
{
	static const char *const paths[] = {
	    "/proc/1234/stat",
	    "/tmp/tmp.aB3xZ9qLmP",
	    "/var/cache/x/550e8400-e29b-41d4-a716-446655440000.json",
	    "/usr/lib/x86_64-linux-gnu/libc.so.6",
	    "/run/user/0/x",
	};
	char a[GENERALIZE_PATTERN_MAX], b[GENERALIZE_PATTERN_MAX], c[GENERALIZE_PATTERN_MAX];

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		cr_assert_geq(generalize_path(paths[i], a, sizeof(a)), 0);
		cr_assert_geq(generalize_path(paths[i], b, sizeof(b)), 0);
		cr_expect_str_eq(a, b);
		cr_assert_geq(generalize_path(a, c, sizeof(c)), 0);
		cr_expect_str_eq(c, a, "pattern %s generalized again", a);
	}
}

Test(generalize, a_path_longer_than_out_is_cut_and_terminated)
{
	char path[2048], out[64];

	memset(path, 0, sizeof(path));
	path[0] = '/';
	memset(path + 1, 'a', sizeof(path) - 2);
	/* Guard bytes after the buffer we pass must stay untouched. */
	memset(out, '#', sizeof(out));
	cr_expect_eq(generalize_path(path, out, 32), -ENAMETOOLONG);
	cr_expect_eq(strlen(out), 31);
	cr_expect_eq(out[32], '#');
	cr_expect_eq(memcmp(out, path, 31), 0);
}

Test(generalize, a_cut_can_fall_inside_a_marker)
{
	char out[8];

	cr_expect_eq(generalize_path("/proc/1234/stat", out, sizeof(out)), -ENAMETOOLONG);
	cr_expect_str_eq(out, "/proc/<");
	/* Exactly fitting: 16 characters and the NUL. */
	char fit[17];
	cr_expect_eq(generalize_path("/proc/1234/stat", fit, sizeof(fit)), 16);
	cr_expect_str_eq(fit, "/proc/<num>/stat");
	cr_expect_eq(generalize_path("/proc/1234/stat", fit, 16), -ENAMETOOLONG);
	cr_expect_str_eq(fit, "/proc/<num>/sta");
}

/*
 * Pseudo-random paths from an alphabet that hits every rule, in heap buffers
 * of exact size: under ASan any read past the input or write past outlen fails.
 */
Test(generalize, arbitrary_input_stays_in_bounds)
{
	static const char alphabet[] = "//--..09ab3fXyZ_\xff\x80<>";
	uint32_t seed = 12345;

	for (int round = 0; round < 2000; round++) {
		size_t len = (size_t)(round % 90), outlen = (size_t)(round % 70);
		char *in = malloc(len + 1), *out = malloc(outlen > 0 ? outlen : 1);
		char full[GENERALIZE_PATTERN_MAX * 4];

		cr_assert(in != NULL && out != NULL);
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245 + 12345;
			in[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		in[len] = '\0';
		if (round % 7 == 0 && len >= 40) /* a UUID cut at the end of the input */
			memcpy(in + len - 30, "/550e8400-e29b-41d4-a716-4466", 29);
		int n = generalize_path(in, out, outlen);
		int m = generalize_path(in, full, sizeof(full));
		cr_assert_geq(m, 0);
		if (outlen > 0) {
			cr_expect_eq(n < 0 ? strlen(out) : (size_t)n, strlen(out));
			cr_expect_eq(strncmp(out, full, strlen(out)), 0, "a cut is a prefix");
			cr_expect_eq(n, (size_t)m < outlen ? m : -ENAMETOOLONG);
		} else {
			cr_expect_eq(n, -ENAMETOOLONG);
		}
		char g[GENERALIZE_PATTERN_MAX];
		(void)generalize_parent_glob(in, out, outlen);
		(void)generalize_parent_glob(in, g, sizeof(g));
		(void)generalize_glob_matches("/a/*", in);
		(void)generalize_is_sensitive(in);
		free(in);
		free(out);
	}
}

Test(generalize, tiny_outputs)
{
	char one[1] = {'#'};

	cr_expect_eq(generalize_path("/a", NULL, 0), -ENAMETOOLONG);
	cr_expect_eq(generalize_path("/a", one, 0), -ENAMETOOLONG);
	cr_expect_eq(one[0], '#', "outlen 0 must not write");
	cr_expect_eq(generalize_path("/a", one, 1), -ENAMETOOLONG);
	cr_expect_eq(one[0], '\0');
	cr_expect_eq(generalize_path("", one, 1), 0);
	cr_expect_eq(generalize_parent_glob("/a/b/c", one, 1), -ENAMETOOLONG);
	cr_expect_eq(one[0], '\0');
	cr_expect_eq(generalize_parent_glob("/a/b/c", NULL, 0), -ENAMETOOLONG);
}

static const char *pg(const char *pattern)
{
	static char out[GENERALIZE_PATTERN_MAX];
	int n = generalize_parent_glob(pattern, out, sizeof(out));

	if (n < 0)
		return NULL;
	cr_assert_eq(n, (int)strlen(out));
	return out;
}

Test(generalize, parent_glob_folds_one_level_and_never_the_root)
{
	cr_expect_str_eq(pg("/a/b/c"), "/a/b/*");
	cr_expect_str_eq(pg("/var/spool/x/<num>"), "/var/spool/x/*");
	cr_expect_str_eq(pg("/a/b/*"), "/a/*");
	cr_expect_str_eq(pg("/a/b/c/"), "/a/b/*");
	cr_expect_null(pg("/a"));
	cr_expect_null(pg("/a/*"));
	cr_expect_null(pg("/"));
	cr_expect_null(pg("/*"));
	cr_expect_null(pg(""));
	cr_expect_null(pg("relative"));
}

Test(generalize, parent_glob_too_small_out)
{
	char out[7];

	cr_expect_eq(generalize_parent_glob("/a/b/c", out, 7), 6);
	cr_expect_str_eq(out, "/a/b/*");
	cr_expect_eq(generalize_parent_glob("/a/b/c", out, 6), -ENAMETOOLONG);
	cr_expect_str_eq(out, "/a/b/");
}

Test(generalize, glob_matches_below_the_directory_only)
{
	cr_expect(generalize_glob_matches("/a/b/*", "/a/b/c"));
	cr_expect(generalize_glob_matches("/a/b/*", "/a/b/c/d"));
	cr_expect(generalize_glob_matches("/a/b/*", "/a/b/<num>"));
	cr_expect(generalize_glob_matches("/a/b/*", "/a/b/c/*"));
	cr_expect_not(generalize_glob_matches("/a/b/*", "/a/bc"));
	cr_expect_not(generalize_glob_matches("/a/b/*", "/a/b"));
	cr_expect_not(generalize_glob_matches("/a/b/*", "/a/b/"));
	cr_expect_not(generalize_glob_matches("/a/b/*", "/a"));
	cr_expect_not(generalize_glob_matches("/a/b/*", "/x/a/b/c"));
	cr_expect_not(generalize_glob_matches("/a/b", "/a/b/c"), "not a glob");
	cr_expect_not(generalize_glob_matches("*", "/a"), "not a glob");
}

Test(generalize, a_shape_matches_names_of_its_shape_in_its_directory_only)
{
	cr_expect(generalize_glob_matches("/d/c-*.tmp", "/d/c-<rand>.tmp"));
	cr_expect(generalize_glob_matches("/d/c-*.tmp", "/d/c-qzkvtw.tmp"));
	cr_expect(generalize_glob_matches("/d/c-*.tmp", "/d/c-.tmp"), "the star may be empty");
	cr_expect(generalize_glob_matches("/d/c-*.tmp", "/d/c-x*.tmp"), "a narrower shape");
	cr_expect(generalize_glob_matches("/d/*.db", "/d/alpha.db"));
	cr_expect(generalize_glob_matches("/d/report-*", "/d/report-<num>.pdf"));
	cr_expect_not(generalize_glob_matches("/d/c-*.tmp", "/d/anything.php"));
	cr_expect_not(generalize_glob_matches("/d/c-*.tmp", "/d/c-x.tmp.php"));
	cr_expect_not(generalize_glob_matches("/d/c-*.tmp", "/d/c-x/y.tmp"), "one name, no deeper");
	cr_expect_not(generalize_glob_matches("/d/c-*.tmp", "/d/sub/c-x.tmp"));
	cr_expect_not(generalize_glob_matches("/d/c-*.tmp", "/e/c-x.tmp"));
	cr_expect_not(generalize_glob_matches("/d/c-*.tmp", "/d/c.tmp"), "the ends do not overlap");
	cr_expect_not(generalize_glob_matches("/d/c-*.tmp", "/d/"));
	cr_expect_eq(generalize_glob_kind("/d/*"), GLOB_TREE);
	cr_expect_eq(generalize_glob_kind("/d/c-*.tmp"), GLOB_SHAPE);
	cr_expect_eq(generalize_glob_kind("/d/c-<rand>.tmp"), GLOB_NONE);
	cr_expect_eq(generalize_glob_kind("/d*/x"), GLOB_NONE, "a star in a directory's name");
	cr_expect_str_eq(pg("/a/b/c-*.tmp"), "/a/b/*", "a shape folds into its own directory");
}

/* generalize_shape of names in /d: the glob, or NULL when it refused (errno-like code in rc). */
static const char *shape_of(const char *const *names, size_t n, int *ret)
{
	static char out[GENERALIZE_PATTERN_MAX];
	const char *paths[16];
	static char buf[16][128];

	for (size_t i = 0; i < n; i++) {
		snprintf(buf[i], sizeof(buf[i]), "/d/%s", names[i]);
		paths[i] = buf[i];
	}
	*ret = generalize_shape("/d/*", paths, n, out, sizeof(out));
	if (*ret >= 0)
		cr_assert_eq(*ret, (int)strlen(out));
	return *ret >= 0 ? out : NULL;
}

#define expect_shape(want, ...)                                                                    \
	do {                                                                                       \
		const char *const names_[] = {__VA_ARGS__};                                        \
		int rc_;                                                                           \
		const char *got_ = shape_of(names_, sizeof(names_) / sizeof(names_[0]), &rc_);     \
		if ((want) == NULL)                                                                \
			cr_expect_null(got_, "shape %s, wanted none", got_);                       \
		else                                                                               \
			cr_expect_str_eq(got_ != NULL ? got_ : "(none)", (want));                  \
	} while (0)

Test(generalize, shapes_keep_what_the_names_share)
{
	expect_shape("/d/c-*.tmp", "c-qzkvtw.tmp", "c-bmxjrp.tmp", "c-<rand>.tmp");
	expect_shape("/d/report-*.pdf", "report-jan.pdf", "report-jun.pdf", "report-<num>.pdf");
	expect_shape("/d/*.db", "alpha.db", "bravo.db", "charlie.db");
	expect_shape("/d/sess_*", "sess_abc", "sess_xyz");
	expect_shape("/d/<num>-*.log", "<num>-a.log", "<num>-b.log");
	/* Markers are never cut: "x<num>.tmp" and "y<rand>.tmp" share ".tmp", not ">.tmp". */
	expect_shape("/d/*.tmp", "x<num>.tmp", "y<rand>.tmp");
	expect_shape("/d/<rand>.*", "<rand>.json", "<rand>.lock");
	/* Nor words: "tmpqzk" and "tmpbmx" share no token. */
	expect_shape(NULL, "tmpqzkvtw", "tmpbmxjrp");
	expect_shape("/d/*.conf", "charlie.conf", "cherry.conf");
	/* The prefix comes first; the suffix takes what is left. */
	expect_shape("/d/a.*tmp", "a.tmp", "a.x.tmp");
	/* A shape among the siblings takes part with its fixed ends. */
	expect_shape("/d/c-*", "c-*.tmp", "c-abc.lock");
	expect_shape("/d/*.tmp", "c-*.tmp", "d-<rand>.tmp");
}

Test(generalize, no_shape_fits_names_with_nothing_in_common)
{
	int rc;
	const char *const none[] = {"alpha", "bravo.txt", "c-x"};
	const char *const dots[] = {".a", ".b"};
	const char *const markers[] = {"<num>", "<rand>"};
	const char *paths[] = {"/d/x.tmp", "/d/sub/*"};
	const char *wrong[] = {"/d/x.tmp", "/e/y.tmp"};
	char out[64];

	cr_expect_null(shape_of(none, 3, &rc));
	cr_expect_eq(rc, -ENOENT);
	cr_expect_null(shape_of(dots, 2, &rc), "punctuation alone is no shape");
	cr_expect_null(shape_of(markers, 2, &rc));
	cr_expect_eq(generalize_shape("/d/*", paths, 2, out, sizeof(out)), -ENOENT,
		     "a folded subdirectory is a whole tree");
	cr_expect_eq(generalize_shape("/d/*", wrong, 2, out, sizeof(out)), -EINVAL);
	cr_expect_eq(generalize_shape("/d/*", wrong, 1, out, sizeof(out)), -EINVAL);
	cr_expect_eq(generalize_shape("/d", wrong, 2, out, sizeof(out)), -EINVAL);
	const char *ok[] = {"/d/c-ab.tmp", "/d/c-cd.tmp"};
	cr_expect_eq(generalize_shape("/d/*", ok, 2, out, 5), -ENAMETOOLONG);
}

Test(generalize, reads_every_process_makes_are_common)
{
	static const char *const common[] = {
	    "/usr/lib/x86_64-linux-gnu/libc.so.6",
	    "/usr/lib/locale/locale-archive",
	    "/usr/share/zoneinfo/Europe/Berlin",
	    "/usr/local/lib/python3.11/site-packages/x.py",
	    "/lib/x86_64-linux-gnu/libm.so.6",
	    "/etc/ld.so.cache",
	    "/etc/localtime",
	    "/etc/nsswitch.conf",
	    "/etc/resolv.conf",
	    "/etc/ssl/certs/ca-certificates.crt",
	    "/sys/devices/system/cpu/online",
	    "/proc/meminfo",
	    "/proc/sys/kernel/ngroups_max",
	    "/proc/1234/maps",
	    "/proc/1234/task/1240/stat",
	    "/proc/1234",
	    "/dev/urandom",
	    "/dev/null",
	};
	static const char *const kept[] = {
	    "/etc/passwd",
	    "/etc/group",
	    "/etc/machine-id",
	    "/etc/nginx/nginx.conf",
	    "/etc/ssl/private/server.key",
	    "/usr/local/etc/app.conf",
	    "/usr/local/app/config.yml",
	    "/proc/1/environ",
	    "/proc/12345/status",
	    "/proc/123/status",
	    "/proc/kcore",
	    "/dev/sda",
	    "/dev/shm/x",
	    "/home/alice/.aws/credentials",
	    "/root/.kube/config",
	    "/var/lib/postgresql/15/main/PG_VERSION",
	    "/srv/www/index.html",
	    "/usr",
	    "/usrx/lib/a",
	    "relative/usr/lib",
	    "",
	};

	for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
		cr_expect(generalize_read_is_common(common[i], 1234), "%s is common", common[i]);
	for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
		cr_expect_not(generalize_read_is_common(kept[i], 1234), "%s is modelled", kept[i]);
}

Test(generalize, sensitive_files)
{
	static const char *const yes[] = {
	    "/etc/shadow",
	    "/etc/shadow-",
	    "/etc/gshadow",
	    "/etc/gshadow-",
	    "/etc/sudoers",
	    "/etc/sudoers.d/90-cloud-init-users",
	    "/etc/security/opasswd",
	    "/etc/ssh/ssh_host_rsa_key",
	    "/etc/ssh/ssh_host_ed25519_key",
	    "/etc/ssh/ssh_host_key",
	    "/root/.ssh/id_rsa",
	    "/root/.ssh/authorized_keys",
	    "/home/alice/.ssh/id_ed25519",
	    "/home/bob/.ssh/authorized_keys",
	    "/etc/ssl/private/server.key",
	    "/etc/krb5.keytab",
	    "/proc/kcore",
	    "/dev/mem",
	    "/dev/kmem",
	    "/var/lib/sss/db/cache_x.ldb",
	    "/etc/master.passwd",
	};
	static const char *const no[] = {
	    "/etc/passwd",
	    "/etc/group",
	    "/etc/hosts",
	    "/etc/ssh/ssh_host_rsa_key.pub",
	    "/etc/ssh/sshd_config",
	    "/etc/shadow.bak",
	    "/etc/shadowx",
	    "/etc/sudoers.d/",
	    "/etc/sudoers.dx",
	    "/root/.ssh",
	    "/root/.sshx/k",
	    "/home/.ssh/id_rsa",
	    "/home/alice/.ssh",
	    "/home/alice/x/.ssh/id_rsa",
	    "/home/alice/.sshrc",
	    "/etc/ssh/ssh_host_rsa_key/x",
	    "/dev/memory",
	    "/etc/ssl/private",
	    "/etc/ssl/certs/x",
	    "",
	    "/",
	};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		cr_expect(generalize_is_sensitive(yes[i]), "%s should be sensitive", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		cr_expect_not(generalize_is_sensitive(no[i]), "%s should not be sensitive", no[i]);
}

/* The range the kernel reports here, to compare with; defaults when unreadable. */
static void kernel_range(unsigned *lo, unsigned *hi)
{
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");

	*lo = 32768;
	*hi = 60999;
	if (f == NULL)
		return;
	if (fscanf(f, "%u %u", lo, hi) != 2) {
		*lo = 32768;
		*hi = 60999;
	}
	fclose(f);
}

static void check_ports(void)
{
	unsigned lo, hi;

	kernel_range(&lo, &hi);
	cr_expect_not(generalize_port_is_ephemeral(0));
	cr_expect(generalize_port_is_ephemeral((uint16_t)lo));
	cr_expect(generalize_port_is_ephemeral((uint16_t)hi));
	cr_expect_not(generalize_port_is_ephemeral((uint16_t)(lo - 1)));
	if (hi < 65535)
		cr_expect_not(generalize_port_is_ephemeral((uint16_t)(hi + 1)));
	if (lo > 443)
		cr_expect_not(generalize_port_is_ephemeral(443));
}

Test(generalize, ephemeral_ports_follow_the_kernel_range)
{
	generalize_ports_init();
	generalize_ports_init(); /* idempotent */
	check_ports();
}

/* Each criterion test is its own process: here generalize_ports_init never ran. */
Test(generalize, ephemeral_ports_work_without_init)
{
	check_ports();
}

static const char *ga(int family, const uint8_t *addr, bool range)
{
	static char out[64];
	int n = range ? generalize_addr_range(family, addr, out, sizeof(out))
		      : generalize_addr(family, addr, out, sizeof(out));

	if (n < 0)
		return NULL;
	cr_assert_eq(n, (int)strlen(out));
	return out;
}

Test(generalize, ipv4_addresses_and_ranges)
{
	const uint8_t a[4] = {10, 0, 3, 7};

	cr_expect_str_eq(ga(AF_INET, a, false), "10.0.3.7");
	cr_expect_str_eq(ga(AF_INET, a, true), "10.0.3.0/24");
}

Test(generalize, ipv6_addresses_and_ranges)
{
	const uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6};
	const uint8_t lo[16] = {[15] = 1};

	cr_expect_str_eq(ga(AF_INET6, a, false), "2001:db8:1:2:3:4:5:6");
	cr_expect_str_eq(ga(AF_INET6, a, true), "2001:db8:1:2::/64");
	cr_expect_str_eq(ga(AF_INET6, lo, false), "::1");
	cr_expect_str_eq(ga(AF_INET6, lo, true), "::/64");
}

Test(generalize, ipv4_mapped_ipv6_is_ipv4)
{
	const uint8_t a[16] = {
	    [10] = 0xff, [11] = 0xff, [12] = 192, [13] = 168, [14] = 1, [15] = 20};

	cr_expect_str_eq(ga(AF_INET6, a, false), "192.168.1.20");
	cr_expect_str_eq(ga(AF_INET6, a, true), "192.168.1.0/24");
}

Test(generalize, addresses_of_other_families_or_too_long_fail)
{
	const uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
	char out[8];

	cr_expect_eq(generalize_addr(AF_UNIX, a, out, sizeof(out)), -EAFNOSUPPORT);
	cr_expect_str_eq(out, "");
	cr_expect_eq(generalize_addr_range(AF_PACKET, a, out, sizeof(out)), -EAFNOSUPPORT);
	cr_expect_eq(generalize_addr(AF_INET6, a, out, sizeof(out)), -ENAMETOOLONG);
	cr_expect_eq(strlen(out), sizeof(out) - 1, "cut but terminated");
	cr_expect_eq(generalize_addr(AF_INET, a, out, 0), -ENAMETOOLONG);
	cr_expect_eq(generalize_addr(AF_INET, a, out, 3), -ENAMETOOLONG);
	cr_expect_str_eq(out, "32");
	/* "1.2.3.0/24" is 10 characters: fits in 11, not in 10. */
	const uint8_t b[4] = {1, 2, 3, 4};
	char r[11];
	cr_expect_eq(generalize_addr_range(AF_INET, b, r, 11), 10);
	cr_expect_eq(generalize_addr_range(AF_INET, b, r, 10), -ENAMETOOLONG);
}
