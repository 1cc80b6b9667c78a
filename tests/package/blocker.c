/* Package test: a program built against the installed shim whose worker
 * blocks while running, for the installed `stallwatch run` to catch. */
#include <stdio.h>
#include <time.h>

#include <stallwatch/stallwatch.h>

__attribute__((noinline)) static void blocked_in_package_test(void)
{
    struct timespec ts = {2, 0};
    nanosleep(&ts, NULL); /* LINE:blocked */
    __asm__ volatile("" ::: "memory");
}

int main(void)
{
    if (stallwatch_init("package-test", 0) != 0)
        return 1;
    stallwatch_worker *w = stallwatch_register("pkg-worker");
    struct timespec ms = {0, 1000000};
    for (int i = 0; i < 100; ++i) {
        stallwatch_tick(w);
        nanosleep(&ms, NULL);
    }
    blocked_in_package_test();
    stallwatch_tick(w);
    puts("blocker: done");
    return 0;
}
