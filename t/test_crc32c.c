/*
 * test_crc32c.c - CRC-32C known answers for both implementations, and
 * agreement between them on every length, alignment and chaining.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "queue/crc32c.h"

Test(crc32c, known_answer_table)
{
    cr_assert_eq(crc32c_sw(0, "123456789", 9), 0xE3069283u);
    cr_assert_eq(crc32c_sw(0, "", 0), 0u);
    /* RFC 3720 B.4: 32 bytes of zeros, 32 bytes of 0xff. */
    unsigned char buf[32];

    memset(buf, 0, sizeof(buf));
    cr_assert_eq(crc32c_sw(0, buf, 32), 0x8A9136AAu);
    memset(buf, 0xff, sizeof(buf));
    cr_assert_eq(crc32c_sw(0, buf, 32), 0x62A8AB43u);
}

Test(crc32c, known_answer_hardware)
{
    if (!crc32c_hw_available())
	cr_skip_test("no SSE4.2 on this CPU");
    cr_assert_eq(crc32c_hw(0, "123456789", 9), 0xE3069283u);
    unsigned char buf[32];

    memset(buf, 0, sizeof(buf));
    cr_assert_eq(crc32c_hw(0, buf, 32), 0x8A9136AAu);
    cr_assert_eq(crc32c(0, "123456789", 9), 0xE3069283u);
}

Test(crc32c, implementations_agree)
{
    unsigned char buf[4096 + 16];

    srand(12345);
    for (size_t i = 0; i < sizeof(buf); i++)
	buf[i] = (unsigned char) rand();
    for (size_t align = 0; align < 8; align++)
	for (size_t len = 0; len < 300; len++) {
	    uint32_t sw = crc32c_sw(0, buf + align, len);

	    cr_assert_eq(crc32c(0, buf + align, len), sw, "align %zu len %zu", align, len);
	    if (crc32c_hw_available())
		cr_assert_eq(crc32c_hw(0, buf + align, len), sw);
	}
    /* Chaining: crc(a||b) == crc(crc(a), b). */
    for (size_t cut = 0; cut <= 4096; cut += 97) {
	uint32_t whole = crc32c_sw(0, buf, 4096);

	cr_assert_eq(crc32c_sw(crc32c_sw(0, buf, cut), buf + cut, 4096 - cut), whole);
	cr_assert_eq(crc32c(crc32c(0, buf, cut), buf + cut, 4096 - cut), whole);
    }
}
