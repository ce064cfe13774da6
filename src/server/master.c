#include <config.h>

#include "server/metrics.h"
#include "server/server_int.h"

#include "util/clock.h"
#include "util/ef_error.h"
#include "util/eflog.h"
#include "util/xalloc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_MS 1000000ull
#define QUICK_DEATH_NS (1000 * NS_PER_MS) /* a worker dying sooner than this backs off */
#define BACKOFF_MIN_NS (100 * NS_PER_MS)
#define BACKOFF_MAX_NS (5000 * NS_PER_MS)
#define KILL_MARGIN_S 5 /* after the workers' grace period, before SIGKILL */
/* Workers that cannot start (see futile_death) make the master give up once at least
 * GIVE_UP_DEATHS of them died in a row and the next attempt would come GIVE_UP_NS or more
 * after the first of them: long enough to ride out a passing problem (one worker gets 6
 * attempts over 3 s), short enough that a service manager hears of a broken deployment
 * instead of a master retrying forever. */
#define GIVE_UP_DEATHS 5
#define GIVE_UP_NS (5000 * NS_PER_MS)

/* The master's state. Invariant: pids[i] > 0 exactly when slot i has a live (not yet
 * reaped) worker; started_ns[i] is when it was forked. */
struct master {
    const struct server_options *opt;
    struct srv_listener listener;
    int nworkers;
    pid_t *pids;
    uint64_t *started_ns;
    int quick_deaths;       /* consecutive workers that died young */
    uint64_t next_spawn_ns; /* no fork before this (back-off) */
    int stopping;
    struct srv_progress *progress; /* shared with the workers (server_int.h) */
    size_t progress_len;
    uint64_t *served_at_start;  /* progress->served when slot i's worker was forked */
    uint64_t served_seen;       /* progress->served at the last death */
    int futile;                 /* workers that could not start, in a row */
    uint64_t futile_since_ns;   /* death of the first of them */
    int gave_up;                /* stopping because workers cannot start */
};

const char *server_strerror(int err)
{
    switch (err) {
    case SERVER_ERR_USAGE: return "bad server options";
    case SERVER_ERR_LISTEN: return "no listening socket";
    case SERVER_ERR_IN_USE: return "socket in use by another server";
    case SERVER_ERR_SYSTEM: return "system call failed";
    case SERVER_PARK_FULL: return "too many requests already wait";
    case SERVER_PARK_STOPPING: return "the worker is stopping";
    case SERVER_PARK_UNAVAILABLE: return "the request cannot wait here";
    default: return ef_strerror_except(EF_ERR_SERVER, err);
    }
}

static int check_options(const struct server_options *opt)
{
    if (!opt->handler || !opt->cfg || opt->cfg->workers < 1 || opt->max_body == 0 ||
        (opt->threads < 1 && opt->cfg->threads < 1)) {
        EFLOG_ERROR("bad server options (handler, cfg, workers >= 1, threads >= 1, max_body > 0)");
        return SERVER_ERR_USAGE;
    }
    return 0;
}

