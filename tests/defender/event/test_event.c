/* SPDX-License-Identifier: Apache-2.0 */
/* Decoding hostile records, joining paths, and writing JSON that stays valid. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "event/event.h"
#include "event/event_json.h"
#include "event/json_writer.h"

/* A file record with the given strings (NULL: absent). */
static size_t make_file(char *buf, size_t cap, const char *path, const char *path2,
			const char *base)
{
	struct ev_file *e = (struct ev_file *)buf;
	const char *strs[4] = {path, path2, base, NULL};
	size_t off = sizeof(*e);

	memset(buf, 0, cap);
	e->hdr.type = EV_FILE;
	e->op = FOP_OPEN;
	e->open_flags = 0101; /* O_WRONLY|O_CREAT */
	e->mode = 0644;
	e->result = 3;
	__u16 *lens[4] = {&e->path_len, &e->path2_len, &e->base_len, &e->base2_len};
	for (int i = 0; i < 4; i++) {
		if (strs[i] == NULL)
			continue;
		size_t n = strlen(strs[i]) + 1;
		memcpy(buf + off, strs[i], n);
		*lens[i] = (__u16)n;
		off += n;
	}
	e->hdr.size = (__u16)off;
	return off;
}

Test(event, decodes_a_file_record)
{
	char buf[1024];
	size_t len = make_file(buf, sizeof(buf), "x.txt", NULL, "/home/u");
	struct event ev;

	cr_assert_eq(event_decode(buf, len, &ev), 0);
	cr_expect_str_eq(ev.s[0].p, "x.txt");
	cr_expect_eq(ev.s[0].len, 5);
	cr_expect_null(ev.s[1].p);
	cr_expect_str_eq(ev.s[2].p, "/home/u");
}

Test(event, refuses_records_that_lie_about_their_sizes)
{
	char buf[1024];
	size_t len = make_file(buf, sizeof(buf), "x.txt", NULL, "/home/u");
	struct ev_file *e = (struct ev_file *)buf;
	struct event ev;

	cr_expect_eq(event_decode(buf, len - 1, &ev), -EBADMSG, "size field != length");
	e->hdr.size = 10;
	cr_expect_eq(event_decode(buf, 10, &ev), -EBADMSG, "shorter than the fixed part");
	len = make_file(buf, sizeof(buf), "x.txt", NULL, "/home/u");
	e->base_len = 200;
	cr_expect_eq(event_decode(buf, len, &ev), -EBADMSG, "string runs past the record");
	len = make_file(buf, sizeof(buf), "x.txt", NULL, "/home/u");
	buf[sizeof(*e) + 5] = 'X';
	cr_expect_eq(event_decode(buf, len, &ev), -EBADMSG, "string not NUL-terminated");
	len = make_file(buf, sizeof(buf), "x.txt", NULL, NULL);
	e->hdr.type = 77;
	cr_expect_eq(event_decode(buf, len, &ev), -EBADMSG, "unknown type");
}

Test(event, survives_random_records)
{
	char buf[EV_RECORD_MAX];
	struct event ev;

	srand(42);
	for (int round = 0; round < 20000; round++) {
		size_t len = (size_t)(rand() % 400);
		for (size_t i = 0; i < len; i++)
			buf[i] = (char)rand();
		if (len >= sizeof(struct ev_hdr)) {
			((struct ev_hdr *)buf)->size = (__u16)len;
			((struct ev_hdr *)buf)->type = (__u16)(1 + rand() % 5);
		}
		if (event_decode(buf, len, &ev) == 0) {
			for (int i = 0; i < EV_STR_MAX; i++)
				if (ev.s[i].p != NULL)
					cr_assert(ev.s[i].p >= buf &&
						  ev.s[i].p + ev.s[i].len < buf + len &&
						  ev.s[i].p[ev.s[i].len] == '\0');
		}
	}
}

static void join_is(const char *base, const char *name, const char *want)
{
	char out[256];
	long n =
	    event_path_join(base, base ? strlen(base) : 0, name, strlen(name), out, sizeof(out));

	cr_expect_geq(n, 0);
	cr_expect_str_eq(out, want, "join(%s, %s)", base ? base : "NULL", name);
}

Test(event, joins_paths_lexically)
{
	join_is("/home/u", "x.txt", "/home/u/x.txt");
	join_is("/home/u", "./a//b/../c", "/home/u/a/c");
	join_is("/home/u", "../../../../etc/passwd", "/etc/passwd");
	join_is("/home/u", "/abs/../x", "/x");
	join_is("/", "x", "/x");
	join_is("/a/", ".", "/a");
	join_is(NULL, "rel", "/rel");
}

