#include <config.h>

#include "log/io.h"
#include "log/log_int.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SEGBUF_MIN (1u << 20)
#define SEGBUF_SPARSE 4096u /* a sparse buffer's first read of a record */

char *log_seg_path(const char *dir, uint64_t first)
{
    size_t n = strlen(dir) + 1 + LOG_SEG_NAME_LEN + 1;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%020" PRIu64 ".seg", dir, first);
    return p;
}

/* A segment name is exactly 20 decimal digits and ".seg"; anything else in the directory
 * (control, locks, editor litter) is not ours to judge. */
static int parse_seg_name(const char *name, uint64_t *first)
{
    if (strlen(name) != LOG_SEG_NAME_LEN || strcmp(name + 20, ".seg") != 0)
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        unsigned d = (unsigned)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    if (v == 0)
        return 0;
    *first = v;
    return 1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int log_seg_list(const char *dir, uint64_t **out, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    uint64_t *v = NULL;
    size_t len = 0, cap = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        uint64_t first;
        if (!parse_seg_name(de->d_name, &first))
            continue;
        if (len == cap) {
            cap = cap ? cap * 2 : 16;
            v = xrealloc(v, cap * sizeof *v);
        }
        v[len++] = first;
    }
    int err = errno ? -errno : 0;
    closedir(d);
    if (err) {
        free(v);
        return err;
    }
    if (len > 1)
        qsort(v, len, sizeof *v, cmp_u64);
    *out = v;
    *n = len;
    return 0;
}

void log_segbuf_init(struct log_segbuf *sb) { memset(sb, 0, sizeof *sb); }

void log_segbuf_free(struct log_segbuf *sb)
{
    free(sb->buf);
    log_segbuf_init(sb);
}

void log_segbuf_drop(struct log_segbuf *sb) { sb->len = 0; }

/* Fills the buffer from file offset off with as much as fits (at least want bytes of
 * room), or with want bytes only when sparse. Returns 0 or a negative errno; sb->len <
 * want only at end of file. */
static int segbuf_fill(struct log_segbuf *sb, int fd, uint64_t off, size_t want)
{
    size_t min = sb->sparse ? SEGBUF_SPARSE : SEGBUF_MIN;
    size_t cap = want > min ? want : min;
    if (sb->cap < cap) {
        free(sb->buf);
        sb->buf = xmalloc(cap);
        sb->cap = cap;
    }
    sb->off = off;
    sb->len = 0;
    size_t fill = sb->sparse ? want : sb->cap;
    if (sb->end != 0)
        fill = sb->end <= off ? 0 : sb->end - off < fill ? (size_t)(sb->end - off) : fill;
    while (sb->len < fill) {
        ssize_t r = log_io.pread(fd, sb->buf + sb->len, fill - sb->len, (off_t)(off + sb->len));
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        sb->len += (size_t)r;
    }
    return 0;
}

/* Bytes available in the buffer at file offset off (0 when off is outside it). */
static size_t segbuf_avail(const struct log_segbuf *sb, uint64_t off)
{
    if (off < sb->off || off >= sb->off + sb->len)
        return 0;
    return (size_t)(sb->off + sb->len - off);
}

int log_segbuf_decode(struct log_segbuf *sb, int fd, uint64_t off, int fresh, struct log_record *rec)
{
    size_t avail = fresh ? 0 : segbuf_avail(sb, off);
    int st = avail ? (int)record_decode(sb->buf + (off - sb->off), avail, rec) : RECORD_SHORT;
    if (st != RECORD_SHORT)
        return st;
    /* Short in the buffer: read again from off, big enough for the whole record when its
     * header is already visible. */
    size_t want = sb->sparse ? SEGBUF_SPARSE : SEGBUF_MIN;
    if (avail >= 8) {
        uint32_t len;
        memcpy(&len, sb->buf + (off - sb->off) + 4, 4);
        len = le32toh(len);
        if (len <= LOG_RECORD_MAX && len > want)
            want = len;
    }
    int err = segbuf_fill(sb, fd, off, want);
    if (err)
        return err;
    st = (int)record_decode(sb->buf, sb->len, rec);
    if (st == RECORD_SHORT && sb->len >= 8) {
        uint32_t len;
        memcpy(&len, sb->buf + 4, 4);
        len = le32toh(len);
        if (len <= LOG_RECORD_MAX && len > (sb->sparse ? sb->len : sb->cap)) {
            if ((err = segbuf_fill(sb, fd, off, len)) != 0)
                return err;
            st = (int)record_decode(sb->buf, sb->len, rec);
        }
    }
    return st;
}

