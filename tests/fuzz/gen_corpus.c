/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Writes the seed corpora of the fuzz targets: small, real inputs made by
 * the product's own writers where it has them (protobuf-c packing, the
 * spool, model_set_save) and by hand where the input is text.
 *
 *   build-fuzz/tests/fuzz/gen_corpus tests/fuzz/corpus
 *
 * Regenerating rewrites every seed (the spool's incarnation is random, so
 * its seeds change each time); the fuzzer needs them only as starting points.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deliver/batch_frame.h"
#include "deliver/spool.h"
#include "events.h"
#include "fsutil.h"
#include "fuzz_util.h"
#include "learn/model.h"
#include "vigil.pb-c.h"

static const char *root;

static void put(const char *target, const char *name, const void *data, size_t len)
{
	char dir[4096];

	snprintf(dir, sizeof(dir), "%s/%s", root, target);
	mkdir(dir, 0755);
	fuzz_write_file(dir, name, data, len);
}

static void put_text(const char *target, const char *name, const char *text)
{
	put(target, name, text, strlen(text));
}

/* ---- envelope, batch_frame ---- */

static void put_envelope(const char *name, const Vigil__Envelope *env)
{
	size_t n = vigil__envelope__get_packed_size(env);
	uint8_t *b = malloc(n);

	vigil__envelope__pack(env, b);
	put("envelope", name, b, n);
	free(b);
}

static void put_frame(const char *name, uint64_t seq, uint64_t inc, const Vigil__Batch *batch)
{
	size_t n = vigil__batch__get_packed_size(batch);
	uint8_t *b = malloc(16 + n);

	for (int i = 0; i < 8; i++) {
		b[i] = (uint8_t)(seq >> (8 * i));
		b[8 + i] = (uint8_t)(inc >> (8 * i));
	}
	vigil__batch__pack(batch, b + 16);
	put("batch_frame", name, b, 16 + n);
	free(b);
}

