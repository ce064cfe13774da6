#include <config.h>

#include "server/server_int.h"

#include "util/eflog.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define LISTEN_BACKLOG 1024 /* the kernel caps it at net.core.somaxconn */
#define SD_LISTEN_FDS_START 3

static int set_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    int fdfl = fcntl(fd, F_GETFD);
    if (fdfl < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0)
        return -1;
    return 0;
}

static int is_listening_socket(int fd)
{
    int v = 0;
    socklen_t len = sizeof v;
    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && v;
}

/* systemd socket activation (sd_listen_fds(3) protocol): fd 3 when LISTEN_PID is us.
 * The variables are removed so that nothing we start later takes them as its own. */
static int inherited_fd(void)
{
    const char *pid = getenv("LISTEN_PID");
    const char *fds = getenv("LISTEN_FDS");
    int fd = 0;
    if (pid && fds && strtol(pid, NULL, 10) == (long)getpid()) {
        long n = strtol(fds, NULL, 10);
        if (n >= 1)
            fd = SD_LISTEN_FDS_START;
        if (n > 1)
            EFLOG_WARN("socket activation passed several sockets, serving the first LISTEN_FDS=%ld", n);
    }
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return fd;
}

static int listen_inherited(struct srv_listener *l)
{
    int fd = inherited_fd();
    if (!is_listening_socket(fd)) {
        EFLOG_ERROR("no listening socket: fd %d is not a listening socket; use --listen unix:PATH or HOST:PORT", fd);
        return SERVER_ERR_LISTEN;
    }
    if (set_flags(fd) < 0) {
        EFLOG_ERROR("fcntl on listening socket failed fd=%d err=%s", fd, strerror(errno));
        return SERVER_ERR_LISTEN;
    }
    l->fd = fd;
    return 0;
}

/* A socket file that exists at path: 0 = stale (removed), or an error. A live server
 * answers connect(); a dead one leaves a file that refuses connections. */
static int remove_stale(const char *path, const struct sockaddr_un *sa)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : SERVER_ERR_LISTEN;
    if (!S_ISSOCK(st.st_mode)) {
        EFLOG_ERROR("listen path exists and is not a socket path=%s", path);
        return SERVER_ERR_LISTEN;
    }
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (probe < 0)
        return SERVER_ERR_SYSTEM;
    int rc = connect(probe, (const struct sockaddr *)sa, sizeof *sa);
    int err = errno;
    close(probe);
    if (rc == 0 || err == EAGAIN) {
        EFLOG_ERROR("listen socket is in use by a running server path=%s", path);
        return SERVER_ERR_IN_USE;
    }
    if (err != ECONNREFUSED)
        return err == ENOENT ? 0 : SERVER_ERR_LISTEN;
    if (unlink(path) < 0 && errno != ENOENT) {
        EFLOG_ERROR("cannot remove stale socket path=%s err=%s", path, strerror(errno));
        return SERVER_ERR_LISTEN;
    }
    EFLOG_INFO("removed stale socket path=%s", path);
    return 0;
}

static int bind_unix(int fd, const char *path, const struct sockaddr_un *sa)
{
    if (bind(fd, (const struct sockaddr *)sa, sizeof *sa) == 0)
        return 0;
    if (errno != EADDRINUSE) {
        EFLOG_ERROR("bind failed path=%s err=%s", path, strerror(errno));
        return SERVER_ERR_LISTEN;
    }
    int rc = remove_stale(path, sa);
    if (rc < 0)
        return rc;
    if (bind(fd, (const struct sockaddr *)sa, sizeof *sa) < 0) {
        EFLOG_ERROR("bind failed path=%s err=%s", path, strerror(errno));
        return SERVER_ERR_LISTEN;
    }
    return 0;
}

/* The socket file is made 0666: the FastCGI front end (nginx as www-data or nginx) must
 * be able to connect; access is limited by the directory it is created in. */
static int listen_unix(const char *path, struct srv_listener *l)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sa.sun_path || strlen(path) >= sizeof l->path) {
        EFLOG_ERROR("unix socket path too long path=%s", path);
        return SERVER_ERR_LISTEN;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        EFLOG_ERROR("socket failed err=%s", strerror(errno));
        return SERVER_ERR_SYSTEM;
    }
    int rc = bind_unix(fd, path, &sa);
    if (rc < 0)
        goto fail;
    struct stat st;
    rc = SERVER_ERR_LISTEN;
    if (chmod(path, 0666) < 0 || stat(path, &st) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        EFLOG_ERROR("cannot set up unix socket path=%s err=%s", path, strerror(errno));
        unlink(path);
        goto fail;
    }
    l->fd = fd;
    l->created = 1;
    l->dev = st.st_dev;
    l->ino = st.st_ino;
    memcpy(l->path, path, strlen(path) + 1);
    return 0;
fail:
    close(fd);
    return rc;
}

/* Splits "HOST:PORT" / "[V6]:PORT" at the last colon into host (NULL for "" or "*")
 * and port. */
static int split_host_port(const char *spec, char *host, size_t hostlen, const char **port)
{
    const char *colon = strrchr(spec, ':');
    if (!colon || colon[1] == '\0')
        return -1;
    size_t n = (size_t)(colon - spec);
    if (n >= 2 && spec[0] == '[' && spec[n - 1] == ']') {
        spec++;
        n -= 2;
    }
    if (n >= hostlen)
        return -1;
    memcpy(host, spec, n);
    host[n] = '\0';
    *port = colon + 1;
    return 0;
}

static int bind_tcp(const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0)
        return -1;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

static int listen_tcp(const char *spec, struct srv_listener *l)
{
    char host[256];
    const char *port;
    if (split_host_port(spec, host, sizeof host, &port) < 0) {
        EFLOG_ERROR("bad listen address listen=%s", spec);
        return SERVER_ERR_LISTEN;
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host[0] && strcmp(host, "*") != 0 ? host : NULL, port, &hints, &res);
    if (gai != 0) {
        EFLOG_ERROR("cannot resolve listen address listen=%s err=%s", spec, gai_strerror(gai));
        return SERVER_ERR_LISTEN;
    }
    int err = 0;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        l->fd = bind_tcp(ai);
        if (l->fd >= 0)
            break;
        err = errno;
    }
    freeaddrinfo(res);
    if (l->fd < 0) {
        EFLOG_ERROR("cannot listen listen=%s err=%s", spec, strerror(err));
        return SERVER_ERR_LISTEN;
    }
    return 0;
}

int srv_listen_open(const char *spec, struct srv_listener *l)
{
    memset(l, 0, sizeof *l);
    l->fd = -1;
    if (strncmp(spec, "unix:", 5) == 0)
        return listen_unix(spec + 5, l);
    if (*spec)
        return listen_tcp(spec, l);
    return listen_inherited(l);
}

void srv_listen_close(struct srv_listener *l)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    if (!l->created)
        return;
    struct stat st;
    if (stat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino && unlink(l->path) < 0)
        EFLOG_WARN("cannot remove socket path=%s err=%s", l->path, strerror(errno));
    l->created = 0;
}