Test(event, join_refuses_overflow_without_overrunning)
{
	char out[16];
	long n = event_path_join("/aaaaaaaa", 9, "bbbbbbbbbbbb", 12, out, sizeof(out));

	cr_expect_eq(n, -ENAMETOOLONG);
	cr_expect_lt(strlen(out), sizeof(out));
}

Test(jsonw, escapes_control_quotes_and_non_utf8)
{
	char buf[256];
	struct json_writer w;
	json_error_t jerr;

	json_writer_init(&w, buf, sizeof(buf));
	json_writer_obj_begin(&w);
	json_writer_key(&w, "a");
	json_writer_str(&w, "q\"b\\s\n\x01 h\xc3\xa9 \xff\xfe", 14);
	json_writer_key(&w, "n");
	json_writer_u64(&w, 9007199254740993ull); /* past double precision: must stay exact */
	json_writer_key(&w, "l");
	json_writer_arr_begin(&w);
	json_writer_cstr(&w, "x");
	json_writer_i64(&w, -5);
	json_writer_bool(&w, true);
	json_writer_null(&w);
	json_writer_arr_end(&w);
	json_writer_obj_end(&w);
	cr_assert_not(w.overflow);
	cr_expect(w.lossy);
	json_t *doc = json_loads(buf, 0, &jerr);
	cr_assert_not_null(doc, "invalid JSON %s: %s", buf, jerr.text);
	cr_expect_str_eq(json_string_value(json_object_get(doc, "a")),
			 "q\"b\\s\n\x01 h\xc3\xa9 \\xff\\xfe");
	cr_expect_eq(json_array_size(json_object_get(doc, "l")), 4);
	json_decref(doc);
}

/*
 * Every byte that needs escaping, at every position of a 24-byte string (so
 * in each lane of the 8-byte fast path and in the byte-wise tail), comes out
 * exactly as the byte-wise rules say.
 */
Test(jsonw, escapes_at_every_position_of_a_string)
{
	static const struct {
		const char *in;
		size_t len;
		const char *out;
	} special[] = {
	    {"\"", 1, "\\\""},		 {"\\", 1, "\\\\"},   {"\n", 1, "\\u000a"},
	    {"\x1f", 1, "\\u001f"},	 {"\x7f", 1, "\x7f"}, {"\xff", 1, "\\\\xff"},
	    {"\xc3\xa9", 2, "\xc3\xa9"}, {" ", 1, " "},	      {"~", 1, "~"},
	};
	char in[32], want[64], buf[128];
	struct json_writer w;

	for (size_t k = 0; k < sizeof(special) / sizeof(special[0]); k++) {
		for (size_t pos = 0; pos + special[k].len <= 24; pos++) {
			size_t tail = 24 - pos - special[k].len;

			memset(in, 'a', 24);
			memcpy(in + pos, special[k].in, special[k].len);
			snprintf(want, sizeof(want), "\"%.*s%s%.*s\"", (int)pos,
				 "aaaaaaaaaaaaaaaaaaaaaaaa", special[k].out, (int)tail,
				 "aaaaaaaaaaaaaaaaaaaaaaaa");
			json_writer_init(&w, buf, sizeof(buf));
			json_writer_str(&w, in, 24);
			cr_assert_str_eq(buf, want, "special %zu at %zu", k, pos);
		}
	}
}

Test(event_json, formats_ipv4_addresses_as_inet_ntop_does)
{
	static const uint8_t addrs[][4] = {{0, 0, 0, 0},    {255, 255, 255, 255},
					   {10, 0, 100, 9}, {1, 20, 199, 250},
					   {127, 0, 0, 1},  {99, 100, 9, 10}};
	char mine[16], theirs[INET_ADDRSTRLEN];

	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		cr_assert_not_null(inet_ntop(AF_INET, addrs[i], theirs, sizeof(theirs)));
		cr_expect_str_eq(event_ipv4_text(addrs[i], mine), theirs);
	}
}

Test(jsonw, overflow_stops_cleanly)
{
	char buf[16];
	struct json_writer w;

	json_writer_init(&w, buf, sizeof(buf));
	json_writer_obj_begin(&w);
	json_writer_key(&w, "key");
	json_writer_cstr(&w, "a value that is far too long");
	cr_expect(w.overflow);
	cr_expect_lt(strlen(buf), sizeof(buf));
}

