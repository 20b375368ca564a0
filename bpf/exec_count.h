/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_BPF_EXEC_COUNT_H
#define VIGIL_BPF_EXEC_COUNT_H

/*
 * Kernel/user ABI of the exec counter, shared by clang -target bpf and gcc.
 * A per-CPU array of counters indexed by enum exec_counter.
 */
enum exec_counter {
	EXEC_COUNTER_EXECS = 0,	  /* sched_process_exec seen */
	EXEC_COUNTER_FILTERED,	  /* execs by the defender itself, not counted above */
	EXEC_COUNTER_MAX,
};

#endif