static void gen_envelopes(void)
{
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Hello hello = VIGIL__HELLO__INIT;
	Vigil__Label l1 = VIGIL__LABEL__INIT, l2 = VIGIL__LABEL__INIT, *labels[] = {&l1, &l2};
	Vigil__Heartbeat hb = VIGIL__HEARTBEAT__INIT;
	Vigil__Counter c1 = VIGIL__COUNTER__INIT, c2 = VIGIL__COUNTER__INIT,
		       *counters[] = {&c1, &c2};
	uint64_t done[] = {3, 4};
	Vigil__Batch batch = VIGIL__BATCH__INIT, gaps_only = VIGIL__BATCH__INIT;
	Vigil__Event e1 = VIGIL__EVENT__INIT, e2 = VIGIL__EVENT__INIT, *events[] = {&e1, &e2};
	Vigil__Activity act = VIGIL__ACTIVITY__INIT;
	Vigil__Gap gap = VIGIL__GAP__INIT, *gaps[] = {&gap};
	Vigil__Deviation dev = VIGIL__DEVIATION__INIT, *devs[] = {&dev};
	Vigil__ChainLink ch1 = VIGIL__CHAIN_LINK__INIT, ch2 = VIGIL__CHAIN_LINK__INIT,
			 *chain[] = {&ch1, &ch2};
	Vigil__ModelDelta delta = VIGIL__MODEL_DELTA__INIT, *deltas[] = {&delta};
	Vigil__ModelEntry me1 = VIGIL__MODEL_ENTRY__INIT, me2 = VIGIL__MODEL_ENTRY__INIT,
			  *entries[] = {&me1, &me2};

	l1.key = "env";
	l1.value = "prod";
	l2.key = "team";
	l2.value = "payments";
	hello.hostname = "web-01";
	hello.kernel = "6.1.0-13-amd64";
	hello.os = "Debian GNU/Linux 12";
	hello.defender_version = "0.1.0";
	hello.bpf_status = "capture loaded";
	hello.n_labels = 2;
	hello.labels = labels;
	env.seq = 0;
	env.body_case = VIGIL__ENVELOPE__BODY_HELLO;
	env.hello = &hello;
	put_envelope("hello", &env);

	c1.name = "drops.ringbuf_full";
	c1.value = 3;
	c2.name = "delivered.exec";
	c2.value = 1200;
	hb.exec_count = 1234;
	hb.uptime_ms = 60000;
	hb.n_counters = 2;
	hb.counters = counters;
	hb.n_commands_done = 2;
	hb.commands_done = done;
	env.body_case = VIGIL__ENVELOPE__BODY_HEARTBEAT;
	env.heartbeat = &hb;
	put_envelope("heartbeat", &env);

	e1.type = 1;
	e1.ts_ns = 1750000000123456789ull;
	e1.pid = 4242;
	e1.ppid = 1;
	e1.uid = 33;
	e1.comm = "nginx";
	e1.json = "{\"type\":\"exec\",\"pid\":4242,\"filename\":\"/usr/bin/id\",\"argv\":[\"id\"]}";
	e2 = e1;
	e2.type = 4;
	e2.comm = "bash";
	e2.json = "{\"type\":\"file\",\"op\":\"open\",\"path\":\"/etc/shadow\"}";
	act.session = 900;
	act.user = "alice";
	act.tty = "pts/0";
	act.summary = "cat /etc/shadow";
	e2.activity = &act;
	gap.first_seq = 10;
	gap.last_seq = 12;
	gap.count = 3;
	gap.reason = "spool_full";
	ch1.pid = 4242;
	ch1.comm = "nginx";
	ch1.exe = "/usr/sbin/nginx";
	ch2.pid = 1;
	ch2.comm = "systemd";
	ch2.exe = "/usr/lib/systemd/systemd";
	dev.ts_ns = 1750000000123456789ull;
	dev.service = "nginx.service";
	dev.exe = "/usr/sbin/nginx";
	dev.kind = "new_program";
	dev.object = "/usr/bin/id";
	dev.raw = "/usr/bin/id";
	dev.expected = "/usr/bin/true";
	dev.severity = "high";
	dev.pid = 4242;
	dev.n_chain = 2;
	dev.chain = chain;
	me1.exe = "/usr/sbin/nginx";
	me1.kind = "write";
	me1.pattern = "/var/log/nginx/*";
	me1.first_seen_ms = 1750000000000ull;
	me1.last_seen_ms = 1750000100000ull;
	me1.count = 12;
	me2 = me1;
	me2.kind = "listen";
	me2.pattern = "tcp:443";
	me2.removed = true;
	delta.service = "nginx.service";
	delta.state = "active";
	delta.learning_since_ms = 1750000000000ull;
	delta.active_since_ms = 1750086400000ull;
	delta.note = "";
	delta.n_entries = 2;
	delta.entries = entries;
	batch.n_events = 2;
	batch.events = events;
	batch.n_gaps = 1;
	batch.gaps = gaps;
	batch.n_deviations = 1;
	batch.deviations = devs;
	batch.n_models = 1;
	batch.models = deltas;
	env.seq = 7;
	env.incarnation = 77;
	env.body_case = VIGIL__ENVELOPE__BODY_BATCH;
	env.batch = &batch;
	put_envelope("batch", &env);
	put_frame("with_models", 7, 77, &batch);
	{ /* the same batch compressed, as a defender sends it to a console that takes that */
		size_t n = vigil__batch__get_packed_size(&batch), len;
		uint8_t *packed = malloc(n);
		vigil__batch__pack(&batch, packed);
		uint8_t *lz4 = batch_frame_envelope_lz4(77, 7, packed, n, &len);
		if (lz4 != NULL)
			put("envelope", "batch_lz4", lz4, len);
		free(lz4);
		free(packed);
	}

	gaps_only.n_gaps = 1;
	gaps_only.gaps = gaps;
	env.seq = 0;
	env.batch = &gaps_only;
	put_envelope("gaps_only", &env);

	batch.n_models = 0;
	put_frame("without_models", 8, 0, &batch);
}

/* ---- event ---- */

/* Append the strings (each with its NUL, lengths into lens) after a fixed part of size fixed. */
static size_t record(uint8_t *buf, size_t fixed, const char *const *strs, const size_t *slen,
		     __u16 *lens, int n)
{
	size_t off = fixed;

	for (int i = 0; i < n; i++) {
		if (strs[i] == NULL) {
			lens[i] = 0;
			continue;
		}
		memcpy(buf + off, strs[i], slen[i] + 1);
		lens[i] = (__u16)(slen[i] + 1);
		off += slen[i] + 1;
	}
	((struct ev_hdr *)buf)->size = (__u16)off;
	return off;
}

