/*
 * libstallwatch-preload.so: watches the event loops of programs that nobody
 * changed. Loaded with LD_PRELOAD, it wraps the C library's wait calls that
 * event loops are built on (epoll_wait, epoll_pwait, epoll_pwait2, poll,
 * ppoll, select, pselect, and the _FORTIFY_SOURCE forms __poll_chk and
 * __ppoll_chk) and turns each into the shim's park/unpark/tick:
 *
 *  - a thread's first wait registers it as a worker named after the thread
 *    (creating the process's table on the first one of all);
 *  - a wait that may block (a timeout other than zero) parks the worker for
 *    its duration; its return unparks and ticks;
 *  - a zero-timeout wait (busy polling) only ticks.
 *
 * A loop thread that has not come back to its wait for longer than the
 * monitor's threshold is therefore RUNNING without progress: blocked in a
 * handler. Threads that never call a wait function are never registered.
 *
 * The shim is compiled into this library (shim.c) and its API exported, so
 * a program that also links libstallwatch.so binds to this one copy and the
 * process has one table; a program with the static shim adopts the same
 * table (shim.c, adopt_table). Threads that the program registered itself
 * are left to the program.
 *
 * On the path of a wait: thread-local reads, plain stores into the slot, and
 * errno saved and restored; no lock, no allocation, no system call of our
 * own. Only a thread's first wait does more (registration, once), and a
 * thread registered under the process's own name reads its name
 * (prctl(PR_GET_NAME)) after each of its next 16 waits (recheck_name). The
 * wrapped call is made with the caller's arguments untouched, so its result,
 * errno, signal-mask handling and cancellation are the C library's own.
 * docs/preload.md has the whole story, and what this cannot see.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim/shim_internal.h"
#include "stallwatch/stallwatch.h"

#define EXPORT __attribute__((visibility("default")))
#define TLS __thread __attribute__((tls_model("initial-exec")))

/* ---- the C library's functions, found once -------------------------------- */

typedef int epoll_wait_fn(int, struct epoll_event *, int, int);
typedef int epoll_pwait_fn(int, struct epoll_event *, int, int, const sigset_t *);
typedef int epoll_pwait2_fn(int, struct epoll_event *, int, const struct timespec *,
                            const sigset_t *);
typedef int poll_fn(struct pollfd *, nfds_t, int);
typedef int ppoll_fn(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
typedef int poll_chk_fn(struct pollfd *, nfds_t, int, size_t);
typedef int ppoll_chk_fn(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *,
                         size_t);
typedef int select_fn(int, fd_set *, fd_set *, fd_set *, struct timeval *);
typedef int pselect_fn(int, fd_set *, fd_set *, fd_set *, const struct timespec *,
                       const sigset_t *);

static struct {
    epoll_wait_fn *epoll_wait;
    epoll_pwait_fn *epoll_pwait;
    epoll_pwait2_fn *epoll_pwait2;
    poll_fn *poll;
    poll_fn *poll_alias; /* __poll */
    ppoll_fn *ppoll;
    poll_chk_fn *poll_chk;
    ppoll_chk_fn *ppoll_chk;
    select_fn *select;
    pselect_fn *pselect;
} next;

static int g_resolved; /* 1 once `next` is filled in (acquire/release) */
static int g_watching; /* 1 when every function was found: waits are watched */

/*
 * The raw system calls behind each function, used only when the C library's
 * own could not be found: the program keeps working, and a line on stderr
 * says that nothing is watched. syscall(2) is not a cancellation point, so
 * each runs with asynchronous cancellation, as the C library once made its
 * own cancellation points: a thread cancelled in one still ends.
 */
#define SIGSET_BYTES (_NSIG / 8)

static long cancellable_syscall(long nr, long a, long b, long c, long d, long e, long f)
{
    int old;
    pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, &old);
    long r = syscall(nr, a, b, c, d, e, f);
    int saved = errno;
    pthread_setcanceltype(old, NULL);
    errno = saved;
    return r;
}
#define RAW(nr, a, b, c, d, e, f)                                              \
    (int)cancellable_syscall(nr, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

static int raw_epoll_pwait(int fd, struct epoll_event *ev, int max, int timeout, const sigset_t *ss)
{
    return RAW(SYS_epoll_pwait, fd, ev, max, timeout, ss, SIGSET_BYTES);
}

static int raw_epoll_wait(int fd, struct epoll_event *ev, int max, int timeout)
{
    return raw_epoll_pwait(fd, ev, max, timeout, NULL);
}

static int raw_epoll_pwait2(int fd, struct epoll_event *ev, int max, const struct timespec *t,
                            const sigset_t *ss)
{
    return RAW(SYS_epoll_pwait2, fd, ev, max, t, ss, SIGSET_BYTES);
}

static int raw_ppoll(struct pollfd *fds, nfds_t n, const struct timespec *t, const sigset_t *ss)
{
    struct timespec copy, *tp = NULL; /* the kernel writes the time left back */
    if (t) {
        copy = *t;
        tp = &copy;
    }
    return RAW(SYS_ppoll, fds, n, tp, ss, SIGSET_BYTES, 0);
}

static int raw_poll(struct pollfd *fds, nfds_t n, int timeout)
{
    return RAW(SYS_poll, fds, n, timeout, 0, 0, 0);
}

static int raw_select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *t)
{
    return RAW(SYS_select, n, r, w, e, t, 0);
}

