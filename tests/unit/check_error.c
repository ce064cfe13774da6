/* Unit tests of the error registry (util/ef_error.h): the modules' ranges are disjoint from
 * each other, from errno's and from LMDB's; every code of every module is named by its own
 * module's *_strerror(), through ef_strerror() too; every *_strerror() names the codes of
 * the others, errno values and LMDB's codes as ef_strerror() does; ef_strerror() gives
 * strerror()'s text for an errno value and mdb_strerror()'s for an LMDB code. */
#include <config.h>

#include "fold/tailer.h"
#include "log/log.h"
#include "mirror/mcheck.h"
#include "mirror/mirror.h"
#include "mirror/mirror_error.h"
#include "mirror/mnats.h"
#include "readmodel/rmodel.h"
#include "relay/sink.h"
#include "server/server.h"
#include "util/ef_error.h"
#include "write/model.h"
#include "write/wsnap.h"

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every code the modules' headers define, with the module that owns it. A code added to a
 * header belongs here too (test_every_text_listed fails until it is). */
static const struct {
    int module;
    int code;
} codes[] = {
    { EF_ERR_LOG, LOG_ECORRUPT },         { EF_ERR_LOG, LOG_EVERSION },
    { EF_ERR_LOG, LOG_ETOOBIG },          { EF_ERR_LOG, LOG_ESEQUENCE },
    { EF_ERR_LOG, LOG_EREADONLY },        { EF_ERR_LOG, LOG_EBADARG },
    { EF_ERR_LOG, LOG_ELOCKED },          { EF_ERR_LOG, LOG_ESYNCFAILED },
    { EF_ERR_RMODEL, RMODEL_ENOTFOUND },  { EF_ERR_RMODEL, RMODEL_EFORMAT },
    { EF_ERR_RMODEL, RMODEL_EBADARG },    { EF_ERR_RMODEL, RMODEL_EORDER },
    { EF_ERR_RMODEL, RMODEL_EUNSYNCED },  { EF_ERR_RMODEL, RMODEL_ELAYOUT },
    { EF_ERR_TAILER, TAILER_EDAMAGE },
    { EF_ERR_TAILER, TAILER_ESEQ },       { EF_ERR_RELAY, RELAY_ERETRY },
    { EF_ERR_RELAY, RELAY_EFATAL },       { EF_ERR_MIRROR, MIRROR_EGAP },
    { EF_ERR_MIRROR, MIRROR_EDISAGREE },  { EF_ERR_MIRROR, MNATS_ERETRY },
    { EF_ERR_MIRROR, MNATS_EFATAL },      { EF_ERR_MIRROR, MIRROR_EREFUSED },
    { EF_ERR_MIRROR, MIRROR_ELOG },       { EF_ERR_SERVER, SERVER_ERR_USAGE },
    { EF_ERR_SERVER, SERVER_ERR_LISTEN }, { EF_ERR_SERVER, SERVER_ERR_IN_USE },
    { EF_ERR_SERVER, SERVER_ERR_SYSTEM }, { EF_ERR_SERVER, SERVER_PARK_FULL },
    { EF_ERR_SERVER, SERVER_PARK_STOPPING }, { EF_ERR_SERVER, SERVER_PARK_UNAVAILABLE },
    { EF_ERR_WM, WM_ECORRUPT },           { EF_ERR_WM, WM_EAHEAD },
    { EF_ERR_WM, WM_EAPPLY },             { EF_ERR_WSNAP, WSNAP_EBUSY },
    { EF_ERR_WSNAP, WSNAP_EBOOT },        { EF_ERR_WSNAP, WSNAP_EEMPTY },
    { EF_ERR_WSNAP, WSNAP_EAHEAD },       { EF_ERR_WSNAP, WSNAP_ENONE },
};
#define NCODES (sizeof codes / sizeof codes[0])

/* Each module's *_strerror(), named here so that the test links all of them (the registry
 * only refers to them weakly). */
