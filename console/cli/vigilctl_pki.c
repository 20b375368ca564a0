/* SPDX-License-Identifier: Apache-2.0 */
#include "cli/vigilctl_pki.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/error.h>
#include <mbedtls/x509_crt.h>

#include "fsutil.h"
#include "pki.h"

#define CERT_FILE_MAX (1024u * 1024)
#define MAX_DAYS      36500

static const char usage_text[] =
    "usage: vigilctl pki init --dir DIR [--cn NAME] [--days N]\n"
    "       vigilctl pki issue --dir DIR --cn NAME (--server|--client) [--dns NAME]...\n"
    "               [--ip ADDR]... [--days N] [--not-before YYYYMMDDhhmmss]\n"
    "               [--not-after YYYYMMDDhhmmss] [--out-cert FILE] [--out-key FILE]\n"
    "       vigilctl pki show FILE\n"
    "\n"
    "init   creates the CA (DIR/ca.crt, DIR/ca.key); --cn defaults to \"Vigil CA\",\n"
    "       --days to 3650.  An existing CA is never overwritten.\n"
    "issue  signs a fresh P-256 key with the CA in DIR: --server for a console,\n"
    "       --client for a defender (its CN is the host id).  Writes DIR/NAME.crt and\n"
    "       DIR/NAME.key unless --out-cert/--out-key say otherwise; --days defaults\n"
    "       to 825.  Times are UTC.  Existing files are never overwritten.\n"
    "show   prints a certificate's subject, issuer, validity, SANs and key usage.\n";

/* Bad usage: one line naming what is wrong; exit status 2. */
static __attribute__((format(printf, 2, 3))) int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vigilctl pki %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 2;
}

static int fail(const vigil_err *err)
{
	fprintf(stderr, "vigilctl pki: %s\n", err->msg);
	return 1;
}

/* getopt_long returned ':' or '?'; argv[optind - 1] is the culprit. */
static int opt_error(const char *cmd, int c, char **argv)
{
	const char *arg = argv[optind - 1];

	if (c == ':')
		return usage_error(cmd, "option '%s' needs an argument", arg);
	if (optopt != 0 && strncmp(arg, "--", 2) == 0)
		return usage_error(cmd, "option '%s' takes no argument", arg);
	if (optopt != 0)
		return usage_error(cmd, "unknown option '-%c'", optopt);
	return usage_error(cmd, "unknown option '%s'", arg);
}

static int parse_days(const char *cmd, const char *arg, int *ret_days)
{
	char *end;
	long v = strtol(arg, &end, 10);

	if (end == arg || *end != '\0' || v < 1 || v > MAX_DAYS)
		return usage_error(cmd, "--days needs a number from 1 to %d, not '%s'", MAX_DAYS,
				   arg);
	*ret_days = (int)v;
	return 0;
}

/* "YYYYMMDDhhmmss" UTC; dates that do not exist (Feb 30) are refused. */
static int parse_time(const char *cmd, const char *opt, const char *arg, time_t *ret_t)
{
	struct tm tm = {0}, want;

	if (strlen(arg) != 14 || strspn(arg, "0123456789") != 14 ||
	    sscanf(arg, "%4d%2d%2d%2d%2d%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
		   &tm.tm_min, &tm.tm_sec) != 6)
		goto bad;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	want = tm;
	*ret_t = timegm(&tm);
	if (tm.tm_year != want.tm_year || tm.tm_mon != want.tm_mon || tm.tm_mday != want.tm_mday ||
	    tm.tm_hour != want.tm_hour || tm.tm_min != want.tm_min || tm.tm_sec != want.tm_sec)
		goto bad;
	return 0;
bad:
	return usage_error(cmd, "%s needs a UTC time as YYYYMMDDhhmmss, not '%s'", opt, arg);
}

