#include <config.h>

#include "read/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/record.h"
#include "read/rdir.h"
#include "read/rm.h"
#include "util/clock.h"
#include "util/eflog.h"
#include "util/xalloc.h"

#define SNAP_MAX 64 /* more than any sane snapshot_keep */

static int fsync_path(const char *path, int dir)
{
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* CRC32C and size of a file, read in 1 MiB chunks. */
static int file_crc(const char *path, uint32_t *crc, uint64_t *bytes)
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
        *crc = log_crc32c(*crc, buf, (size_t)n);
        *bytes += (uint64_t)n;
    }
    free(buf);
    close(fd);
    return rc;
}

static int write_manifest(const char *dir, const struct snapshot_info *s)
{
    char path[RDIR_PATH_MAX];
    if (rdir_join(path, sizeof path, dir, "manifest"))
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
    char path[RDIR_PATH_MAX];
    if (rdir_join(path, sizeof path, dir, "manifest"))
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

/* The position inside the copy: read from the copied model itself, so it is exactly the
 * state the copy holds even if the tailer committed during the copy. */
static int copy_position(const char *dir, uint64_t *pos)
{
    struct rm_env *e;
    struct rm_options ro = { 0, 1 };
    int rc = rm_env_open(dir, &ro, &e);
    if (rc)
        return rc;
    struct rm_txn *t;
    rc = rm_txn_begin(e, 1, &t);
    if (rc == 0) {
        rc = rm_position(t, pos);
        rm_txn_abort(t);
    }
    rm_env_close(e);
    char lock[RDIR_PATH_MAX];
    if (rdir_join(lock, sizeof lock, dir, "lock.mdb"))
        return -ENAMETOOLONG;
    unlink(lock); /* opening created it; a snapshot holds data.mdb and the manifest only */
    return rc;
}

static void remove_snapshot_dir(const char *dir)
{
    static const char *const files[] = { "data.mdb", "lock.mdb", "manifest" };
    char path[RDIR_PATH_MAX];
    for (size_t i = 0; i < 3; i++) {
        if (rdir_join(path, sizeof path, dir, files[i]) == 0)
            unlink(path);
    }
    if (rmdir(dir) < 0 && errno != ENOENT)
        LOG_WARN("cannot remove snapshot dir=%s: %s", dir, strerror(errno));
}

static int build(const char *tmp, struct rm_env *env, struct snapshot_info *s)
{
    char data[RDIR_PATH_MAX];
    int rc = rm_env_copy(env, tmp);
    if (rc == 0)
        rc = copy_position(tmp, &s->position);
    if (rdir_join(data, sizeof data, tmp, "data.mdb"))
        return -ENAMETOOLONG;
    if (rc == 0)
        rc = fsync_path(data, 0);
    if (rc == 0)
        rc = file_crc(data, &s->crc, &s->bytes);
    s->taken_at = ef_now_ms();
    if (rc == 0)
        rc = write_manifest(tmp, s);
    if (rc == 0)
        rc = fsync_path(tmp, 1);
    return rc;
}

static void prune(const char *data_dir, int keep)
{
    struct snapshot_info list[SNAP_MAX];
    size_t n;
    char dir[RDIR_PATH_MAX], path[RDIR_PATH_MAX];
    if (snapshot_list(data_dir, list, SNAP_MAX, &n) || rdir_path(data_dir, "snapshots", dir, sizeof dir))
        return;
    for (size_t i = (size_t)(keep < 1 ? 1 : keep); i < n; i++) {
        if (rdir_join(path, sizeof path, dir, list[i].name) == 0)
            remove_snapshot_dir(path);
        LOG_INFO("snapshot removed position=%" PRIu64, list[i].position);
    }
}

int snapshot_take(const char *data_dir, struct rm_env *env, int keep, struct snapshot_info *info)
{
    char dir[RDIR_PATH_MAX], tmp[RDIR_PATH_MAX], final[RDIR_PATH_MAX];
    struct snapshot_info s;
    memset(&s, 0, sizeof s);
    uint64_t t0 = ef_mono_ns();
    int rc = rdir_path(data_dir, "snapshots", dir, sizeof dir);
    if (rc)
        return rc;
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return -errno;
    char tmpname[32];
    snprintf(tmpname, sizeof tmpname, "tmp-%ld", (long)getpid());
    if (rdir_join(tmp, sizeof tmp, dir, tmpname))
        return -ENAMETOOLONG;
    remove_snapshot_dir(tmp); /* left over by a crash of this pid number */
    if (mkdir(tmp, 0755) < 0)
        return -errno;
    rc = build(tmp, env, &s);
    if (rc == 0) {
        snprintf(s.name, sizeof s.name, "snap-%020" PRIu64, s.position);
        rc = rdir_join(final, sizeof final, dir, s.name);
    }
    if (rc == 0) {
        remove_snapshot_dir(final); /* a snapshot at the same position is replaced */
        rc = rename(tmp, final) == 0 ? fsync_path(dir, 1) : -errno;
    }
    if (rc) {
        LOG_ERROR("snapshot failed: %s", rm_strerror(rc));
        remove_snapshot_dir(tmp);
        return rc;
    }
    LOG_INFO("snapshot taken position=%" PRIu64 " bytes=%" PRIu64 " ms=%" PRIu64, s.position,
             s.bytes, (ef_mono_ns() - t0) / 1000000u);
    prune(data_dir, keep);
    if (info)
        *info = s;
    return 0;
}

static int cmp_newest_first(const void *a, const void *b)
{
    const struct snapshot_info *x = a, *y = b;
    return x->position < y->position ? 1 : x->position > y->position ? -1 : 0;
}

int snapshot_list(const char *data_dir, struct snapshot_info *list, size_t max, size_t *n)
{
    char dir[RDIR_PATH_MAX], path[RDIR_PATH_MAX];
    *n = 0;
    int rc = rdir_path(data_dir, "snapshots", dir, sizeof dir);
    if (rc)
        return rc;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && *n < max) {
        if (strncmp(e->d_name, "snap-", 5) != 0 || strlen(e->d_name) >= sizeof list->name)
            continue;
        if (rdir_join(path, sizeof path, dir, e->d_name))
            continue;
        struct snapshot_info *s = &list[*n];
        memset(s, 0, sizeof *s);
        if (read_manifest(path, s) != 0) {
            LOG_WARN("snapshot without a valid manifest skipped dir=%s", path);
            continue;
        }
        strcpy(s->name, e->d_name);
        (*n)++;
    }
    closedir(d);
    qsort(list, *n, sizeof *list, cmp_newest_first);
    return 0;
}

