/*
 * What the shim shares with the preload library (src/preload), which is
 * compiled together with it into one shared object. Not installed.
 */
#ifndef STALLWATCH_SHIM_INTERNAL_H
#define STALLWATCH_SHIM_INTERNAL_H

#include "stallwatch/table_abi.h"

/* The calling thread's slot, registered through this copy of the shim, or
 * NULL: set by stallwatch_register, cleared by stallwatch_unregister, at
 * thread exit and in a forked child. */
extern __thread stallwatch_worker *sw_shim_worker __attribute__((visibility("hidden")));

/* 1 when stallwatch_register has handed the calling thread's worker out
 * again (the thread was registered already): someone besides its first
 * registrant holds it, so the preload must not re-register the thread. */
extern __thread unsigned char sw_shim_shared __attribute__((visibility("hidden")));

/* The calling thread's registered worker, or NULL when it has none (the
 * private no-op slot does not count): registered through this copy of the
 * shim, or found in the table by its tid (another copy registered it). */
__attribute__((visibility("hidden"))) stallwatch_worker *sw_shim_thread_worker(void);

/* The table as this copy of the shim maps it, for the compensation
 * watchdog (compensation.c). */
struct sw_shim_view {
    uint32_t capacity;
    uint32_t groups;
    struct stallwatch_table_header *header;
    struct stallwatch_table_group *group0;
    stallwatch_worker *slot0;
};
/* 0 and `view` filled when the table is live and has groups; -1 otherwise. */
__attribute__((visibility("hidden"))) int sw_shim_table(struct sw_shim_view *view);

/* In a forked child: the watchdog thread did not come along; forget it and
 * the parent's callbacks. */
__attribute__((visibility("hidden"))) void sw_shim_compensation_after_fork(void);

#endif /* STALLWATCH_SHIM_INTERNAL_H */