static int cmd_init(int argc, char **argv)
{
	static const struct option longopts[] = {{"dir", required_argument, NULL, 'd'},
						 {"cn", required_argument, NULL, 'n'},
						 {"days", required_argument, NULL, 'D'},
						 {NULL, 0, NULL, 0}};
	const char *dir = NULL, *cn = "Vigil CA";
	vigil_err err = {0};
	int c, days = 0;

	while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'n':
			cn = optarg;
			break;
		case 'D':
			if (parse_days("init", optarg, &days) != 0)
				return 2;
			break;
		default:
			return opt_error("init", c, argv);
		}
	}
	if (optind < argc)
		return usage_error("init", "unexpected argument '%s'", argv[optind]);
	if (dir == NULL)
		return usage_error("init", "--dir is required");
	if (pki_ca_create(dir, cn, days, &err) < 0)
		return fail(&err);
	printf("created CA '%s': certificate %s/%s, key %s/%s (mode 0600)\n", cn, dir, PKI_CA_CERT,
	       dir, PKI_CA_KEY);
	return 0;
}

static int cmd_issue(int argc, char **argv)
{
	static const struct option longopts[] = {{"dir", required_argument, NULL, 'd'},
						 {"cn", required_argument, NULL, 'n'},
						 {"days", required_argument, NULL, 'D'},
						 {"server", no_argument, NULL, 's'},
						 {"client", no_argument, NULL, 'c'},
						 {"dns", required_argument, NULL, 'N'},
						 {"ip", required_argument, NULL, 'i'},
						 {"not-before", required_argument, NULL, 'b'},
						 {"not-after", required_argument, NULL, 'a'},
						 {"out-cert", required_argument, NULL, 'C'},
						 {"out-key", required_argument, NULL, 'K'},
						 {NULL, 0, NULL, 0}};
	const char *dns[PKI_MAX_SAN], *ips[PKI_MAX_SAN];
	const char *dir = NULL, *out_cert = NULL, *out_key = NULL;
	char cert_buf[PATH_MAX], key_buf[PATH_MAX];
	struct pki_issue_opts o = {.dns = dns, .ips = ips};
	vigil_err err = {0};
	int c, rc = 0, server = 0, client = 0;

	/* The long options' values are letters only to name them in this switch. */
	while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		if ((c == 'N' || c == 'i') && o.ndns + o.nips >= PKI_MAX_SAN)
			return usage_error("issue", "at most %d --dns and --ip in all",
					   PKI_MAX_SAN);
		/* One option per line reads as a table. */
		/* clang-format off */
		switch (c) {
		case 'd': dir = optarg; break;
		case 'n': o.cn = optarg; break;
		case 's': server = 1; break;
		case 'c': client = 1; break;
		case 'N': dns[o.ndns++] = optarg; break;
		case 'i': ips[o.nips++] = optarg; break;
		case 'C': out_cert = optarg; break;
		case 'K': out_key = optarg; break;
		case 'D': rc = parse_days("issue", optarg, &o.days); break;
		case 'b': rc = parse_time("issue", "--not-before", optarg, &o.not_before); break;
		case 'a': rc = parse_time("issue", "--not-after", optarg, &o.not_after); break;
		default: return opt_error("issue", c, argv);
		}
		/* clang-format on */
		if (rc != 0)
			return rc;
	}
	if (optind < argc)
		return usage_error("issue", "unexpected argument '%s'", argv[optind]);
	if (dir == NULL || o.cn == NULL)
		return usage_error("issue", "--dir and --cn are required");
	if (server == client)
		return usage_error("issue", "exactly one of --server or --client is required");
	if (o.days != 0 && o.not_after != 0)
		return usage_error("issue", "--days and --not-after exclude each other");
	o.kind = server ? PKI_SERVER : PKI_CLIENT;
	if (snprintf(cert_buf, sizeof(cert_buf), "%s/%s.crt", dir, o.cn) >= PATH_MAX ||
	    snprintf(key_buf, sizeof(key_buf), "%s/%s.key", dir, o.cn) >= PATH_MAX)
		return usage_error("issue", "--dir and --cn make too long a path");
	out_cert = out_cert != NULL ? out_cert : cert_buf;
	out_key = out_key != NULL ? out_key : key_buf;
	if (pki_issue(dir, &o, out_cert, out_key, &err) < 0)
		return fail(&err);
	printf("issued %s certificate for '%s': certificate %s, key %s (mode 0600)\n",
	       server ? "server" : "client", o.cn, out_cert, out_key);
	return 0;
}

