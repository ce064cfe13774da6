#include <config.h>

#include "bus/nats_options.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "util/config.h"

/* nats_url is "nats://h:p,nats://h:p"; libnats wants an array of the URLs. */
static natsStatus set_servers(natsOptions *o, const char *urls, int *n)
{
    char copy[EF_TEXT_MAX];
    const char *list[NATS_SERVERS_MAX];
    snprintf(copy, sizeof copy, "%s", urls);
    *n = 0;
    char *save = NULL;
    for (char *u = strtok_r(copy, ", ", &save); u && *n < NATS_SERVERS_MAX; u = strtok_r(NULL, ", ", &save))
        list[(*n)++] = u;
    /* libnats copies the strings, so the local copy may go. */
    return *n ? natsOptions_SetServers(o, list, *n) : NATS_INVALID_ARG;
}

int ef_nats_options(const char *name, const char *urls, const struct ef_nats_callbacks *cb,
                    natsOptions **out, char *err, size_t errlen)
{
    *out = NULL;
    natsOptions *o = NULL;
    int n = 0;
    natsStatus st = natsOptions_Create(&o);
    if (st == NATS_OK)
        st = set_servers(o, urls, &n);
    if (st == NATS_OK)
        st = natsOptions_SetName(o, name);
    if (st == NATS_OK)
        st = natsOptions_SetTimeout(o, NATS_CONNECT_TIMEOUT_MS);
    if (st == NATS_OK)
        st = natsOptions_SetMaxReconnect(o, -1);
    if (st == NATS_OK)
        st = natsOptions_SetReconnectWait(o, NATS_RECONNECT_WAIT_MS);
    if (st == NATS_OK)
        st = natsOptions_SetReconnectJitter(o, 250, 1000);
    if (st == NATS_OK)
        st = natsOptions_SetPingInterval(o, 5000);
    if (st == NATS_OK)
        st = natsOptions_SetMaxPingsOut(o, 2);
    if (st == NATS_OK)
        st = natsOptions_SetRetryOnFailedConnect(o, true, cb->connected, cb->closure);
    if (st == NATS_OK)
        st = natsOptions_SetReconnectedCB(o, cb->connected, cb->closure);
    if (st == NATS_OK && cb->disconnected)
        st = natsOptions_SetDisconnectedCB(o, cb->disconnected, cb->closure);
    if (st == NATS_OK && cb->closed)
        st = natsOptions_SetClosedCB(o, cb->closed, cb->closure);
    if (st == NATS_OK && cb->async_error)
        st = natsOptions_SetErrorHandler(o, cb->async_error, cb->closure);
    if (st != NATS_OK) {
        if (n == 0)
            snprintf(err, errlen, "nats_url '%s': no server", urls);
        else
            snprintf(err, errlen, "nats_url '%s': %s", urls, natsStatus_GetText(st));
        natsOptions_Destroy(o);
        return st == NATS_NO_MEMORY ? -ENOMEM : -EINVAL;
    }
    *out = o;
    return 0;
}