Test(event_json, writes_a_relative_open_as_absolute)
{
	char rec[1024], line[8192];
	size_t len = make_file(rec, sizeof(rec), "sub/../x.txt", NULL, "/home/u");
	struct event ev;
	struct json_writer w;

	cr_assert_eq(event_decode(rec, len, &ev), 0);
	json_writer_init(&w, line, sizeof(line));
	event_json_write(&w, &ev, NULL, 0);
	json_t *doc = json_loads(line, 0, NULL);
	cr_assert_not_null(doc, "%s", line);
	cr_expect_str_eq(json_string_value(json_object_get(doc, "path")), "/home/u/x.txt");
	cr_expect_str_eq(json_string_value(json_object_get(doc, "path_as_given")), "sub/../x.txt");
	cr_expect(json_is_true(json_object_get(doc, "write")));
	cr_expect_str_eq(json_string_value(json_object_get(doc, "mode")), "0644");
	json_decref(doc);
}

/* A description rendered once and reused writes the same line as one written field by field. */
Test(event_json, a_prerendered_description_writes_the_same_line)
{
	char rec[1024], once[8192], each[8192], frag[4096];
	size_t len = make_file(rec, sizeof(rec), "x.txt", NULL, "/home/u");
	struct event ev;
	struct event_enrich en = {
	    .cls = "service",
	    .service = "unit:nginx.service",
	    .class_reason = "systemd unit nginx.service",
	    .user = "www-data",
	    .exe = "/usr/sbin/nginx",
	    .cgroup = "/system.slice/nginx.service",
	    .nancestry = 2,
	    .ancestry = {{.pid = 10, .comm = "nginx", .exe = "/usr/sbin/ng\xffinx"},
			 {.pid = 1, .comm = "systemd", .exe = NULL}},
	};
	struct json_writer w;

	cr_assert_eq(event_decode(rec, len, &ev), 0);
	json_writer_init(&w, each, sizeof(each));
	event_json_write(&w, &ev, &en, 0);
	cr_assert_not(w.overflow);
	cr_expect(w.lossy);

	en.json_len = event_json_enrich_render(&en, frag, sizeof(frag), &en.json_lossy);
	cr_assert_gt(en.json_len, 0);
	cr_expect(en.json_lossy, "the non-UTF-8 exe was not noticed");
	en.json = frag;
	json_writer_init(&w, once, sizeof(once));
	event_json_write(&w, &ev, &en, 0);
	cr_assert_not(w.overflow);
	cr_expect(w.lossy, "non_utf8 lost with the pre-rendered description");
	cr_expect_str_eq(once, each);

	/* Too large for its buffer: not rendered, so written field by field. */
	cr_expect_eq(event_json_enrich_render(&en, frag, 16, &en.json_lossy), 0);
}

/* A process in a container: its id, and its name, image and runtime when they are known. */
Test(event_json, a_containers_name_and_image_are_written_when_known)
{
	char rec[1024], out[8192];
	size_t len = make_file(rec, sizeof(rec), "x.txt", NULL, "/srv");
	struct event ev;
	struct event_enrich en = {
	    .cls = "service",
	    .service = "container:localhost/app:1",
	    .class_reason = "container web (podman, image localhost/app:1)",
	    .exe = "/bin/busybox",
	    .container_id = "ac4d34bdcef49b4b6f0f9c8092a290e11a240855750c08bcfc14c42d48438e70",
	    .container_name = "web",
	    .container_image = "localhost/app:1",
	    .container_runtime = "podman",
	};
	struct json_writer w;
	json_t *doc;

	cr_assert_eq(event_decode(rec, len, &ev), 0);
	json_writer_init(&w, out, sizeof(out));
	event_json_write(&w, &ev, &en, 0);
	cr_assert_not(w.overflow);
	doc = json_loadb(out, w.len, 0, NULL);
	cr_assert_not_null(doc, "%.*s", (int)w.len, out);
	cr_expect_str_eq(json_string_value(json_object_get(doc, "container_name")), "web");
	cr_expect_str_eq(json_string_value(json_object_get(doc, "container_image")),
			 "localhost/app:1");
	cr_expect_str_eq(json_string_value(json_object_get(doc, "container_runtime")), "podman");
	cr_expect_str_eq(json_string_value(json_object_get(doc, "service")),
			 "container:localhost/app:1");
	json_decref(doc);
	/* Not known (yet): the id alone, no empty fields. */
	en.container_name = en.container_image = en.container_runtime = NULL;
	json_writer_init(&w, out, sizeof(out));
	event_json_write(&w, &ev, &en, 0);
	doc = json_loadb(out, w.len, 0, NULL);
	cr_assert_not_null(doc);
	cr_expect_not_null(json_object_get(doc, "container_id"));
	cr_expect_null(json_object_get(doc, "container_name"));
	cr_expect_null(json_object_get(doc, "container_image"));
	cr_expect_null(json_object_get(doc, "container_runtime"));
	json_decref(doc);
}
