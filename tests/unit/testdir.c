#include <config.h>

#include "testdir.h"

#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char td_dir[TD_PATH_MAX];
static char td_base[48];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    if (remove(path) < 0)
        perror(path);
    return 0;
}

void td_rmtree(const char *path)
{
    if (path && path[0])
        nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void td_case_setup(void)
{
    snprintf(td_base, sizeof td_base, "/tmp/eventfold-unit.XXXXXX");
    if (!mkdtemp(td_base)) {
        perror("mkdtemp");
        abort();
    }
}

void td_case_teardown(void)
{
    td_rmtree(td_base);
    td_base[0] = '\0';
}

void td_setup(void)
{
    ck_assert_msg(td_base[0] != '\0', "td_setup without td_case_setup");
    snprintf(td_dir, sizeof td_dir, "%s/t.XXXXXX", td_base);
    ck_assert_ptr_nonnull(mkdtemp(td_dir));
}

void td_teardown(void)
{
    td_rmtree(td_dir);
    td_dir[0] = '\0';
}
