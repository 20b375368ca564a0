/* SPDX-License-Identifier: Apache-2.0 */
#include "pgfixture.h"

#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pg/pgembed.h"

#define ENV_ROOT  "VIGIL_TEST_PG_ROOT"
#define ENV_STATE "VIGIL_TEST_PG_STATE"
#define ENV_SKIP  "VIGIL_TEST_PG_SKIP"
#define ENV_ERROR "VIGIL_TEST_PG_ERROR"

static char test_root[64];

void pgfix_create(const char *state_name)
{
	vigil_err err = {0};
	struct pgembed *pg;
	char state[PATH_MAX];

	/* Under /tmp, traversable by the postgres user that runs the cluster. */
	snprintf(test_root, sizeof(test_root), "/tmp/vigil-pgtest-XXXXXX");
	if (mkdtemp(test_root) == NULL || chmod(test_root, 0711) < 0) {
		setenv(ENV_ERROR, "cannot create the test directory", 1);
		test_root[0] = '\0';
		return;
	}
	snprintf(state, sizeof(state), "%s/%s", test_root, state_name);
	if (mkdir(state, 0711) < 0) {
		setenv(ENV_ERROR, "cannot create the state directory", 1);
		return;
	}
	pg = pgembed_start(state, 60000, &err);
	if (pg == NULL) {
		/* No PostgreSQL binaries or no postgres user: skip, don't fail. */
		setenv(err.code == -ENOENT ? ENV_SKIP : ENV_ERROR, err.msg, 1);
		return;
	}
	pgembed_stop(pg);
	setenv(ENV_ROOT, test_root, 1);
	setenv(ENV_STATE, state, 1);
}

void pgfix_remove(void)
{
	char cmd[128];

	/* test_root is mkdtemp's name: no quote in it. */
	if (test_root[0] == '\0')
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", test_root);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", test_root);
}

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	(void)set;
	pgfix_create(pgfix_state_name);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	(void)stats;
	pgfix_remove();
}

void pgfix_need(void)
{
	if (getenv(ENV_SKIP) != NULL)
		cr_skip_test("no PostgreSQL to test against: %s", getenv(ENV_SKIP));
	cr_assert_not_null(getenv(ENV_STATE), "the test cluster could not be created: %s",
			   getenv(ENV_ERROR) != NULL ? getenv(ENV_ERROR) : "?");
}

const char *pgfix_state(int *lock_fd)
{
	char lock[PATH_MAX];

	pgfix_need();
	if (*lock_fd < 0) {
		snprintf(lock, sizeof(lock), "%s/lock", getenv(ENV_ROOT));
		*lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		cr_assert_geq(*lock_fd, 0, "%s: %s", lock, strerror(errno));
		cr_assert_eq(flock(*lock_fd, LOCK_EX), 0);
	}
	return getenv(ENV_STATE);
}

void pgfix_db_open(int *lock_fd, struct pgembed **pg, PGconn **sql)
{
	vigil_err err = {0};
	PGresult *res;

	*pg = pgembed_start(pgfix_state(lock_fd), 20000, &err);
	cr_assert_not_null(*pg, "pgembed_start: %s", err.msg);
	*sql = PQconnectdb(pgembed_dsn(*pg));
	cr_assert_eq(PQstatus(*sql), CONNECTION_OK, "%s", PQerrorMessage(*sql));
	res = PQexec(*sql, "SET client_min_messages = warning;"
			   "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public");
	cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
}

void pgfix_db_close(int *lock_fd, struct pgembed **pg, PGconn **sql)
{
	if (*sql != NULL)
		PQfinish(*sql);
	*sql = NULL;
	pgembed_stop(*pg);
	*pg = NULL;
	if (*lock_fd >= 0)
		close(*lock_fd);
	*lock_fd = -1;
}

const char *pgfix_q1(PGconn *c, const char *sql)
{
	static char buf[65536];
	PGresult *res = PQexec(c, sql);

	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s: %s", sql,
		     PQresultErrorMessage(res));
	cr_assert_eq(PQntuples(res), 1, "%s: %d rows", sql, PQntuples(res));
	snprintf(buf, sizeof(buf), "%s", PQgetisnull(res, 0, 0) ? "<null>" : PQgetvalue(res, 0, 0));
	PQclear(res);
	return buf;
}
