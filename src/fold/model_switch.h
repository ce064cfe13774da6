/* model_switch: putting a new read model in place of DIR/read/current.
 *
 * Two things replace the model that queries read: a rebuild (rebuild.h), which folds a new
 * model beside the current one, and the live tailer, which replaces a model it cannot
 * trust (rmodel_env_open said RMODEL_EUNSYNCED, rmodel_env.h "Lazy sync") or cannot read
 * (RMODEL_ELAYOUT: a layout of another release, rmodel.h) without folding. Both
 * seed a fresh DIR/read/model-N from the newest valid snapshot and switch to it here; the
 * folding itself stays with the tailer (tailer.h). Neither module includes the other.
 *
 * Guarantees
 *  - A switch is one rename(2) of the "current" symlink (rdir.h): a process opening the
 *    model gets the old one or the new one, never a mix. The generation in the position
 *    file is bumped after it, so query workers and the live tailer reopen it.
 *  - Only one switcher works at a time: each holds the rebuild lock
 *    (DIR/read/rebuild.lock) from creating the new model directory to the switch.
 *  - A snapshot is used only after rsnap_verify() and only if its layout is this release's
 *    (RMODEL_FORMAT): another one is skipped (logged) for the next older, and without a
 *    usable one the model starts empty.
 *
 * Caveat: the old model's files are unlinked at the switch; processes that have it open
 * keep their mapping until they reopen (at their next request or batch).
 */
#ifndef EF_MODEL_SWITCH_H
#define EF_MODEL_SWITCH_H

#include <stdint.h>

/* Takes the rebuild lock; *fd holds it until model_switch_unlock(). -EBUSY (logged) when
 * another rebuild or replacement holds it, or another negative errno. */
int model_switch_lock(const char *data_dir, int *fd);
void model_switch_unlock(int fd); /* accepts -1 */

/* Copies the newest valid snapshot's data.mdb into the empty model directory model_dir and
 * sets *from to its position. 0 also when no snapshot was usable (*from unchanged: the
 * model then starts empty), or a negative code. */
int model_switch_seed(const char *data_dir, const char *model_dir, uint64_t *from);

/* The applied position of the model in model_dir (opened read-only with map_bytes). */
int model_switch_position(const char *model_dir, uint64_t map_bytes, uint64_t *pos);

/* Points DIR/read/current at model `name` (a directory under DIR/read), publishes position
 * as the read position with a new generation, and removes the previous model. Call with
 * the rebuild lock held. */
int model_switch_to(const char *data_dir, const char *name, uint64_t position);

/* Replaces DIR/read/current at once, without folding, by a model seeded from the newest
 * usable snapshot (or an empty one): for a current model that cannot be trusted or read.
 * Queries then answer from that consistent, older model while the live tailer folds on
 * from *position. Takes the rebuild lock (-EBUSY while a rebuild runs). */
int model_switch_replace(const char *data_dir, uint64_t map_bytes, uint64_t *position);

#endif
