/* SPDX-License-Identifier: Apache-2.0 */
/* LISTEN vigil_revoked on a connection of its own (revoke_listen.h). */
#include "store/revoke_listen.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "pg/pq_error.h"
#include "store/enroll_store.h"

struct revoke_listen {
	char *dsn;
	PGconn *conn;	/* NULL while down */
	bool announced; /* the caller has not yet been told of this connection */
};

static void listen_drop(struct revoke_listen *l)
{
	PQfinish(l->conn);
	l->conn = NULL;
}

/* Connect and LISTEN; 0 or -ECONNRESET with err. */
static int listen_connect(struct revoke_listen *l, vigil_err *err)
{
	char msg[300];
	PGresult *res;
	/*
	 * As rules_listen: defaults the DSN may override, then the DSN; TCP
	 * keepalives end a connection silently cut in about 25 s.
	 */
	const char *const keys[] = {"connect_timeout",	"fallback_application_name",
				    "keepalives_idle",	"keepalives_interval",
				    "keepalives_count", "dbname",
				    "client_encoding",	NULL};
	const char *const values[] = {"5", "vigil-console-revoked", "10", "5", "3", l->dsn, "UTF8",
				      NULL};

	l->conn = PQconnectdbParams(keys, values, 1);
	if (l->conn == NULL)
		return verr_set(err, -ECONNRESET, "out of memory connecting to the database");
	PQsetNoticeProcessor(l->conn, pq_error_notice_ignore, NULL);
	if (PQstatus(l->conn) != CONNECTION_OK) {
		verr_set(err, -ECONNRESET, "cannot connect to listen for revocations: %s",
			 pq_error_flat(PQerrorMessage(l->conn), msg, sizeof(msg)));
		listen_drop(l);
		return -ECONNRESET;
	}
	res = PQexec(l->conn, "LISTEN " ENROLL_REVOKE_CHANNEL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		verr_set(err, -ECONNRESET, "LISTEN " ENROLL_REVOKE_CHANNEL " failed: %s",
			 pq_error_flat(PQerrorMessage(l->conn), msg, sizeof(msg)));
		PQclear(res);
		listen_drop(l);
		return -ECONNRESET;
	}
	PQclear(res);
	l->announced = false;
	return 0;
}

struct revoke_listen *revoke_listen_new(const char *dsn)
{
	struct revoke_listen *l = calloc(1, sizeof(*l));
	vigil_err err = {0};

	if (l == NULL || (l->dsn = strdup(dsn)) == NULL) {
		free(l);
		errno = ENOMEM;
		return NULL;
	}
	(void)listen_connect(l, &err); /* revoke_listen_wait says how it went */
	return l;
}

/* Whether any notification arrived; each is freed (the payload is only a name). */
static bool listen_drain(struct revoke_listen *l)
{
	PGnotify *n;
	bool any = false;

	while ((n = PQnotifies(l->conn)) != NULL) {
		any = true;
		PQfreemem(n);
	}
	return any;
}

int revoke_listen_wait(struct revoke_listen *l, int timeout_ms, vigil_err *err)
{
	char msg[300];
	struct pollfd pfd;
	int rc;

	if (l->conn == NULL && listen_connect(l, err) < 0)
		return -ECONNRESET;
	if (!l->announced) {
		l->announced = true;
		return REVOKE_LISTEN_CONNECTED;
	}
	if (listen_drain(l))
		return REVOKE_LISTEN_NOTIFIED;
	pfd = (struct pollfd){.fd = PQsocket(l->conn), .events = POLLIN};
	rc = poll(&pfd, 1, timeout_ms);
	if (rc < 0 && errno != EINTR) {
		verr_set(err, -ECONNRESET, "waiting for revocations: %s", strerror(errno));
		listen_drop(l);
		return -ECONNRESET;
	}
	if (rc <= 0)
		return REVOKE_LISTEN_TIMEOUT;
	if (PQconsumeInput(l->conn) == 0 || PQstatus(l->conn) != CONNECTION_OK) {
		verr_set(err, -ECONNRESET, "the connection listening for revocations broke: %s",
			 pq_error_flat(PQerrorMessage(l->conn), msg, sizeof(msg)));
		listen_drop(l);
		return -ECONNRESET;
	}
	return listen_drain(l) ? REVOKE_LISTEN_NOTIFIED : REVOKE_LISTEN_TIMEOUT;
}

void revoke_listen_free(struct revoke_listen *l)
{
	if (l == NULL)
		return;
	PQfinish(l->conn);
	free(l->dsn);
	free(l);
}
