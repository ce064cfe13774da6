/* fcgi_client: a minimal FastCGI client for tests (the web server's side).
 *
 * Sends BEGIN_REQUEST (role RESPONDER), PARAMS and STDIN records and collects the STDOUT
 * stream up to END_REQUEST, then splits the CGI answer into status, header block and
 * body. Every wait is bounded by a timeout (SO_RCVTIMEO/SO_SNDTIMEO on the socket), so a
 * test never hangs on a server that does not answer.
 */
#ifndef EF_TEST_FCGI_CLIENT_H
#define EF_TEST_FCGI_CLIENT_H

#include <stddef.h>
#include <stdint.h>

struct fcgi_param {
    const char *name;
    const char *value;
};

struct fcgi_response {
    int status;         /* from "Status:", 200 when absent */
    char *headers;      /* the header block, "\r\n"-separated, NUL-terminated */
    char *body;         /* NUL-terminated after body_len */
    size_t body_len;
    uint32_t app_status; /* END_REQUEST appStatus */
};

/* Connects to "unix:PATH" or "HOST:PORT" with send/receive timeouts of timeout_ms.
 * Returns the fd or -1 (errno set). */
int fcgi_connect(const char *spec, int timeout_ms);
/* Writes one request (id, params, body in STDIN records); keep_conn sets FCGI_KEEP_CONN.
 * Returns 0 or -1. */
int fcgi_send(int fd, uint16_t id, int keep_conn, const struct fcgi_param *params, size_t nparams,
              const void *body, size_t body_len);
/* Reads records of request id up to its END_REQUEST. Returns 0, or -1 when the
 * connection ends early, times out or the answer is malformed. */
int fcgi_recv(int fd, uint16_t id, struct fcgi_response *out);
/* connect + send + recv + close. */
int fcgi_request(const char *spec, const struct fcgi_param *params, size_t nparams,
                 const void *body, size_t body_len, int timeout_ms, struct fcgi_response *out);
/* Value of header `name` (case-insensitive) copied into buf, or NULL. */
const char *fcgi_header(const struct fcgi_response *r, const char *name, char *buf, size_t buflen);
void fcgi_response_free(struct fcgi_response *r);

#endif
