/* nats_options: the connection settings every eventfold NATS client shares (eventfold-relay's
 * NATS sink, eventfold-mirror), so that both behave alike towards a cluster.
 *
 * Guarantees
 *  - Servers: every URL of nats_url (comma- or blank-separated), failed over by libnats.
 *  - Reconnects forever (a relay or a replica waits for its cluster, whatever the outage),
 *    every NATS_RECONNECT_WAIT_MS plus a random jitter (so that clients restarted together do
 *    not retry in step), with a connect timeout of NATS_CONNECT_TIMEOUT_MS and a dead server
 *    noticed after two missed pings.
 *  - The first connection is retried in the background too: natsConnection_Connect returns
 *    NATS_NOT_YET_CONNECTED at once when no server answers, instead of retrying in place,
 *    forever, deaf to SIGTERM (what libnats does without a connected callback). `connected`
 *    is therefore required; it runs on a libnats thread, at the first connection and at every
 *    reconnection.
 *
 * Caveat: the callbacks run on libnats threads; they must be quick and thread-safe.
 */
#ifndef EF_NATS_OPTIONS_H
#define EF_NATS_OPTIONS_H

#include <stddef.h>

#include <nats/nats.h>

#define NATS_CONNECT_TIMEOUT_MS 2000
#define NATS_RECONNECT_WAIT_MS 250
#define NATS_SERVERS_MAX 32

struct ef_nats_callbacks {
    natsConnectionHandler connected;    /* required: first connection and reconnections */
    natsConnectionHandler disconnected; /* may be NULL */
    natsConnectionHandler closed;       /* may be NULL */
    natsErrHandler async_error;         /* may be NULL */
    void *closure;
};

/* Creates *out for client `name` (e.g. "eventfold-mirror") and the servers in urls. Returns
 * 0, or -EINVAL (-ENOMEM) with a one-line message in err naming nats_url ("nats_url 'x': no
 * server", or libnats's reason); *out is then NULL. The caller destroys *out with natsOptions_Destroy. */
int ef_nats_options(const char *name, const char *urls, const struct ef_nats_callbacks *cb,
                    natsOptions **out, char *err, size_t errlen);

#endif