static void hdr_fill(struct ev_hdr *h, __u16 type, const char *comm)
{
	h->type = type;
	h->ts_ns = 123456789000ull;
	h->pid = 4242;
	h->tid = 4242;
	h->ppid = 1;
	h->uid = 33;
	h->euid = 33;
	h->gid = 33;
	h->cgroup_id = 7;
	snprintf(h->comm, sizeof(h->comm), "%s", comm);
}

static void gen_events(void)
{
	static uint8_t buf[1024] __attribute__((aligned(8)));
	const char args[] = "ls\0-l\0/tmp";

	memset(buf, 0, sizeof(buf));
	struct ev_exec *x = (struct ev_exec *)buf;
	hdr_fill(&x->hdr, EV_EXEC, "ls");
	x->sid = 900;
	x->loginuid = 1000;
	x->start_ns = 123000000000ull;
	x->argc = 3;
	snprintf(x->tty, sizeof(x->tty), "pts0");
	{
		const char *s[] = {"/usr/bin/ls", args, "/home/alice"};
		size_t l[] = {11, sizeof(args) - 1, 11};
		__u16 lens[3];
		size_t n = record(buf, sizeof(*x), s, l, lens, 3);
		x->filename_len = lens[0];
		x->args_len = lens[1];
		x->cwd_len = lens[2];
		put("event", "exec", buf, n);
	}

	memset(buf, 0, sizeof(buf));
	struct ev_fork *f = (struct ev_fork *)buf;
	hdr_fill(&f->hdr, EV_FORK, "bash");
	f->child_pid = 4243;
	f->child_start_ns = 124000000000ull;
	f->hdr.size = sizeof(*f);
	put("event", "fork", buf, sizeof(*f));

	memset(buf, 0, sizeof(buf));
	struct ev_exit *e = (struct ev_exit *)buf;
	hdr_fill(&e->hdr, EV_EXIT, "bash");
	e->exit_code = 9; /* killed by SIGKILL */
	e->hdr.size = sizeof(*e);
	put("event", "exit", buf, sizeof(*e));

	memset(buf, 0, sizeof(buf));
	struct ev_file *fi = (struct ev_file *)buf;
	hdr_fill(&fi->hdr, EV_FILE, "nginx");
	fi->op = FOP_RENAME;
	fi->result = 0;
	{
		const char *s[] = {"../log/access.log", "access.log.1", "/var/lib/nginx/tmp",
				   "/var/log/nginx"};
		size_t l[] = {17, 12, 18, 14};
		__u16 lens[4];
		size_t n = record(buf, sizeof(*fi), s, l, lens, 4);
		fi->path_len = lens[0];
		fi->path2_len = lens[1];
		fi->base_len = lens[2];
		fi->base2_len = lens[3];
		put("event", "file_rename", buf, n);
	}

	memset(buf, 0, sizeof(buf));
	fi = (struct ev_file *)buf;
	hdr_fill(&fi->hdr, EV_FILE, "cat");
	fi->hdr.flags = EVF_TRUNC_PATH;
	fi->op = FOP_OPEN;
	fi->open_flags = 0101; /* O_WRONLY | O_CREAT */
	fi->mode = 0644;
	fi->result = 3;
	{
		const char *s[] = {"/etc/\xff\xfeshadow", NULL, NULL, NULL};
		size_t l[] = {13, 0, 0, 0};
		__u16 lens[4];
		size_t n = record(buf, sizeof(*fi), s, l, lens, 4);
		fi->path_len = lens[0];
		put("event", "file_open", buf, n);
	}

	memset(buf, 0, sizeof(buf));
	struct ev_net *ne = (struct ev_net *)buf;
	hdr_fill(&ne->hdr, EV_NET, "curl");
	ne->op = NOP_CONNECT;
	ne->family = 2; /* AF_INET */
	ne->type = 1;
	ne->protocol = 6;
	ne->local_port = 50000;
	ne->remote_port = 443;
	memcpy(ne->local_addr, "\x0a\x00\x00\x05", 4);
	memcpy(ne->remote_addr, "\x5d\xb8\xd8\x22", 4);
	ne->hdr.size = sizeof(*ne);
	put("event", "net_connect", buf, sizeof(*ne));

	memset(buf, 0, sizeof(buf));
	ne = (struct ev_net *)buf;
	hdr_fill(&ne->hdr, EV_NET, "sshd");
	ne->op = NOP_LISTEN;
	ne->family = 10; /* AF_INET6 */
	ne->local_port = 22;
	ne->backlog = 128;
	ne->hdr.size = sizeof(*ne);
	put("event", "net_listen6", buf, sizeof(*ne));

	memset(buf, 0, sizeof(buf));
	ne = (struct ev_net *)buf;
	hdr_fill(&ne->hdr, EV_NET, "app");
	ne->op = NOP_CONNECT;
	ne->family = 1; /* AF_UNIX */
	ne->type = 1;
	{
		const char *s[] = {"/run/systemd/journal/stdout"};
		size_t l[] = {27};
		__u16 lens[1];
		size_t n = record(buf, sizeof(*ne), s, l, lens, 1);
		ne->unix_path_len = lens[0];
		put("event", "net_unix", buf, n);
	}
}

