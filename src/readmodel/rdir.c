#include <config.h>

#include "readmodel/rdir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/durable.h"
#include "util/lockfile.h"
#include "util/path.h"

int rdir_path(char *out, size_t outlen, const char *data_dir, const char *name)
{
    int n = snprintf(out, outlen, "%s/read%s%s", data_dir, *name ? "/" : "", name);
    return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

static int mkdir_p1(const char *path)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    return -errno;
}

/* Creates the first model and the symlink unless present. Callers hold the prepare lock. */
static int prepare_locked(const char *data_dir)
{
    char path[RDIR_PATH_MAX];
    int rc = rdir_path(path, sizeof path, data_dir, "current");
    if (rc)
        return rc;
    struct stat st;
    if (stat(path, &st) == 0)
        return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
    if (errno != ENOENT)
        return -errno;
    char name[64], old[RDIR_PATH_MAX];
    rc = rdir_new_model(data_dir, name, sizeof name);
    return rc ? rc : rdir_switch(data_dir, name, old, sizeof old);
}

int rdir_prepare(const char *data_dir)
{
    char path[RDIR_PATH_MAX];
    int rc = rdir_path(path, sizeof path, data_dir, "");
    if (rc == 0)
        rc = mkdir_p1(path);
    if (rc == 0)
        rc = rdir_path(path, sizeof path, data_dir, "prepare.lock");
    if (rc)
        return rc;
    /* The tailer and the query workers may start together: the first one creates the
     * model, the others wait on the lock and then find it. */
    int fd;
    rc = ef_lock_file(path, 0, &fd);
    if (rc)
        return rc;
    rc = prepare_locked(data_dir);
    ef_unlock_file(fd);
    return rc;
}

/* The highest N of the model-N directories present (0 if none). */
static int highest_model(const char *dir, unsigned long *max)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    *max = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        unsigned long n;
        char tail;
        if (sscanf(e->d_name, "model-%lu%c", &n, &tail) == 1 && n > *max)
            *max = n;
    }
    closedir(d);
    return 0;
}

int rdir_new_model(const char *data_dir, char *name, size_t namelen)
{
    char dir[RDIR_PATH_MAX], path[RDIR_PATH_MAX];
    unsigned long max = 0;
    int rc = rdir_path(dir, sizeof dir, data_dir, "");
    if (rc == 0)
        rc = highest_model(dir, &max);
    if (rc)
        return rc;
    int n = snprintf(name, namelen, "model-%010lu", max + 1);
    if (n < 0 || (size_t)n >= namelen)
        return -ENAMETOOLONG;
    rc = rdir_path(path, sizeof path, data_dir, name);
    if (rc)
        return rc;
    return mkdir(path, 0755) == 0 ? 0 : -errno;
}

int rdir_switch(const char *data_dir, const char *name, char *old, size_t oldlen)
{
    char dir[RDIR_PATH_MAX], cur[RDIR_PATH_MAX], tmp[RDIR_PATH_MAX];
    int rc = rdir_path(dir, sizeof dir, data_dir, "");
    if (rc == 0)
        rc = rdir_path(cur, sizeof cur, data_dir, "current");
    if (rc == 0)
        rc = rdir_path(tmp, sizeof tmp, data_dir, "current.tmp");
    if (rc)
        return rc;
    ssize_t n = readlink(cur, old, oldlen - 1);
    old[n > 0 ? n : 0] = '\0';
    if (unlink(tmp) < 0 && errno != ENOENT)
        return -errno;
    if (symlink(name, tmp) < 0)
        return -errno;
    rc = ef_fsync_path(dir, 1);
    if (rc)
        return rc;
    if (rename(tmp, cur) < 0)
        return -errno;
    return ef_fsync_path(dir, 1);
}

int rdir_remove_model(const char *data_dir, const char *name)
{
    /* "unsynced": the lazy-sync marker of rmodel_env.h (RMODEL_UNSYNCED_FILE), and what a
     * failed write of it can leave behind (util/durable.h). */
    static const char *const files[] = { "data.mdb", "lock.mdb", "unsynced", ".unsynced.tmp" };
    char path[RDIR_PATH_MAX], file[RDIR_PATH_MAX];
    int rc = rdir_path(path, sizeof path, data_dir, name);
    if (rc)
        return rc;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (ef_path_join(file, sizeof file, path, files[i]) == 0 && unlink(file) < 0 && errno != ENOENT)
            return -errno;
    }
    return rmdir(path) == 0 || errno == ENOENT ? 0 : -errno;
}
