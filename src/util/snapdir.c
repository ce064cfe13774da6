#include <config.h>

#include "util/snapdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/crc32c.h"
#include "util/durable.h"
#include "util/eflog.h"
#include "util/lockfile.h"
#include "util/path.h"
#include "util/xalloc.h"

int snapdir_file_crc(const char *path, uint32_t *crc, uint64_t *bytes)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = xmalloc(CHUNK);
    *crc = 0;
    *bytes = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = -errno;
        if (n <= 0)
            break;
        *crc = ef_crc32c(*crc, buf, (size_t)n);
        *bytes += (uint64_t)n;
    }
    free(buf);
    close(fd);
    return rc;
}

static int write_manifest(const char *dir, const struct snapshot_info *s)
{
    char path[SNAPDIR_PATH_MAX];
    if (ef_path_join(path, sizeof path, dir, "manifest"))
        return -ENAMETOOLONG;
    FILE *f = fopen(path, "we");
    if (!f)
        return -errno;
    fprintf(f, "eventfold-snapshot 1\nposition %" PRIu64 "\ntaken_at %" PRId64 "\nbytes %" PRIu64
               "\ncrc32c %08" PRIx32 "\n",
            s->position, s->taken_at, s->bytes, s->crc);
    int rc = fflush(f) == 0 && fsync(fileno(f)) == 0 ? 0 : -errno;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    return rc;
}

static int read_manifest(const char *dir, struct snapshot_info *s)
{
    char path[SNAPDIR_PATH_MAX];
    if (ef_path_join(path, sizeof path, dir, "manifest"))
        return -ENAMETOOLONG;
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    int v = 0;
    int n = fscanf(f, "eventfold-snapshot %d position %" SCNu64 " taken_at %" SCNd64
                      " bytes %" SCNu64 " crc32c %" SCNx32,
                   &v, &s->position, &s->taken_at, &s->bytes, &s->crc);
    fclose(f);
    return n == 5 && v == 1 ? 0 : -EBADMSG;
}

int snapdir_remove(const char *path)
{
    static const char *const files[] = { "data.mdb", "lock.mdb", "manifest" };
    char file[SNAPDIR_PATH_MAX];
    int rc = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (ef_path_join(file, sizeof file, path, files[i]) != 0) {
            rc = -ENAMETOOLONG;
        } else if (unlink(file) < 0 && errno != ENOENT) {
            rc = -errno;
            EFLOG_WARN("cannot remove file=%s: %s", file, strerror(errno));
        }
    }
    if (rmdir(path) < 0 && errno != ENOENT) {
        rc = rc ? rc : -errno;
        EFLOG_WARN("cannot remove snapshot dir=%s: %s", path, strerror(errno));
    }
    return rc;
}

int snapdir_begin(const char *dir, char *tmp)
{
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return -errno;
    char name[32];
    snprintf(name, sizeof name, "tmp-%ld", (long)getpid());
    if (ef_path_join(tmp, SNAPDIR_PATH_MAX, dir, name))
        return -ENAMETOOLONG;
    snapdir_remove(tmp); /* left over by a crash of this pid number */
    return mkdir(tmp, 0755) < 0 ? -errno : 0;
}

int snapdir_seal(const char *tmp, struct snapshot_info *s)
{
    char data[SNAPDIR_PATH_MAX];
    if (ef_path_join(data, sizeof data, tmp, "data.mdb"))
        return -ENAMETOOLONG;
    int rc = ef_fsync_path(data, 0);
    s->taken_at = ef_now_ms();
    if (rc == 0)
        rc = write_manifest(tmp, s);
    if (rc == 0)
        rc = ef_fsync_path(tmp, 1);
    return rc;
}

int snapdir_publish(const char *dir, const char *tmp, struct snapshot_info *s, int replace)
{
    char final[SNAPDIR_PATH_MAX];
    struct stat st;
    snprintf(s->name, sizeof s->name, "snap-%020" PRIu64, s->position);
    if (ef_path_join(final, sizeof final, dir, s->name))
        return -ENAMETOOLONG;
    if (!replace && stat(final, &st) == 0) {
        snapdir_remove(tmp);
        return 1;
    }
    /* Replacing: swap the two directories in one step, so that a crash leaves either the
     * old or the new snapshot under the final name, never none (the old one then sits under
     * the tmp- name, which snapdir_remove_tmp clears). */
    if (replace && renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_EXCHANGE) == 0) {
        int rc = ef_fsync_path(dir, 1);
        snapdir_remove(tmp);
        return rc;
    }
    if (replace && errno != ENOENT)
        return -errno;
    if (rename(tmp, final) < 0)
        return -errno;
    return ef_fsync_path(dir, 1);
}

