/* SPDX-License-Identifier: Apache-2.0 */
/* LISTEN on one channel on a connection of its own (pg_listen.h). */
#include "store/pg_listen.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "pg/pq_error.h"

struct pg_listen {
	char *dsn;
	const char *channel, *app_name, *what;
	PGconn *conn;	/* NULL while down */
	bool announced; /* the caller has not yet been told of this connection */
};

static void listen_drop(struct pg_listen *l)
{
	PQfinish(l->conn);
	l->conn = NULL;
}

/* Connect and LISTEN; 0 or -ECONNRESET with err. */
static int listen_connect(struct pg_listen *l, vigil_err *err)
{
	char msg[300], sql[80];
	PGresult *res;

	/*
	 * As store_open: defaults the DSN may override, then the DSN.  TCP
	 * keepalives: a connection that only waits would not notice a
	 * silent network cut for hours; these end it in about 25 s.
	 */
	const char *const keys[] = {"connect_timeout",	"fallback_application_name",
				    "keepalives_idle",	"keepalives_interval",
				    "keepalives_count", "dbname",
				    "client_encoding",	NULL};
	const char *const values[] = {"5", l->app_name, "10", "5", "3", l->dsn, "UTF8", NULL};

	l->conn = PQconnectdbParams(keys, values, 1);
	if (l->conn == NULL)
		return verr_set(err, -ECONNRESET, "out of memory connecting to the database");
	PQsetNoticeProcessor(l->conn, pq_error_notice_ignore, NULL);
	if (PQstatus(l->conn) != CONNECTION_OK) {
		verr_set(err, -ECONNRESET, "cannot connect to listen for %s: %s", l->what,
			 pq_error_flat(PQerrorMessage(l->conn), msg, sizeof(msg)));
		listen_drop(l);
		return -ECONNRESET;
	}
	/* The channel is a program constant, never input: an identifier as it is. */
	snprintf(sql, sizeof(sql), "LISTEN %s", l->channel);
	res = PQexec(l->conn, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		verr_set(err, -ECONNRESET, "LISTEN %s failed: %s", l->channel,
			 pq_error_flat(PQerrorMessage(l->conn), msg, sizeof(msg)));
		PQclear(res);
		listen_drop(l);
		return -ECONNRESET;
	}
	PQclear(res);
	l->announced = false;
	return 0;
}

struct pg_listen *pg_listen_new(const char *dsn, const char *channel, const char *app_name,
				const char *what)
{
	struct pg_listen *l = calloc(1, sizeof(*l));
	vigil_err err = {0};

	if (l == NULL || (l->dsn = strdup(dsn)) == NULL) {
		free(l);
		errno = ENOMEM;
		return NULL;
	}
	l->channel = channel;
	l->app_name = app_name;
	l->what = what;
	(void)listen_connect(l, &err); /* pg_listen_wait says how it went */
	return l;
}

/* The notifications received so far: whether any, and the highest number among them. */
static bool listen_drain(struct pg_listen *l, int64_t *ret_number)
{
	PGnotify *n;
	bool any = false;

	while ((n = PQnotifies(l->conn)) != NULL) {
		char *end;
		long long v = strtoll(n->extra, &end, 10);

		if (end == n->extra || *end != '\0' || v < 0)
			v = 0;
		if (!any || v > *ret_number)
			*ret_number = v;
		any = true;
		PQfreemem(n);
	}
	return any;
}

int pg_listen_wait(struct pg_listen *l, int timeout_ms, int64_t *ret_number, vigil_err *err)
{
	char msg[300];
	struct pollfd pfd;
	int64_t unused;
	int rc;

	if (ret_number == NULL)
		ret_number = &unused;
	*ret_number = 0;
	if (l->conn == NULL && listen_connect(l, err) < 0)
		return -ECONNRESET;
	if (!l->announced) {
		l->announced = true;
		return PG_LISTEN_CONNECTED;
	}
	if (listen_drain(l, ret_number))
		return PG_LISTEN_NOTIFIED;
	pfd = (struct pollfd){.fd = PQsocket(l->conn), .events = POLLIN};
	rc = poll(&pfd, 1, timeout_ms);
	if (rc < 0 && errno != EINTR) {
		verr_set(err, -ECONNRESET, "waiting for %s: %s", l->what, strerror(errno));
		listen_drop(l);
		return -ECONNRESET;
	}
	if (rc <= 0)
		return PG_LISTEN_TIMEOUT;
	if (PQconsumeInput(l->conn) == 0 || PQstatus(l->conn) != CONNECTION_OK) {
		verr_set(err, -ECONNRESET, "the connection listening for %s broke: %s", l->what,
			 pq_error_flat(PQerrorMessage(l->conn), msg, sizeof(msg)));
		listen_drop(l);
		return -ECONNRESET;
	}
	return listen_drain(l, ret_number) ? PG_LISTEN_NOTIFIED : PG_LISTEN_TIMEOUT;
}

void pg_listen_free(struct pg_listen *l)
{
	if (l == NULL)
		return;
	PQfinish(l->conn);
	free(l->dsn);
	free(l);
}
