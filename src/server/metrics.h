/* metrics: request counters and latency histograms shared by all workers of a program.
 *
 * The region is one anonymous MAP_SHARED mapping created by the master before it forks,
 * so every worker (and every restarted worker) updates the same counters, and a scrape
 * that lands on any worker sees the whole process tree. All updates are relaxed atomic
 * adds on naturally aligned 64-bit words, which are address-free on the platforms we
 * build for, so no lock is shared between processes.
 *
 * Routes are labels registered by string at first use (e.g. "GET /api/orders/{id}") in a
 * fixed table of METRICS_ROUTES slots; slot 0 is "other", used for unlabelled requests,
 * labels that are too long, and when the table is full. A slot is claimed with a
 * compare-and-swap (free -> claiming -> ready) and never released, so a label keeps its
 * slot for the life of the master.
 *
 * The command and the query program are separate process trees with separate regions.
 * A program may put its region in a file (server_options.metrics_file) so that another
 * one can render it along with its own (server_metrics_render_files): the query program
 * serves /metrics for both. Such a file is replaced, with zeroed counters, when its
 * master starts.
 */
#ifndef EF_SERVER_METRICS_H
#define EF_SERVER_METRICS_H

#include <stdint.h>

#include "util/sbuf.h"

#define METRICS_ROUTES 64
#define METRICS_ROUTE_LEN 96 /* including the NUL */

/* Maps the shared region (idempotent). Returns 0 or -errno. Call before fork(). */
int metrics_init(void);
/* The same, backed by the file at path (created mode 0644, or replaced atomically) so
 * other programs can read it. The file's blocks are allocated here, so a full filesystem
 * fails this call (-ENOSPC) instead of faulting a later update. Returns 0 or -errno. */
int metrics_init_file(const char *path);
/* Unmaps the region (tests; the master keeps it for its lifetime). */
void metrics_fini(void);
/* Returns the slot of route, registering it if new; 0 ("other") for NULL, a label of
 * METRICS_ROUTE_LEN bytes or more, a full table, or when metrics_init() was not called. */
int metrics_route_id(const char *route);
/* Counts one answer. status outside 100..599 counts as 500. No-op without a region. */
void metrics_observe(int route_id, int status, uint64_t duration_ns);

/* Where a command's time goes, summed over all commands (rendered as a Prometheus summary
 * without quantiles, eventfold_command_stage_seconds{stage}: rate(_sum) / rate(_count) is
 * the mean): waiting for the log's append lock, holding it (the write-model transaction
 * and the append), and waiting for the fdatasync that makes the record durable. */
enum metrics_stage {
    METRICS_STAGE_LOCK_WAIT,
    METRICS_STAGE_LOCKED,
    METRICS_STAGE_SYNC_WAIT,
    METRICS_STAGES
};
/* Adds one observation of stage. No-op without a region. */
void metrics_stage(enum metrics_stage stage, uint64_t duration_ns);

#endif
