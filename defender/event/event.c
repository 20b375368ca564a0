/* SPDX-License-Identifier: Apache-2.0 */
#include "event/event.h"

#include <errno.h>
#include <string.h>

/* Walk n strings of the given lengths laid out after the fixed part. */
static int take_strings(struct event *ev, const char *base, size_t fixed, size_t len,
			const __u16 *lens, int n)
{
	size_t off = fixed;

	for (int i = 0; i < n; i++) {
		size_t l = lens[i];

		ev->s[i].p = NULL;
		ev->s[i].len = 0;
		if (l == 0)
			continue;
		if (l > len - off || base[off + l - 1] != '\0')
			return -EBADMSG;
		ev->s[i].p = base + off;
		ev->s[i].len = l - 1;
		off += l;
	}
	return 0;
}

int event_decode(const void *rec, size_t len, struct event *ev)
{
	const struct ev_hdr *h = rec;
	const char *base = rec;

	memset(ev, 0, sizeof(*ev));
	if (len < sizeof(*h) || h->size != len)
		return -EBADMSG;
	ev->hdr = h;
	switch (h->type) {
	case EV_EXEC: {
		const struct ev_exec *e = rec;
		__u16 lens[3];

		if (len < sizeof(*e))
			return -EBADMSG;
		lens[0] = e->filename_len;
		lens[1] = e->args_len;
		lens[2] = e->cwd_len;
		ev->exec = e;
		return take_strings(ev, base, sizeof(*e), len, lens, 3);
	}
	case EV_FORK:
		if (len < sizeof(struct ev_fork))
			return -EBADMSG;
		ev->fork = rec;
		return 0;
	case EV_EXIT:
		if (len < sizeof(struct ev_exit))
			return -EBADMSG;
		ev->exit = rec;
		return 0;
	case EV_FILE: {
		const struct ev_file *e = rec;
		__u16 lens[4];

		if (len < sizeof(*e))
			return -EBADMSG;
		lens[0] = e->path_len;
		lens[1] = e->path2_len;
		lens[2] = e->base_len;
		lens[3] = e->base2_len;
		ev->file = e;
		return take_strings(ev, base, sizeof(*e), len, lens, 4);
	}
	case EV_NET: {
		const struct ev_net *e = rec;
		__u16 lens[1];

		if (len < sizeof(*e))
			return -EBADMSG;
		lens[0] = e->unix_path_len;
		ev->net = e;
		return take_strings(ev, base, sizeof(*e), len, lens, 1);
	}
	default:
		return -EBADMSG;
	}
}

long event_path_join(const char *base, size_t base_len, const char *name, size_t name_len,
		     char *out, size_t outlen)
{
	size_t o = 0;
	int pass;

	if (outlen < 2)
		return -ENAMETOOLONG;
	out[o++] = '/';
	out[o] = '\0';
	/* Pass 0 folds in base (unless name is absolute), pass 1 the name. */
	for (pass = 0; pass < 2; pass++) {
		const char *s = pass == 0 ? base : name;
		size_t len = pass == 0 ? base_len : name_len;

		if (pass == 0 && (s == NULL || (name_len > 0 && name[0] == '/')))
			continue;
		for (size_t i = 0; i < len;) {
			size_t j = i;

			while (j < len && s[j] != '/')
				j++;
			size_t clen = j - i;
			const char *c = s + i;

			i = j + 1;
			if (clen == 0 || (clen == 1 && c[0] == '.'))
				continue;
			if (clen == 2 && c[0] == '.' && c[1] == '.') {
				/* Up one: drop the last component; "/.." stays "/". */
				while (o > 1 && out[o - 1] != '/')
					o--;
				if (o > 1)
					o--;
				out[o] = '\0';
				continue;
			}
			if (o + (o > 1) + clen + 1 > outlen) {
				out[o] = '\0';
				return -ENAMETOOLONG;
			}
			if (o > 1)
				out[o++] = '/';
			memcpy(out + o, c, clen);
			o += clen;
			out[o] = '\0';
		}
	}
	return (long)o;
}