static int raw_pselect(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *t,
                       const sigset_t *ss)
{
    struct timespec copy, *tp = NULL;
    if (t) {
        copy = *t;
        tp = &copy;
    }
    struct {
        const sigset_t *ss;
        size_t size;
    } mask = {ss, SIGSET_BYTES};
    return RAW(SYS_pselect6, n, r, w, e, tp, &mask);
}

static int raw_poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t len)
{
    if (len / sizeof *fds < n)
        abort(); /* what the C library's check does: a buffer overflow */
    return raw_poll(fds, n, timeout);
}

static int raw_ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *t,
                         const sigset_t *ss, size_t len)
{
    if (len / sizeof *fds < n)
        abort();
    return raw_ppoll(fds, n, t, ss);
}

static void *find_next(const char *name, int *missing)
{
    void *p = dlsym(RTLD_NEXT, name);
#ifdef STALLWATCH_TEST_HOOKS
    /* Test hook: pretend the C library does not have these functions. */
    const char *fail = getenv("STALLWATCH_TEST_PRELOAD_NO_NEXT");
    if (fail && *fail)
        p = NULL;
#endif
    if (!p)
        ++*missing;
    return p;
}

static pthread_mutex_t g_resolve_lock = PTHREAD_MUTEX_INITIALIZER;

static void after_fork_child(void);

