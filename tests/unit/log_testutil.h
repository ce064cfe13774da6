/* log_testutil: helpers shared by the log's Check suites.
 *
 * Temp directories live under /tmp (mkdtemp) and are removed recursively by
 * td_rmtree() (testdir.h); every test removes what it created, also when it fails an assertion
 * (Check forks each test by default, so the teardown runs in the parent's fixture).
 */
#ifndef EF_LOG_TESTUTIL_H
#define EF_LOG_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "log/log.h"

/* Creates /tmp/eflog-NAME-XXXXXX; returns a malloc'ed path (aborts on failure). */
char *lt_mkdtemp(const char *name);
/* Opens dir read-write with the given segment size (0 = default); fails the test on error. */
struct log *lt_open(const char *dir, uint64_t segment_bytes);
/* A deterministic event: stream "s-<i % 7>", type "T<i % 3>", data {"i":i,...} padded
 * by (i * 37) % pad bytes. buf must hold 512 bytes plus pad. */
void lt_event(uint64_t i, size_t pad, char *buf, struct log_event *ev);
/* Appends n events lt_event(first..first+n-1) and fails the test unless the positions
 * come out as expected. */
void lt_append_n(struct log *lg, uint64_t first, uint64_t n, size_t pad);
/* The same under one hold of the append lock and with one log_sync at the end: for
 * tests that need many records but do not test durability (keeps fdatasyncs few). */
void lt_append_batch(struct log *lg, uint64_t first, uint64_t n, size_t pad);
/* Reads the whole file; *len set; caller frees. NULL if it cannot be read. */
unsigned char *lt_slurp(const char *path, size_t *len);
/* The end of the file's records: its size without the zeros that appends write ahead of
 * the head (trailing zero bytes, rounded up to the records' 8-byte alignment). */
uint64_t lt_data_size(const char *path);
/* Replaces the file's contents with buf[0..len). */
void lt_write_file(const char *path, const void *buf, size_t len);
/* Segment path of first in dir (static buffer). */
const char *lt_seg(const char *dir, uint64_t first);
/* Number of segment files in dir. */
size_t lt_count_segments(const char *dir);
/* Runs argv (execv) with stdout and stderr captured into out (NUL-terminated, at most
 * cap-1 bytes); returns the exit status, or -1 if it did not exit normally. Kills it
 * after timeout_s seconds. */
int lt_run(char *const argv[], char *out, size_t cap, int timeout_s);
/* Path of a built program: $EF_BUILDDIR/name, else ./name (static buffer). */
const char *lt_program(const char *name);
/* Starts capturing this process's stderr into a temp file; lt_stderr_end() restores it and
 * returns what was written (static buffer, NUL-terminated). */
void lt_stderr_begin(void);
const char *lt_stderr_end(void);

#endif
