/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The web UI's page loads (docs/ui.md, "Load time"): a console with its
 * private PostgreSQL, one host said hello over the link, and a day of a busy
 * host's data written straight into the database (audits spread over 24 h,
 * models with their entries, interactive sessions); then
 * tests/ui/ui_bench.mjs loads every page afresh in Chromium and prints each
 * one's median against a static file of the same console, and against the
 * 300 ms target.
 *
 *   ui_bench [--rounds N] [--audits N]      (as root; tests/ui/install.sh first)
 *
 * Run it on a release build (build-bench): the console's speed is part of
 * what is measured.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define HOST	 "host-a"
#define USER	 "bench-admin"
#define PASSWORD "bench-password-1"

static char dir[H_PATH];
static struct h_console con;

static void cleanup(void)
{
	if (con.pid > 0)
		h_console_kill(&con, SIGTERM);
	if (dir[0] != '\0' && !getenv("VIGIL_KEEP_TEST_DIRS"))
		h_rmrf(dir);
}

static void sql(PGconn *db, const char *text)
{
	PGresult *r = PQexec(db, text);

	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "ui_bench: %s\n%s", text, PQerrorMessage(db));
		exit(1);
	}
	PQclear(r);
}

/* host-a says hello over the link: the hosts row as a defender makes it. */
static void hello(const struct h_pki *pki)
{
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Hello h = VIGIL__HELLO__INIT;
	struct h_link link;

	h.hostname = "bench-web-1";
	h.defender_version = "bench";
	env.body_case = VIGIL__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	h_link_open(&link, &con, pki, pki->host_cert, pki->host_key);
	vigil__reply__free_unpacked(h_link_request(&link, &env), NULL);
	h_link_close(&link);
}

/* A busy host's day: audits over 24 h, 40 models of 60 entries, 30 sessions of 200 rows. */
static void seed(long audits)
{
	PGconn *db = h_db(&con);
	char text[1024];

	snprintf(
	    text, sizeof(text),
	    "INSERT INTO audits (host_id, ts, kind, severity, summary, detail, service, exe,"
	    " effect) SELECT '" HOST "', now() - (i * 86 %% 86400) * interval '1 second',"
	    " (ARRAY['new_program','new_write','sensitive_read','new_peer'])[1 + i %% "
	    "4],"
	    " (ARRAY['low','medium','high'])[1 + i %% 3], 'svc-' || (i %% 40) || '.service:"
	    " /usr/sbin/svcd did something new #' || i, jsonb_build_object('object', '/srv/x/' || "
	    "i,"
	    " 'raw', '/srv/x/' || i, 'expected', '/usr/bin/true', 'pid', 1000 + i, 'chain',"
	    " jsonb_build_array(jsonb_build_object('pid', 1000 + i, 'comm', 'svcd', 'exe',"
	    " '/usr/sbin/svcd'), jsonb_build_object('pid', 1, 'comm', 'systemd', 'exe',"
	    " '/usr/lib/systemd/systemd'))), 'svc-' || (i %% 40) || '.service', '/usr/sbin/svcd',"
	    " 'alert' FROM generate_series(1, %ld) i",
	    audits);
	sql(db, text);
	sql(db, "INSERT INTO models (host_id, service, state, learning_since, active_since,"
		" learn_drops, note, updated_at) SELECT '" HOST "', 'svc-' || m || '.service',"
		" CASE WHEN m % 4 = 0 THEN 'learning' ELSE 'active' END, now() - interval '2 days',"
		" now() - interval '1 day', 0, '', now() FROM generate_series(0, 39) m");
	sql(db,
	    "INSERT INTO model_entries (model_id, exe, kind, pattern, first_seen, last_seen,"
	    " count) SELECT id, '/usr/sbin/svcd', (ARRAY['program','write','connect'])[1 + e % 3],"
	    " '/var/lib/svc/<rand>/' || e || '.state', now() - interval '1 day', now(), e"
	    " FROM models, generate_series(1, 60) e");
	sql(db,
	    "INSERT INTO activity (host_id, ts, session, username, tty, pid, type, summary, body)"
	    " SELECT '" HOST "', now() - (s * interval '40 minutes') + r * interval '1 second',"
	    " 5000 + s, 'alice', 'pts/' || s, 9000 + r, CASE WHEN r % 5 = 0 THEN 'exec' ELSE"
	    " 'file' END, CASE WHEN r % 5 = 0 THEN '/usr/bin/ls -l /srv/' || r ELSE"
	    " 'cat /srv/' || r || ' (read)' END, json_build_object('type', 'exec', 'pid', 9000 + r,"
	    " 'ppid', 5000 + s) FROM generate_series(0, 29) s, generate_series(1, 200) r");
	PQfinish(db);
}

