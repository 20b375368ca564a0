/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The checks of a rule's single values: names, globs, labels, ports and
 * peer networks.  Each says why a value is refused without quoting it; the
 * caller (rule.c) puts the quoted value in front.
 */
#include "rules/rule_values.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "utf8.h"

static bool why_set(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool why_set(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return false;
}

/* The code point of the valid UTF-8 sequence of n bytes at s. */
static uint32_t code_point(const unsigned char *s, size_t n)
{
	static const unsigned char lead_mask[] = {0, 0x7f, 0x1f, 0x0f, 0x07};
	uint32_t cp = s[0] & lead_mask[n];

	for (size_t i = 1; i < n; i++)
		cp = (cp << 6) | (s[i] & 0x3f);
	return cp;
}

/* Characters that change how the text around them is shown, or show nothing. */
static bool invisible(uint32_t cp)
{
	return cp == 0xad || (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202e) ||
	       (cp >= 0x2060 && cp <= 0x2064) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff;
}

/* Bidirectional embeddings, overrides and isolates: they reorder what a reader sees. */
static bool bidi_control(uint32_t cp)
{
	return (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

bool rule_text_check(const char *s, enum rule_text_kind kind, char *why, size_t whylen)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s);

	for (size_t i = 0; i < len;) {
		size_t n = utf8_char_len(p + i, len - i);
		uint32_t cp;

		if (n == 0)
			return why_set(why, whylen, "is not valid UTF-8");
		cp = code_point(p + i, n);
		if (kind == RULE_TEXT_MULTILINE && (cp == '\n' || cp == '\t')) {
			i += n;
			continue;
		}
		if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0))
			return why_set(why, whylen, "has a control character (U+%04X)", cp);
		if (kind == RULE_TEXT_NAME && invisible(cp))
			return why_set(why, whylen,
				       "has an invisible or direction-changing character (U+%04X)",
				       cp);
		if (kind != RULE_TEXT_NAME && bidi_control(cp))
			return why_set(why, whylen, "has a direction-changing character (U+%04X)",
				       cp);
		i += n;
	}
	return true;
}

bool rule_check_name(const char *s, char *why, size_t whylen)
{
	size_t len = strlen(s);

	if (len == 0)
		return why_set(why, whylen, "is empty");
	if (len > RULE_NAME_MAX)
		return why_set(why, whylen, "is %zu bytes, more than %d", len, RULE_NAME_MAX);
	if (!rule_text_check(s, RULE_TEXT_NAME, why, whylen))
		return false;
	if (s[0] == ' ' || s[len - 1] == ' ')
		return why_set(why, whylen, "starts or ends with a space");
	return true;
}

/*
 * The bracket expression starting at s[i] == '[': *ret_end the index of its
 * ']', or false with why set.  A ']' right after '[' or '[!' is a member.
 */
static bool bracket_end(const char *s, size_t i, bool path, size_t *ret_end, char *why,
			size_t whylen)
{
	size_t j = i + 1, first;

	if (s[j] == '!' || s[j] == '^')
		j++;
	first = j;
	for (; s[j] != '\0'; j++) {
		unsigned char c = (unsigned char)s[j], hi;

		if (c == ']' && j > first) {
			*ret_end = j;
			return true;
		}
		if (c == '[')
			return why_set(why, whylen,
				       "has '[' inside [...] (write \\[ for the character itself)");
		if (path && c == '/')
			return why_set(why, whylen,
				       "has '/' inside [...]: a bracket expression stands for one"
				       " character of a name");
		if (c == '\\') {
			if (s[j + 1] == '\0')
				break;
			j++;
			continue;
		}
		if (s[j + 1] != '-' || s[j + 2] == ']' || s[j + 2] == '\0')
			continue;
		hi = (unsigned char)s[j + 2];
		if (c >= 0x80 || hi >= 0x80)
			return why_set(why, whylen, "has a range with a non-ASCII end in [...]");
		if (c > hi)
			return why_set(why, whylen, "has an inverted range '%c-%c' in [...]", c,
				       hi);
		j += 2;
	}
	return why_set(why, whylen, "has an unbalanced '[' (write \\[ for the character itself)");
}