int log_seg_scan(int fd, uint64_t first, uint64_t stop_pos, struct log_seg_scan *out)
{
    struct stat stt;
    if (fstat(fd, &stt) < 0)
        return -errno;
    memset(out, 0, sizeof *out);
    out->size = (uint64_t)stt.st_size;
    out->last_pos = first - 1;
    struct log_segbuf sb;
    log_segbuf_init(&sb);
    int err = 0;
    for (;;) {
        if (out->last_pos >= stop_pos) {
            out->stop = RECORD_OK;
            break;
        }
        struct log_record rec;
        int st = log_segbuf_decode(&sb, fd, out->end, 0, &rec);
        if (st < 0) {
            err = st;
            break;
        }
        if (st == RECORD_OK && rec.position != out->last_pos + 1) {
            out->stop = RECORD_BAD;
            out->sequence_error = 1;
            break;
        }
        if (st != RECORD_OK) {
            out->stop = st;
            break;
        }
        out->records++;
        out->last_pos = rec.position;
        out->end += rec.length;
    }
    log_segbuf_free(&sb);
    return err;
}

/* Reads exactly n bytes at off; returns 0, 1 when the file is shorter, or -errno. */
static int read_exact(int fd, void *buf, size_t n, uint64_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = log_io.pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (r < 0)
            return -errno;
        if (r == 0)
            return 1;
        got += (size_t)r;
    }
    return 0;
}

/* Does a whole, checksum-valid record start at off? 1 yes, 0 no, or -errno. */
static int valid_at(int fd, uint64_t off, uint64_t size, unsigned char **tmp, size_t *tmpcap)
{
    unsigned char hdr[8];
    int r = read_exact(fd, hdr, sizeof hdr, off);
    if (r != 0)
        return r < 0 ? r : 0;
    uint32_t len;
    memcpy(&len, hdr + 4, 4);
    len = le32toh(len);
    if (len < LOG_HEADER_SIZE || len > LOG_RECORD_MAX || len % 8 != 0 || off + len > size)
        return 0;
    if (*tmpcap < len) {
        free(*tmp);
        *tmp = xmalloc(len);
        *tmpcap = len;
    }
    r = read_exact(fd, *tmp, len, off);
    if (r != 0)
        return r < 0 ? r : 0;
    struct log_record rec;
    enum record_status st = record_decode(*tmp, len, &rec);
    return st == RECORD_OK || st == RECORD_VERSION;
}

/* Looks for any checksum-valid record at an 8-byte aligned offset in [from, size):
 * returns 1 and its offset, 0 if none, or a negative errno. */
static int find_valid(int fd, uint64_t from, uint64_t size, uint64_t *at)
{
    uint64_t start = (from + 7) & ~(uint64_t)7;
    unsigned char *chunk = xmalloc(SEGBUF_MIN), *tmp = NULL;
    size_t tmpcap = 0;
    int ret = 0;
    for (uint64_t base = start; base < size && ret == 0; base += SEGBUF_MIN) {
        size_t n = size - base < SEGBUF_MIN ? (size_t)(size - base) : SEGBUF_MIN;
        int r = read_exact(fd, chunk, n, base);
        if (r != 0) {
            ret = r < 0 ? r : 0; /* shorter than it was: nothing more to look at */
            break;
        }
        for (size_t i = 0; i + 4 <= n; i += 8) {
            uint32_t magic;
            memcpy(&magic, chunk + i, 4);
            if (le32toh(magic) != LOG_RECORD_MAGIC)
                continue;
            r = valid_at(fd, base + i, size, &tmp, &tmpcap);
            if (r != 0) {
                ret = r;
                if (r > 0)
                    *at = base + i;
                break;
            }
        }
    }
    free(chunk);
    free(tmp);
    return ret;
}

int log_seg_written_end(int fd, uint64_t from, uint64_t size, uint64_t *end)
{
    enum { CHUNK = 64 * 1024 };
    unsigned char *buf = xmalloc(CHUNK);
    uint64_t at = size;
    int ret = 0;
    *end = from;
    while (at > from && ret == 0) {
        size_t n = at - from < CHUNK ? (size_t)(at - from) : CHUNK;
        int r = read_exact(fd, buf, n, at - n);
        if (r != 0) {
            ret = r < 0 ? r : 0; /* shrank under us: whatever is left counts as written */
            *end = r < 0 ? from : at;
            break;
        }
        size_t i = n;
        while (i > 0 && buf[i - 1] == 0)
            i--;
        if (i > 0) {
            uint64_t e = ((at - n + i) + 7) & ~(uint64_t)7;
            *end = e < size ? e : size;
            break;
        }
        at -= n;
    }
    free(buf);
    return ret;
}

