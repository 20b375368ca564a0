/* SPDX-License-Identifier: Apache-2.0 */
/* LISTEN vigil_rules on a connection of its own (rules_listen.h). */
#include "store/rules_listen.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "pg/pq_error.h"
#include "store/rules_store.h"

struct rules_listen {
	char *dsn;
	PGconn *conn;	/* NULL while down */
	bool announced; /* the caller has not yet been told of this connection */
};

static void listen_drop(struct rules_listen *l)
{
	PQfinish(l->conn);
	l->conn = NULL;
}

/* Connect and LISTEN; 0 or -ECONNRESET with err. */
static int listen_connect(struct rules_listen *l, vigil_err *err)
{
	char msg[300];
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
	const char *const values[] = {"5", "vigil-console-rules", "10", "5", "3", l->dsn, "UTF8",
				      NULL};

	l->conn = PQconnectdbParams(keys, values, 1);
	if (l->conn == NULL)
		return verr_set(err, -ECONNRESET, "out of memory connecting to the database");
	PQsetNoticeProcessor(l->conn, pq_error_notice_ignore, NULL);
	if (PQstatus(l->conn) != CONNECTION_OK) {
		verr_set(err, -ECONNRESET, "cannot connect to listen for rule changes: %s",
			 pq_error_flat(PQerrorMessage(l->conn), msg, sizeof(msg)));
		listen_drop(l);
		return -ECONNRESET;
	}
	res = PQexec(l->conn, "LISTEN " RULES_NOTIFY_CHANNEL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		verr_set(err, -ECONNRESET, "LISTEN " RULES_NOTIFY_CHANNEL " failed: %s",
			 pq_error_flat(PQerrorMessage(l->conn), msg, sizeof(msg)));
		PQclear(res);
		listen_drop(l);
		return -ECONNRESET;
	}
	PQclear(res);
	l->announced = false;
	return 0;
}

struct rules_listen *rules_listen_new(const char *dsn)
{
	struct rules_listen *l = calloc(1, sizeof(*l));
	vigil_err err = {0};

	if (l == NULL || (l->dsn = strdup(dsn)) == NULL) {
		free(l);
		errno = ENOMEM;
		return NULL;
	}
	(void)listen_connect(l, &err); /* rules_listen_wait says how it went */
	return l;
}

/* The notifications received so far: whether any, and the highest version. */
static bool listen_drain(struct rules_listen *l, int64_t *ret_version)
{
	PGnotify *n;
	bool any = false;

	while ((n = PQnotifies(l->conn)) != NULL) {
		char *end;
		long long v = strtoll(n->extra, &end, 10);

		if (end == n->extra || *end != '\0' || v < 0)
			v = 0;
		if (!any || v > *ret_version)
			*ret_version = v;
		any = true;
		PQfreemem(n);
	}
	return any;
}

int rules_listen_wait(struct rules_listen *l, int timeout_ms, int64_t *ret_version, vigil_err *err)
{
	char msg[300];
	struct pollfd pfd;
	int rc;

	*ret_version = 0;
	if (l->conn == NULL && listen_connect(l, err) < 0)
		return -ECONNRESET;
	if (!l->announced) {
		l->announced = true;
		return RULES_LISTEN_CONNECTED;
	}
	if (listen_drain(l, ret_version))
		return RULES_LISTEN_NOTIFIED;
	pfd = (struct pollfd){.fd = PQsocket(l->conn), .events = POLLIN};
	rc = poll(&pfd, 1, timeout_ms);
	if (rc < 0 && errno != EINTR) {
		verr_set(err, -ECONNRESET, "waiting for rule changes: %s", strerror(errno));
		listen_drop(l);
		return -ECONNRESET;
	}
	if (rc <= 0)
		return RULES_LISTEN_TIMEOUT;
	if (PQconsumeInput(l->conn) == 0 || PQstatus(l->conn) != CONNECTION_OK) {
		verr_set(err, -ECONNRESET, "the connection listening for rule changes broke: %s",
			 pq_error_flat(PQerrorMessage(l->conn), msg, sizeof(msg)));
		listen_drop(l);
		return -ECONNRESET;
	}
	return listen_drain(l, ret_version) ? RULES_LISTEN_NOTIFIED : RULES_LISTEN_TIMEOUT;
}

void rules_listen_free(struct rules_listen *l)
{
	if (l == NULL)
		return;
	PQfinish(l->conn);
	free(l->dsn);
	free(l);
}