/* Brackets balanced, escapes complete. */
static bool glob_syntax(const char *s, bool path, char *why, size_t whylen)
{
	for (size_t i = 0; s[i] != '\0'; i++) {
		if (s[i] == '\\') {
			if (s[i + 1] == '\0')
				return why_set(why, whylen,
					       "ends with a lone '\\' (write \\\\ for the character"
					       " itself)");
			i++;
		} else if (s[i] == ']') {
			return why_set(why, whylen,
				       "has a ']' without its '[' (write \\] for the character"
				       " itself)");
		} else if (s[i] == '[') {
			size_t end = 0;

			if (!bracket_end(s, i, path, &end, why, whylen))
				return false;
			i = end;
		}
	}
	return true;
}

/* An absolute, normalized path: no empty, "." or ".." components, no trailing '/'. */
static bool path_shape(const char *s, char *why, size_t whylen)
{
	const char *c = s;

	if (s[0] != '/')
		return why_set(why, whylen, "is not an absolute path (it must start with '/')");
	if (strcmp(s, "/") == 0)
		return true;
	while (*c == '/') {
		const char *next = strchr(c + 1, '/');
		size_t n = next != NULL ? (size_t)(next - c - 1) : strlen(c + 1);

		if (n == 0)
			return why_set(why, whylen,
				       next == NULL ? "ends with '/': name the files ('/dir/*')"
						    : "has an empty component ('//')");
		if ((n == 1 && c[1] == '.') || (n == 2 && c[1] == '.' && c[2] == '.'))
			return why_set(why, whylen,
				       "has a '.' or '..' component: write the path it means");
		if (n > 2 && memmem(c + 1, n, "**", 2) != NULL)
			return why_set(why, whylen,
				       "has '**' inside a name: '**' must be a whole"
				       " component ('/var/**/x')");
		if (next == NULL)
			break;
		c = next;
	}
	return true;
}

bool rule_check_glob(const char *s, enum rule_glob_kind kind, char *why, size_t whylen)
{
	size_t len = strlen(s);

	if (len == 0)
		return why_set(why, whylen, "is empty");
	if (len > RULE_GLOB_MAX)
		return why_set(why, whylen, "is %zu bytes, more than %d", len, RULE_GLOB_MAX);
	if (!rule_text_check(s, RULE_TEXT_LINE, why, whylen))
		return false;
	switch (kind) {
	case RULE_GLOB_PATH:
		if (!path_shape(s, why, whylen))
			return false;
		break;
	case RULE_GLOB_HOST:
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)s[i];

			if (c >= 0x80 ||
			    !(strchr("._-*?[]!^\\", c) != NULL || (c >= '0' && c <= '9') ||
			      (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
				return why_set(why, whylen,
					       "has a character no host id has (host ids are"
					       " letters, digits, '.', '_' and '-')");
		}
		break;
	case RULE_GLOB_IMAGE:
		if (strpbrk(s, " ") != NULL)
			return why_set(why, whylen, "has a space (image names have none)");
		/* Anything else could never match: images are kept only of these. */
		for (size_t i = 0; i < len; i++)
			if (strchr("._-/:@+*?[]!^\\", s[i]) == NULL &&
			    !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
			      (s[i] >= 'A' && s[i] <= 'Z')))
				return why_set(why, whylen,
					       "has a character no image name has (image names are"
					       " letters, digits and . _ - / : @ +)");
		break;
	case RULE_GLOB_SERVICE:
		break;
	}
	return glob_syntax(s, kind == RULE_GLOB_PATH, why, whylen);
}

bool rule_check_path_glob(const char *s, char *why, size_t whylen)
{
	return rule_check_glob(s, RULE_GLOB_PATH, why, whylen);
}

bool rule_check_label(const char *s, size_t *ret_keylen, char *why, size_t whylen)
{
	const char *eq = strchr(s, '=');
	size_t klen;

	if (eq == NULL)
		return why_set(why, whylen, "is not key=value");
	klen = (size_t)(eq - s);
	if (klen == 0)
		return why_set(why, whylen, "has an empty key (key=value)");
	if (klen > RULE_LABEL_KEY_MAX)
		return why_set(why, whylen, "has a key of %zu bytes, more than %d", klen,
			       RULE_LABEL_KEY_MAX);
	if (strlen(eq + 1) > RULE_LABEL_VALUE_MAX)
		return why_set(why, whylen, "has a value of %zu bytes, more than %d",
			       strlen(eq + 1), RULE_LABEL_VALUE_MAX);
	if (memchr(s, ' ', klen) != NULL)
		return why_set(why, whylen, "has a space in its key");
	if (!rule_text_check(s, RULE_TEXT_LINE, why, whylen))
		return false;
	*ret_keylen = klen;
	return true;
}