void snapdir_remove_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    char path[SNAPDIR_PATH_MAX];
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "tmp-", 4) == 0 && ef_path_join(path, sizeof path, dir, e->d_name) == 0)
            snapdir_remove(path);
    }
    closedir(d);
}

void snapdir_prune(const char *dir, int keep)
{
    struct snapshot_info list[SNAPDIR_LIST_MAX];
    size_t n, k = (size_t)(keep < 1 ? 1 : keep);
    char path[SNAPDIR_PATH_MAX];
    /* A full list may have left older ones out: list again until none is left beyond k. */
    do {
        if (snapdir_list(dir, list, SNAPDIR_LIST_MAX, &n) || n <= k)
            return;
        for (size_t i = k; i < n; i++) {
            /* A snapshot that cannot be removed would be listed again forever: give up
             * (logged); the next prune tries again. */
            if (ef_path_join(path, sizeof path, dir, list[i].name) != 0 || snapdir_remove(path) != 0)
                return;
            EFLOG_INFO("snapshot removed position=%" PRIu64 " dir=%s", list[i].position, dir);
        }
    } while (n == SNAPDIR_LIST_MAX);
}

static int cmp_newest_first(const void *a, const void *b)
{
    const struct snapshot_info *x = a, *y = b;
    return x->position < y->position ? 1 : x->position > y->position ? -1 : 0;
}

/* Adds s to list unless it is full of newer ones: the newest `max` survive whatever the
 * order readdir returns them in. */
static void keep_newest(struct snapshot_info *list, size_t max, size_t *n,
                        const struct snapshot_info *s)
{
    if (*n < max) {
        list[(*n)++] = *s;
        return;
    }
    size_t oldest = 0;
    for (size_t i = 1; i < *n; i++)
        if (list[i].position < list[oldest].position)
            oldest = i;
    if (*n > 0 && list[oldest].position < s->position)
        list[oldest] = *s;
}

int snapdir_list(const char *dir, struct snapshot_info *list, size_t max, size_t *n)
{
    char path[SNAPDIR_PATH_MAX];
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    struct dirent *e;
    struct snapshot_info s;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "snap-", 5) != 0 || strlen(e->d_name) >= sizeof list->name)
            continue;
        if (ef_path_join(path, sizeof path, dir, e->d_name))
            continue;
        memset(&s, 0, sizeof s);
        if (read_manifest(path, &s) != 0) {
            EFLOG_WARN("snapshot without a valid manifest skipped dir=%s", path);
            continue;
        }
        strcpy(s.name, e->d_name);
        keep_newest(list, max, n, &s);
    }
    closedir(d);
    qsort(list, *n, sizeof *list, cmp_newest_first);
    return 0;
}

int snapdir_verify(const char *dir, const struct snapshot_info *s)
{
    char sdir[SNAPDIR_PATH_MAX], path[SNAPDIR_PATH_MAX];
    if (ef_path_join(sdir, sizeof sdir, dir, s->name) || ef_path_join(path, sizeof path, sdir, "data.mdb"))
        return -ENAMETOOLONG;
    uint32_t crc;
    uint64_t bytes;
    int rc = snapdir_file_crc(path, &crc, &bytes);
    if (rc)
        return rc;
    return crc == s->crc && bytes == s->bytes ? 0 : -EBADMSG;
}

int snapdir_lock(const char *dir, int nonblock, int *fd)
{
    char path[SNAPDIR_PATH_MAX];
    *fd = -1;
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return -errno;
    if (ef_path_join(path, sizeof path, dir, "lock"))
        return -ENAMETOOLONG;
    return ef_lock_file(path, nonblock, fd);
}

void snapdir_unlock(int fd)
{
    ef_unlock_file(fd);
}
