/*
 * stallwatch for libuv: one call per loop makes the thread that runs it a
 * watched worker. Header-only; needs <uv.h> (libuv1-dev) and the shim.
 *
 *     stallwatch_init("my-service", 0);
 *     uv_loop_t *loop = uv_default_loop();
 *     stallwatch_uv *sw = stallwatch_uv_watch(loop, "uv-main");
 *     stallwatch_uv_run(sw, loop, UV_RUN_DEFAULT);   (uv_run, then park)
 *     stallwatch_uv_unwatch(sw);          (on the loop's thread)
 *
 * How: a prepare handle runs just before the loop polls for I/O and parks
 * the worker; a check handle runs right after the poll, unparks it and
 * ticks. Timers, idle callbacks, the application's check handles and (up to
 * libuv 1.44) pending callbacks then run RUNNING, so one that blocks stops
 * the counter and is reported, while an idle loop sleeps PARKED and a busy
 * one ticks every iteration. The worker parks before every poll,
 * not only those with a non-zero uv_backend_timeout(): that function
 * answers 0 whenever descriptors wait to be added to epoll (the first
 * iteration, and after every new watcher), although the poll then blocks
 * with the real timeout. A zero-timeout poll returns at once, so parking
 * through it hides nothing.
 *
 * Not seen: what libuv runs inside its poll, between prepare and check, so
 * PARKED: I/O callbacks, and the completions that arrive through its async
 * handle (uv_queue_work's after_work_cb, uv_fs_* callbacks, uv_async_t);
 * and prepare handles the application started before this one. For a loop whose work is in I/O callbacks,
 * use libstallwatch-preload.so instead: it parks only inside epoll_wait
 * itself, so the callbacks run RUNNING.
 *
 * Both handles are unref'd: they never keep uv_run() from returning. The
 * worker is registered in the first prepare callback, on the thread that
 * runs the loop, named `name` (copied). docs/adapters.md has the details.
 */
#ifndef STALLWATCH_UV_H
#define STALLWATCH_UV_H

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "stallwatch/stallwatch.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct stallwatch_uv {
    uv_prepare_t prepare;   /* first: the block starts with a handle */
    uv_check_t check;
    stallwatch_worker *worker; /* NULL until the loop's first iteration */
    pthread_t thread;          /* the thread that registered it */
    int open_handles;          /* freed when both close callbacks have run */
    char name[STALLWATCH_WORKER_NAME_SIZE];
} stallwatch_uv;

static inline void stallwatch_uv__check(uv_check_t *h);

static inline void stallwatch_uv__prepare(uv_prepare_t *h)
{
    stallwatch_uv *sw = (stallwatch_uv *)h->data;
    if (sw->worker == NULL) {
        sw->worker = stallwatch_register(sw->name);
        sw->thread = pthread_self();
    } else if (!pthread_equal(sw->thread, pthread_self())) {
        return; /* the loop moved to another thread: its slot is not this one's */
    }
    /* Check handles run newest first: restarting ours puts it before every
     * check handle of the application, which then run RUNNING. */
    uv_check_stop(&sw->check);
    uv_check_start(&sw->check, stallwatch_uv__check);
    stallwatch_park(sw->worker);
}

static inline void stallwatch_uv__check(uv_check_t *h)
{
    stallwatch_uv *sw = (stallwatch_uv *)h->data;
    if (sw->worker != NULL && pthread_equal(sw->thread, pthread_self()))
        stallwatch_unpark(sw->worker);
}

static inline void stallwatch_uv__closed(uv_handle_t *h)
{
    stallwatch_uv *sw = (stallwatch_uv *)h->data;
    if (--sw->open_handles == 0)
        free(sw);
}

/*
 * Watches `loop`. Returns NULL (and watches nothing) when memory or libuv
 * fails; the loop then runs unwatched. Call it on any thread, before or
 * between runs of the loop, never from inside another thread's uv_run().
 */
static inline stallwatch_uv *stallwatch_uv_watch(uv_loop_t *loop, const char *name)
{
    stallwatch_uv *sw = (stallwatch_uv *)calloc(1, sizeof *sw);
    if (sw == NULL)
        return NULL;
    if (name != NULL)
        strncpy(sw->name, name, sizeof sw->name - 1);
    if (uv_prepare_init(loop, &sw->prepare) != 0) {
        free(sw);
        return NULL;
    }
    if (uv_check_init(loop, &sw->check) != 0) {
        sw->prepare.data = sw;
        sw->open_handles = 1;
        uv_close((uv_handle_t *)&sw->prepare, stallwatch_uv__closed);
        return NULL;
    }
    sw->prepare.data = sw;
    sw->check.data = sw;
    sw->open_handles = 2;
    uv_prepare_start(&sw->prepare, stallwatch_uv__prepare);
    uv_check_start(&sw->check, stallwatch_uv__check);
    uv_unref((uv_handle_t *)&sw->prepare);
    uv_unref((uv_handle_t *)&sw->check);
    return sw;
}

/*
 * uv_run(loop, mode), then the worker parks: the thread leaves the loop, and
 * whatever it does next (teardown, a join, another loop) is not the loop's
 * work. Use it instead of uv_run() on a watched loop, or park yourself.
 */
static inline int stallwatch_uv_run(stallwatch_uv *sw, uv_loop_t *loop, uv_run_mode mode)
{
    int r = uv_run(loop, mode);
    if (sw != NULL && sw->worker != NULL && pthread_equal(sw->thread, pthread_self()))
        stallwatch_park(sw->worker);
    return r;
}

/*
 * Stops watching: releases the worker's slot and closes both handles; their
 * memory is freed by the loop when it next runs (uv_run(), as before
 * uv_loop_close()). Call it on the loop's thread, outside uv_run() or from a
 * callback of that loop. NULL is ignored.
 */
static inline void stallwatch_uv_unwatch(stallwatch_uv *sw)
{
    if (sw == NULL)
        return;
    if (sw->worker != NULL) {
        stallwatch_unregister(sw->worker);
        sw->worker = NULL;
    }
    uv_close((uv_handle_t *)&sw->prepare, stallwatch_uv__closed);
    uv_close((uv_handle_t *)&sw->check, stallwatch_uv__closed);
}

#ifdef __cplusplus
}
#endif

#endif /* STALLWATCH_UV_H */
