/* CRC32C: the CPU's instruction and the table agree with the standard and each other. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>

#include "crc32c.h"

Test(crc32c, matches_the_standard_check_value)
{
	cr_expect_eq(crc32c(0, "123456789", 9), 0xE3069283u);
	cr_expect_eq(crc32c_portable(0, "123456789", 9), 0xE3069283u);
	cr_expect_eq(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
	cr_expect_eq(crc32c_portable(crc32c_portable(0, "1234", 4), "56789", 5), 0xE3069283u);
	cr_expect_eq(crc32c(0, "", 0), 0u);
}

/* Every length 0..300 and every start offset 0..7 (the 8-byte loops' edges), random bytes. */
Test(crc32c, instruction_and_table_agree_at_every_length_and_alignment)
{
	uint8_t buf[320];
	uint32_t seed = 12345;

	for (size_t i = 0; i < sizeof(buf); i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (uint8_t)(seed >> 16);
	}
	for (size_t off = 0; off < 8; off++)
		for (size_t len = 0; off + len <= 308; len++) {
			uint32_t a = crc32c(7, buf + off, len),
				 b = crc32c_portable(7, buf + off, len);
			cr_assert_eq(a, b, "offset %zu length %zu: %08x against %08x", off, len, a,
				     b);
		}
}
