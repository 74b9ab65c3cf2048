/*
 * crc32c.c - CRC-32C with the SSE4.2 instruction and a table fallback.
 *
 * The table variant is slicing-by-8 (eight 256-entry tables built once,
 * thread safe through pthread_once). The hardware variant is compiled with
 * __attribute__((target("sse4.2"))) so the rest of the program need not be,
 * and is chosen at run time with __builtin_cpu_supports("sse4.2").
 */
#include "config.h"

#include <pthread.h>
#include <string.h>

#include "queue/crc32c.h"

#define CRC32C_POLY	0x82F63B78u	/* reflected Castagnoli polynomial */

static uint32_t crc32c_table[8][256];
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;
static int crc32c_use_hw = -1;		/* -1 unknown, 0 no, 1 yes */

static void crc32c_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
	uint32_t c = n;

	for (int k = 0; k < 8; k++)
	    c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
	crc32c_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
	uint32_t c = crc32c_table[0][n];

	for (int k = 1; k < 8; k++) {
	    c = crc32c_table[0][c & 0xff] ^ (c >> 8);
	    crc32c_table[k][n] = c;
	}
    }
    __builtin_cpu_init();
    __atomic_store_n(&crc32c_use_hw, __builtin_cpu_supports("sse4.2") ? 1 : 0,
		     __ATOMIC_RELEASE);
}

uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;

    pthread_once(&crc32c_once, crc32c_init);
    crc = ~crc;
    while (len && ((uintptr_t) p & 7)) {
	crc = crc32c_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	len--;
    }
    while (len >= 8) {
	uint64_t w;

	memcpy(&w, p, 8);
	w ^= crc;			/* little-endian host (x86_64) */
	crc = crc32c_table[7][w & 0xff] ^ crc32c_table[6][(w >> 8) & 0xff]
	    ^ crc32c_table[5][(w >> 16) & 0xff] ^ crc32c_table[4][(w >> 24) & 0xff]
	    ^ crc32c_table[3][(w >> 32) & 0xff] ^ crc32c_table[2][(w >> 40) & 0xff]
	    ^ crc32c_table[1][(w >> 48) & 0xff] ^ crc32c_table[0][w >> 56];
	p += 8;
	len -= 8;
    }
    while (len--)
	crc = crc32c_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uint64_t c = ~crc & 0xffffffffu;

    while (len && ((uintptr_t) p & 7)) {
	c = __builtin_ia32_crc32qi((uint32_t) c, *p++);
	len--;
    }
    while (len >= 8) {
	uint64_t w;

	memcpy(&w, p, 8);
	c = __builtin_ia32_crc32di(c, w);
	p += 8;
	len -= 8;
    }
    while (len--)
	c = __builtin_ia32_crc32qi((uint32_t) c, *p++);
    return ~(uint32_t) c;
}

bool crc32c_hw_available(void)
{
    pthread_once(&crc32c_once, crc32c_init);
    return __atomic_load_n(&crc32c_use_hw, __ATOMIC_ACQUIRE) == 1;
}
#else
uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
    return crc32c_sw(crc, buf, len);
}

bool crc32c_hw_available(void)
{
    return false;
}
#endif

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
    int hw = __atomic_load_n(&crc32c_use_hw, __ATOMIC_ACQUIRE);

    if (hw < 0)
	hw = crc32c_hw_available();
    return hw ? crc32c_hw(crc, buf, len) : crc32c_sw(crc, buf, len);
}