/* ---- api_query, kvconf, defender_config ---- */

static void gen_text(void)
{
	static const struct {
		char endpoint;
		const char *name, *uri;
	} uris[] = {
	    {0, "hosts", "/api/v1/hosts"},
	    {1, "audits",
	     "/api/v1/audits?host=web-01&kind=new_program&since=2025-11-28T20:44:48Z"
	     "&until=2025-11-29T00:00:00.5%2B01:00&limit=50&before_id=1200"},
	    {2, "models", "/api/v1/models?service=nginx.service&state=active&limit=10"},
	    {2, "model_id", "/api/v1/models/42/relearn"},
	    {3, "activity",
	     "/api/v1/activity?user=alice&session=900&since=2025-11-28t20:44:48z"
	     "&host=h%C3%A9"},
	};
	static const char config[] = "# a defender\n"
				     "console = tls+tcp://console.example.net:7443\n"
				     "console = tls+tcp6://[::1]:7443\n"
				     "ca = /etc/vigil/ca.crt\n"
				     "cert = /etc/vigil/host.crt\n"
				     "key = /etc/vigil/host.key\n"
				     "server_name = console.example.net\n"
				     "label = env=prod\n"
				     "label = team=\"payments\"\n"
				     "state_dir = \" /var/lib/vigil/defender \"\n"
				     "heartbeat_interval_ms = 1000\n"
				     "ringbuf_kb = 8192\n"
				     "all_reads = false\n"
				     "spool_max_mb = 256\n"
				     "send_window = 4\n"
				     "bpf_pin_dir = none\n"
				     "learning = true\n"
				     "learn_window = 24h\n"
				     "log_level = warn\n";
	char buf[512];

	for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
		buf[0] = uris[i].endpoint;
		snprintf(buf + 1, sizeof(buf) - 1, "%s", uris[i].uri);
		put("api_query", uris[i].name, buf, 1 + strlen(buf + 1));
	}
	put_text("kvconf", "config", config);
	put_text("kvconf", "quoted", "a = \"  spaced \\\" \"\nb=\tx\ty\t\nc = \xc3\xa9t\xc3\xa9\n");
	put_text("defender_config", "full", config);
	put_text("defender_config", "minimal",
		 "console = tls+tcp://c:1\nca = a\ncert = b\nkey = c\n"
		 "spool_max_kb = 128\nlearn_window = 90d\n");
}

/* ---- model_file ---- */