int log_seg_judge_tail(int fd, uint64_t end, uint64_t size, uint64_t *at)
{
    uint64_t written;
    int r = log_seg_written_end(fd, end, size, &written);
    if (r == 0 && written > end)
        r = find_valid(fd, end, size, at);
    if (r < 0)
        return r;
    return r > 0 ? LOG_TAIL_DAMAGE : written > end ? LOG_TAIL_TORN : LOG_TAIL_ZEROS;
}

/* How much of a sealed segment's end is searched for its last record, in two steps, before
 * falling back to a scan from the start (records are usually far smaller). */
#define FIRST_WINDOW (4u * 1024)
#define LAST_WINDOW (64u * 1024)

/* Searches buf (the file bytes [base, size)) backwards for a whole, valid record that ends
 * exactly at size. Returns 1 with *pos set, or 0. A false match inside the last record is
 * impossible in practice: it would need a magic, a length equal to the bytes left (zero
 * bytes in the high half, which JSON text cannot hold) and a matching CRC32C. */
static int last_in_window(const unsigned char *buf, uint64_t base, uint64_t size, uint64_t *pos)
{
    if (size - base < LOG_HEADER_SIZE)
        return 0;
    for (uint64_t off = (size - LOG_HEADER_SIZE) & ~(uint64_t)7; off >= base; off -= 8) {
        uint32_t magic, len;
        memcpy(&magic, buf + (off - base), 4);
        memcpy(&len, buf + (off - base) + 4, 4);
        if (le32toh(magic) == LOG_RECORD_MAGIC && le32toh(len) == size - off) {
            struct log_record rec;
            if (record_decode(buf + (off - base), (size_t)(size - off), &rec) == RECORD_OK) {
                *pos = rec.position;
                return 1;
            }
        }
        if (off < 8)
            break;
    }
    return 0;
}

int log_seg_last(int fd, uint64_t first, uint64_t *pos)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    uint64_t size = (uint64_t)st.st_size;
    if (size == 0 || size % 8 != 0)
        return 0; /* not a cleanly ended segment: not ours to judge here */
    /* A small window first: recovery reads this for every sealed segment, and a record is
     * usually far smaller than 4 KiB. */
    static const uint64_t windows[] = { FIRST_WINDOW, LAST_WINDOW };
    for (size_t i = 0; i < sizeof windows / sizeof windows[0]; i++) {
        uint64_t base = size > windows[i] ? size - windows[i] : 0;
        unsigned char *buf = xmalloc((size_t)(size - base));
        int r = read_exact(fd, buf, (size_t)(size - base), base);
        if (r == 0)
            r = last_in_window(buf, base, size, pos);
        else if (r > 0)
            r = 0; /* shrank under us */
        free(buf);
        if (r != 0 || base == 0)
            return r;
    }
    /* A last record bigger than the windows: scan the segment from its start. */
    struct log_seg_scan sc;
    int r = log_seg_scan(fd, first, UINT64_MAX, &sc);
    if (r != 0)
        return r;
    if (sc.records == 0 || sc.end != sc.size)
        return 0;
    *pos = sc.last_pos;
    return 1;
}

int log_segfd_get(struct log *lg, struct log_segfd *sf, uint64_t seg, int flags)
{
    uint32_t gen = lg->ctl ? atomic_load_explicit(&lg->ctl->repair_gen, memory_order_acquire) : 0;
    if (sf->fd >= 0 && sf->seg == seg && sf->gen == gen)
        return 0;
    log_segfd_close(sf);
    char *path = log_seg_path(lg->dir, seg);
    int fd = log_io.open(path, flags, 0);
    int err = fd < 0 ? -errno : 0;
    if (err)
        log_set_error(lg, "cannot open segment %s: %s", path, strerror(-err));
    free(path);
    if (err)
        return err;
    sf->fd = fd;
    sf->seg = seg;
    sf->gen = gen;
    return 0;
}

void log_segfd_close(struct log_segfd *sf)
{
    if (sf->fd >= 0)
        log_io.close(sf->fd);
    sf->fd = -1;
}

int log_sync_dir(const char *dir)
{
    int fd = log_io.open(dir, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return -errno;
    int err = log_io.fsync(fd) < 0 ? -errno : 0;
    log_io.close(fd);
    return err;
}
