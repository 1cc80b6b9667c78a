/*
 * Compensation: a watchdog thread inside the process that calls the
 * application back when every running worker of a group has stopped making
 * progress, so that it can add threads until they recover (docs/adapters.md,
 * "Compensation"). It must act whether or not a monitor is attached, so it
 * runs here, not in stallwatch; it reads the process's own table with the
 * same rule the monitor uses, and writes each episode into the group's
 * record, where the monitor reports it.
 *
 * One thread for the process, created by the first stallwatch_compensate()
 * with every signal blocked. It wakes every threshold/4 (the smallest of the
 * groups', clamped to 5..100 ms) and calls the callbacks from itself, never
 * from a signal handler, without holding any lock of the shim.
 */
#define _GNU_SOURCE
#include "stallwatch/stallwatch.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shim/shim_internal.h"

struct comp {
    stallwatch_compensate_fn fn;
    void *arg;
    uint32_t threshold_ms;
    int in_episode; /* watchdog thread only */
};

static pthread_mutex_t c_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t c_call_done = PTHREAD_COND_INITIALIZER;
static struct comp c_groups[STALLWATCH_MAX_GROUPS]; /* under c_lock */
static int c_started;                               /* under c_lock */
static pthread_t c_thread;                          /* the watchdog, once c_started */
static int c_calling = -1; /* group index whose callback runs now, or -1 (under c_lock) */

/* What the watchdog last saw of each slot. */
struct seen {
    uint32_t generation;
    uint64_t progress;
    uint64_t changed_ns; /* CLOCK_MONOTONIC when progress last moved (or the slot was claimed) */
};

