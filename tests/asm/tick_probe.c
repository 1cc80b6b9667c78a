/*
 * Out-of-line copies of the shim's inline hot path, compiled at -O2 so that
 * check_disasm.cmake can read what an application actually gets from
 * stallwatch.h. Each probe is exported and never inlined: its symbol is the
 * handle the check looks for in the disassembly.
 */
#include "stallwatch/stallwatch.h"

#define PROBE __attribute__((noinline, used, visibility("default")))

PROBE void sw_probe_tick(stallwatch_worker *w) { stallwatch_tick(w); }
PROBE void sw_probe_park(stallwatch_worker *w) { stallwatch_park(w); }
PROBE void sw_probe_unpark(stallwatch_worker *w) { stallwatch_unpark(w); }

/* Negative control: the atomic read-modify-write the shim must avoid. The
 * check requires a `lock` here, proving it can see one when it is present. */
PROBE void sw_probe_control(stallwatch_worker *w)
{
    __atomic_fetch_add(&w->progress, 1, __ATOMIC_RELAXED);
}