static int spawn_worker(struct master *m, int slot)
{
    fflush(NULL); /* or buffered output would be written twice */
    pid_t master = getpid();
    atomic_store(&m->progress->ready[slot], 0);
    atomic_store(&m->progress->parked[slot], 0); /* a dead worker's parked requests are gone */
    m->served_at_start[slot] = atomic_load(&m->progress->served);
    pid_t pid = fork();
    if (pid < 0) {
        EFLOG_ERROR("fork failed err=%s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        int st = srv_worker_main(m->opt, m->listener.fd, master, m->progress, slot);
        exit(st);
    }
    m->pids[slot] = pid;
    m->started_ns[slot] = ef_mono_ns();
    EFLOG_DEBUG("worker started pid=%ld slot=%d", (long)pid, slot);
    return 0;
}

static uint64_t backoff_ns(int quick_deaths)
{
    uint64_t d = BACKOFF_MIN_NS;
    for (int i = 1; i < quick_deaths && d < BACKOFF_MAX_NS; i++)
        d *= 2;
    return d < BACKOFF_MAX_NS ? d : BACKOFF_MAX_NS;
}

static void spawn_missing(struct master *m)
{
    for (int i = 0; i < m->nworkers; i++) {
        if (m->pids[i] > 0 || ef_mono_ns() < m->next_spawn_ns)
            continue;
        if (spawn_worker(m, i) < 0) {
            m->quick_deaths++;
            m->next_spawn_ns = ef_mono_ns() + backoff_ns(m->quick_deaths);
        }
    }
}

static void log_death(const struct master *m, pid_t pid, int status)
{
    enum ef_level level = m->stopping && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? EF_INFO : EF_WARN;
    if (WIFSIGNALED(status))
        EF_LOG(level, "worker died pid=%ld signal=%d (%s)", (long)pid, WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        EF_LOG(level, "worker exited pid=%ld status=%d", (long)pid, WEXITSTATUS(status));
}

/* A worker that died before its request threads ran (worker_init failed, a crash while
 * starting) or young without accepting a request could not start; one that took a
 * request and then died is a crash (perhaps of that request), which a restart fixes. */
static int futile_death(const struct master *m, int slot, int young)
{
    if (!atomic_load(&m->progress->ready[slot]))
        return 1;
    return young && atomic_load(&m->progress->served) == m->served_at_start[slot];
}

/* Counts a death toward giving up. The count restarts with any death that is not futile
 * and whenever some worker answered a request since the last death (the service works,
 * only some starts fail). */
static void count_futile(struct master *m, int slot, int young, uint64_t now)
{
    uint64_t served = atomic_load(&m->progress->served);
    int futile = futile_death(m, slot, young);
    if (!futile || served != m->served_seen)
        m->futile = 0;
    m->served_seen = served;
    if (!futile)
        return;
    if (m->futile++ == 0)
        m->futile_since_ns = now;
}

/* After a death was counted and its restart scheduled: stops the master when workers
 * cannot start (see GIVE_UP_DEATHS). */
static void maybe_give_up(struct master *m, uint64_t now)
{
    uint64_t next = m->next_spawn_ns > now ? m->next_spawn_ns : now;
    if (m->futile < GIVE_UP_DEATHS || next - m->futile_since_ns < GIVE_UP_NS)
        return;
    EFLOG_ERROR("workers cannot start, giving up: %d died in a row within ms=%llu without "
              "answering a request (their errors are above)", m->futile,
              (unsigned long long)((now - m->futile_since_ns) / NS_PER_MS));
    m->gave_up = 1;
    m->stopping = 1;
}

/* Reaps every exited worker; while running, schedules its restart (at once, or after a
 * back-off when workers keep dying young), or gives up when workers cannot start. */
static void reap(struct master *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        int slot = -1;
        for (int i = 0; i < m->nworkers; i++)
            if (m->pids[i] == pid)
                slot = i;
        if (slot < 0)
            continue; /* not a worker of ours */
        log_death(m, pid, status);
        m->pids[slot] = 0;
        if (m->stopping)
            continue;
        uint64_t now = ef_mono_ns();
        int young = now - m->started_ns[slot] < QUICK_DEATH_NS;
        count_futile(m, slot, young, now);
        if (young) {
            m->quick_deaths++;
            m->next_spawn_ns = now + backoff_ns(m->quick_deaths);
        } else {
            m->quick_deaths = 0;
        }
        maybe_give_up(m, now);
        if (young && !m->stopping)
            EFLOG_WARN("worker died young, restarting in ms=%llu",
                     (unsigned long long)((m->next_spawn_ns - now) / NS_PER_MS));
    }
}

static int live_workers(const struct master *m)
{
    int n = 0;
    for (int i = 0; i < m->nworkers; i++)
        n += m->pids[i] > 0;
    return n;
}

/* Waits for one of set until deadline_ns (monotonic, 0 = no deadline). Returns the
 * signal, or 0 on timeout. */
static int wait_signal(const sigset_t *set, uint64_t deadline_ns)
{
    for (;;) {
        struct timespec ts = { 3600, 0 };
        if (deadline_ns) {
            uint64_t now = ef_mono_ns();
            uint64_t left = deadline_ns > now ? deadline_ns - now : 0;
            ts.tv_sec = (time_t)(left / 1000000000u);
            ts.tv_nsec = (long)(left % 1000000000u);
        }
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig > 0)
            return sig;
        if (errno == EAGAIN && deadline_ns)
            return 0;
        if (errno != EINTR && errno != EAGAIN)
            return -1;
    }
}

static void supervise(struct master *m, const sigset_t *set)
{
    while (!m->stopping) {
        spawn_missing(m);
        uint64_t deadline = live_workers(m) < m->nworkers ? m->next_spawn_ns : 0;
        int sig = wait_signal(set, deadline);
        if (sig == SIGCHLD)
            reap(m);
        else if (sig == SIGTERM || sig == SIGINT)
            m->stopping = 1;
        else if (sig == SIGHUP)
            EFLOG_INFO("SIGHUP ignored");
        else if (sig < 0)
            EFLOG_ERROR("sigtimedwait failed err=%s", strerror(errno));
    }
}

/* Forwards SIGTERM, waits for the workers (their grace period plus a margin), then
 * SIGKILLs whatever is left. */