static const char *(*const module_strerror[EF_ERR_NMODULES])(int) = {
    [EF_ERR_LOG] = log_strerror,       [EF_ERR_RMODEL] = rmodel_strerror,
    [EF_ERR_TAILER] = tailer_strerror, [EF_ERR_RELAY] = relay_strerror,
    [EF_ERR_MIRROR] = mirror_strerror, [EF_ERR_SERVER] = server_strerror,
    [EF_ERR_WM] = wm_strerror,         [EF_ERR_WSNAP] = wsnap_strerror,
};

/* Some errno values, LMDB codes and codes in no range, for the cross checks. */
static const int others[] = { -EPERM, -ENOENT, -EINTR, -EIO, -ENOSPC, -EDQUOT, -4095,
                              MDB_KEYEXIST, MDB_NOTFOUND, MDB_MAP_FULL, MDB_LAST_ERRCODE,
                              -1, -4096, -9999, -16000, -30000, -30800, INT_MIN, 0 };
#define NOTHERS (sizeof others / sizeof others[0])

static int overlaps(int first_a, int last_a, int first_b, int last_b)
{
    return last_a <= first_b && last_b <= first_a;
}

START_TEST(test_ranges_disjoint)
{
    for (int m = 0; m < EF_ERR_NMODULES; m++) {
        const struct ef_err_range *r = &ef_err_ranges[m];
        ck_assert_msg(r->name && r->name[0], "module %d has no name", m);
        ck_assert_msg(r->strerror == module_strerror[m], "%s: not its module's strerror", r->name);
        ck_assert_msg(r->last <= r->first, "%s: last %d > first %d", r->name, r->last, r->first);
        ck_assert_msg(!overlaps(r->first, r->last, -1, EF_ERR_ERRNO_LAST),
                      "%s overlaps the errno values", r->name);
        ck_assert_msg(!overlaps(r->first, r->last, MDB_LAST_ERRCODE, MDB_KEYEXIST),
                      "%s overlaps LMDB's codes", r->name);
        for (int o = m + 1; o < EF_ERR_NMODULES; o++) {
            const struct ef_err_range *q = &ef_err_ranges[o];
            ck_assert_msg(!overlaps(r->first, r->last, q->first, q->last), "%s overlaps %s",
                          r->name, q->name);
        }
        ck_assert_int_eq(ef_err_module_of(r->first), m);
        ck_assert_int_eq(ef_err_module_of(r->last), m);
        ck_assert_int_ne(ef_err_module_of(r->first + 1), m);
        ck_assert_int_ne(ef_err_module_of(r->last - 1), m);
    }
    ck_assert_int_eq(ef_err_module_of(0), -1);
    ck_assert_int_eq(ef_err_module_of(-EIO), -1);
    ck_assert_int_eq(ef_err_module_of(MDB_MAP_FULL), -1);
    ck_assert_int_eq(ef_err_module_of(INT_MIN), -1);
}
END_TEST

START_TEST(test_every_code_named_by_its_module)
{
    for (size_t i = 0; i < NCODES; i++) {
        int m = codes[i].module, c = codes[i].code;
        const struct ef_err_range *r = &ef_err_ranges[m];
        ck_assert_msg(ef_err_module_of(c) == m, "%d is not in the range of %s", c, r->name);
        const char *t = ef_strerror(c);
        ck_assert_str_eq(t, r->strerror(c));
        ck_assert_msg(strcmp(t, r->unknown) != 0, "%s does not name %d", r->name, c);
        ck_assert_str_ne(t, r->unlinked);
        ck_assert_str_ne(t, "unknown error code");
        ck_assert_str_ne(t, mdb_strerror(c));
        ck_assert_msg(strncmp(t, "Unknown error", 13) != 0, "%d: %s", c, t);
        for (size_t j = 0; j < i; j++)
            ck_assert_msg(codes[j].code != c, "code %d listed twice", c);
        for (size_t j = 0; j < i; j++)
            if (codes[j].module == m)
                ck_assert_msg(strcmp(ef_strerror(codes[j].code), t) != 0,
                              "%s: %d and %d have the same text", r->name, codes[j].code, c);
    }
}
END_TEST

