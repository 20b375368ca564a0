/*
 * CRC32C (Castagnoli), the checksum of the defender's spool records.
 *
 * Every batch the defender sends passes through it twice (appended to the
 * spool, then read back and checked before sending), so its speed is part
 * of what every event costs: with the SSE4.2 instruction it runs at several
 * bytes a cycle, where the byte-at-a-time table took 30% of the defender's
 * CPU under load (docs/performance.md, "The pipeline").
 */
#ifndef VIGIL_COMMON_CRC32C_H
#define VIGIL_COMMON_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* CRC32C of buf, continuing from crc (0 to start); the fastest way this CPU has. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* The same, by table (slicing by 8): for CPUs without SSE4.2, and to check the other. */
uint32_t crc32c_portable(uint32_t crc, const void *buf, size_t len);

/* Whether crc32c() uses the CPU's instruction. */
bool crc32c_hw(void);

#endif