static void gen_models(const char *tmp)
{
	struct model_limits lim = MODEL_LIMITS_DEFAULT;
	char dir[4096], files[8192], path[8192];
	struct model_set *s;
	vigil_err err = {0};
	size_t len = 0;

	snprintf(dir, sizeof(dir), "%s/models", tmp);
	s = model_set_new(&lim, dir, &err);
	if (s == NULL)
		fuzz_fail("model_set_new: %s", err.msg);
	static const struct model_obs obs[] = {
	    {MK_PROGRAM, "/usr/sbin/nginx", "/usr/bin/id", NULL},
	    {MK_WRITE, "/usr/sbin/nginx", "/var/log/nginx/a.log", "/var/log/nginx/*"},
	    {MK_WRITE, "/usr/sbin/nginx", "/var/log/nginx/b.log", "/var/log/nginx/*"},
	    {MK_LISTEN, "/usr/sbin/nginx", "tcp:443", NULL},
	    {MK_CONNECT, "/usr/sbin/nginx", "10.0.0.5:5432", "10.0.0.0/24:5432"},
	    {MK_READ, "/usr/sbin/nginx", "/srv/www/index.html", "/srv/www/*"},
	    {MK_READ, "/usr/sbin/nginx", "/var/cache/nginx/c-*.tmp", "/var/cache/nginx/*"},
	};
	for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
		model_observe(s, "nginx.service", &obs[i], 1750000000000ull + i);
	model_observe(s, "cron.service", &obs[0], 1750000000000ull);
	model_set_tick(s, 1750000000000ull + lim.learn_window_ms, 0);
	if (model_set_save(s, true, &err) < 0)
		fuzz_fail("model_set_save: %s", err.msg);
	model_set_free(s);

	/* Every saved file, NUL-separated, as the target splits them. */
	DIR *d = opendir(dir);
	struct dirent *de;

	if (d == NULL)
		fuzz_fail("%s: %s", dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		char *text;
		size_t n;

		if (strstr(de->d_name, ".json") == NULL)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (fs_read_file(path, sizeof(files), &text, &n, &err) < 0)
			fuzz_fail("%s", err.msg);
		if (len > 0 && len < sizeof(files))
			files[len++] = '\0';
		if (n <= sizeof(files) - len) {
			memcpy(files + len, text, n);
			len += n;
		}
		free(text);
	}
	closedir(d);
	put("model_file", "saved", files, len);
}

/* ---- spool ---- */

/* Append file dir/name to out as one chunk of the target's format. */
static size_t chunk(uint8_t *out, size_t off, size_t cap, uint8_t tag, const char *dir,
		    const char *name)
{
	char path[8192], *text;
	vigil_err err = {0};
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (fs_read_file(path, 65535, &text, &n, &err) < 0)
		fuzz_fail("%s", err.msg);
	if (off + 3 + n > cap)
		fuzz_fail("spool seed too large");
	out[off] = tag;
	out[off + 1] = (uint8_t)n;
	out[off + 2] = (uint8_t)(n >> 8);
	memcpy(out + off + 3, text, n);
	free(text);
	return off + 3 + n;
}

static void gen_spool(const char *tmp)
{
	static uint8_t out[16384];
	char dir[4096], payload[200];
	struct spool *sp;
	vigil_err err = {0};
	size_t off = 1;

	snprintf(dir, sizeof(dir), "%s/spool", tmp);
	sp = spool_open(dir, 128u << 10, &err);
	if (sp == NULL)
		fuzz_fail("spool_open: %s", err.msg);
	spool_set_sync(sp, 0);
	for (int i = 1; i <= 5; i++) {
		int n = snprintf(payload, sizeof(payload), "batch %d", i);
		if (spool_append(sp, payload, (size_t)n, NULL, &err) < 0)
			fuzz_fail("spool_append: %s", err.msg);
	}
	spool_ack(sp, 2, &err);
	spool_discard(sp, 4, SPOOL_GAP_OVERSIZE, &err);
	spool_close(sp);

	out[0] = 0; /* flags: nothing to fix, 128 KiB */
	off = chunk(out, off, sizeof(out), 0, dir, "state");
	off = chunk(out, off, sizeof(out), 1, dir, "seg-00000000000000000001.log");
	put("spool", "acked_and_gap", out, off);
	out[0] = 3; /* the same, with CRCs fixed by the target */
	put("spool", "acked_and_gap_fixed", out, off);
	/* Without the state file: what the segments show. */
	off = chunk(out, 1, sizeof(out), 1, dir, "seg-00000000000000000001.log");
	put("spool", "no_state", out, off);
}

int main(int argc, char **argv)
{
	char tmp[] = "/tmp/vigil-gen-corpus.XXXXXX";

	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	root = argv[1];
	mkdir(root, 0755);
	fuzz_quiet();
	if (mkdtemp(tmp) == NULL)
		fuzz_fail("mkdtemp: %s", strerror(errno));
	gen_envelopes();
	gen_events();
	gen_text();
	gen_models(tmp);
	gen_spool(tmp);
	fuzz_empty_dir(tmp);
	rmdir(tmp);
	return 0;
}
