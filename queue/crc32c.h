/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of journal records.
 *
 * crc32c() uses the SSE4.2 crc32 instruction when the CPU has it (checked
 * once at run time) and a slicing table otherwise; both give the same
 * result (check value: crc32c("123456789") = 0xE3069283). The two
 * implementations are exported so tests can check each one.
 *
 * The running value is the finished CRC of what came before (0 to start):
 *   crc = crc32c(0, a, alen); crc = crc32c(crc, b, blen);
 * equals crc32c(0, a||b, alen+blen). Thread safe, no allocation.
 */
#ifndef SLUICE_CRC32C_H
#define SLUICE_CRC32C_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

uint32_t crc32c(uint32_t crc, const void *buf, size_t len);
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);
uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len);	/* only if crc32c_hw_available() */
bool     crc32c_hw_available(void);

#endif