static void resolve(void)
{
    pthread_mutex_lock(&g_resolve_lock);
    if (__atomic_load_n(&g_resolved, __ATOMIC_ACQUIRE)) {
        pthread_mutex_unlock(&g_resolve_lock);
        return;
    }
    int saved = errno, missing = 0;
    /* dlsym's void * into a function pointer, as POSIX allows */
#define FIND(field, name)                                                      \
    do {                                                                       \
        void *p_ = find_next(name, &missing);                                  \
        memcpy(&next.field, &p_, sizeof p_);                                   \
    } while (0)
    FIND(epoll_wait, "epoll_wait");
    FIND(epoll_pwait, "epoll_pwait");
    FIND(epoll_pwait2, "epoll_pwait2");
    FIND(poll, "poll");
    FIND(poll_alias, "__poll");
    FIND(ppoll, "ppoll");
    FIND(poll_chk, "__poll_chk");
    FIND(ppoll_chk, "__ppoll_chk");
    FIND(select, "select");
    FIND(pselect, "pselect");
    if (!next.epoll_wait) next.epoll_wait = raw_epoll_wait;
    if (!next.epoll_pwait) next.epoll_pwait = raw_epoll_pwait;
    if (!next.epoll_pwait2) next.epoll_pwait2 = raw_epoll_pwait2;
    if (!next.poll) next.poll = raw_poll;
    if (!next.poll_alias) next.poll_alias = next.poll;
    if (!next.ppoll) next.ppoll = raw_ppoll;
    if (!next.poll_chk) next.poll_chk = raw_poll_chk;
    if (!next.ppoll_chk) next.ppoll_chk = raw_ppoll_chk;
    if (!next.select) next.select = raw_select;
    if (!next.pselect) next.pselect = raw_pselect;
    if (missing) {
        /* One line, once per process: the program runs as before, unwatched. */
        char line[200];
        int n = snprintf(line, sizeof line,
                         "stallwatch-preload: %d of the C library's wait functions were not found "
                         "(dlsym RTLD_NEXT); passing every wait through unwatched\n",
                         missing);
        if (n > 0)
            (void)!write(STDERR_FILENO, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    } else {
        __atomic_store_n(&g_watching, 1, __ATOMIC_RELAXED);
    }
    pthread_atfork(NULL, NULL, after_fork_child);
    __atomic_store_n(&g_resolved, 1, __ATOMIC_RELEASE);
    errno = saved;
    pthread_mutex_unlock(&g_resolve_lock);
}

/* Before main, so that no wait pays for the lookup. A wait made by another
 * library's constructor before this one runs resolves on the spot. */
__attribute__((constructor)) static void preload_init(void)
{
    resolve();
}

/* ---- the calling thread's worker ------------------------------------------ */

enum thread_kind {
    THREAD_NEW = 0,   /* has not waited yet */
    THREAD_LOOP = 1,  /* registered here at its first wait: t_loop */
    THREAD_OTHER = 2, /* the program's own worker, or no table: left alone */
};

static TLS stallwatch_worker *t_loop;
static TLS unsigned char t_kind;
static TLS unsigned char t_inside; /* in a wait of ours: a nested one passes */
/* A thread registered under the process's own name may not have been named
 * yet: programs often name a thread from the thread that created it, after
 * pthread_create (memcached's mc-worker), and the new thread can reach its
 * first wait before that. Its next few waits look at the name again, and a
 * new name re-registers it. */
enum { NAME_CHECKS = 16 };
static TLS unsigned char t_name_checks;
static TLS char t_name[17];

/* A forked child starts with no table (the shim drops the parent's): its
 * loop threads register again, in a table of the child's own. */
/* Set once stallwatch_init has been called: the table's name matters only
 * to the call that makes it (later calls return its result), so later first
 * waits skip reading /proc/self/comm. A forked child makes a table anew. */
static int g_init_tried;
/* The process's command name, read with the table's first registration: a
 * thread registered under it may be renamed later (t_name_checks). */
static char g_comm[17];

static void after_fork_child(void)
{
    __atomic_store_n(&g_init_tried, 0, __ATOMIC_RELAXED);
    t_loop = NULL;
    t_kind = THREAD_NEW;
    t_inside = 0;
    t_name_checks = 0;
}

/* The process's name for the table: its command name (/proc/self/comm).
 * Not argv[0], which servers such as nginx overwrite with a title. */
static void process_name(char *out, size_t size)
{
    out[0] = '\0';
    int fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, out, size - 1);
    close(fd);
    if (n <= 0)
        n = 0;
    out[n] = '\0';
    char *nl = strchr(out, '\n');
    if (nl)
        *nl = '\0';
}

/* The first wait of a thread: registers it, unless the program did. */
static __attribute__((noinline, cold)) stallwatch_worker *first_wait(void)
{
    int saved = errno;
    t_kind = THREAD_OTHER;
    char app[17] = {0};
    if (!__atomic_load_n(&g_init_tried, __ATOMIC_ACQUIRE)) {
        process_name(app, sizeof app);
        memcpy(g_comm, app, sizeof g_comm); /* racing first waits write the same */
    }
    int init = stallwatch_init(app[0] ? app : NULL, 0);
    __atomic_store_n(&g_init_tried, 1, __ATOMIC_RELEASE);
    if (init == 0 && sw_shim_thread_worker() == NULL) {
        char name[17] = {0};
        if (prctl(PR_GET_NAME, name, 0, 0, 0) != 0)
            name[0] = '\0';
        stallwatch_worker *w = stallwatch_register(name[0] ? name : program_invocation_short_name);
        if (stallwatch_worker_is_live(w)) {
            t_loop = w;
            t_kind = THREAD_LOOP;
            if (name[0] && strcmp(name, g_comm) == 0 && (pid_t)syscall(SYS_gettid) != getpid()) {
                memcpy(t_name, name, sizeof t_name);
                t_name_checks = NAME_CHECKS;
            }
        }
    }
    errno = saved;
    return t_loop;
}

