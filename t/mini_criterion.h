/*
 * mini_criterion.h - just enough of Criterion's API to build a threaded test
 * without Criterion, for ThreadSanitizer runs: Criterion 2.4's BoxFort arena
 * cannot start under TSan ("Could not initialize inheritable arena",
 * Snaipe/Criterion#274). Tests run in-process, in order, and print TAP.
 * Include instead of <criterion/criterion.h> when SLUICE_MINI_CRITERION is set.
 */
#ifndef SLUICE_MINI_CRITERION_H
#define SLUICE_MINI_CRITERION_H

#include <stdio.h>
#include <stdlib.h>
#include <setjmp.h>

typedef struct mini_test {
    const char *suite, *name;
    void (*fn)(void);
} mini_test;

static mini_test mini_tests[256];
static int mini_ntests;
static jmp_buf mini_jmp;
static const char *mini_failure;
static int mini_failure_line;

static inline void mini_register(const char *suite, const char *name, void (*fn)(void))
{
    if (mini_ntests < 256)
	mini_tests[mini_ntests++] = (mini_test) {suite, name, fn};
}

static inline void mini_fail(const char *file, int line, const char *expr)
{
    (void) file;
    mini_failure = expr;
    mini_failure_line = line;
    longjmp(mini_jmp, 1);
}

#define Test(suite, name, ...) \
    static void suite##_##name(void); \
    __attribute__((constructor)) static void mini_reg_##suite##_##name(void) \
	{ mini_register(#suite, #name, suite##_##name); } \
    static void suite##_##name(void)

#define MINI_CHECK(cond, text) do { if (!(cond)) mini_fail(__FILE__, __LINE__, text); } while (0)
#define cr_assert(c, ...)		MINI_CHECK((c), #c)
#define cr_assert_not(c, ...)		MINI_CHECK(!(c), "!" #c)
#define cr_assert_eq(a, b, ...)		MINI_CHECK((a) == (b), #a " == " #b)
#define cr_assert_neq(a, b, ...)	MINI_CHECK((a) != (b), #a " != " #b)
#define cr_assert_lt(a, b, ...)		MINI_CHECK((a) < (b), #a " < " #b)
#define cr_assert_leq(a, b, ...)	MINI_CHECK((a) <= (b), #a " <= " #b)
#define cr_assert_gt(a, b, ...)		MINI_CHECK((a) > (b), #a " > " #b)
#define cr_assert_geq(a, b, ...)	MINI_CHECK((a) >= (b), #a " >= " #b)

int main(void)
{
    volatile int failed = 0;

    printf("1..%d\n", mini_ntests);
    for (int i = 0; i < mini_ntests; i++) {
	if (setjmp(mini_jmp) == 0) {
	    mini_tests[i].fn();
	    printf("ok %d - %s::%s\n", i + 1, mini_tests[i].suite, mini_tests[i].name);
	} else {
	    failed++;
	    printf("not ok %d - %s::%s: line %d: %s\n", i + 1, mini_tests[i].suite,
		   mini_tests[i].name, mini_failure_line, mini_failure);
	}
	fflush(stdout);
    }
    return failed != 0;
}

#endif
