#include <config.h>

#include "mirror/mirror_error.h"

#include "mirror/mcheck.h"
#include "mirror/mirror.h"
#include "mirror/mnats.h"
#include "util/ef_error.h"

const char *mirror_strerror(int err)
{
    switch (err) {
    case MIRROR_EGAP: return "a relayed message is missing";
    case MIRROR_EDISAGREE: return "a relayed message is not the record it claims to be";
    case MNATS_ERETRY: return "NATS is not reachable for now: retrying";
    case MNATS_EFATAL: return "bad NATS configuration";
    case MIRROR_EREFUSED: return "the data directory is not (and cannot become) this replica";
    case MIRROR_ELOG: return "the replica's log failed";
    default: return ef_strerror_except(EF_ERR_MIRROR, err);
    }
}