/*
 * mbedTLS 2.28's crt_info prints every SAN but dNSName and otherName as
 * "<unsupported>", in order: the next such SAN after san, or NULL.
 */
static const mbedtls_x509_sequence *next_unsupported(const mbedtls_x509_sequence *san)
{
	for (; san != NULL && san->buf.p != NULL; san = san->next) {
		int type = san->buf.tag & MBEDTLS_ASN1_TAG_VALUE_MASK;
		if (type != MBEDTLS_X509_SAN_DNS_NAME && type != MBEDTLS_X509_SAN_OTHER_NAME)
			return san;
	}
	return NULL;
}

/* The text of an iPAddress SAN in out, or NULL when b is something else. */
static const char *san_ip(const mbedtls_x509_buf *b, char *out, socklen_t size)
{
	if ((b->tag & MBEDTLS_ASN1_TAG_VALUE_MASK) != MBEDTLS_X509_SAN_IP_ADDRESS ||
	    (b->len != 4 && b->len != 16))
		return NULL;
	return inet_ntop(b->len == 4 ? AF_INET : AF_INET6, b->p, out, size);
}

static int cmd_show(int argc, char **argv)
{
	const mbedtls_x509_crt *cur;
	mbedtls_x509_crt crt;
	vigil_err err = {0};
	char *buf = NULL, info[32768], ip[INET6_ADDRSTRLEN], *line, *save;
	size_t len;
	int mret, rc = 1;

	if (argc != 2 || argv[1][0] == '-')
		return usage_error("show", "needs exactly one certificate FILE");
	if (fs_read_file(argv[1], CERT_FILE_MAX, &buf, &len, &err) < 0)
		return fail(&err);
	mbedtls_x509_crt_init(&crt);
	mret = mbedtls_x509_crt_parse(&crt, (unsigned char *)buf, len + 1);
	free(buf);
	if (mret != 0) {
		mbedtls_strerror(mret, info, sizeof(info));
		fprintf(stderr, "vigilctl pki: %s is not a certificate: %s\n", argv[1], info);
		goto out;
	}
	for (cur = &crt; cur != NULL && cur->raw.p != NULL; cur = cur->next) {
		const mbedtls_x509_sequence *san = &cur->subject_alt_names;
		if (mbedtls_x509_crt_info(info, sizeof(info), "", cur) < 0) {
			fprintf(stderr, "vigilctl pki: cannot describe %s\n", argv[1]);
			goto out;
		}
		/* mbedTLS 2.28 cannot print iPAddress SANs; print them in its place. */
		for (line = strtok_r(info, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			const char *addr = NULL;
			if (strstr(line, "<unsupported>") != NULL &&
			    (san = next_unsupported(san)) != NULL) {
				addr = san_ip(&san->buf, ip, sizeof(ip));
				san = san->next;
			}
			if (addr != NULL)
				printf("    iPAddress : %s\n", addr);
			else
				printf("%s\n", line);
		}
		if (cur->next != NULL && cur->next->raw.p != NULL)
			printf("\n");
	}
	rc = 0;
out:
	mbedtls_x509_crt_free(&crt);
	return rc;
}

int vigilctl_pki_main(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : NULL;

	/* argv[1] becomes the program name; 0 makes glibc start parsing afresh. */
	optind = 0;
	opterr = 0;
	if (sub == NULL) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (strcmp(sub, "init") == 0)
		return cmd_init(argc - 1, argv + 1);
	if (strcmp(sub, "issue") == 0)
		return cmd_issue(argc - 1, argv + 1);
	if (strcmp(sub, "show") == 0)
		return cmd_show(argc - 1, argv + 1);
	fprintf(stderr, "vigilctl pki: unknown subcommand '%s' (init, issue, show; see --help)\n",
		sub);
	return 2;
}
