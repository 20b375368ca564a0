/* SPDX-License-Identifier: Apache-2.0 */
#include "storefixture.h"

#include <criterion/criterion.h>
#include <stdlib.h>

#include "pg/pgembed.h"
#include "store/store.h"

struct storefix fx = {.lock_fd = -1};

void storefix_setup_empty(void)
{
	pgfix_db_open(&fx.lock_fd, &fx.pg, &fx.sql);
}

void storefix_setup(void)
{
	vigil_err err = {0};

	storefix_setup_empty();
	fx.st = store_open(pgembed_dsn(fx.pg), &err);
	cr_assert_not_null(fx.st, "store_open: %s", err.msg);
	cr_assert_eq(store_migrate(fx.st, NULL, &err), 0, "%s", err.msg);
}

void storefix_teardown(void)
{
	store_close(fx.st);
	fx.st = NULL;
	pgfix_db_close(&fx.lock_fd, &fx.pg, &fx.sql);
}

PGresult *storefix_exec(const char *sql, int n, const char *const *params)
{
	PGresult *res = PQexecParams(fx.sql, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType s = PQresultStatus(res);

	cr_assert(s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK, "%s: %s", sql,
		  PQresultErrorMessage(res));
	return res;
}

const char *storefix_q1(const char *sql)
{
	return pgfix_q1(fx.sql, sql);
}

long long storefix_qn(const char *sql)
{
	return atoll(storefix_q1(sql));
}