/* 1..5 decimal digits at s, up to end, into *ret (any value 0..99999). */
static bool digits(const char *s, const char *end, unsigned *ret)
{
	unsigned v = 0;

	if (s == end || end - s > 5)
		return false;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (unsigned)(*s - '0');
	}
	*ret = v;
	return true;
}

/* "N" or "N-M", 1..65535, N <= M. */
static bool port_range(const char *s, uint16_t *lo, uint16_t *hi, char *why, size_t whylen)
{
	const char *dash = strchr(s, '-'), *end = s + strlen(s);
	unsigned a, b;

	if (!digits(s, dash != NULL ? dash : end, &a) ||
	    (dash != NULL && !digits(dash + 1, end, &b)))
		return why_set(why, whylen, "is not a port or a range of ports (22, 8000-8100)");
	if (dash == NULL)
		b = a;
	if (a < 1 || a > 65535 || b < 1 || b > 65535)
		return why_set(why, whylen, "is out of range: ports are 1 to 65535");
	if (a > b)
		return why_set(why, whylen, "is an inverted range: %u is above %u", a, b);
	*lo = (uint16_t)a;
	*hi = (uint16_t)b;
	return true;
}

bool rule_parse_port(const char *s, struct rule_port *ret, char *why, size_t whylen)
{
	struct rule_port p = {.proto = RULE_PROTO_ANY};

	if (strncmp(s, "tcp:", 4) == 0) {
		p.proto = RULE_PROTO_TCP;
		s += 4;
	} else if (strncmp(s, "udp:", 4) == 0) {
		p.proto = RULE_PROTO_UDP;
		s += 4;
	} else if (strchr(s, ':') != NULL) {
		return why_set(why, whylen, "has a protocol other than tcp: or udp:");
	}
	if (!port_range(s, &p.lo, &p.hi, why, whylen))
		return false;
	*ret = p;
	return true;
}

void rule_port_text(const struct rule_port *p, char *buf, size_t len)
{
	const char *proto = p->proto == RULE_PROTO_TCP	 ? "tcp:"
			    : p->proto == RULE_PROTO_UDP ? "udp:"
							 : "";

	if (p->lo == p->hi)
		snprintf(buf, len, "%s%u", proto, p->lo);
	else
		snprintf(buf, len, "%s%u-%u", proto, p->lo, p->hi);
}

/* "ADDR" or "ADDR/PREFIX" (len bytes at s) of family into n; false with why. */
static bool net_addr(const char *s, size_t len, int family, struct rule_net *n, char *why,
		     size_t whylen)
{
	const char *fam = family == AF_INET ? "IPv4" : "IPv6";
	unsigned max = family == AF_INET ? 32 : 128, prefix = max;
	char addr[INET6_ADDRSTRLEN + 1];
	const char *slash = memchr(s, '/', len);
	size_t alen = slash != NULL ? (size_t)(slash - s) : len;

	if (slash != NULL) {
		/* Decimal as inet_pton wants the address: no leading zeros. */
		if (!digits(slash + 1, s + len, &prefix) || slash + 4 < s + len ||
		    (slash[1] == '0' && slash + 2 < s + len))
			return why_set(why, whylen,
				       "is not a CIDR: the prefix length is not a"
				       " number from 0 to %u",
				       max);
		if (prefix > max)
			return why_set(why, whylen, "is not a CIDR: prefix length over %u", max);
	}
	if (alen == 0 || alen >= sizeof(addr))
		return why_set(why, whylen, "is not a CIDR: no %s address before the prefix", fam);
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	memset(n, 0, sizeof(*n));
	if (inet_pton(family, addr, n->addr) != 1)
		return why_set(why, whylen, "is not a CIDR: '%s' is not an %s address", addr, fam);
	n->family = family;
	n->prefix = (uint8_t)prefix;
	for (unsigned bit = prefix; bit < max; bit++) {
		if (n->addr[bit / 8] & (0x80 >> (bit % 8))) {
			char net[INET6_ADDRSTRLEN];
			struct rule_net m = *n;

			for (unsigned b = prefix; b < max; b++)
				m.addr[b / 8] &= (uint8_t) ~(0x80 >> (b % 8));
			inet_ntop(family, m.addr, net, sizeof(net));
			return why_set(why, whylen,
				       "is not a CIDR: bits are set past the prefix (the network"
				       " is %s/%u)",
				       net, prefix);
		}
	}
	return true;
}

