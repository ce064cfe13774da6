/* mirror_error: the text of the mirror's error codes.
 *
 * The mirror's range (util/ef_error.h) is shared by its three parts: mcheck.h's codes,
 * mnats.h's and mirror.h's. Naming them all needs all three headers, so it lives in a
 * module of its own that includes them, rather than in one of the parts, which would then
 * include the others while they include it. It needs no NATS: every user of the mirror
 * can link it.
 */
#ifndef EF_MIRROR_ERROR_H
#define EF_MIRROR_ERROR_H

/* Returns a static description of a code: the mirror's own, or ef_strerror()'s for any
 * other. */
const char *mirror_strerror(int err);

#endif
