/*
 * stallwatch shim: the in-app half of stallwatch.
 *
 * A process calls stallwatch_init() once; each worker thread calls
 * stallwatch_register() once, then stallwatch_tick() after every unit of work
 * and stallwatch_park()/stallwatch_unpark() around its waits for new work.
 * The stallwatch monitor reads the resulting progress table from outside the
 * process (see docs/table-format.md) and reports workers whose progress stops
 * while they are not parked.
 *
 * Guarantees to the host application:
 *  - stallwatch_tick, _park and _unpark are inline stores: no call, no lock,
 *    no syscall, no atomic read-modify-write.
 *  - stallwatch_register never returns NULL. When the shim is disabled
 *    (STALLWATCH_DISABLE=1), not initialised, failed to initialise, or the
 *    table is full, it returns a private per-thread slot that nobody reads,
 *    so every call stays valid and cheap.
 *  - A worker is unregistered automatically when its thread exits.
 *  - A forked child never writes into its parent's table; the table is not
 *    inherited across exec; nothing is left on disk or in /dev/shm.
 */
#ifndef STALLWATCH_STALLWATCH_H
#define STALLWATCH_STALLWATCH_H

#include <stdint.h>

#include "stallwatch/table_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define STALLWATCH_API __attribute__((visibility("default")))
#else
#define STALLWATCH_API
#endif

/* Default number of worker slots when stallwatch_init is given 0. */
#define STALLWATCH_DEFAULT_CAPACITY 256u

/*
 * Create this process's progress table. `app_name` (may be NULL: the
 * process's comm name is used) is truncated to 63 bytes. `capacity` is the
 * number of worker slots (0 for the default, at most STALLWATCH_MAX_CAPACITY).
 * Idempotent: later calls return 0 and change nothing. When the process
 * already has a table made by another copy of the shim (the static shim in
 * a program that also runs under libstallwatch-preload.so), that table is
 * used: one process, one table.
 * Returns 0, or a negative errno: -ECANCELED when STALLWATCH_DISABLE is set,
 * -EINVAL for a capacity over the maximum, or the error of memfd_create,
 * ftruncate, sealing the table (F_ADD_SEALS: without the seals nothing would
 * stop a holder of the fd from shrinking the table under the application,
 * so no table is made) or mmap. After a failure every other call is a no-op.
 */
STALLWATCH_API int stallwatch_init(const char *app_name, uint32_t capacity);

/*
 * Register the calling thread as a worker named `name` (may be NULL; truncated
 * to 39 bytes). Calling it again on a registered thread returns the same
 * worker. Never returns NULL (see above). The worker starts RUNNING.
 */
STALLWATCH_API stallwatch_worker *stallwatch_register(const char *name);

/* Release the calling thread's slot. `w` must be the thread's own worker.
 * Also happens automatically at thread exit. */
STALLWATCH_API void stallwatch_unregister(stallwatch_worker *w);

/* 1 when `w` is a slot of the shared table, 0 when it is the private
 * no-op slot (disabled, not initialised, or table full). */
STALLWATCH_API int stallwatch_worker_is_live(const stallwatch_worker *w);

/*
 * ---- Groups and compensation (table format version 2) ----------------------
 *
 * Workers can belong to a named group (a pool), and the application can ask
 * to be called back when every running worker of a group has stopped making
 * progress: a "compensation episode", during which it may run extra threads
 * until the workers recover. docs/adapters.md ("Compensation") explains it;
 * stallwatch/asio.hpp uses it for Asio pools.
 */

/*
 * As stallwatch_init, with room for `groups` groups (1..STALLWATCH_MAX_GROUPS).
 * The table is then format version 2, which a stallwatch that reads only
 * version 1 refuses (with a message saying to upgrade); a table made by
 * stallwatch_init stays version 1. If the table already exists, returns its
 * result and the groups depend on how it was made.
 */
STALLWATCH_API int stallwatch_init_groups(const char *app_name, uint32_t capacity, uint32_t groups);

/*
 * The group called `name` (truncated to 31 bytes), made at its first use:
 * its id, 1 or more. -ENOTSUP when the table has no groups (made by
 * stallwatch_init), -ENOSPC when every group is taken, -EINVAL for an empty
 * name, or the init error when there is no table.
 */
STALLWATCH_API int stallwatch_group(const char *name);

/*
 * The calling thread's worker `w` joins group `group` (0: leaves its group).
 * 0, or -EINVAL (not the thread's own worker, or no such group). The no-op
 * worker of a disabled or full table joins nothing and returns 0.
 */
STALLWATCH_API int stallwatch_join(stallwatch_worker *w, int group);

/*
 * Called with begins = 1 when every RUNNING worker of `group` has made no
 * progress for its threshold (at least one of them running), and with
 * begins = 0 when that stops being true. Called from the shim's watchdog
 * thread ("sw-compensate"), never from a signal handler; keep it short.
 */
typedef void (*stallwatch_compensate_fn)(int group, int begins, void *arg);

/*
 * Calls `fn` at the start and end of each compensation episode of `group`,
 * judged with `threshold_ms`. The first call starts the watchdog thread
 * (one per process; it wakes every threshold/4, between 5 and 100 ms).
 * fn = NULL stops calling. Replacing or stopping the callback waits for a
 * call of it in flight to return (unless made from that call), and ends a
 * running episode by calling the old fn(group, 0, old arg) before it
 * returns: after that, the old arg is never used again. 0, -ENOTSUP (no
 * table with groups), -EINVAL (no such group, threshold 0), or
 * pthread_create's error, negated.
 */
STALLWATCH_API int stallwatch_compensate(int group, uint32_t threshold_ms, stallwatch_compensate_fn fn,
                                         void *arg);

/*
 * How many extra threads the application runs for `group` now: the monitor
 * shows it, with the most at once in each episode. Call it as they start
 * and leave.
 */
STALLWATCH_API void stallwatch_compensation_threads(int group, uint32_t extra);

/* One unit of progress. Call it only from the worker's own thread. */
static inline void stallwatch_tick(stallwatch_worker *w)
{
    /* Single writer: a relaxed load and store, never a locked RMW. */
    uint64_t v = __atomic_load_n(&w->progress, __ATOMIC_RELAXED);
    __atomic_store_n(&w->progress, v + 1, __ATOMIC_RELAXED);
}

/* The worker is about to wait for new work: it cannot stall while parked. */
static inline void stallwatch_park(stallwatch_worker *w)
{
    __atomic_store_n(&w->state, STALLWATCH_SLOT_PARKED, __ATOMIC_RELEASE);
}

/* The worker has work again. Counts as progress, so that a worker that parks
 * and unparks between two reads of the monitor is not mistaken for stuck. */
static inline void stallwatch_unpark(stallwatch_worker *w)
{
    stallwatch_tick(w);
    __atomic_store_n(&w->state, STALLWATCH_SLOT_RUNNING, __ATOMIC_RELEASE);
}

#ifdef __cplusplus
}
#endif

#endif /* STALLWATCH_STALLWATCH_H */