bool rule_parse_net(const char *s, struct rule_net *ret, char *why, size_t whylen)
{
	struct rule_net n;
	const char *ports = NULL;
	size_t len = strlen(s), colons = 0;

	for (size_t i = 0; i < len; i++)
		colons += s[i] == ':';
	if (len == 0)
		return why_set(why, whylen, "is empty");
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL)
			return why_set(why, whylen, "has '[' without ']' ([2001:db8::/32]:443)");
		if (close[1] != '\0' && close[1] != ':')
			return why_set(
			    why, whylen,
			    "has text after ']' that is not ':port' ([2001:db8::/32]:443)");
		if (!net_addr(s + 1, (size_t)(close - s - 1), AF_INET6, &n, why, whylen))
			return false;
		if (close[1] == ':')
			ports = close + 2;
	} else if (colons >= 2) {
		if (!net_addr(s, len, AF_INET6, &n, why, whylen))
			return false;
	} else {
		const char *colon = strchr(s, ':');

		if (!net_addr(s, colon != NULL ? (size_t)(colon - s) : len, AF_INET, &n, why,
			      whylen))
			return false;
		if (colon != NULL)
			ports = colon + 1;
	}
	if (ports != NULL && !port_range(ports, &n.port_lo, &n.port_hi, why, whylen))
		return false;
	*ret = n;
	return true;
}

void rule_net_text(const struct rule_net *n, char *buf, size_t len)
{
	char addr[INET6_ADDRSTRLEN], port[16] = "";
	bool v6 = n->family == AF_INET6;

	inet_ntop(n->family, n->addr, addr, sizeof(addr));
	if (n->port_lo != 0 && n->port_lo == n->port_hi)
		snprintf(port, sizeof(port), ":%u", n->port_lo);
	else if (n->port_lo != 0)
		snprintf(port, sizeof(port), ":%u-%u", n->port_lo, n->port_hi);
	if (v6 && port[0] != '\0')
		snprintf(buf, len, "[%s/%u]%s", addr, n->prefix, port);
	else
		snprintf(buf, len, "%s/%u%s", addr, n->prefix, port);
}

/* A glob character: what makes a part of an image glob other than literal text. */
static bool image_glob_meta(char c)
{
	return c == '*' || c == '?' || c == '[' || c == '\\';
}

/* Whether s[0..n) holds a glob character. */
static bool image_glob_has_meta(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (image_glob_meta(s[i]))
			return true;
	return false;
}

bool rule_image_glob_normalize(const char *s, char *out, size_t cap)
{
	size_t len = strlen(s), c0 = strcspn(s, "/"), rest_off = 0, repo, n;
	const char *domain = "docker.io", *last;
	bool hub = true;
	int w;

	if (len == 0 || image_glob_meta(s[0]) || (s[c0] == '/' && image_glob_has_meta(s, c0))) {
		w = snprintf(out, cap, "%s", s); /* a glob over registries: as written */
		return w >= 0 && (size_t)w < cap;
	}
	if (s[c0] == '/' && ((c0 == 9 && strncmp(s, "localhost", 9) == 0) ||
			     memchr(s, '.', c0) != NULL || memchr(s, ':', c0) != NULL)) {
		hub = (c0 == 9 && strncmp(s, "docker.io", 9) == 0) ||
		      (c0 == 15 && strncmp(s, "index.docker.io", 15) == 0);
		if (!hub)
			domain = s;
		rest_off = c0 + 1;
	}
	/* Docker Hub's official images: "nginx" is docker.io/library/nginx. */
	repo = strcspn(s + rest_off, ":@");
	last = strrchr(s + rest_off, '/');
	last = last != NULL ? last + 1 : s + rest_off;
	n = len - (size_t)(last - s);
	w = snprintf(out, cap, "%.*s/%s%s%s", hub ? 9 : (int)c0, domain,
		     hub && strchr(s + rest_off, '/') == NULL &&
			     !image_glob_has_meta(s + rest_off, repo)
			 ? "library/"
			 : "",
		     s + rest_off,
		     memchr(last, ':', n) == NULL && memchr(last, '@', n) == NULL &&
			     !image_glob_has_meta(last, n)
			 ? ":latest"
			 : "");
	return w >= 0 && (size_t)w < cap;
}