static uint64_t clock_ns(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void sleep_ms(uint32_t ms)
{
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
}

static void max_store(uint32_t *p, uint32_t v)
{
    uint32_t cur = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (cur < v && !__atomic_compare_exchange_n(p, &cur, v, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

static void *watchdog(void *unused)
{
    (void)unused;
    struct seen *seen = NULL;
    uint32_t seen_n = 0;
    for (;;) {
        struct comp now[STALLWATCH_MAX_GROUPS];
        uint32_t interval = 100;
        pthread_mutex_lock(&c_lock);
        for (uint32_t g = 0; g < STALLWATCH_MAX_GROUPS; ++g)
            if (c_groups[g].fn && c_groups[g].threshold_ms / 4 < interval)
                interval = c_groups[g].threshold_ms / 4;
        pthread_mutex_unlock(&c_lock);
        sleep_ms(interval < 5 ? 5 : interval);
        /* Taken after the sleep: a callback stopped meanwhile is not called. */
        pthread_mutex_lock(&c_lock);
        memcpy(now, c_groups, sizeof now);
        pthread_mutex_unlock(&c_lock);

        struct sw_shim_view v;
        if (sw_shim_table(&v) != 0)
            continue;
        if (seen_n < v.capacity) {
            struct seen *more = calloc(v.capacity, sizeof *more);
            if (!more)
                continue;
            free(seen);
            seen = more;
            seen_n = v.capacity;
        }

        uint32_t running[STALLWATCH_MAX_GROUPS] = {0}, stalled[STALLWATCH_MAX_GROUPS] = {0};
        const uint64_t t = clock_ns(CLOCK_MONOTONIC);
        uint32_t hw = __atomic_load_n(&v.header->slots_high_water, __ATOMIC_ACQUIRE);
        for (uint32_t i = 0; i < hw && i < v.capacity; ++i) {
            stallwatch_worker *w = v.slot0 + i;
            uint32_t state = __atomic_load_n(&w->state, __ATOMIC_ACQUIRE);
            if (state != STALLWATCH_SLOT_RUNNING && state != STALLWATCH_SLOT_PARKED)
                continue;
            uint32_t gen = __atomic_load_n(&w->generation, __ATOMIC_RELAXED);
            uint64_t progress = __atomic_load_n(&w->progress, __ATOMIC_RELAXED);
            uint32_t group = __atomic_load_n(&w->group, __ATOMIC_ACQUIRE);
            struct seen *s = &seen[i];
            if (s->generation != gen || s->progress != progress || state == STALLWATCH_SLOT_PARKED) {
                s->generation = gen;
                s->progress = progress;
                s->changed_ns = t;
            }
            if (group == 0 || group > v.groups || state != STALLWATCH_SLOT_RUNNING || !now[group - 1].fn)
                continue;
            ++running[group - 1];
            if (t - s->changed_ns >= (uint64_t)now[group - 1].threshold_ms * 1000000u)
                ++stalled[group - 1];
        }

        for (uint32_t g = 0; g < v.groups; ++g) {
            if (!now[g].fn)
                continue;
            struct stallwatch_table_group *rec = v.group0 + g;
            int all_stalled = running[g] > 0 && stalled[g] == running[g];
            pthread_mutex_lock(&c_lock);
            struct comp *c = &c_groups[g];
            if (c->fn != now[g].fn || c->arg != now[g].arg || all_stalled == c->in_episode) {
                pthread_mutex_unlock(&c_lock); /* replaced meanwhile, or no change */
                continue;
            }
            c->in_episode = all_stalled;
            c_calling = (int)g;
            if (all_stalled) {
                __atomic_store_n(&rec->extra_threads_peak, __atomic_load_n(&rec->extra_threads, __ATOMIC_RELAXED),
                                 __ATOMIC_RELAXED);
                __atomic_store_n(&rec->episodes, __atomic_load_n(&rec->episodes, __ATOMIC_RELAXED) + 1,
                                 __ATOMIC_RELAXED);
                __atomic_store_n(&rec->episode_begin_unix_ns, clock_ns(CLOCK_REALTIME), __ATOMIC_RELEASE);
            } else {
                __atomic_store_n(&rec->episode_begin_unix_ns, 0, __ATOMIC_RELEASE);
            }
            pthread_mutex_unlock(&c_lock);
            now[g].fn((int)g + 1, all_stalled, now[g].arg); /* no lock held */
            pthread_mutex_lock(&c_lock);
            c_calling = -1;
            pthread_cond_broadcast(&c_call_done);
            pthread_mutex_unlock(&c_lock);
        }
    }
    return NULL;
}

int stallwatch_compensate(int group, uint32_t threshold_ms, stallwatch_compensate_fn fn, void *arg)
{
    struct sw_shim_view v;
    if (sw_shim_table(&v) != 0)
        return -ENOTSUP; /* no table, or one without groups */
    if (group < 1 || (uint32_t)group > v.groups || (fn && threshold_ms == 0) ||
        __atomic_load_n(&v.group0[group - 1].state, __ATOMIC_ACQUIRE) != STALLWATCH_GROUP_ACTIVE)
        return -EINVAL;
    pthread_mutex_lock(&c_lock);
    int r = 0;
    if (!c_started && fn) {
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_t t;
        r = -pthread_create(&t, &attr, watchdog, NULL);
        pthread_attr_destroy(&attr);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r == 0) {
            pthread_setname_np(t, "sw-compensate");
            c_thread = t;
            c_started = 1;
        }
    }
    stallwatch_compensate_fn old_fn = NULL;
    void *old_arg = NULL;
    if (r == 0) {
        /* A call of this group's callback in flight finishes first (unless
         * this is that callback calling us): after we return, the old fn is
         * never called again with the old arg, which may then be freed. */
        if (c_started && !pthread_equal(pthread_self(), c_thread))
            while (c_calling == group - 1)
                pthread_cond_wait(&c_call_done, &c_lock);
        struct comp *c = &c_groups[group - 1];
        if (c->in_episode && (c->fn != fn || c->arg != arg)) {
            /* The episode ends for the old callback, told here. */
            old_fn = c->fn;
            old_arg = c->arg;
            c->in_episode = 0;
            __atomic_store_n(&v.group0[group - 1].episode_begin_unix_ns, 0, __ATOMIC_RELEASE);
        }
        c->fn = fn;
        c->arg = arg;
        c->threshold_ms = threshold_ms;
        __atomic_store_n(&v.group0[group - 1].threshold_ms, fn ? threshold_ms : 0, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&c_lock);
    if (old_fn)
        old_fn(group, 0, old_arg);
    return r;
}

void stallwatch_compensation_threads(int group, uint32_t extra)
{
    struct sw_shim_view v;
    if (sw_shim_table(&v) != 0 || group < 1 || (uint32_t)group > v.groups)
        return;
    struct stallwatch_table_group *rec = v.group0 + group - 1;
    __atomic_store_n(&rec->extra_threads, extra, __ATOMIC_RELAXED);
    max_store(&rec->extra_threads_peak, extra);
}

void sw_shim_compensation_after_fork(void)
{
    pthread_mutex_init(&c_lock, NULL);
    pthread_cond_init(&c_call_done, NULL);
    c_calling = -1;
    memset(c_groups, 0, sizeof c_groups);
    c_started = 0;
}
