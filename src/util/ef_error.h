/* ef_error: the registry of error codes, and one ef_strerror() that names any of them.
 *
 * The reporting style, in STYLE.md's words: functions that can fail return int (0 or a
 * negative code) and put results in out-parameters; a module has one *_strerror().
 *
 * A code is one of:
 *   - a negative errno value (-1 .. -4095): strerror() names it;
 *   - one of LMDB's codes (MDB_KEYEXIST .. MDB_LAST_ERRCODE, -30799 .. -30780):
 *     mdb_strerror() names it;
 *   - a code of one module, inside the module's range in EF_ERR_TABLE below: the module's
 *     *_strerror() names it. A module defines its codes in its own header, counting down
 *     from the first code of its range.
 * The ranges are disjoint from each other, from errno's and from LMDB's (check_error tests
 * it), so a code says by itself who made it, and ef_strerror() can name a code that was
 * passed up through several modules. A module's *_strerror() names its own codes and hands
 * every other one to ef_strerror_except(), so it too is right for any code; code that
 * passes on the codes of other modules (rebuild, the programs) calls ef_strerror().
 *
 * Where a module knows more than the code (which file, which position, which line), it
 * keeps that in a message beside the code, not instead of it: the log in its handle
 * (log_last_error()); the configuration, the programs' preflights, the relay, the mirror
 * and the write model's replay in a buffer of the caller's (char *err, size_t errlen). The
 * code says what failed; the message says where. Not codes (yet): event_decode()'s -1 and
 * EVENT_UNKNOWN_TYPE (a verdict on input, with the reason), the programs' option callbacks
 * (-1: a usage error, exit status 2) and server_options.worker_init (-1: logged, the
 * worker exits); none of them reaches ef_strerror().
 *
 * Adding a module's codes: take the next free range, add a row to EF_ERR_TABLE, define the
 * codes in the module's header, name them in its *_strerror() (whose default is
 * ef_strerror_except()), and list them in tests/unit/check_error.c.
 *
 * Linking: this file is in libefutil, which every program links and which must not depend
 * on the libraries above it (the tailer links no write model, the command program no read
 * model, nothing but eventfold-relay links a sink). A registration call in each module
 * could be forgotten, and a dispatcher above the modules would make every program link
 * every module. So the table names each module's *_strerror() as a weak reference: it
 * pulls nothing in; in a program that links the object defining the function (each is
 * placed beside what every user of the module calls: its open or run function, for the
 * mirror its message check) the reference is that function, elsewhere it is NULL (no code
 * of that module can arise there) and ef_strerror() answers
 * "<module> error (text not linked)" rather than a wrong text. LMDB's mdb_strerror() is
 * referenced the same way, so that the log and the server (which use no LMDB) need not
 * link it.
 */
#ifndef EF_ERROR_H
#define EF_ERROR_H

/* The ranges: X(ID, name, first code, last code, the module's strerror). Codes run from
 * first down to last. The headers that define the codes are named on the right. */
#define EF_ERR_TABLE(X)                                                                       \
    X(LOG, "log", -10001, -10999, log_strerror)                /* log/log.h */                \
    X(RMODEL, "read model", -11001, -11999, rmodel_strerror)   /* readmodel/rmodel.h */       \
    X(TAILER, "tailer", -12001, -12999, tailer_strerror)       /* fold/tailer.h */            \
    X(RELAY, "relay", -13001, -13999, relay_strerror)          /* relay/sink.h */             \
    X(MIRROR, "mirror", -14001, -14999, mirror_strerror)       /* mirror/mcheck.h, mnats.h,   \
                                                                  mirror.h */                 \
    X(SERVER, "server", -15001, -15999, server_strerror)       /* server/server.h */          \
    X(WM, "write model", -20001, -20099, wm_strerror)          /* write/model.h */            \
    X(WSNAP, "write snapshot", -20101, -20199, wsnap_strerror) /* write/wsnap.h */

#define EF_ERR_ID(id, name, first, last, fn) EF_ERR_##id,
enum ef_err_module { EF_ERR_TABLE(EF_ERR_ID) EF_ERR_NMODULES };
#undef EF_ERR_ID

/* The negative errno values: -1 down to EF_ERR_ERRNO_LAST (the kernel's MAX_ERRNO). */
#define EF_ERR_ERRNO_LAST (-4095)

struct ef_err_range {
    const char *name;               /* "read model" */
    int first;                      /* its first code, e.g. -11001 */
    int last;                       /* its last possible code (last <= first) */
    const char *(*strerror)(int);   /* NULL when this program does not link it */
    const char *unknown;            /* "unknown read model error" */
    const char *unlinked;           /* "read model error (text not linked)" */
};

/* One row per module, indexed by enum ef_err_module. */
extern const struct ef_err_range ef_err_ranges[EF_ERR_NMODULES];

/* The module whose range holds code (an enum ef_err_module), or -1 for errno values, LMDB's
 * codes, 0 and codes in no range. */
int ef_err_module_of(int code);

/* A short text for any code: "success" for 0, strerror() for an errno value (negative, or
 * positive as LMDB and pthreads return them), mdb_strerror() for LMDB's codes, the module's
 * *_strerror() for a module's code, "unknown error code" for anything else. The text is
 * static (strerror()'s for an errno value: valid until the thread's next strerror call). */
const char *ef_strerror(int code);

/* For the default branch of module `self`'s *_strerror(): ef_strerror(code), except that a
 * code in self's own range (one the module does not know) gets "unknown <module> error",
 * so that the two never call each other in a loop. */
const char *ef_strerror_except(enum ef_err_module self, int code);

#endif