int snapshot_newest_position(const char *data_dir, uint64_t *pos)
{
    struct snapshot_info list[SNAP_MAX];
    size_t n;
    int rc = snapshot_list(data_dir, list, SNAP_MAX, &n);
    *pos = rc == 0 && n ? list[0].position : 0;
    return rc;
}

int snapshot_verify(const char *data_dir, const struct snapshot_info *s)
{
    char dir[RDIR_PATH_MAX], path[RDIR_PATH_MAX];
    int rc = rdir_path(data_dir, "snapshots", dir, sizeof dir);
    if (rc)
        return rc;
    char sdir[RDIR_PATH_MAX];
    if (rdir_join(sdir, sizeof sdir, dir, s->name) || rdir_join(path, sizeof path, sdir, "data.mdb"))
        return -ENAMETOOLONG;
    uint32_t crc;
    uint64_t bytes;
    rc = file_crc(path, &crc, &bytes);
    if (rc)
        return rc;
    return crc == s->crc && bytes == s->bytes ? 0 : -EBADMSG;
}

int snapshot_render(const char *data_dir, struct sbuf *out)
{
    struct snapshot_info list[SNAP_MAX];
    size_t n;
    int rc = snapshot_list(data_dir, list, SNAP_MAX, &n);
    if (rc)
        return rc;
    sbuf_putc(out, '[');
    for (size_t i = 0; i < n; i++) {
        sbuf_puts(out, i ? ",{" : "{");
        sbuf_json_key(out, "position");
        sbuf_json_u64(out, list[i].position);
        sbuf_json_key(out, "taken_at");
        sbuf_json_time(out, list[i].taken_at);
        sbuf_json_key(out, "bytes");
        sbuf_json_u64(out, list[i].bytes);
        sbuf_putc(out, '}');
    }
    sbuf_putc(out, ']');
    return 0;
}
