#include <config.h>

#include "testdir.h"

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

char td_dir[TD_PATH_MAX];
static char td_base[48];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    if (remove(path) < 0)
        perror(path);
    return 0;
}

/* Detaches every mount at or below path, deepest first (/proc/self/mounts lists a mount
 * after the one it sits on). A test's child process may have made them, so they are found
 * from the mount table, not remembered. */
static void umount_below(const char *path)
{
    char mps[16][TD_PATH_MAX + 64];
    size_t n = 0, len = strlen(path);
    FILE *f = fopen("/proc/self/mounts", "re");
    if (!f)
        return;
    char dev[256], mp[TD_PATH_MAX + 64];
    while (n < 16 && fscanf(f, "%255s %127s %*[^\n]", dev, mp) == 2) {
        if (strncmp(mp, path, len) == 0 && (mp[len] == '\0' || mp[len] == '/'))
            strcpy(mps[n++], mp);
    }
    fclose(f);
    while (n > 0)
        if (umount2(mps[--n], MNT_DETACH) < 0)
            perror(mps[n]);
}

void td_rmtree(const char *path)
{
    if (path && path[0]) {
        umount_below(path);
        nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
}

int td_mount_tmpfs(const char *path, size_t bytes)
{
    char opts[64];
    snprintf(opts, sizeof opts, "size=%zu,mode=0755", bytes);
    ck_assert_msg(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", path, strerror(errno));
    if (mount("ef-unit-tmpfs", path, "tmpfs", 0, opts) < 0) {
        fprintf(stderr, "cannot mount a tmpfs on %s (%s): skipping what needs a full disk\n", path,
                strerror(errno));
        return -1;
    }
    return 0;
}

int td_in_child(void (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        fn(arg);
        _exit(0);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return status;
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