static void stop_workers(struct master *m, const sigset_t *set)
{
    for (int i = 0; i < m->nworkers; i++)
        if (m->pids[i] > 0 && kill(m->pids[i], SIGTERM) < 0)
            EFLOG_WARN("kill failed pid=%ld err=%s", (long)m->pids[i], strerror(errno));
    int grace = m->opt->grace_seconds > 0 ? m->opt->grace_seconds : SRV_DEFAULT_GRACE_SECONDS;
    uint64_t deadline = ef_mono_ns() + (uint64_t)(grace + KILL_MARGIN_S) * 1000000000u;
    reap(m);
    while (live_workers(m) > 0 && ef_mono_ns() < deadline) {
        if (wait_signal(set, deadline) == SIGCHLD)
            reap(m);
    }
    for (int i = 0; i < m->nworkers; i++) {
        if (m->pids[i] <= 0)
            continue;
        EFLOG_WARN("worker did not stop, killing pid=%ld", (long)m->pids[i]);
        kill(m->pids[i], SIGKILL);
        int status;
        if (waitpid(m->pids[i], &status, 0) == m->pids[i])
            log_death(m, m->pids[i], status);
        m->pids[i] = 0;
    }
}

static int master_signals(sigset_t *set, sigset_t *old)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGCHLD);
    sigaddset(set, SIGHUP);
    /* SIGCHLD must not be SIG_IGN, or children are reaped by the kernel unseen. */
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    if (sigprocmask(SIG_BLOCK, set, old) < 0 || sigaction(SIGCHLD, &dfl, NULL) < 0) {
        EFLOG_ERROR("signal setup failed err=%s", strerror(errno));
        return SERVER_ERR_SYSTEM;
    }
    return 0;
}

/* Maps the metrics region. A metrics file that cannot be made (a full disk) is not worth
 * refusing to start over: the counters then live in anonymous memory, unseen by other
 * programs, and a stale file of an earlier master is removed so nobody renders it as
 * current. Returns 0 or -1 (logged). */
static int open_metrics(const struct server_options *opt)
{
    int rc = opt->metrics_file ? metrics_init_file(opt->metrics_file) : -EINVAL;
    if (rc == 0)
        return 0;
    if (opt->metrics_file) {
        EFLOG_WARN("cannot create the metrics file, counting in memory only file=%s err=%s",
                 opt->metrics_file, strerror(-rc));
        if (unlink(opt->metrics_file) < 0 && errno != ENOENT)
            EFLOG_WARN("cannot remove the stale metrics file file=%s err=%s", opt->metrics_file,
                     strerror(errno));
    }
    if ((rc = metrics_init()) < 0) {
        EFLOG_ERROR("cannot map the metrics region err=%s", strerror(-rc));
        return -1;
    }
    return 0;
}

/* Maps the region the workers report their progress in (zero-filled). */
static int open_progress(struct master *m)
{
    /* ready[nworkers], then parked[nworkers] (both uint32_t). */
    m->progress_len = sizeof *m->progress + 2 * (size_t)m->nworkers * sizeof m->progress->ready[0];
    void *p = mmap(NULL, m->progress_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        EFLOG_ERROR("cannot map the worker progress region err=%s", strerror(errno));
        return -1;
    }
    m->progress = p;
    m->progress->nslots = (uint32_t)m->nworkers;
    m->progress->parked = &m->progress->ready[m->nworkers];
    return 0;
}

int server_run(const struct server_options *opt)
{
    struct master m = { .opt = opt, .listener = { .fd = -1 } };
    sigset_t set, old;
    int rc = check_options(opt);
    if (rc < 0)
        return 1;
    if (master_signals(&set, &old) < 0)
        return 1;
    if (open_metrics(opt) < 0)
        goto fail;
    if (srv_listen_open(opt->cfg->listen, &m.listener) < 0)
        goto fail;
    m.nworkers = opt->cfg->workers;
    if (open_progress(&m) < 0)
        goto fail;
    m.pids = xcalloc((size_t)m.nworkers, sizeof *m.pids);
    m.started_ns = xcalloc((size_t)m.nworkers, sizeof *m.started_ns);
    m.served_at_start = xcalloc((size_t)m.nworkers, sizeof *m.served_at_start);
    EFLOG_INFO("started prog=%s workers=%d threads=%d listen=%s fd=%d", opt->prog ? opt->prog : "-",
             m.nworkers, opt->threads > 0 ? opt->threads : opt->cfg->threads,
             opt->cfg->listen[0] ? opt->cfg->listen : "inherited", m.listener.fd);
    supervise(&m, &set);
    stop_workers(&m, &set);
    srv_listen_close(&m.listener);
    free(m.pids);
    free(m.started_ns);
    free(m.served_at_start);
    munmap(m.progress, m.progress_len);
    if (!m.gave_up)
        EFLOG_INFO("stopped");
    sigprocmask(SIG_SETMASK, &old, NULL);
    return m.gave_up ? 1 : 0;
fail:
    srv_listen_close(&m.listener);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return 1;
}
