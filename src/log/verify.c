#include <config.h>

#include "log/io.h"
#include "log/log_int.h"
#include "util/eflog.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Checks one segment; *expect is the position its first record must have (0: take the
 * name), updated to the position after its last record. */
static int verify_segment(struct log *lg, uint64_t seg, int newest, uint64_t *expect, uint64_t *records)
{
    char *path = log_seg_path(lg->dir, seg);
    int err = 0, fd = log_io.open(path, O_RDONLY, 0);
    struct log_seg_scan sc;
    if (fd < 0 || (err = log_seg_scan(fd, seg, UINT64_MAX, &sc)) != 0) {
        err = err ? err : -errno;
        log_set_error(lg, "cannot read segment %s: %s", path, strerror(-err));
        goto fail;
    }
    if (*expect != 0 && seg != *expect) {
        err = LOG_ESEQUENCE;
        log_set_error(lg, "segment %s offset 0: starts at position %" PRIu64 ", expected %" PRIu64, path, seg, *expect);
        goto fail;
    }
    *records += sc.records;
    *expect = sc.last_pos + 1;
    if (sc.end == sc.size)
        goto fail;
    const char *why = sc.sequence_error ? "record out of sequence"
                      : sc.stop == RECORD_VERSION ? "record format newer than this build"
                      : sc.stop == RECORD_SHORT ? "record truncated"
                      : sc.stop == RECORD_ZERO ? "zero bytes instead of a record"
                                               : "checksum or framing error";
    uint64_t at = 0;
    if (newest && !sc.sequence_error && sc.stop != RECORD_VERSION) {
        /* The newest segment may end in zeros written ahead of the head, a record being
         * written right now, or a torn tail that the next read-write open cuts: only a valid
         * record after it is damage. */
        int r = log_seg_judge_tail(fd, sc.end, sc.size, &at);
        if (r < 0) {
            err = r;
            log_set_error(lg, "cannot read segment %s: %s", path, strerror(-r));
            goto fail;
        }
        if (r == LOG_TAIL_ZEROS)
            goto fail;
        if (r == LOG_TAIL_TORN) {
            EFLOG_INFO("log: verify found an incomplete tail segment=%s offset=%" PRIu64 " bytes=%" PRIu64,
                     path, sc.end, sc.size - sc.end);
            goto fail;
        }
    }
    err = sc.stop == RECORD_VERSION ? LOG_EVERSION : sc.sequence_error ? LOG_ESEQUENCE : LOG_ECORRUPT;
    log_set_error(lg, "segment %s offset %" PRIu64 ": %s", path, sc.end, why);
fail:
    if (fd >= 0)
        log_io.close(fd);
    free(path);
    return err;
}

int log_verify(struct log *lg, uint64_t *records)
{
    uint64_t *segs = NULL, count = 0, expect = 1; /* positions start at 1 */
    size_t n = 0;
    int err = log_seg_list(lg->dir, &segs, &n);
    if (err)
        log_set_error(lg, "cannot list %s: %s", lg->dir, strerror(-err));
    for (size_t i = 0; i < n && !err; i++)
        err = verify_segment(lg, segs[i], i + 1 == n, &expect, &count);
    free(segs);
    if (records)
        *records = count;
    return err;
}