/* A module's *_strerror() names no code of its range that the list above lacks. */
START_TEST(test_every_text_listed)
{
    for (int m = 0; m < EF_ERR_NMODULES; m++) {
        const struct ef_err_range *r = &ef_err_ranges[m];
        size_t listed = 0, named = 0;
        for (size_t i = 0; i < NCODES; i++)
            listed += codes[i].module == m;
        for (int c = r->first; c >= r->last; c--)
            named += strcmp(r->strerror(c), r->unknown) != 0;
        ck_assert_msg(named == listed, "%s names %zu codes, the test lists %zu", r->name, named,
                      listed);
        ck_assert_str_eq(ef_strerror(r->last), r->unknown);
    }
}
END_TEST

/* Every module's *_strerror() agrees with ef_strerror() on what is not its own: another
 * module's code (the read model once printed LMDB's "unknown" for the log's codes), an
 * errno value, an LMDB code. */
static void assert_same_text(const struct ef_err_range *r, int code)
{
    char got[256]; /* copied: strerror's text of an unknown errno value lasts one call */
    snprintf(got, sizeof got, "%s", r->strerror(code));
    ck_assert_msg(strcmp(got, ef_strerror(code)) == 0, "%s_strerror(%d) = '%s', ef_strerror: '%s'",
                  r->name, code, got, ef_strerror(code));
}

START_TEST(test_foreign_codes)
{
    for (int m = 0; m < EF_ERR_NMODULES; m++) {
        const struct ef_err_range *r = &ef_err_ranges[m];
        for (size_t i = 0; i < NCODES; i++)
            if (codes[i].module != m)
                assert_same_text(r, codes[i].code);
        for (size_t i = 0; i < NOTHERS; i++)
            assert_same_text(r, others[i]);
    }
    ck_assert_str_eq(rmodel_strerror(LOG_ECORRUPT), log_strerror(LOG_ECORRUPT));
    ck_assert_str_eq(rmodel_strerror(TAILER_EDAMAGE), tailer_strerror(TAILER_EDAMAGE));
    ck_assert_str_eq(wsnap_strerror(LOG_ESYNCFAILED), log_strerror(LOG_ESYNCFAILED));
}
END_TEST

START_TEST(test_errno_and_lmdb)
{
    const int errnos[] = { EPERM, ENOENT, EINTR, EIO, ENOSPC, EDQUOT, ENAMETOOLONG };
    for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++) {
        char want[256];
        snprintf(want, sizeof want, "%s", strerror(errnos[i]));
        ck_assert_str_eq(ef_strerror(-errnos[i]), want);
        ck_assert_str_eq(ef_strerror(errnos[i]), want); /* as LMDB returns them */
    }
    const int mdb[] = { MDB_KEYEXIST, MDB_NOTFOUND, MDB_MAP_FULL, MDB_READERS_FULL,
                        MDB_LAST_ERRCODE };
    for (size_t i = 0; i < sizeof mdb / sizeof mdb[0]; i++)
        ck_assert_str_eq(ef_strerror(mdb[i]), mdb_strerror(mdb[i]));
    ck_assert_str_eq(ef_strerror(0), "success");
    ck_assert_str_eq(ef_strerror(-30000), "unknown error code");
    ck_assert_str_eq(ef_strerror(INT_MIN), "unknown error code");
    ck_assert_str_eq(ef_strerror(-10999), "unknown log error");
    ck_assert_str_eq(ef_strerror_except(EF_ERR_SERVER, SERVER_ERR_IN_USE), "unknown server error");
    ck_assert_str_eq(ef_strerror_except(EF_ERR_LOG, SERVER_ERR_IN_USE),
                     "socket in use by another server");
}
END_TEST

static Suite *error_suite(void)
{
    Suite *s = suite_create("error");
    TCase *tc = tcase_create("registry");
    tcase_add_test(tc, test_ranges_disjoint);
    tcase_add_test(tc, test_every_code_named_by_its_module);
    tcase_add_test(tc, test_every_text_listed);
    tcase_add_test(tc, test_foreign_codes);
    tcase_add_test(tc, test_errno_and_lmdb);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(error_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