int main(int argc, char **argv)
{
	const char *rounds = "10";
	long audits = 20000;
	char script[H_PATH], tmp[H_PATH], model[32], audit[32], body[256];
	struct h_pki pki;
	json_t *doc = NULL;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
			rounds = argv[++i];
		else if (strcmp(argv[i], "--audits") == 0 && i + 1 < argc)
			audits = atol(argv[++i]);
		else {
			fprintf(stderr, "usage: ui_bench [--rounds N] [--audits N]\n");
			return 2;
		}
	}
	if (getenv("VIGIL_BUILD_DIR") == NULL || getenv("VIGIL_SOURCE_DIR") == NULL) {
		fprintf(stderr, "ui_bench: set VIGIL_BUILD_DIR and VIGIL_SOURCE_DIR\n");
		return 2;
	}
	h_tmpdir(dir);
	atexit(cleanup);
	h_pki_make(dir, &pki);
	h_console_start(&con, dir, &pki, NULL);
	hello(&pki);
	seed(audits);
	snprintf(body, sizeof(body),
		 "{\"name\": \"" USER "\", \"password\": \"" PASSWORD "\", \"role\": \"admin\"}");
	if (h_api_request(&con, &pki, "POST", "/api/v1/users", body, NULL, con.token, &doc) !=
	    201) {
		fprintf(stderr, "ui_bench: cannot add the bench user\n");
		return 1;
	}
	json_decref(doc);
	snprintf(model, sizeof(model), "%lld",
		 h_db_count(&con, "SELECT max(id) FROM models WHERE state = 'active'"));
	snprintf(audit, sizeof(audit), "%lld", h_db_count(&con, "SELECT max(id) FROM audits"));
	snprintf(script, sizeof(script), "%s/tests/ui/ui_bench.mjs", getenv("VIGIL_SOURCE_DIR"));
	snprintf(tmp, sizeof(tmp), "%s/ui", dir);
	if (mkdir(tmp, 0700) != 0) {
		perror("ui_bench: mkdir");
		return 1;
	}
	printf("ui_bench: %ld audits over 24 h, 40 models of 60 entries, 30 sessions of 200"
	       " rows; %s rounds per page\n",
	       audits, rounds);
	fflush(stdout);
	setenv("VIGIL_UI_URL", con.api, 1);
	setenv("VIGIL_UI_CERT", pki.console_cert, 1);
	setenv("VIGIL_UI_USER", USER, 1);
	setenv("VIGIL_UI_PASSWORD", PASSWORD, 1);
	setenv("VIGIL_UI_HOST", HOST, 1);
	setenv("VIGIL_UI_MODEL", model, 1);
	setenv("VIGIL_UI_AUDIT", audit, 1);
	setenv("VIGIL_UI_TMP", tmp, 1);
	setenv("VIGIL_UI_ROUNDS", rounds, 1);
	char *nargv[] = {"/usr/bin/env", "node", script, NULL};
	int rc = h_run("/dev/stdout", 600000, nargv);
	return rc == 0 ? 0 : 1;
}