/* Called before the wrapped call: the worker to mark, or NULL. */
static inline stallwatch_worker *wait_begins(int may_block)
{
    if (__builtin_expect(!__atomic_load_n(&g_resolved, __ATOMIC_ACQUIRE), 0))
        resolve();
    if (t_inside || !__atomic_load_n(&g_watching, __ATOMIC_RELAXED))
        return NULL;
    stallwatch_worker *w = t_loop;
    if (__builtin_expect(w != sw_shim_worker, 0)) {
        /* The slot was released under us: the thread is exiting (a later
         * thread-exit destructor waits) or the program unregistered it. The
         * slot may belong to another thread by now: never touch it again. */
        t_loop = NULL;
        t_kind = THREAD_OTHER;
        return NULL;
    }
    if (__builtin_expect(w == NULL, 0)) {
        if (t_kind != THREAD_NEW)
            return NULL;
        t_inside = 1; /* a signal handler's wait during registration passes */
        w = first_wait();
        t_inside = 0;
        if (!w)
            return NULL;
    }
    t_inside = 1;
    if (may_block)
        stallwatch_park(w);
    return w;
}

/* After a wait of a thread registered under the process's name: if it has
 * been named since, it registers again under its name (the monitor sees the
 * old worker leave and the named one come). errno is kept. */
static __attribute__((noinline, cold)) void recheck_name(stallwatch_worker *w)
{
    if (sw_shim_shared) { /* the program (or an adapter) holds this worker too: keep it */
        t_name_checks = 0;
        return;
    }
    int saved = errno;
    char name[17] = {0};
    --t_name_checks;
    if (prctl(PR_GET_NAME, name, 0, 0, 0) == 0 && name[0] && strcmp(name, t_name) != 0) {
        t_name_checks = 0;
        stallwatch_unregister(w);
        stallwatch_worker *again = stallwatch_register(name);
        if (stallwatch_worker_is_live(again)) {
            t_loop = again;
        } else {
            t_loop = NULL;
            t_kind = THREAD_OTHER;
        }
    }
    errno = saved;
}

/* Called after it: the loop is back; one turn done. Plain stores: errno and
 * the call's result are untouched. */
static inline void wait_ends(stallwatch_worker *w)
{
    if (!w)
        return;
    stallwatch_unpark(w);
    if (__builtin_expect(t_name_checks != 0, 0))
        recheck_name(w);
    t_inside = 0;
}

static inline int timespec_may_block(const struct timespec *t)
{
    return !t || t->tv_sec != 0 || t->tv_nsec != 0;
}

static inline int timeval_may_block(const struct timeval *t)
{
    return !t || t->tv_sec != 0 || t->tv_usec != 0;
}

/* ---- the wrappers ---------------------------------------------------------- */

#define WRAP(may_block, call)                                                  \
    do {                                                                       \
        stallwatch_worker *w_ = wait_begins(may_block);                        \
        int r_ = call;                                                         \
        wait_ends(w_);                                                         \
        return r_;                                                             \
    } while (0)

EXPORT int epoll_wait(int fd, struct epoll_event *ev, int max, int timeout)
{
    WRAP(timeout != 0, next.epoll_wait(fd, ev, max, timeout));
}

EXPORT int epoll_pwait(int fd, struct epoll_event *ev, int max, int timeout, const sigset_t *ss)
{
    WRAP(timeout != 0, next.epoll_pwait(fd, ev, max, timeout, ss));
}

EXPORT int epoll_pwait2(int fd, struct epoll_event *ev, int max, const struct timespec *t,
                        const sigset_t *ss)
{
    WRAP(timespec_may_block(t), next.epoll_pwait2(fd, ev, max, t, ss));
}

EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    WRAP(timeout != 0, next.poll(fds, n, timeout));
}

EXPORT int __poll(struct pollfd *fds, nfds_t n, int timeout)
{
    WRAP(timeout != 0, next.poll_alias(fds, n, timeout));
}

EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *t, const sigset_t *ss)
{
    WRAP(timespec_may_block(t), next.ppoll(fds, n, t, ss));
}

EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t len)
{
    WRAP(timeout != 0, next.poll_chk(fds, n, timeout, len));
}

EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *t, const sigset_t *ss,
                       size_t len)
{
    WRAP(timespec_may_block(t), next.ppoll_chk(fds, n, t, ss, len));
}

EXPORT int select(int n, fd_set *r, fd_set *wr, fd_set *e, struct timeval *t)
{
    WRAP(timeval_may_block(t), next.select(n, r, wr, e, t));
}

EXPORT int pselect(int n, fd_set *r, fd_set *wr, fd_set *e, const struct timespec *t,
                   const sigset_t *ss)
{
    WRAP(timespec_may_block(t), next.pselect(n, r, wr, e, t, ss));
}
