/* Unit tests of util/bloom: every hash added is reported (no false negative), through
 * several parts; hashes never added are rarely reported (about 0.3% per part). */
#include <config.h>

#include "util/bloom.h"

#include <check.h>
#include <stdlib.h>
#include <xxhash.h>

static uint64_t h_of(uint64_t i, uint64_t seed) { return XXH3_64bits_withSeed(&i, sizeof i, seed); }

START_TEST(test_empty_says_no)
{
    struct ef_bloom *b = ef_bloom_new(10);
    for (uint64_t i = 0; i < 1000; i++)
        ck_assert_int_eq(ef_bloom_maybe(b, h_of(i, 1)), 0);
    ck_assert_uint_eq(ef_bloom_count(b), 0);
    ef_bloom_free(b);
}
END_TEST

START_TEST(test_no_false_negative_across_parts)
{
    /* A first part of 64 hashes: 200 000 fill seven parts. */
    struct ef_bloom *b = ef_bloom_new(1);
    enum { N = 200000 };
    for (uint64_t i = 0; i < N; i++) {
        ef_bloom_add(b, h_of(i, 1));
        if (i % 997 == 0) /* earlier ones stay found while parts are added */
            ck_assert_int_eq(ef_bloom_maybe(b, h_of(i / 2, 1)), 1);
    }
    for (uint64_t i = 0; i < N; i++)
        ck_assert_int_eq(ef_bloom_maybe(b, h_of(i, 1)), 1);
    ck_assert_uint_eq(ef_bloom_count(b), N);
    ef_bloom_free(b);
}
END_TEST

/* Hashes never added (another seed) that the filter reports, per million. */
static unsigned false_per_million(const struct ef_bloom *b)
{
    unsigned fp = 0;
    for (uint64_t i = 0; i < 1000000; i++)
        fp += (unsigned)ef_bloom_maybe(b, h_of(i, 2));
    return fp;
}

START_TEST(test_false_positives_per_part)
{
    /* One part, full: under 0.5%. */
    struct ef_bloom *b = ef_bloom_new(1u << 18);
    for (uint64_t i = 0; i < (1u << 18); i++)
        ef_bloom_add(b, h_of(i, 1));
    unsigned one = false_per_million(b);
    ck_assert_msg(one < 5000, "%u per million with one part", one);
    ck_assert_uint_gt(one, 0); /* a filter, not a set: some are expected */
    /* Three parts (2^18 + 2^20 + part of the third): under 1.5%. */
    for (uint64_t i = 1u << 18; i < (3u << 20); i++)
        ef_bloom_add(b, h_of(i, 1));
    unsigned three = false_per_million(b);
    ck_assert_msg(three < 15000, "%u per million with three parts", three);
    ef_bloom_free(b);
}
END_TEST

START_TEST(test_free_null) { ef_bloom_free(NULL); }
END_TEST

int main(void)
{
    Suite *s = suite_create("bloom");
    TCase *tc = tcase_create("bloom");
    tcase_add_test(tc, test_empty_says_no);
    tcase_add_test(tc, test_no_false_negative_across_parts);
    tcase_add_test(tc, test_false_positives_per_part);
    tcase_add_test(tc, test_free_null);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
